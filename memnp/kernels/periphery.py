"""The DAC's quantisation of the row voltages in one Numba pass (memnp.crossbar.nonidealities.periphery).

:func:`quantise` rounds x = V / k_V to the nearest of the levels k / L (k = 0 .. L) and returns
the voltages k (k_V / L) with the smallest and largest x, so the caller can refuse inputs outside
[0, 1]; :meth:`DAC.apply_numpy <memnp.crossbar.nonidealities.periphery.DAC.apply_numpy>` is the
NumPy reference. Rounding is half to even in both (np.rint, and the round-to-nearest-even of the
loop's float conversion), and the loop computes in V's precision as the reference does.
"""
import numpy as np
from numba import njit

_JIT = {"error_model": "numpy", "cache": True}


@njit(**_JIT)
def _quantise(V, inv_k_V, levels, step, out):
    flat, res = V.reshape(-1), out.reshape(-1)
    low = np.inf
    high = -np.inf
    top = levels
    for i in range(flat.size):
        x = flat[i] * inv_k_V
        low = min(low, x)
        high = max(high, x)
        q = np.rint(x * levels)
        if q < 0:
            q = 0
        if q > top:
            q = top
        res[i] = q * step
    return low, high


def supported(V):
    return isinstance(V, np.ndarray) and V.dtype in (np.float32, np.float64) and V.flags.c_contiguous


def quantise(V, k_V, levels):
    """(V_q (shape and dtype of V), min x, max x) for x = V / k_V; V_q = clip(rint(L x), 0, L) (k_V / L)."""
    dtype = V.dtype.type
    out = np.empty_like(V)
    if V.size == 0:
        return out, 0.0, 0.0
    low, high = _quantise(V, dtype(1.0 / k_V), dtype(levels), dtype(k_V / levels), out)
    return out, float(low), float(high)
