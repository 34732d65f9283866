"""The ``cpu`` backend: for every call, the dense kernels of :mod:`memnp.kernels.cpu` or the
zero-skipping kernels of :mod:`memnp.kernels.sparse`, whichever the fraction of exactly-zero
voltages in V favours (:func:`memnp.kernels.sparse.choose`). Both compute the same sums, so the
choice changes speed only (and the last bits of float32 sums). Small problems (fewer than
:data:`SERIAL_BELOW` device evaluations, such as the paper's 26 x 20 second layer) run on one
thread: waking the other threads costs more than the work, and far more on a loaded machine.
Same interface as :mod:`memnp.kernels.reference`.
"""
import numba
import numpy as np

from . import sparse
from .cpu import ideal_currents, ideal_power

__all__ = ["pf_currents", "pf_currents_vjp", "pf_power", "ideal_currents", "ideal_power", "SERIAL_BELOW"]

#: Device evaluations (p m n) below which a call runs on one thread.
SERIAL_BELOW = 1 << 17


def _call(function, V, c, *args):
    if np.shape(V)[0] * np.size(c) >= SERIAL_BELOW:
        return function(V, c, *args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return function(V, c, *args)
    finally:
        numba.set_num_threads(threads)


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in A; see :func:`memnp.kernels.reference.pf_currents`."""
    return _call(sparse.pf_currents_auto, V, c, d_eps)


def pf_currents_vjp(V, c, d_eps, grad_I):
    """(dL/dV, dL/dc, dL/d(d_eps)); see :func:`memnp.kernels.reference.pf_currents_vjp`."""
    return _call(sparse.pf_currents_vjp_auto, V, c, d_eps, grad_I)


def pf_power(V, c, d_eps):
    """Average crossbar power (W); see :func:`memnp.kernels.reference.pf_power`."""
    return _call(sparse.pf_power_auto, V, c, d_eps)
