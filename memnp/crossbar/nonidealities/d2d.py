"""Device-to-device variability, lognormal (SPEC §2), a linearity-preserving nonideality.

Per device, R = 1/G; the log-standard deviation sigma(R) is linear between (R_on, sigma_on) and
(R_off, sigma_off) and constant outside. The disturbed resistance R' = exp(mu + sigma eps),
mu = ln R - sigma^2 / 2, eps ~ N(0, 1), has mean R. G' = 1 / R' = G exp(sigma^2 / 2 - sigma eps).
The draw eps is a constant; the gradient flows through mu and sigma (reparameterised, as the reference).
"""
import dataclasses

import numpy as np

from ..validation import conductance_range, non_negative
from .base import LinearityPreserving, register


@register
@dataclasses.dataclass(frozen=True)
class D2DLognormal(LinearityPreserving):
    """Lognormal device-to-device variability.

    G_off, G_on: conductance range (S); R_on_log_std, R_off_log_std: log-standard deviations of
    the resistance at R_on = 1/G_on and R_off = 1/G_off.
    """

    G_off: float
    G_on: float
    R_on_log_std: float
    R_off_log_std: float

    def __post_init__(self):
        G_off, G_on = conductance_range(self.G_off, self.G_on)
        object.__setattr__(self, "G_off", G_off)
        object.__setattr__(self, "G_on", G_on)
        object.__setattr__(self, "R_on_log_std", non_negative("R_on_log_std", self.R_on_log_std))
        object.__setattr__(self, "R_off_log_std", non_negative("R_off_log_std", self.R_off_log_std))

    @property
    def label(self):
        return f"D2DLognormal(R_on_log_std={self.R_on_log_std:.4g},R_off_log_std={self.R_off_log_std:.4g})"

    def _sigma(self, R):
        """(sigma(R), d sigma / dR), each the shape of R (ohms)."""
        R_on, R_off = 1.0 / self.G_on, 1.0 / self.G_off
        slope = (self.R_off_log_std - self.R_on_log_std) / (R_off - R_on)
        inside = (R >= R_on) & (R <= R_off)
        sigma = self.R_on_log_std + slope * (np.clip(R, R_on, R_off) - R_on)
        return sigma, np.where(inside, slope, 0.0)

    def sample(self, shape, rng, dtype=np.float64):
        """Standard normal draws eps (shape, ``dtype``), one per device."""
        return rng.standard_normal(shape, dtype=dtype)

    def disturb(self, G, draws):
        sigma, _ = self._sigma(1.0 / G.astype(np.float64))
        return (G * np.exp(0.5 * sigma ** 2 - sigma * draws)).astype(G.dtype, copy=False)

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        G64 = G.astype(np.float64)
        sigma, dsigma_dR = self._sigma(1.0 / G64)
        factor = np.exp(0.5 * sigma ** 2 - sigma * draws)
        dsigma_dG = -dsigma_dR / G64 ** 2
        dGp_dG = factor + G64 * factor * (sigma - draws) * dsigma_dG
        return (grad_G_disturbed * dGp_dG).astype(grad_G_disturbed.dtype, copy=False)
