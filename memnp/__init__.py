"""memnp: simulation and nonideality-aware training of memristive neural networks.

The core needs only numpy, numba and scipy; matplotlib and click are imported only by
``memnp.plotting`` and ``memnp.cli``.
"""
__version__ = "0.1.0"
