"""Where memnp keeps data files.

The data directory is, in order of precedence: the ``data_dir`` argument of a loader, the
``MEMNP_DATA`` environment variable, or ``~/.cache/memnp``. Its layout::

    <data_dir>/mnist/                 train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
                                      t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)
    <data_dir>/fashion-mnist/         the same four names
    <data_dir>/cifar-10-batches-bin/  data_batch_1.bin ... data_batch_5.bin, test_batch.bin
    <data_dir>/SiO_x-multistate-data.mat   (Zenodo 5762184's excelDataCombined.mat, renamed)
    <data_dir>/Ta_HfO2-data.mat            (HDF5 / MATLAB v7.3 with a G_reads data set; not public)
"""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the data directory.
ENV_VAR = "MEMNP_DATA"


def default_data_dir() -> Path:
    """The data directory used when no argument is given: ``$MEMNP_DATA`` or ``~/.cache/memnp``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "memnp"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: ``path`` if given, else :func:`default_data_dir`.

    The directory is not created here; downloads create it when they write into it.
    """
    if path is None:
        return default_data_dir()
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a path (str or os.PathLike) or None, got {type(path).__name__}")
    return Path(path).expanduser()
