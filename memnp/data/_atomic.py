"""Atomic file writes: write to a temporary file in the target directory, then rename.

``tempfile.mkstemp`` creates its file with mode 0600; :func:`user_mode` gives the temporary file
the mode a plain ``open(path, "w")`` would have (0666 less the umask) before it is renamed into
place, so results, figures and presets are readable by whoever the user's umask allows.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """This process's umask (read from /proc on Linux, where reading it does not change it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def user_mode(fd: int) -> None:
    """Give the open file ``fd`` mode 0666 & ~umask (the mode ``open()`` would have created)."""
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except (AttributeError, OSError):  # no fchmod (Windows) or a file system without modes
        pass


def temp_path_for(path: Path) -> Path:
    """Create (empty) and return a temporary file next to ``path``, named after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    user_mode(fd)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | os.PathLike, write, prefix: str | None = None,
                 suffix: str = ".part", parents: bool = True) -> None:
    """Call ``write(fileobj)`` on a temporary binary file next to ``path``, then rename it there.

    The temporary file is named ``prefix + random + suffix`` (``prefix`` defaults to
    ``.NAME.``), gets the user's mode (:func:`user_mode`), is flushed and synced, and is moved
    into place with ``os.replace``; it is removed if anything fails. parents: create missing
    parent directories first.
    """
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}." if prefix is None else prefix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.absolute().parent)
    try:
        user_mode(fd)  # the user's umask, not mkstemp's 0600
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
