"""Image data sets with the paper's splits (docs/model.md §5).

``load_dataset(name, data_dir=None, split="train", dtype="float32")`` returns ``(images, labels)``:

- images: MNIST / Fashion-MNIST (N, 28, 28); CIFAR-10 (N, 32, 32, 3) (``layout="nhwc"``, the
  default) or (N, 3, 32, 32) (``layout="nchw"``). dtype uint8 (raw pixels) or float32 (pixels / 255,
  in [0, 1]).
- labels: (N,) uint8 class indices in [0, 9].

Splits: ``train`` = first 80 % of the official training set, ``validation`` = last 20 %, ``test`` =
the official test set (MNIST and Fashion-MNIST 48,000 / 12,000 / 10,000; CIFAR-10 40,000 / 10,000 /
10,000).

The embedded default (``"mnist-10k"``, shipped in the package) holds the first 10,000 MNIST
training digits, stored grouped by class. Its split is stratified and deterministic (no random
numbers): within each class the digits keep their original order, digit k of a class of n gets
the key (k + 0.5) / n, all 10,000 are sorted by (key, label), and the sorted list is cut into
6,400 train / 1,600 validation / 2,000 test. Each split therefore holds the same class
proportions (to within one digit per class) and interleaves the classes. ``load_dataset("mnist")``
falls back to it, with a one-line warning, when full MNIST is absent and cannot be downloaded.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import cifar, idx, sources
from . import download as _dl
from .paths import data_dir as resolve_data_dir

SPLITS = ("train", "validation", "test")
#: Fraction of the official training set used for training (the rest is validation).
TRAIN_FRACTION = 0.8
#: Sizes of the embedded subset's train / validation / test splits.
EMBEDDED_SPLIT = (6400, 1600, 2000)
EMBEDDED_PATH = Path(__file__).with_name("mnist-10k.npz")
_ALIASES = {
    "mnist": "mnist", "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist", "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
    "mnist-10k": "mnist-10k", "mnist10k": "mnist-10k", "embedded": "mnist-10k",
}
DATASETS = ("mnist", "fashion-mnist", "cifar10", "mnist-10k")
_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_warned_subset = False


def _check_args(name, split, dtype, layout):
    key = str(name).strip().lower() if isinstance(name, str) else None
    if key not in _ALIASES:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if dtype not in ("uint8", "float32", np.uint8, np.float32):
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}")
    if layout not in ("nhwc", "nchw"):
        raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
    return _ALIASES[key]


def _convert(images: np.ndarray, dtype) -> np.ndarray:
    if np.dtype(dtype) == np.uint8:
        return images
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return out


def _split_official(images, labels, split):
    n_train = int(round(TRAIN_FRACTION * len(labels)))
    sl = slice(None, n_train) if split == "train" else slice(n_train, None)
    return images[sl], labels[sl]


def _idx_present(directory: Path, remote: sources.RemoteFile):
    return idx.find_idx(directory, remote.name.removesuffix(".gz"))


def _load_idx_part(directory: Path, part: str, files, what: str, download_missing: bool):
    wanted = [r for r in files if r.name.removesuffix(".gz") in _IDX_NAMES[part]]
    img_path, lab_path = _dl.ensure(wanted, directory, what=what, download_missing=download_missing,
                                         present=_idx_present)
    images, labels = idx.read_idx(img_path), idx.read_idx(lab_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} / {lab_path}: images of shape {images.shape} do not match "
                         f"labels of shape {labels.shape} (expected (N, H, W) and (N,))")
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{img_path} / {lab_path}: expected uint8 IDX data, "
                         f"got {images.dtype} / {labels.dtype}")
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{lab_path}: label {bad} is {labels[bad]}, outside the classes [0, 9] "
                         "(a corrupt or foreign labels file)")
    return images, labels


def _load_cifar_part(directory: Path, part: str, download_missing: bool):
    sub = directory / cifar.SUBDIR
    names = cifar.TRAIN_FILES if part == "train" else cifar.TEST_FILES
    if not all((sub / n).is_file() for n in names):
        archive = sources.CIFAR10_ARCHIVE
        user_copy = (sub / archive.name).is_file()
        try:
            (path,) = _dl.ensure([archive], sub, what="CIFAR-10 (binary version)",
                                      download_missing=download_missing)
        except _dl.DataUnavailableError as exc:
            raise _dl.DataUnavailableError(
                f"{exc}\nAlternatively put the extracted binary batch files "
                f"{', '.join(cifar.ALL_FILES)} into {sub}") from None
        cifar.extract_cifar_binary(path, sub)
        if not user_copy:  # delete only an archive memnp downloaded itself
            path.unlink(missing_ok=True)
    parts = [cifar.read_cifar_batch(sub / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@lru_cache(maxsize=1)
def _embedded_arrays():
    with np.load(EMBEDDED_PATH, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def embedded_split_indices() -> dict[str, np.ndarray]:
    """Indices into the embedded subset for each split (see the module docstring).

    Returns:
        {"train": (6400,), "validation": (1600,), "test": (2000,)} int64 index arrays.
    """
    _, labels = _embedded_arrays()
    key = np.empty(len(labels))
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        key[where] = (np.arange(len(where)) + 0.5) / len(where)
    order = np.lexsort((labels, key))
    a, b, _ = EMBEDDED_SPLIT
    return {"train": order[:a], "validation": order[a:a + b], "test": order[a + b:]}


def _warn_subset():
    global _warned_subset
    if not _warned_subset:
        _warned_subset = True
        warnings.warn("memnp: using the embedded MNIST subset (10,000 digits, split 6,400/1,600/2,000); "
                      "results are on a subset, not the full data set", UserWarning, stacklevel=3)


def load_embedded(split: str = "train", dtype="float32") -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST subset's ``split``: images (N, 28, 28), labels (N,) uint8. Warns once."""
    _check_args("mnist-10k", split, dtype, "nhwc")
    _warn_subset()
    images, labels = _embedded_arrays()
    sel = embedded_split_indices()[split]
    return _convert(images[sel], dtype), labels[sel]


def _load_part(key: str, directory: Path, part: str, download: bool, layout: str):
    """The official ``part`` ("train" or "test") of a data set, uint8."""
    if key == "cifar10":
        images, labels = _load_cifar_part(directory, part, download)
        if layout == "nhwc":
            images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        return images, labels
    files = sources.MNIST_FILES if key == "mnist" else sources.FASHION_MNIST_FILES
    what = "MNIST" if key == "mnist" else "Fashion-MNIST"
    return _load_idx_part(directory / key, part, files, what, download)


def load_dataset(name: str, data_dir=None, split: str = "train", dtype="float32", *,
                 download: bool = True, fallback: bool = True, layout: str = "nhwc"):
    """Load one split of a data set; see the module docstring for shapes, splits and layout.

    Args:
        name: "mnist", "fashion-mnist", "cifar10" or "mnist-10k" (the embedded subset).
        data_dir: data directory (default ``$MEMNP_DATA`` or ``~/.cache/memnp``).
        split: "train", "validation" or "test".
        dtype: "uint8" (raw pixels) or "float32" (pixels / 255).
        download: download missing files from the public mirrors.
        fallback: for "mnist" only, use the embedded subset when the full set is unavailable.
        layout: CIFAR-10 image layout, "nhwc" (N, 32, 32, 3) or "nchw" (N, 3, 32, 32).
    Returns:
        (images, labels).
    Raises:
        DataUnavailableError: files absent and not downloadable (message says what to put where).
        ValueError: bad arguments or corrupt files.
    """
    return load_splits(name, data_dir, dtype, splits=(split,), download=download,
                       fallback=fallback, layout=layout)[split]


def load_splits(name: str, data_dir=None, dtype="float32", *, splits=SPLITS, download: bool = True,
                fallback: bool = True, layout: str = "nhwc") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Several splits at once, each file read once: {"train": (x, y), "validation": ..., "test": ...}.

    Arguments as :func:`load_dataset`; ``splits`` lists the splits wanted.
    """
    splits = tuple(splits)
    if not splits:
        raise ValueError("splits must name at least one of train, validation, test")
    for split in splits:
        key = _check_args(name, split, dtype, layout)
    if key == "mnist-10k":
        return {s: load_embedded(s, dtype) for s in splits}
    directory = resolve_data_dir(data_dir)
    out = {}
    try:
        if "train" in splits or "validation" in splits:
            images, labels = _load_part(key, directory, "train", download, layout)
            for s in ("train", "validation"):
                if s in splits:
                    x, y = _split_official(images, labels, s)
                    out[s] = (_convert(x, dtype), y)
        if "test" in splits:
            x, y = _load_part(key, directory, "test", download, layout)
            out["test"] = (_convert(x, dtype), y)
    except _dl.DataUnavailableError:
        if key == "mnist" and fallback:
            return {s: load_embedded(s, dtype) for s in splits}
        raise
    return {s: out[s] for s in splits}
