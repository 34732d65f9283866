"""Read-noise phase (memnp.crossbar.pipeline): every read sees the conductances multiplied by a
fresh factor per device, G'' = G' (1 + sigma_rel eps), eps ~ N(0, 1).

The draws are "read" draws: made for every batch in both sampling modes, once per device (the
same factor for every example of the batch, so no per-example copy of G is made).
"""
import dataclasses

import numpy as np

from ...kernels import fused as fused_records
from ...kernels import read_noise as read_loops
from ...kernels.normal import standard_normal
from ..validation import draw_args, non_negative
from .base import LinearityPreserving, register

#: The factor 1 + sigma_rel eps is clipped at this small positive floor (the I-V models take ln G).
MIN_FACTOR = 1e-3
#: The largest relative standard deviation (1000 %) of read and programming noise: beyond it the
#: factors 1 + sigma_rel eps (|eps| <= 6.66) stop meaning noise, and huge ones overflow float32.
MAX_SIGMA_REL = 10.0


@register
@dataclasses.dataclass(frozen=True)
class ReadNoise(LinearityPreserving):
    """Multiplicative read noise of relative standard deviation ``sigma_rel`` (dimensionless, in
    [0, MAX_SIGMA_REL]).
    The draws are the factors max(1 + sigma_rel eps, MIN_FACTOR) (m, n)."""

    sigma_rel: float

    phase = "read_noise"
    draws = "read"

    def __post_init__(self):
        object.__setattr__(self, "sigma_rel", non_negative("sigma_rel", self.sigma_rel))
        if self.sigma_rel > MAX_SIGMA_REL:
            raise ValueError(f"sigma_rel must be at most {MAX_SIGMA_REL:g} (a relative standard deviation of "
                             f"{100 * MAX_SIGMA_REL:g} %); got {self.sigma_rel!r}")

    @property
    def label(self):
        return f"ReadNoise(sigma_rel={self.sigma_rel:.4g})"

    def fused(self):
        """The fused loops' read-noise record (memnp.kernels.fused.ReadNoise)."""
        return fused_records.ReadNoise(float(self.sigma_rel), MIN_FACTOR)

    def sample(self, shape, rng, dtype=np.float64):
        """Factors (shape, ``dtype``) from memnp's seeded Box-Muller normals (computed in float64,
        rounded to ``dtype``): one Numba pass (:mod:`memnp.kernels.read_noise`) for float32 and
        float64, else :meth:`sample_numpy`."""
        dtype = draw_args(rng, dtype)
        if dtype in (np.float32, np.float64):
            return read_loops.factors(rng, shape, dtype, self.sigma_rel, MIN_FACTOR)
        return self.sample_numpy(shape, rng, dtype)

    def sample_numpy(self, shape, rng, dtype=np.float64):
        """:meth:`sample` in NumPy passes (the reference)."""
        z = standard_normal(rng, shape, np.float64)
        return np.maximum(1.0 + self.sigma_rel * z, MIN_FACTOR).astype(dtype)

    def disturb(self, G, draws):
        """G'' (shape and dtype of G, S)."""
        return np.multiply(G, draws.astype(G.dtype, copy=False))

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        """dL/dG' = factor dL/dG'' (the factor does not depend on G)."""
        return np.multiply(grad_G_disturbed, draws.astype(grad_G_disturbed.dtype, copy=False))
