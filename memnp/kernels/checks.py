"""One-pass checks of the arrays a crossbar pass takes, on the floats' bits.

Read as signed integers of their width, the bits of non-negative floats order as the values do;
+inf has the bits ``INF_BITS[dtype]`` and every NaN with the sign bit clear has larger bits.
Negative floats (-0.0 and NaN with the sign bit set included) have negative bits; read as unsigned
integers, their bits are ``SIGN_BITS[dtype]`` plus those of their magnitude. So:

- :func:`bit_extremes`: (smallest, largest) signed bits of an array, in one pass of integer
  min / max (which vectorizes, unlike float min / max that must respect NaN). Every entry is finite
  and > 0 exactly when smallest > 0 and largest < INF_BITS; no entry is above a bound B >= 0 (and
  none is NaN) exactly when largest <= bits(B).
- :func:`unsigned_max`: the largest unsigned bits; when the array has negative entries, that is
  SIGN_BITS plus the bits of the largest magnitude among them (-NaN and -inf included).

The plain NumPy forms (:func:`bit_extremes_reference`, :func:`unsigned_max_reference`) compute the
same integers and are what the tests compare against; :func:`bits` says which arrays the loops
take (non-empty, C-contiguous float32 / float64).
"""
import numpy as np
from numba import njit

#: Signed and unsigned view types, bits of +inf and of the sign, per float dtype.
INT_TYPES = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}
UINT_TYPES = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}
INF_BITS = {np.dtype(np.float32): 0x7F800000, np.dtype(np.float64): 0x7FF0000000000000}
SIGN_BITS = {np.dtype(np.float32): 0x80000000, np.dtype(np.float64): 0x8000000000000000}


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
def _extremes(b):
    lo = b[0]
    hi = b[0]
    for q in range(1, b.size):
        lo = min(lo, b[q])
        hi = max(hi, b[q])
    return lo, hi


@njit(cache=True)
def _top(u):
    hi = u[0]
    for q in range(1, u.size):
        hi = max(hi, u[q])
    return hi


def bit_extremes(b):
    """(min, max) as ints of the signed bits ``b`` of a float array (from :func:`bits`)."""
    lo, hi = _extremes(b)
    return int(lo), int(hi)


def bit_extremes_reference(b):
    return int(b.min()), int(b.max())


def unsigned_max(b):
    """max as an int of the signed bits ``b`` (from :func:`bits`) read as unsigned integers."""
    return int(_top(b.view(_unsigned(b))))


def unsigned_max_reference(b):
    return int(b.view(_unsigned(b)).max())


def _unsigned(b):
    return np.uint32 if b.dtype == np.int32 else np.uint64
