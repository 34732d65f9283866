"""One-pass checks of the arrays a crossbar pass takes, on the floats' bits (for the hot path).

For IEEE floats read as signed integers of their width, a non-negative float's bits order as
its value does, +inf has the bits ``INF_BITS[dtype]`` and every NaN with the sign bit clear has
larger bits; negative floats (and -0.0, and NaN with the sign bit set) have negative bits. So:

- :func:`max_abs_bits`: the largest ``bits & ~sign`` of an array, the bits of max |a| (NaN and inf
  included: they are larger than the bits of any finite bound), in one integer pass;
- :func:`bit_extremes`: (smallest, largest) signed bits: every entry is finite and > 0 exactly
  when smallest > 0 and largest < INF_BITS.

The plain NumPy forms (:func:`max_abs_bits_reference`, :func:`bit_extremes_reference`) compute
the same integers and are what the tests compare against; :func:`bits` says which arrays the
loops take (C-contiguous float32 / float64 with at least one entry).
"""
import numpy as np
from numba import njit

#: Signed-integer view type, and the bits of +inf, per float dtype.
INT_TYPES = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}
INF_BITS = {np.dtype(np.float32): 0x7F800000, np.dtype(np.float64): 0x7FF0000000000000}
_MAGNITUDE = {np.dtype(np.float32): 0x7FFFFFFF, np.dtype(np.float64): 0x7FFFFFFFFFFFFFFF}


def bits(a):
    """The flat signed-integer view of ``a``'s bits, or None when ``a`` is not a non-empty
    C-contiguous float32/float64 NumPy array (the caller then checks with NumPy)."""
    if not (isinstance(a, np.ndarray) and a.dtype in INT_TYPES and a.size and a.flags.c_contiguous):
        return None
    return a.reshape(-1).view(INT_TYPES[a.dtype])


def bits_of(value, dtype):
    """The signed-integer bits of ``value`` rounded to ``dtype`` (float32 or float64)."""
    dtype = np.dtype(dtype)
    return int(np.array(value, dtype=dtype).view(INT_TYPES[dtype]))


@njit(cache=True)
def _max_abs_bits(b, magnitude):
    top = b[0] & magnitude
    for q in range(1, b.size):
        top = max(top, b[q] & magnitude)
    return top


def max_abs_bits(b):
    """max over q of ``b[q] & ~sign`` for the bits ``b`` of a float array (from :func:`bits`)."""
    return int(_max_abs_bits(b, b.dtype.type(_MAGNITUDE[_float(b)])))


def max_abs_bits_reference(b):
    return int(np.max(b & b.dtype.type(_MAGNITUDE[_float(b)])))


@njit(cache=True)
def _bit_extremes(b):
    lo = b[0]
    hi = b[0]
    for q in range(1, b.size):
        lo = min(lo, b[q])
        hi = max(hi, b[q])
    return lo, hi


def bit_extremes(b):
    """(min, max) of the bits ``b`` of a float array (from :func:`bits`), as ints."""
    lo, hi = _bit_extremes(b)
    return int(lo), int(hi)


def bit_extremes_reference(b):
    return int(b.min()), int(b.max())


def _float(b):
    return np.dtype(np.float32) if b.dtype == np.int32 else np.dtype(np.float64)
