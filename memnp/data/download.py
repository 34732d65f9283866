"""Downloading data files: mirrors in turn, checksum verification, atomic placement.

A file is streamed into a temporary file next to its destination, hashed on the way, checked
against the expected SHA-256 (or, where only that is published, the distributor's MD5) and the
announced length, and only then renamed into place. On any failure the temporary file is removed,
so a destination path never holds a partial or unverified file.

Set ``MEMNP_OFFLINE=1`` to never try the network (the loaders then say which files to put where).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

from ._atomic import temp_path_for
from .sources import RemoteFile

logger = logging.getLogger("memnp.data")

CHUNK = 1 << 20
#: Seconds to wait for a server before trying the next mirror.
DEFAULT_TIMEOUT = 30.0


class ChecksumError(ValueError):
    """A downloaded file's checksum differs from the expected one."""


class DownloadError(OSError):
    """Every mirror of a file failed (network error, dropped connection, bad checksum)."""


class DataUnavailableError(FileNotFoundError):
    """Required data files are absent and could not be downloaded; the message says what to put where."""


def offline() -> bool:
    """True when ``MEMNP_OFFLINE`` is set to a true value (1, true, yes)."""
    return os.environ.get("MEMNP_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file ('sha256' or 'md5')."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(remote: RemoteFile, sha256: str, md5: str, source: str) -> bool:
    """Check digests against ``remote``'s; raises ChecksumError on mismatch.

    Returns True when verified, False (and logs a warning) when no checksum is known.
    """
    if remote.sha256 is not None:
        if sha256 != remote.sha256:
            raise ChecksumError(f"{remote.name} from {source}: SHA-256 {sha256} does not match "
                                f"the expected {remote.sha256}")
        return True
    if remote.md5 is not None:
        if md5 != remote.md5:
            raise ChecksumError(f"{remote.name} from {source}: MD5 {md5} does not match "
                                f"the distributor's published {remote.md5}")
        logger.info("%s: verified against the distributor's published MD5 (no SHA-256 known)", remote.name)
        return True
    logger.warning("%s from %s: could not verify, no checksum is known for this file (SHA-256 %s)",
                   remote.name, source, sha256)
    return False


def _fetch_one(url: str, tmp: Path, timeout: float) -> tuple[str, str]:
    """Stream ``url`` into ``tmp``; return (sha256, md5). Raises on HTTP errors and short reads."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": "memnp"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = 0
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            out.write(block)
            sha.update(block)
            md5.update(block)
            total += len(block)
        if length is not None and total != int(length):
            raise http.client.IncompleteRead(b"", int(length) - total)
    return sha.hexdigest(), md5.hexdigest()


def download(remote: RemoteFile, directory: str | os.PathLike, *, urls: Iterable[str] | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download ``remote`` into ``directory`` (created if needed), trying each mirror in turn.

    Args:
        urls: mirrors to use instead of ``remote.urls`` (tests point this at a local server).
    Returns:
        the path of the verified file.
    Raises:
        ChecksumError: every mirror served a file with the wrong checksum.
        DownloadError: every mirror failed, at least one for a network reason.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    dest = Path(directory) / remote.name
    failures: list[str] = []
    only_checksums = True
    for url in (remote.urls if urls is None else tuple(urls)):
        tmp = temp_path_for(dest)
        try:
            logger.info("downloading %s from %s", remote.name, url)
            sha256, md5 = _fetch_one(url, tmp, timeout)
            verify(remote, sha256, md5, url)
            os.replace(tmp, dest)
            return dest
        except ChecksumError as exc:
            failures.append(str(exc))
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as exc:
            only_checksums = False
            reason = getattr(exc, "reason", None) or exc
            if isinstance(exc, http.client.IncompleteRead):
                reason = f"connection closed early, {exc.expected} bytes missing"
            failures.append(f"{url}: {type(exc).__name__}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
        logger.warning("%s", failures[-1])
    detail = "\n  ".join(failures)
    if failures and only_checksums:
        raise ChecksumError(f"{remote.name}: no mirror served a file with the expected checksum:\n  {detail}")
    raise DownloadError(f"{remote.name}: download failed from every mirror:\n  {detail}")


def unavailable_message(what: str, directory: Path, files: Iterable[RemoteFile],
                        reason: str = "") -> str:
    """The message telling a user which files to put where (and where to get them)."""
    lines = [f"{what} is not available: these files are missing from {directory}"
             + (f" ({reason})" if reason else "") + ":"]
    for remote in files:
        check = (f"sha256 {remote.sha256}" if remote.sha256 else
                 f"md5 {remote.md5}" if remote.md5 else "no known checksum")
        lines.append(f"  {directory / remote.name}   <- {remote.urls[0]}   ({check})")
    lines.append("Download them by hand (or connect to the internet and call again with download=True), "
                 "or point memnp at another data directory with data_dir=... or the MEMNP_DATA variable.")
    return "\n".join(lines)


def ensure(files: Iterable[RemoteFile], directory: str | os.PathLike, *, what: str,
           download_missing: bool = True, present=None, timeout: float = DEFAULT_TIMEOUT) -> list[Path]:
    """Make sure every file of ``files`` is in ``directory``, downloading the missing ones.

    Args:
        what: human-readable name of the data set, for messages.
        present: optional function (directory, RemoteFile) -> Path | None finding an acceptable
            local copy (for example an uncompressed IDX file); default: the exact name.
    Returns:
        the local paths, in the order of ``files``.
    Raises:
        DataUnavailableError: files are missing and downloading is off, offline, or failed.
    """
    directory = Path(directory)
    files = tuple(files)
    find = present or (lambda d, r: (d / r.name) if (d / r.name).is_file() else None)
    paths = [find(directory, r) for r in files]
    missing = [r for r, p in zip(files, paths) if p is None]
    if not missing:
        return paths
    if not download_missing or offline():
        reason = "downloads are off" if not download_missing else "MEMNP_OFFLINE is set"
        raise DataUnavailableError(unavailable_message(what, directory, missing, reason))
    for remote in missing:
        try:
            download(remote, directory, timeout=timeout)
        except (DownloadError, ChecksumError) as exc:
            still = [r for r in missing if find(directory, r) is None]
            raise DataUnavailableError(unavailable_message(what, directory, still, "download failed")
                                       + f"\nDownload errors:\n{exc}") from exc
    return [find(directory, r) for r in files]
