"""memnp: simulation and nonideality-aware training of memristive neural networks.

The core needs only numpy, numba and scipy; matplotlib and click are imported only by
``memnp.plotting`` and ``memnp.cli``.
"""
import os

from . import allocator

# Numba's OpenMP threads spin while they wait for work by default; on a shared or busy machine
# (other jobs, worker processes of a parallel run) that made a training step 20 times slower in
# our measurements. Sleeping threads take tens of microseconds to wake, so the cpu backend runs
# small calls on one thread (memnp.kernels.cpu_auto). A value the user set is kept; it must be set
# before the OpenMP runtime loads, i.e. before the first kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# glibc's malloc: keep freed heap memory for the next training step (see memnp.allocator).
allocator.tune()

__version__ = "0.1.0"
