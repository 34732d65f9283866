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


def _simulated_launches_on_one_core():
    """Numba's CUDA simulator runs a block's threads as Python threads that hand the GIL to one
    another at every syncthreads. Spread over the cores, each hand-off waits for a cross-core
    wake-up: a launch took 2-12 times longer, erratically (2026-12-05, 2 cores: one test of
    tests/test_nn_device_stage.py took 12-90 s, and 7.3 s every time on one core). So each
    simulated launch runs with the calling thread, whose affinity the block threads inherit, on
    one core, and the affinity is restored after it (Numba's CPU threads are not affected)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" or not hasattr(os, "sched_setaffinity"):
        return
    try:
        from numba.cuda.simulator import kernel
    except ImportError:     # numba-cuda is not installed: its tests skip
        return
    launch = kernel.FakeCUDAKernel.__call__

    def pinned(self, *args):
        cores = os.sched_getaffinity(0)
        if self._device or len(cores) < 2:
            return launch(self, *args)
        os.sched_setaffinity(0, {min(cores)})     # this thread only (Linux)
        try:
            return launch(self, *args)
        finally:
            os.sched_setaffinity(0, cores)
    kernel.FakeCUDAKernel.__call__ = pinned


_simulated_launches_on_one_core()

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
