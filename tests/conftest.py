"""Test configuration shared by every test module.

The CUDA kernels run under Numba's CUDA simulator unless NUMBA_ENABLE_CUDASIM is set explicitly
(set NUMBA_ENABLE_CUDASIM=0 on a GPU machine to test the real device). This must happen before
numba is imported anywhere.
"""
import os
from pathlib import Path

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# One BLAS thread, as run.py and Dask workers use: multi-threaded BLAS sums in another order, so
# numbers compared across processes would differ in the last bits.
for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: The developers' shared data directory (absent in a user's fresh clone).
SHARED_DATA = Path(os.environ.get("MEMNP_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def shared_data():
    """Path of the shared data directory; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def rng():
    """A fixed-seed NumPy Generator."""
    return np.random.default_rng(12345)
