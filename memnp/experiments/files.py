"""The file functions the results store and the in-job checkpoints share: atomic writes of JSON,
text and ``.npz`` files, reading them back (never unpickling), and SHA-256 of a file.

Every write goes to a temporary file ``.NAME.tmp-XXXX`` in the target's directory, is flushed,
synced and moved into place with ``os.replace`` (:func:`memnp.data._atomic.atomic_write`), so a
reader sees either the old file or the complete new one. Both :mod:`memnp.experiments.store` and
:mod:`memnp.experiments.checkpoint` import from here, and this module imports neither.
"""
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from ..data._atomic import atomic_write

#: The mark in the names of this module's temporary files (``.NAME.tmp-XXXX``).
TMP_MARK = ".tmp-"


def atomic_write_file(path, write):
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then move it into place."""
    atomic_write(path, write, prefix=f".{Path(path).name}{TMP_MARK}", suffix="")


def write_json(path, obj):
    """Write ``obj`` as JSON (indented, no NaN: NaN and inf become null) atomically."""
    text = json.dumps(finite(obj), indent=1, allow_nan=False) + "\n"
    atomic_write_file(path, lambda handle: handle.write(text.encode("utf-8")))


def write_text(path, text):
    """Write the string ``text`` (UTF-8) atomically."""
    atomic_write_file(path, lambda handle: handle.write(text.encode("utf-8")))


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_npz(path, arrays):
    """Write a dict of arrays as an uncompressed .npz atomically; returns the file's SHA-256."""
    arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
    for name, array in arrays.items():
        if array.dtype == object:
            raise ValueError(f"weights array {name!r} has dtype object; only numeric arrays are stored")
    atomic_write_file(path, lambda handle: np.savez(handle, **arrays))
    return file_sha256(path)


def read_npz(path):
    """The arrays of an .npz file (never unpickled); ValueError if it is not one."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive (an empty one: the second)
        what = "a single .npy array" if magic == b"\x93NUMPY" else "not an .npz archive (a zip of arrays)"
        raise ValueError(f"{path} is not a readable .npz file of numeric arrays: it is {what}; "
                         "give a weights .npz written by `train` or `reproduce`")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("it holds a single array, not an .npz archive")
        with data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable .npz file of numeric arrays: {exc}") from None


def file_sha256(path):
    """SHA-256 (hex) of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def finite(obj):
    """Replace NaN / inf floats by None and NumPy scalars / arrays by plain Python values."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    if isinstance(obj, np.generic):
        return finite(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
