"""memnp: simulation and nonideality-aware training of memristive neural networks.

The core needs only numpy, numba and scipy; matplotlib and click are imported only by
``memnp.plotting`` and ``memnp.cli``.
"""
import os

# Numba's OpenMP threads spin while they wait for work by default; on a shared or busy machine
# (other jobs, worker processes of a parallel run) that made a training step 20 times slower in
# our measurements. Passive waiting costs nothing measurable on an idle machine. A value the user
# set is kept; it must be set before the OpenMP runtime loads, i.e. before the first kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

__version__ = "0.1.0"
