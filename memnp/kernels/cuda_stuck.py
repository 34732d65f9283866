"""Stuck values drawn from a kernel density estimate (StuckDistribution) on the GPU (issue 17).

The CPU's StuckDistribution (memnp.crossbar.nonidealities.stuck) draws, after the stuck mask of a
crossbar's n devices, the values of its s stuck devices (row-major order) from the Generator:
``rng.choice(N, size=s, p=weight)`` (s words: NumPy's float64 uniforms u = (w >> 11) 2**-53, then
the first component i whose normalised cumulative weight exceeds u), then ``1 - rng.random(s)``
(s more words: u' in (0, 1]), and gives device t the value

    max(loc_i + h z, 0) (S),   z = -ndtri(u' tail_i),   tail_i = ndtr(loc_i / h),

a draw from the normal N(loc_i, h) truncated to [0, inf) by its inverse CDF. The device takes the
same words (memnp.kernels.cuda_phases finds them: the layer's stuck devices are counted row by row
first) and this module's device functions make the values:

- :func:`ndtri` (float64): the standard normal's inverse CDF, Acklam's rational approximation (to
  about 1e-9) refined by two Halley steps on ``erfc``, in the tail that holds p (1 - p is exact
  for p > 1/2); it agrees with scipy.special.ndtri to about 1e-14 absolute (a stuck value to about
  1e-16 relative, as h is small next to loc). :func:`ndtri_numpy` is its NumPy twin (the
  reference of tests/test_nn_device_linear.py, which also compares it with SciPy's);
- :func:`value`: a stuck value from its two uniforms and the member's table (K, N, 3) float64 of
  the normalised cumulative weights, loc (S) and tail per component (memnp.nn.device_stage's
  ``kde_table``), N components and h (S).

Imports nothing from memnp.crossbar (the table is read from the stage above the kernels).
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

#: Acklam's coefficients: the central region's numerator (A) and denominator (B), the tails' (C, D).
A0, A1, A2, A3, A4, A5 = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                          1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
B0, B1, B2, B3, B4 = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                      6.680131188771972e+01, -1.328068155288572e+01)
C0, C1, C2, C3, C4, C5 = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                          -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
D0, D1, D2, D3 = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
#: Where the tails' approximation takes over, and the constants of the Halley steps.
LOW = 0.02425
SQRT2, SQRT2PI = math.sqrt(2.0), math.sqrt(2.0 * math.pi)


def _ndtri(p):
    """ndtri for one float64 p (the body both forms share)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    q = p if p <= 0.5 else 1.0 - p
    if q < LOW:
        t = math.sqrt(-2.0 * math.log(q))
        x = (((((C0 * t + C1) * t + C2) * t + C3) * t + C4) * t + C5) / ((((D0 * t + D1) * t + D2) * t + D3) * t + 1.0)
    else:
        r = q - 0.5
        s = r * r
        x = (((((A0 * s + A1) * s + A2) * s + A3) * s + A4) * s + A5) * r \
            / (((((B0 * s + B1) * s + B2) * s + B3) * s + B4) * s + 1.0)
    for _ in range(2):     # Halley on F(x) = q, F(x) = erfc(-x / sqrt 2) / 2 (x <= 0: no cancellation)
        e = 0.5 * math.erfc(-x / SQRT2) - q
        u = e * SQRT2PI * math.exp(0.5 * x * x)
        x = x - u / (1.0 + 0.5 * x * u)
    return x if p <= 0.5 else -x


ndtri = cuda.jit(device=True)(_ndtri)


def ndtri_numpy(p):
    """float64 array of ndtri(p) for an array of probabilities p (the device function, elementwise)."""
    p = np.asarray(p, dtype=np.float64)
    return np.array([_ndtri(float(v)) for v in p.ravel()], dtype=np.float64).reshape(p.shape)


@cuda.jit(device=True)
def value(table, k, count, h, u_choice, u_random):
    """The stuck value (S, float64) of member k from its uniforms: u_choice picks the component
    (searchsorted, side right, in table[k, :count, 0]); u_random is ``rng.random``'s (the value's
    u' = 1 - u_random)."""
    lo = 0
    hi = count
    while lo < hi:                     # the first i with cdf[i] > u_choice
        mid = (lo + hi) // 2
        if table[k, mid, 0] > u_choice:
            hi = mid
        else:
            lo = mid + 1
    z = -ndtri((1.0 - u_random) * table[k, lo, 2])
    return max(table[k, lo, 1] + h * z, 0.0)


def value_numpy(table, h, u_choice, u_random):
    """The NumPy form of :func:`value` for one member: table (N, 3), uniforms (s,) each."""
    index = np.searchsorted(table[:, 0], u_choice, side="right")
    z = -ndtri_numpy((1.0 - np.asarray(u_random)) * table[index, 2])
    return np.maximum(table[index, 1] + h * z, 0.0)
