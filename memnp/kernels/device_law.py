"""The device law of one memristor, current and slope, written once for every circuit solver.

A device with the voltage difference v (V) across it (word-line node minus bit-line node) carries

    linear (Ohmic):  I = G v,                         dI/dv = G
    Poole-Frenkel:   I = c v exp(E),  E = sqrt(K |v| + A**2 EPS),  K = A**2 B / d_eps,
                     dI/dv = c exp(E) (1 + K |v| / (2 E)),

with the constants of :mod:`memnp.kernels.physics` (I in A, c in A/V, d_eps in F/m, K in 1/V).
That is sign(v) c |v| exp(A sqrt(B |v| / d_eps + EPS)) of SPEC §2; the slope is the true
derivative, c exp(sqrt(A**2 EPS)) > 0 at v = 0 (the plain kernels' convention of a zero input
gradient at V = 0 exactly is a rule of theirs for an input that is exactly zero; inside a circuit
a device at v = 0 still conducts).

The parameter partials (for the adjoint): dI/dc = I / c, dI/d(d_eps) = -I K |v| / (2 E d_eps).

Every function here is a Numba ``njit`` scalar function (callable from other njit code, and from
numba.cuda kernels, which compile them as device functions), plus :func:`pf_current_slope_array`,
the array form the NumPy reference of the circuit package uses.
"""
import math

import numpy as np
from numba import njit

from .physics import A2_B, A2_EPS

_A2_B = float(A2_B)
_A2_EPS = float(A2_EPS)


@njit(cache=True, inline="always")
def pf_K(d_eps):
    """K = A**2 B / d_eps (1/V) of a device with permittivity parameter d_eps (F/m)."""
    return _A2_B / d_eps


@njit(cache=True, inline="always")
def pf_current_slope(v, c, K):
    """(I (A), dI/dv (S)) of a PF device at the voltage difference v (V)."""
    u = abs(v)
    E = math.sqrt(K * u + _A2_EPS)
    e = math.exp(E)
    return c * v * e, c * e * (1.0 + K * u / (2.0 * E))


@njit(cache=True, inline="always")
def pf_partials(v, c, K, d_eps):
    """(dI/dc (V), dI/d(d_eps) (A m/F)) of a PF device at v (V)."""
    u = abs(v)
    E = math.sqrt(K * u + _A2_EPS)
    I_over_c = v * math.exp(E)
    return I_over_c, -c * I_over_c * K * u / (2.0 * E * d_eps)


@njit(cache=True)
def _pf_array(v, c, K, I, slope):
    for k in range(v.size):
        I[k], slope[k] = pf_current_slope(v[k], c[k], K[k])


def pf_current_slope_array(v, c, d_eps):
    """(I, dI/dv), each v's shape, float64: the PF law of :func:`pf_current_slope` elementwise.
    v (..., m, n) in V; c, d_eps (m, n) (broadcast against v)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    c = np.ascontiguousarray(np.broadcast_to(np.asarray(c, dtype=np.float64), v.shape))
    K = np.ascontiguousarray(np.broadcast_to(_A2_B / np.asarray(d_eps, dtype=np.float64), v.shape))
    I, slope = np.empty_like(v), np.empty_like(v)
    _pf_array(v.reshape(-1), c.reshape(-1), K.reshape(-1), I.reshape(-1), slope.reshape(-1))
    return I, slope


@njit(cache=True)
def _pf_partials_array(v, c, d_eps, dc, dd):
    for k in range(v.size):
        dc[k], dd[k] = pf_partials(v[k], c[k], pf_K(d_eps[k]), d_eps[k])


def pf_partials_array(v, c, d_eps):
    """(dI/dc, dI/d(d_eps)), each v's shape, float64 (see :func:`pf_partials`)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    c = np.ascontiguousarray(np.broadcast_to(np.asarray(c, dtype=np.float64), v.shape))
    d = np.ascontiguousarray(np.broadcast_to(np.asarray(d_eps, dtype=np.float64), v.shape))
    dc, dd = np.empty_like(v), np.empty_like(v)
    _pf_partials_array(v.reshape(-1), c.reshape(-1), d.reshape(-1), dc.reshape(-1), dd.reshape(-1))
    return dc, dd
