"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. Files may be
gzip-compressed; compression is recognised by its magic bytes, not by the file name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ._atomic import atomic_write_bytes

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array in native byte order.

    Raises ValueError naming ``name`` when the magic number is wrong or the payload size does
    not match the header (truncated or with trailing bytes).
    """
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{name}: wrong magic number {data[:4].hex()} "
                         "(expected 0000 followed by a type code in 08,09,0b,0c,0d,0e and a rank)")
    dtype = IDX_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{name}: truncated IDX header (rank {ndim}, {len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(f"{name}: truncated: header says shape {shape} ({expected} bytes), "
                         f"file has {len(data)} bytes")
    if len(data) > expected:
        raise ValueError(f"{name}: wrong size: header says shape {shape} ({expected} bytes), "
                         f"file has {len(data)} bytes ({len(data) - expected} trailing)")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # A writable array in native byte order (a copy; uint8 needs no byte swap).
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or not.

    Returns:
        ndarray with the file's shape (for MNIST images (N, 28, 28) uint8, labels (N,) uint8).
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (uncompressed) of ``array`` (dtype uint8, int8, int16, int32, float32, float64)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"array dtype {array.dtype} has no IDX type code "
                         "(allowed: uint8, int8, int16, int32, float32, float64)")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array rank must be in [1, 255], got {array.ndim}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``), atomically."""
    path = Path(path)
    data = encode_idx(array)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
    return path


def find_idx(directory: Path, name: str) -> Path | None:
    """The path of IDX file ``name`` in ``directory``, uncompressed or with ``.gz``; None if absent."""
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None
