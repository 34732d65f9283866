"""Output safety: check that an output path is writable before any work, save finished work
somewhere else when writing it fails, and lock a results directory for one run at a time.

- :func:`check_writable` probes a path before anything is computed: a path under a regular
  file, an existing file where a directory is wanted (or the reverse), a read-only or immutable
  directory, or a file system that takes no files (``/proc``) give an :class:`OutputError`
  (a ValueError) naming the path. Missing directories are fine when they can be created.
- :func:`rescue` writes files into a new ``memnp-rescue-*`` directory in the working directory
  (or the temporary directory when that is not writable either), for work that is done but could
  not be written where asked; the caller says where it went.
- :class:`RunLock` is an advisory ``fcntl.flock`` on ``<dir>/.memnp.lock``, held for a whole
  run. A second run into the same directory does not wait: it stops at once with
  :class:`ResultsLocked`, whose message gives the PID of the run holding the lock. The lock is
  released when the holding process exits, however it exits (also on SIGKILL), so a stale lock
  file never blocks a rerun. On a file system without locks (some network mounts) runs go unlocked.
"""
import errno
import os
import tempfile
import time
from pathlib import Path

from ..data._atomic import current_umask

LOCK_FILE = ".memnp.lock"
_PROBE_PREFIX = ".memnp-write-test-"


class OutputError(ValueError):
    """An output path that cannot be written (the message names it)."""


class ResultsLocked(RuntimeError):
    """Another process holds the results directory's lock (the message gives its PID)."""


def _reason(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def check_writable(path, option="--out", directory=True):
    """``path`` as a Path once it is known that it can be written; OutputError otherwise.

    directory: True when ``path`` is (or will be created as) a directory, False when it is a file.
    Creates nothing: a temporary file is made and removed in ``path`` when it exists (or in its
    nearest existing ancestor), so read-only mounts, immutable directories, missing
    permissions and pseudo file systems are all caught as the real write would be.
    """
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{option} {path} exists and is not a directory")
        where = path
    else:
        if path.is_dir():
            raise OutputError(f"{option} {path} is a directory; give a file name")
        where = path.parent
    probe = where
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{option} {path} cannot be created: {probe} is not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=probe)
    except OSError as exc:
        raise OutputError(f"{option} {path} is not writable: cannot create files in {probe} "
                          f"({_reason(exc)})") from None
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return path


def rescue(write, what="results"):
    """Call ``write(directory)`` on a new rescue directory, and return that directory.

    The directory is ``memnp-rescue-<what>-<time>-XXXX`` in the working directory, or in the
    temporary directory when the working directory is not writable. OSError when neither works.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    last = None
    for base in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            directory = Path(tempfile.mkdtemp(prefix=f"memnp-rescue-{what}-{stamp}-", dir=base))
            os.chmod(directory, 0o777 & ~current_umask())
            write(directory)
            return directory
        except OSError as exc:
            last = exc
    raise OSError(errno.EIO, f"no rescue directory could be written in {Path.cwd()} or "
                             f"{tempfile.gettempdir()}: {_reason(last)}")


# -- one run per directory -------------------------------------------------------------------------
_NO_LOCKS = {getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS") if hasattr(errno, name)}
_HELD = {}   # resolved directory -> file descriptor of its lock file, for locks this process holds


class RunLock:
    """An exclusive advisory lock on a results directory, held by this process.

    ``acquire()`` creates the directory if needed and takes the lock without waiting
    (ResultsLocked when another process has it, OutputError when the lock file cannot be made);
    acquiring a directory this process already holds is a no-op. ``release()`` gives it back (a
    no-op when not held by this object). Usable as a context manager. The lock file holds the
    owner's PID (for the message).
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.owned = False

    @property
    def path(self):
        return self.directory / LOCK_FILE

    def _id(self):
        return os.path.realpath(self.directory)

    def acquire(self):
        import fcntl
        key = self._id()
        if key in _HELD:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"{self.directory} is not writable: cannot create {self.path} "
                              f"({_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                pid = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise ResultsLocked(f"{self.directory} is in use by another memnp run (PID {pid}); "
                                    "wait until it finishes, or choose another output directory") from None
            if exc.errno in _NO_LOCKS:   # a file system without locks: run unlocked
                return self
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        _HELD[key] = fd
        self.owned = True
        return self

    def release(self):
        if not self.owned:
            return
        import fcntl
        fd = _HELD.pop(self._id(), None)
        self.owned = False
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
