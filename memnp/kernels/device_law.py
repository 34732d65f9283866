"""The device law of one memristor, current and slope, written once for every circuit solver.

A device with the voltage difference v (V) across it (word-line node minus bit-line node) carries

    linear (Ohmic):  I = G v,                         dI/dv = G
    Poole-Frenkel:   I = c v exp(E),  E = sqrt(K |v| + A**2 EPS),  K = A**2 B / d_eps,
                     dI/dv = c exp(E) (1 + K |v| / (2 E)),

with the constants of :mod:`memnp.kernels.physics` (I in A, c in A/V, d_eps in F/m, K in 1/V).
That is sign(v) c |v| exp(A sqrt(B |v| / d_eps + EPS)) of docs/model.md §2; the slope is the true
derivative, c exp(sqrt(A**2 EPS)) > 0 at v = 0 (the plain kernels' convention of a zero input
gradient at V = 0 exactly is a rule of theirs for an input that is exactly zero; inside a circuit
a device at v = 0 still conducts).

The parameter partials (for the adjoint): dI/dc = I / c, dI/d(d_eps) = -I K |v| / (2 E d_eps).

The formula is written once (:func:`_law`) and instantiated three times: :func:`pf_current_slope` and
:func:`pf_partials`, Numba ``njit`` scalar functions for CPU code with the vectorizable exponential
of :mod:`memnp.kernels.fastexp`, and ``*_libm`` twins with math.exp for numba.cuda (plain Python
functions that numba.cuda compiles as device functions). The array forms
:func:`pf_current_slope_array` and :func:`pf_partials_array` (the third instance, NumPy's exp)
serve the NumPy reference of the circuit package. Numba's disk cache does not see edits to this
file from its callers' caches: after changing it, delete ``memnp/circuit/__pycache__``.
"""
import math

import numpy as np
from numba import njit

from .fastexp import EXP_FASTMATH, fast_exp_nonneg
from .physics import A2_B, A2_EPS

_A2_B = float(A2_B)
_A2_EPS = float(A2_EPS)


def _law(exp, sqrt, absolute):
    """The PF law with given exp, sqrt and abs: the one definition of current, slope and partials
    (scalars in Numba code, or NumPy arrays elementwise)."""

    def current_slope(v, c, K):
        u = absolute(v)
        E = sqrt(K * u + _A2_EPS)
        e = exp(E)
        return c * v * e, c * e * (1.0 + K * u / (2.0 * E))

    def partials(v, c, K, d_eps):
        u = absolute(v)
        E = sqrt(K * u + _A2_EPS)
        I_over_c = v * exp(E)
        return I_over_c, -c * I_over_c * K * u / (2.0 * E * d_eps)

    return current_slope, partials


_current_slope, _partials = _law(fast_exp_nonneg, math.sqrt, abs)
#: (I (A), dI/dv (S)) of a PF device at the voltage difference v (V): CPU code, with the
#: vectorizable exponential of :mod:`memnp.kernels.fastexp` (a few ulp from libm's).
pf_current_slope = njit(inline="always", fastmath=EXP_FASTMATH, error_model="numpy")(_current_slope)
#: (dI/dc (V), dI/d(d_eps) (A m/F)) of a PF device at v (V), from c, K and d_eps: CPU code.
pf_partials = njit(inline="always", fastmath=EXP_FASTMATH, error_model="numpy")(_partials)
#: The same two functions with math.exp, for numba.cuda kernels (compiled there as device functions).
pf_current_slope_libm, pf_partials_libm = _law(math.exp, math.sqrt, abs)
_current_slope_numpy, _partials_numpy = _law(np.exp, np.sqrt, np.abs)


def pf_current_slope_array(v, c, d_eps):
    """(I, dI/dv), each v's shape, float64: the PF law in NumPy (libm exp) elementwise.
    v (..., m, n) in V; c, d_eps (m, n) (broadcast against v)."""
    v = np.asarray(v, dtype=np.float64)
    K = _A2_B / np.asarray(d_eps, dtype=np.float64)
    I, slope = _current_slope_numpy(v, np.asarray(c, dtype=np.float64), K)
    return I, np.broadcast_to(slope, v.shape).copy()


def pf_partials_array(v, c, d_eps):
    """(dI/dc, dI/d(d_eps)), each v's shape, float64 (NumPy, libm exp)."""
    v = np.asarray(v, dtype=np.float64)
    d_eps = np.asarray(d_eps, dtype=np.float64)
    return _partials_numpy(v, np.asarray(c, dtype=np.float64), _A2_B / d_eps, d_eps)
