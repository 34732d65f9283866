"""The converters' loops (memnp.crossbar.nonidealities.periphery), one Numba pass each.

:func:`quantise` (the DAC) rounds x = V / k_V to the nearest of the levels k / L (k = 0 .. L) and
returns the voltages k (k_V / L), with the smallest and largest x (from NumPy's reductions) so the
caller can refuse inputs outside [0, 1]; ``DAC.apply_numpy`` is its NumPy reference.
:func:`adc_sum` quantises the partial column currents of every array of a tiled read by its ADC
and adds them; ``ADC.apply`` followed by a sum is its reference. Rounding is np.rint's (half to
even) in the loops and the references, in the arrays' own precision.
"""
import numpy as np
from numba import njit

_JIT = {"error_model": "numpy", "fastmath": {"nsz", "contract"}, "cache": True}


@njit(**_JIT)
def _quantise(V, inv_k_V, levels, step, out):
    """out = clip(rint(V inv_k_V levels), 0, levels) step, element by element (vectorized)."""
    flat, res = V.reshape(-1), out.reshape(-1)
    zero = V.dtype.type(0)
    for i in range(flat.size):
        q = np.rint(flat[i] * inv_k_V * levels)
        res[i] = min(max(q, zero), levels) * step


def supported(V):
    return isinstance(V, np.ndarray) and V.dtype in (np.float32, np.float64) and V.flags.c_contiguous


def quantise(V, k_V, levels, bounds=True):
    """(V_q (shape and dtype of V), min x, max x) for x = V / k_V; V_q = clip(rint(L x), 0, L) (k_V / L).
    Without ``bounds`` the extremes are not computed (returned as 0.0, 1.0)."""
    dtype = V.dtype.type
    out = np.empty_like(V)
    if V.size == 0:
        return out, 0.0, 0.0
    _quantise(V, dtype(1.0 / k_V), dtype(levels), dtype(k_V / levels), out)
    if not bounds:
        return out, 0.0, 1.0
    # NumPy's SIMD reductions (a NaN reaches both and fails the caller's check).
    inv = dtype(1.0 / k_V)
    return out, float(V.min() * inv), float(V.max() * inv)


@njit(**_JIT)
def _adc_sum(I_parts, scale, step, top, levels, out):
    """out[q, j] = sum over t of clip(rint(I_parts[t, q, j] scale[t]), 0, levels) step[t];
    returns whether any I_parts[t, q, j] lies outside [0, top[t]] (an ADC clips)."""
    T, p, n = I_parts.shape
    zero = I_parts.dtype.type(0)
    outside = 0
    for t in range(T):
        a, b, c = scale[t], step[t], top[t]
        for q in range(p):
            for j in range(n):
                v = I_parts[t, q, j]
                outside += (v < zero) | (v > c)
                out[q, j] += min(max(np.rint(v * a), zero), levels) * b
    return outside > 0


def adc_sum(I_parts, full_scale, levels):
    """(I (p, n), clipped) from the arrays' partial currents I_parts (T, p, n) in A and their full
    scales (T,) in A: every part quantised by ADC.apply's rule, then added in order of t.
    ``clipped``: whether a part lies outside [0, full_scale] (where the straight-through gradient
    is zero), compared in I_parts' dtype as ADC.apply_vjp compares."""
    dtype = I_parts.dtype
    fs = np.asarray(full_scale, np.float64).reshape(-1)
    out = np.zeros(I_parts.shape[1:], dtype)
    clipped = _adc_sum(np.ascontiguousarray(I_parts), (levels / fs).astype(dtype), (fs / levels).astype(dtype),
                       fs.astype(dtype), dtype.type(levels), out)
    return out, bool(clipped)


def adc_sum_with(I_parts, constants):
    """:func:`adc_sum` with its constants (levels / fs, fs / levels, fs, levels) given, in
    I_parts' dtype (memnp.kernels.tiling.adc_constants makes them)."""
    out = np.zeros(I_parts.shape[1:], I_parts.dtype)
    clipped = _adc_sum(np.ascontiguousarray(I_parts), *constants, out)
    return out, bool(clipped)
