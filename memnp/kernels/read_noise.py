"""Read-noise factors max(1 + sigma_rel z, floor), drawn and computed in one Numba pass: the
Box-Muller pair of every raw word of the Generator (the same words and normals as
:func:`memnp.kernels.normal.standard_normal`). :func:`factors_numpy` is the NumPy reference;
the two agree exactly in float64 and to the float32 rounding of the same float64 value.
"""
import numpy as np
from numba import njit

from .fastexp import wide_vectors
from .normal import NORMAL_FASTMATH, box_muller_pair, standard_normal

_JIT = {"fastmath": NORMAL_FASTMATH, "error_model": "numpy", "cache": True}


@njit(**_JIT)
def _factors(words, sigma, floor, out):
    wide_vectors()
    n = out.size
    for k in range(n // 2):
        z0, z1 = box_muller_pair(words[k])
        out[2 * k] = max(1.0 + sigma * z0, floor)
        out[2 * k + 1] = max(1.0 + sigma * z1, floor)
    if n % 2 == 1:
        out[n - 1] = max(1.0 + sigma * box_muller_pair(words[n // 2])[0], floor)


def factors(rng, shape, dtype, sigma_rel, floor):
    """Factors (shape, dtype float32 or float64): max(1 + sigma_rel z, floor), z the standard
    normals of ceil(n / 2) raw words of ``rng``."""
    out = np.empty(shape, dtype=dtype)
    if out.size:
        words = rng.bit_generator.random_raw((out.size + 1) // 2)
        _factors(words, float(sigma_rel), float(floor), out.reshape(-1))
    return out


def factors_numpy(rng, shape, dtype, sigma_rel, floor):
    """:func:`factors` in NumPy passes (the reference)."""
    z = standard_normal(rng, shape, np.float64)
    return np.maximum(1.0 + sigma_rel * z, floor).astype(dtype)
