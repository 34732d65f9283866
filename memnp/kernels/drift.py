"""Drift factors (t / t0) ** (-nu), nu = max(nu_mean + nu_std z, 0), drawn and computed in one
Numba pass: the Box-Muller pair of every raw word of the Generator (memnp.kernels.normal, the
same words and normals as :func:`memnp.kernels.normal.standard_normal`) turned into two factors.

:func:`factors_numpy` is the plain NumPy reference (standard_normal, then the formula). The two
agree to a few ulps (the loop's vectorizable :func:`memnp.kernels.fastexp.fast_exp` against
NumPy's exp).
"""
import numpy as np
from numba import njit

from .fastexp import fast_exp, wide_vectors
from .normal import NORMAL_FASTMATH, box_muller_pair, standard_normal

_JIT = {"fastmath": NORMAL_FASTMATH, "error_model": "numpy", "cache": True}


@njit(**_JIT)
def _factor(z, nu_mean, nu_std, log_ratio):
    return fast_exp(-max(nu_mean + nu_std * z, 0.0) * log_ratio)


@njit(**_JIT)
def _factors(words, nu_mean, nu_std, log_ratio, out):
    wide_vectors()
    n = out.size
    for k in range(n // 2):
        z0, z1 = box_muller_pair(words[k])
        out[2 * k] = _factor(z0, nu_mean, nu_std, log_ratio)
        out[2 * k + 1] = _factor(z1, nu_mean, nu_std, log_ratio)
    if n % 2 == 1:
        out[n - 1] = _factor(box_muller_pair(words[n // 2])[0], nu_mean, nu_std, log_ratio)


def factors(rng, shape, dtype, nu_mean, nu_std, log_ratio):
    """Factors (shape, dtype float32 or float64): exp(-max(nu_mean + nu_std z, 0) log_ratio), z the
    standard normals of ceil(n / 2) raw words of ``rng``; log_ratio = ln(t / t0)."""
    out = np.empty(shape, dtype=dtype)
    if out.size:
        words = rng.bit_generator.random_raw((out.size + 1) // 2)
        _factors(words, float(nu_mean), float(nu_std), float(log_ratio), out.reshape(-1))
    return out


def factors_numpy(rng, shape, dtype, nu_mean, nu_std, log_ratio):
    """:func:`factors` in NumPy passes (the reference)."""
    z = standard_normal(rng, shape, np.float64)
    nu = np.maximum(nu_mean + nu_std * z, 0.0)
    return np.exp(-nu * log_ratio).astype(dtype)
