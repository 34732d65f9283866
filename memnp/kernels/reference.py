"""Plain NumPy crossbar kernels: slow, obvious and materializing (the oracle for the tests).

Every function here builds the full p x m x n tensor of device quantities, in float64, and returns
results in the dtype of ``V``. Shapes: V (p, m) in volts; c (m, n) in A/V; d_eps (m, n) in F/m
(the PF permittivity parameter); G (m, n) in siemens; I (p, n) in amperes.
"""
import numpy as np

from .physics import A, B, EPS


def _pf_device_terms(V, c, d_eps):
    """Return sign(V), |V|, the exponent E and exp(E), each (p, m, n), in float64."""
    V = np.asarray(V, dtype=np.float64)[:, :, None]
    c = np.asarray(c, dtype=np.float64)[None]
    d_eps = np.asarray(d_eps, dtype=np.float64)[None]
    s, u = np.sign(V), np.abs(V)
    E = A * np.sqrt(B * u / d_eps + EPS)
    return s, u, c, d_eps, E, np.exp(E)


def pf_device_currents(V, c, d_eps):
    """Device currents I_ind (p, m, n) of the PF model, in amperes (float64)."""
    s, u, c, _, _, e = _pf_device_terms(V, c, d_eps)
    return s * c * u * e


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in amperes: the sum over rows of the PF device currents."""
    return pf_device_currents(V, c, d_eps).sum(axis=1).astype(np.result_type(V), copy=False)


def pf_currents_vjp(V, c, d_eps, grad_I, need_V=True):
    """Vector-Jacobian product of :func:`pf_currents`.

    grad_I (p, n) is dL/dI. Returns (dL/dV (p, m), dL/dc (m, n), dL/d(d_eps) (m, n)); dL/dV is
    None when ``need_V`` is false (every backend may then skip its work).
    At V = 0 exactly, dL/dV is 0 (sign and |.| differentiated as 0 there, as the reference does).
    """
    dtype = np.result_type(V)
    s, u, c, d_eps, E, e = _pf_device_terms(V, c, d_eps)
    g = np.asarray(grad_I, dtype=np.float64)[:, None, :]
    dE_du = A * A * B / (2.0 * E * d_eps)
    dI_dV = s * s * c * e * (1.0 + u * dE_du)
    dI_dc = s * u * e
    dI_ddeps = s * c * u * e * (-(A * A) * B * u / (2.0 * E * d_eps ** 2))
    return ((g * dI_dV).sum(axis=2).astype(dtype, copy=False) if need_V else None,
            (g * dI_dc).sum(axis=0).astype(dtype, copy=False),
            (g * dI_ddeps).sum(axis=0).astype(dtype, copy=False))


def pf_power(V, c, d_eps):
    """Average crossbar power (W): sum over examples and devices of |V| |I_ind|, divided by p."""
    s, u, c, _, _, e = _pf_device_terms(V, c, d_eps)
    return float((u * np.abs(c * u * e)).sum() / u.shape[0])


def ideal_currents(V, G):
    """Column currents I = V G (p, n) of an ideal crossbar, in amperes."""
    return np.asarray(V) @ np.asarray(G)


def ideal_power(V, G):
    """Average power (W) of an ideal crossbar: sum of |V| |V G_ij| over devices, divided by p."""
    V = np.asarray(V, dtype=np.float64)[:, :, None]
    G = np.asarray(G, dtype=np.float64)[None]
    return float((np.abs(V) * np.abs(V * G)).sum() / V.shape[0])


# --- Gaussian draws (the oracle of memnp.kernels.normal) ---------------------------------------

def box_muller(words, dtype=np.float64, n=None):
    """Box-Muller transform of raw 64-bit words, in float64, returned in ``dtype``.

    words (k,) uint64. For each word w: u1 = ((w >> 32) + 1) 2**-32 in (0, 1],
    u2 = (w & 0xffffffff) 2**-32 in [0, 1), r = sqrt(-2 ln u1); outputs r cos(2 pi u2) and
    r sin(2 pi u2), interleaved. Returns (n,) with n = 2k by default (n = 2k - 1 drops the last
    sine), dimensionless N(0, 1) numbers.
    """
    words = np.asarray(words, dtype=np.uint64)
    n = 2 * words.size if n is None else int(n)
    if not 2 * words.size - 1 <= n <= 2 * words.size or n < 0:
        raise ValueError(f"n must be 2 * words.size or one less; got {n} for {words.size} words")
    u1 = ((words >> np.uint64(32)) + np.uint64(1)).astype(np.float64) * 2.0 ** -32
    u2 = (words & np.uint64(0xFFFFFFFF)).astype(np.float64) * 2.0 ** -32
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(2 * words.size)
    z[0::2] = r * np.cos(2.0 * np.pi * u2)
    z[1::2] = r * np.sin(2.0 * np.pi * u2)
    return z[:n].astype(dtype)
