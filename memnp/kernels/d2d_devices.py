"""Lognormal device-to-device variability applied to conductances, and its VJP (Numba, one pass).

docs/model.md §2: per device R = 1/G, sigma(R) = clip-linear between (R_on, sigma_on) and (R_off,
sigma_off), and with the standard normal draw eps,

    G' = G exp(sigma (sigma / 2 - eps)),
    dL/dG = dL/dG' (G'/G) (1 - (sigma - eps) sigma'(R) R),   sigma'(R) = slope inside [R_on, R_off], else 0.

The NumPy methods :meth:`memnp.crossbar.nonidealities.D2DLognormal.disturb_numpy` and
``disturb_vjp_numpy`` are the reference; these loops compute the same in one pass over the
devices with :func:`memnp.kernels.fastexp.fast_exp` (vectorized). Arrays: G, eps, dL/dG' and the
results (m, n) (any shape, C-contiguous, one dtype: float32 computed in float32, float64 in float64).
"""
import numpy as np
from numba import njit

from .arrays import contiguous_floats
from .fastexp import fast_exp, wide_vectors

_FASTMATH = {"nsz", "contract"}


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _sigma(R, R_on, R_off, slope, s_on):
    clipped = min(max(R, R_on), R_off)
    return slope * (clipped - R_on) + s_on


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _disturb(G, eps, R_on, R_off, slope, s_on, out):
    wide_vectors()
    t = G.dtype.type
    r_on, r_off, k, s0, half, one = t(R_on), t(R_off), t(slope), t(s_on), t(0.5), t(1.0)
    for q in range(np.uint64(G.size)):
        R = one / G[q]
        sigma = _sigma(R, r_on, r_off, k, s0)
        out[q] = G[q] * fast_exp(sigma * (half * sigma - eps[q]))


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _disturb_vjp(G, eps, grad, R_on, R_off, slope, s_on, out):
    wide_vectors()
    t = G.dtype.type
    r_on, r_off, k, s0, half, one, zero = t(R_on), t(R_off), t(slope), t(s_on), t(0.5), t(1.0), t(0.0)
    for q in range(np.uint64(G.size)):
        R = one / G[q]
        sigma = _sigma(R, r_on, r_off, k, s0)
        d_sigma = k if (R >= r_on) & (R <= r_off) else zero
        factor = fast_exp(sigma * (half * sigma - eps[q]))
        out[q] = grad[q] * factor * (one - (sigma - eps[q]) * d_sigma * R)


def supported(*arrays):
    """True for C-contiguous NumPy float32/float64 arrays of one dtype and shape."""
    return contiguous_floats(*arrays)


def _constants(d2d):
    R_on, R_off = 1.0 / d2d.G_on, 1.0 / d2d.G_off
    return R_on, R_off, (d2d.R_off_log_std - d2d.R_on_log_std) / (R_off - R_on), d2d.R_on_log_std


def disturb(d2d, G, eps):
    """G' (S) of a D2DLognormal ``d2d`` from G (S) and draws eps (arrays :func:`supported`)."""
    out = np.empty_like(G)
    _disturb(G.reshape(-1), eps.reshape(-1), *_constants(d2d), out.reshape(-1))
    return out


def disturb_vjp(d2d, G, eps, grad_G_disturbed):
    """dL/dG from dL/dG' (arrays :func:`supported`)."""
    out = np.empty_like(G)
    _disturb_vjp(G.reshape(-1), eps.reshape(-1), grad_G_disturbed.reshape(-1), *_constants(d2d),
                 out.reshape(-1))
    return out
