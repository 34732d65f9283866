"""The experiments' one link to :mod:`memnp.data`: which data set is available, and its splits.

Splits are loaded as uint8 (compact to ship to worker processes or Dask workers) and converted to
float32 pixels / 255 by :func:`to_float`, the same arithmetic everywhere, so every executor sees
bit-identical inputs.
"""
import warnings

import numpy as np

from .configs import DataSpec

SPLITS = ("train", "validation", "test")


class DataUnavailable(Exception):
    """A data set is neither in the data directory nor downloadable (the message says why)."""


def resolve(family, data_dir=None, download=False):
    """The data source to use for ``family`` (``mnist`` or ``cifar10``).

    MNIST: full MNIST when its files are in the data directory (or ``download`` fetches them),
    else the embedded subset ``mnist-10k``. CIFAR-10: ``cifar10``, or DataUnavailable.
    """
    from ..data import datasets
    from ..data.download import DataUnavailableError
    if family not in ("mnist", "cifar10", "fashion-mnist", "mnist-10k"):
        raise ValueError(f"dataset must be one of mnist, cifar10, fashion-mnist, mnist-10k; got {family!r}")
    if family == "mnist-10k":
        return "mnist-10k"
    try:
        datasets.load_splits(family, data_dir, "uint8", splits=("test",), download=download, fallback=False)
    except DataUnavailableError as exc:
        if family == "mnist":
            return "mnist-10k"
        raise DataUnavailable(f"{family} is not available: {exc}") from None
    return family


def load(spec, data_dir=None, download=False, splits=SPLITS):
    """{split: (images uint8, labels uint8)} of a :class:`DataSpec`, limited to its first N examples.

    images: (N, 28, 28) for MNIST-shaped sets, (N, 32, 32, 3) for CIFAR-10 (NHWC).
    """
    from ..data import datasets
    from ..data.download import DataUnavailableError
    if not isinstance(spec, DataSpec):
        raise ValueError(f"spec must be a DataSpec; got {type(spec).__name__}")
    try:
        with warnings.catch_warnings():  # the caller reports the data source itself
            warnings.filterwarnings("ignore", message="memnp: using the embedded MNIST subset")
            arrays = datasets.load_splits(spec.name, data_dir, "uint8", splits=tuple(splits),
                                          download=download, fallback=False)
    except DataUnavailableError as exc:
        raise DataUnavailable(f"{spec.name} is not available: {exc}") from None
    out = {}
    for split in splits:
        images, labels = arrays[split]
        limit = getattr(spec, split)
        if limit is not None:
            if limit > len(labels):
                raise ValueError(f"data {split} limit {limit} exceeds the {len(labels)} examples of "
                                 f"{spec.name}'s {split} split")
            images, labels = images[:limit], labels[:limit]
        out[split] = (np.ascontiguousarray(images), np.ascontiguousarray(labels))
    return out


def to_float(images):
    """float32 pixels / 255 (in [0, 1]) from uint8 images of any shape."""
    out = np.asarray(images).astype(np.float32)
    out /= np.float32(255.0)
    return out


def split_sizes(name, data_dir=None):
    """{split: number of examples} of a data source (loads it)."""
    arrays = load(DataSpec(name=name), data_dir)
    return {split: int(len(arrays[split][1])) for split in arrays}
