"""Stuck masks from PCG64 raw words, as NumPy's ``Generator.random`` makes its uniforms
(the stuck phase of memnp.kernels.stage_draws).

    float64: u = (w >> 11) 2**-53, one word per device;
    float32: u = (h >> 8) 2**-24 for the 32-bit halves h of each word, low half first (NumPy's
             next_uint32; a half word NumPy holds from an earlier float32 draw comes first).

A device is stuck where u < p (p rounded to the dtype, as NumPy compares a float32 array with a
Python float). :func:`uniforms_numpy` is the plain NumPy reference of the uniforms.
"""
import numpy as np
from numba import njit

_JIT = {"error_model": "numpy", "cache": True}
_LOW32, _SHIFT8, _SHIFT11, _SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(8), np.uint64(11), np.uint64(32)


@njit(**_JIT)
def _stuck_f32(words, buffered, held, p, value, mask, values):
    """mask[k] = u_k < p and values[k] = value there (0 elsewhere), for NumPy's float32 uniforms
    u = (h >> 8) 2**-24 of the 32-bit values h: ``held`` first when ``buffered``, then the low
    and high halves of every word in turn."""
    scale = np.float32(2.0 ** -24)
    zero = np.float32(0.0)
    if buffered == 0:        # whole words, low half first
        pairs = mask.size // 2
        for k in range(pairs):
            w = words[k]
            m0 = np.float32((w & _LOW32) >> _SHIFT8) * scale < p
            m1 = np.float32(w >> _SHIFT32 >> _SHIFT8) * scale < p
            mask[2 * k], mask[2 * k + 1] = m0, m1
            values[2 * k] = value if m0 else zero
            values[2 * k + 1] = value if m1 else zero
        start = 2 * pairs
    else:
        start = 0
    for k in range(start, mask.size):
        j = k - buffered
        if j < 0:
            h = held
        else:
            w = words[j >> 1]
            h = (w & _LOW32) if (j & 1) == 0 else (w >> _SHIFT32)
        m = np.float32(h >> _SHIFT8) * scale < p
        mask[k] = m
        values[k] = value if m else zero


@njit(**_JIT)
def _stuck_f64(words, p, value, mask, values):
    scale = 2.0 ** -53
    for k in range(words.size):
        u = np.float64(words[k] >> _SHIFT11) * scale
        m = u < p
        mask[k] = m
        values[k] = value if m else 0.0


def uniforms_numpy(words, dtype):
    """The uniforms in [0, 1) that ``Generator.random(dtype=dtype)`` makes from these PCG64 words
    (the reference of the stuck loops)."""
    words = np.asarray(words, np.uint64)
    if np.dtype(dtype) == np.float64:
        return (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    halves = np.empty(2 * words.size, np.uint64)
    halves[0::2] = words & np.uint64(0xFFFFFFFF)
    halves[1::2] = words >> np.uint64(32)
    return (halves >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24)
