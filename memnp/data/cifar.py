"""CIFAR-10 from its binary distribution (never the pickled Python version).

Each batch file is a sequence of 3,073-byte records: one label byte (0-9) followed by the
3,072 pixel bytes of a 32 x 32 colour image, channel-major (1,024 red, then green, then blue,
each row-major). The official files are ``data_batch_1.bin`` ... ``data_batch_5.bin`` (10,000
images each) and ``test_batch.bin`` (10,000 images), inside ``cifar-10-binary.tar.gz`` under
``cifar-10-batches-bin/``.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from ._atomic import atomic_write_bytes, temp_path_for

RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
ALL_FILES = TRAIN_FILES + TEST_FILES
#: Subdirectory of the data directory holding the batch files.
SUBDIR = "cifar-10-batches-bin"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")


def parse_cifar_batch(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Parse the bytes of one CIFAR-10 binary batch.

    Returns:
        images: (N, 3, 32, 32) uint8, channel-major as stored.
        labels: (N,) uint8 in [0, 9].
    """
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise ValueError(f"{name}: wrong size for CIFAR-10 binary data: {len(data)} bytes is not a "
                         f"positive multiple of the {RECORD_BYTES}-byte record "
                         "(truncated or not a batch file)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{name}: record {bad} has label {labels[bad]}, outside [0, 9] "
                         "(not a CIFAR-10 binary batch; CIFAR-100 has two label bytes)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one binary batch file; see :func:`parse_cifar_batch` for shapes."""
    path = Path(path)
    return parse_cifar_batch(path.read_bytes(), str(path))


def write_cifar_batch(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write a binary batch (images (N, 3, 32, 32) uint8, labels (N,) in [0, 9]); for tests and tools."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"images must have shape (N, 3, 32, 32), got {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError("labels must be in [0, 9]")
    records = np.empty((images.shape[0], RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(images.shape[0], -1)
    path = Path(path)
    atomic_write_bytes(path, records.tobytes())
    return path


def load_cifar10_arrays(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the official training (all five batches, in order) and test sets from ``directory``.

    Returns:
        {"train": (images (50000, 3, 32, 32) uint8, labels (50000,) uint8),
         "test": (images (10000, 3, 32, 32), labels (10000,))} for the official files.
    """
    directory = Path(directory)
    missing = [n for n in ALL_FILES if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 binary files missing from {directory}: {', '.join(missing)}")
    out = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        parts = [read_cifar_batch(directory / n) for n in names]
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


def extract_cifar_binary(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract the six batch files from ``cifar-10-binary.tar.gz`` into ``dest`` safely.

    Only regular-file members named ``<dir>/data_batch_K.bin`` or ``<dir>/test_batch.bin`` are read
    (no links, no absolute or ``..`` paths, nothing else written); each is checked to be a valid batch
    and written through a temporary file; all six are renamed into place only when all are valid.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"CIFAR-10 archive {archive} does not exist")
    found: dict[str, tarfile.TarInfo] = {}
    temps: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if (not member.isreg() or len(parts) > 2 or ".." in parts
                        or member.name.startswith("/") or parts[-1] not in ALL_FILES):
                    continue
                if parts[-1] in found:
                    raise ValueError(f"{archive}: member {parts[-1]} appears twice")
                found[parts[-1]] = member
                fh = tar.extractfile(member)
                data = fh.read()
                parse_cifar_batch(data, f"{archive}:{member.name}")  # validates
                tmp = temp_path_for(dest / parts[-1])
                temps[parts[-1]] = tmp
                tmp.write_bytes(data)
        missing = [n for n in ALL_FILES if n not in found]
        if missing:
            raise ValueError(f"{archive}: not a CIFAR-10 binary archive, "
                             f"members missing: {', '.join(missing)}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise ValueError(f"{archive}: corrupt or truncated archive ({exc})") from None
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    out = []
    for name in ALL_FILES:
        os.replace(temps[name], dest / name)
        out.append(dest / name)
    return out
