"""Per-device parameters of the PF model from conductances, and their VJP (Numba, one pass each).

docs/model.md §2: per device, with R = 1/G,

    ln c = s_c ln R + b_c + e_c,      ln d_eps = s_d ln R + b_d + e_d,

so c = exp(b_c + e_c - s_c ln G) in A/V and d_eps = exp(b_d + e_d - s_d ln G) in F/m, and

    dL/dG = -(s_c c dL/dc + s_d d_eps dL/d(d_eps)) / G.

:func:`residuals` draws the PF residuals (e_c, e_d) ~ N(0, L L^T) of every device from one raw
64-bit word of the caller's Generator per device: the word's Box-Muller pair (z_cos, z_sin) of
:func:`memnp.kernels.normal.box_muller_pair` becomes e = L (z_cos, z_sin).

The device-parameter loops compute exactly what the NumPy code of
:meth:`memnp.crossbar.nonidealities.IVNonlinearityPF.device_parameters` (and ``..._vjp``) computes,
which stays the reference, in one pass over the devices instead of seven or eight NumPy passes,
with :func:`memnp.kernels.fastlog.fast_log` and :func:`memnp.kernels.fastexp.fast_exp` (LLVM
vectorizes the loops). Shapes: G, c, d_eps and the gradients (m, n) (any shape, C-contiguous);
residuals (2, m, n): e_c then e_d. float32 arrays are computed in float32, float64 in float64.
"""
import numpy as np
from numba import njit

from .arrays import FLOATS, contiguous_floats
from .fastexp import fast_exp, wide_vectors
from .fastlog import fast_log
from .normal import box_muller_pair

_FASTMATH = {"nsz", "arcp", "contract", "afn"}


@njit(fastmath={"nsz", "contract"}, error_model="numpy", cache=True)
def _residuals(words, l00, l01, l10, l11, e_c, e_d):
    wide_vectors()
    for k in range(np.uint64(words.size)):
        z_cos, z_sin = box_muller_pair(words[k])
        e_c[k] = l00 * z_cos + l01 * z_sin
        e_d[k] = l10 * z_cos + l11 * z_sin


def residuals(rng, factor, shape, dtype):
    """Residuals (2, *shape) of ``dtype`` (float32 or float64): e_c and e_d of every device, with
    covariance factor @ factor.T (factor (2, 2)). Takes exactly one raw word per device from
    ``rng``'s bit generator (so the same Generator state gives the same residuals for either
    dtype, float32 being the float64 values rounded)."""
    out = np.empty((2,) + tuple(shape), dtype=dtype)
    n = out[0].size
    if n:
        (l00, l01), (l10, l11) = np.asarray(factor, dtype=np.float64)
        _residuals(rng.bit_generator.random_raw(n), l00, l01, l10, l11,
                   out[0].reshape(-1), out[1].reshape(-1))
    return out


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _parameters(G, e_c, e_d, s_c, b_c, s_d, b_d, c, d_eps):
    wide_vectors()
    t = G.dtype.type
    ms_c, ms_d, bc, bd = t(-s_c), t(-s_d), t(b_c), t(b_d)
    for k in range(np.uint64(G.size)):
        ln_G = fast_log(G[k])
        c[k] = fast_exp(ms_c * ln_G + bc + e_c[k])
        d_eps[k] = fast_exp(ms_d * ln_G + bd + e_d[k])


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _parameters_vjp(G, c, d_eps, grad_c, grad_d_eps, s_c, s_d, grad_G):
    wide_vectors()
    t = G.dtype.type
    ms_c, ms_d = t(-s_c), t(-s_d)
    for k in range(np.uint64(G.size)):
        grad_G[k] = (ms_c * grad_c[k] * c[k] + ms_d * grad_d_eps[k] * d_eps[k]) / G[k]


#: dtypes for which the loops beat NumPy (measured on 412 x 50 devices: device_parameters float32
#: 19 us against NumPy's 38 us, float64 87 us against 66 us -- NumPy's float64 exp and log are
#: SIMD code, fast_exp's float64 polynomial is long; the VJP 8 against 18 us and 15 against 37 us).
FASTER = {"parameters": (np.float32,), "vjp": (np.float32, np.float64)}


def supported(*arrays, dtypes=FLOATS):
    """True for C-contiguous NumPy arrays of one of ``dtypes``, one dtype and one shape."""
    return contiguous_floats(*arrays, dtypes=dtypes)


def device_parameters(G, residuals, slopes, intercepts):
    """(c (A/V), d_eps (F/m)), each of G's shape and dtype, from G (S) and residuals (2, *G.shape).

    G and residuals must satisfy :func:`supported` (residuals[0] and [1] each of G's shape)."""
    c = np.empty_like(G)
    d_eps = np.empty_like(G)
    _parameters(G.reshape(-1), residuals[0].reshape(-1), residuals[1].reshape(-1),
                float(slopes[0]), float(intercepts[0]), float(slopes[1]), float(intercepts[1]),
                c.reshape(-1), d_eps.reshape(-1))
    return c, d_eps


def device_parameters_vjp(G, c, d_eps, grad_c, grad_d_eps, slopes):
    """dL/dG (G's shape and dtype) from dL/dc and dL/d(d_eps); all arrays :func:`supported`."""
    grad_G = np.empty_like(G)
    _parameters_vjp(G.reshape(-1), c.reshape(-1), d_eps.reshape(-1), grad_c.reshape(-1),
                    grad_d_eps.reshape(-1), float(slopes[0]), float(slopes[1]), grad_G.reshape(-1))
    return grad_G
