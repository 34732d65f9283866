"""Programming phase (memnp.crossbar.pipeline): the conductances a device ends up with after it is
programmed to G. Two classes: the paper's lognormal device-to-device variability
(:class:`~memnp.crossbar.nonidealities.d2d.D2DLognormal`, importable from here and from its own
module) and Gaussian programming noise (:class:`ProgrammingNoise`).

Both are "chip" draws: made once per programmed chip in chip mode, every batch in batch mode.
"""
import dataclasses

import numpy as np

from ...kernels.normal import standard_normal
from ..validation import draw_args, non_negative
from .base import LinearityPreserving, register
from .d2d import D2DLognormal
from .read_noise import MAX_SIGMA_REL

#: Programmed conductances are clipped at this fraction of their target (a small positive floor:
#: the I-V models take ln G).
MIN_FRACTION = 1e-3


@register
@dataclasses.dataclass(frozen=True)
class ProgrammingNoise(LinearityPreserving):
    """Gaussian programming noise: G' = max(G + (sigma_rel G + sigma_abs) eps, MIN_FRACTION G),
    eps ~ N(0, 1) per device.

    sigma_rel: relative standard deviation (dimensionless, in [0, MAX_SIGMA_REL]); sigma_abs:
    absolute standard deviation (S, >= 0, at most the stage's G_on - G_off). The draws are eps
    (m, n), memnp's seeded Box-Muller normals.
    """

    sigma_rel: float
    sigma_abs: float = 0.0

    phase = "programming"
    draws = "chip"

    def __post_init__(self):
        object.__setattr__(self, "sigma_rel", non_negative("sigma_rel", self.sigma_rel))
        if self.sigma_rel > MAX_SIGMA_REL:
            raise ValueError(f"sigma_rel must be at most {MAX_SIGMA_REL:g} (a relative standard deviation of "
                             f"{100 * MAX_SIGMA_REL:g} %); got {self.sigma_rel!r}")
        object.__setattr__(self, "sigma_abs", non_negative("sigma_abs", self.sigma_abs))

    def check_stage(self, stage):
        """sigma_abs must be at most the stage's range G_on - G_off (S)."""
        if self.sigma_abs > stage.G_on - stage.G_off:
            raise ValueError(f"ProgrammingNoise sigma_abs (S) must be at most the stage's range G_on - G_off = "
                             f"{stage.G_on - stage.G_off:.4g} S; got {self.sigma_abs!r} S")

    @property
    def label(self):
        return f"ProgrammingNoise(sigma_rel={self.sigma_rel:.4g},sigma_abs={self.sigma_abs:.4g})"

    def sample(self, shape, rng, dtype=np.float64):
        """eps (shape, ``dtype``): one standard normal per device."""
        return standard_normal(rng, shape, draw_args(rng, dtype))

    def disturb(self, G, draws):
        """G' (shape and dtype of G, S). Vectorized NumPy (a few passes over m n numbers: cheap
        next to a read, see bench/RESULTS.md)."""
        dtype = G.dtype.type
        eps = draws.astype(G.dtype, copy=False)
        G_new = np.multiply(G, dtype(self.sigma_rel))
        G_new += dtype(self.sigma_abs)
        G_new *= eps
        G_new += G
        return np.maximum(G_new, dtype(MIN_FRACTION) * G, out=G_new)

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        """dL/dG: dG'/dG = 1 + sigma_rel eps where G' is above the floor, MIN_FRACTION where clipped."""
        dtype = G.dtype.type
        eps = draws.astype(G.dtype, copy=False)
        slope = np.multiply(eps, dtype(self.sigma_rel))
        slope += dtype(1)
        clipped = G + (dtype(self.sigma_rel) * G + dtype(self.sigma_abs)) * eps <= dtype(MIN_FRACTION) * G
        slope[clipped] = dtype(MIN_FRACTION)
        slope *= grad_G_disturbed
        return slope.astype(grad_G_disturbed.dtype, copy=False)


__all__ = ["D2DLognormal", "ProgrammingNoise", "MIN_FRACTION"]
