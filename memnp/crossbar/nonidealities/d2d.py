"""Device-to-device variability, lognormal (docs/model.md §2), a linearity-preserving nonideality.

Per device, R = 1/G; the log-standard deviation sigma(R) is linear between (R_on, sigma_on) and
(R_off, sigma_off) and constant outside. The disturbed resistance R' = exp(mu + sigma eps),
mu = ln R - sigma^2 / 2, eps ~ N(0, 1), has mean R. G' = 1 / R' = G exp(sigma^2 / 2 - sigma eps).
The draw eps is a constant; the gradient flows through mu and sigma (reparameterised, as the reference).
"""
import dataclasses

import numpy as np

from ...kernels import d2d_devices
from ...kernels import fused as fused_records
from ...kernels.normal import standard_normal
from ..validation import conductance_range, draw_args, in_range
from .base import LinearityPreserving, register

#: The largest log-standard deviation of the resistance (a spread of e^5, about 150x, per standard
#: deviation; measured devices have 0.05 to 0.5). Beyond it G' = G exp(sigma^2 / 2 - sigma eps)
#: leaves float32's range for the draws |eps| <= 6.66.
MAX_LOG_STD = 5.0
#: Relative slack of the comparison of this range with the stage's (values written as decimal text).
_SLACK = 1e-9


@register
@dataclasses.dataclass(frozen=True)
class D2DLognormal(LinearityPreserving):
    """Lognormal device-to-device variability.

    G_off, G_on: conductance range (S), the stage's; R_on_log_std, R_off_log_std: log-standard
    deviations of the resistance at R_on = 1/G_on and R_off = 1/G_off (each in [0, MAX_LOG_STD]).
    """

    G_off: float
    G_on: float
    R_on_log_std: float
    R_off_log_std: float

    phase = "programming"
    draws = "chip"
    paper = True

    def __post_init__(self):
        G_off, G_on = conductance_range(self.G_off, self.G_on)
        object.__setattr__(self, "G_off", G_off)
        object.__setattr__(self, "G_on", G_on)
        for name in ("R_on_log_std", "R_off_log_std"):
            object.__setattr__(self, name, in_range(name, getattr(self, name), 0.0, MAX_LOG_STD))

    def check_stage(self, stage):
        """The D2D range (G_off, G_on) must be the stage's (sigma(R) is defined on it)."""
        for name in ("G_off", "G_on"):
            ours, theirs = getattr(self, name), getattr(stage, name)
            if abs(ours - theirs) > _SLACK * theirs:
                raise ValueError(f"D2DLognormal {name} must equal the stage's {name} ({theirs!r} S): its "
                                 f"range (G_off, G_on) = ({self.G_off!r}, {self.G_on!r}) S differs from the "
                                 f"stage's ({stage.G_off!r}, {stage.G_on!r}) S")

    @property
    def label(self):
        return f"D2DLognormal(R_on_log_std={self.R_on_log_std:.4g},R_off_log_std={self.R_off_log_std:.4g})"

    def fused(self):
        """The conductance loop's D2D record (memnp.kernels.fused.D2D): the constants of sigma(R)."""
        return fused_records.D2D(*(float(v) for v in d2d_devices._constants(self)))

    def _sigma(self, R):
        """(sigma(R), d sigma / dR), each the shape and dtype of R (ohms)."""
        R_on, R_off = 1.0 / self.G_on, 1.0 / self.G_off
        dtype = R.dtype.type
        slope = (self.R_off_log_std - self.R_on_log_std) / (R_off - R_on)
        sigma = np.clip(R, dtype(R_on), dtype(R_off))
        sigma -= dtype(R_on)
        sigma *= dtype(slope)
        sigma += dtype(self.R_on_log_std)
        inside = (R >= dtype(R_on)) & (R <= dtype(R_off))
        return sigma, np.where(inside, dtype(slope), dtype(0))

    def sample(self, shape, rng, dtype=np.float64):
        """Standard normal draws eps (shape, ``dtype``), one per device (memnp's seeded Box-Muller
        draws, :func:`memnp.kernels.normal.standard_normal`)."""
        return standard_normal(rng, shape, draw_args(rng, dtype))

    def _factor(self, R, sigma, draws):
        """exp(sigma^2 / 2 - sigma eps) = G' / G."""
        factor = 0.5 * sigma
        factor -= draws
        factor *= sigma
        return np.exp(factor, out=factor)

    def disturb(self, G, draws):
        """G' (shape and dtype of G, S); computed in G's precision. One Numba pass
        (:mod:`memnp.kernels.d2d_devices`) for contiguous float arrays of one dtype, else
        :meth:`disturb_numpy` (the reference)."""
        if d2d_devices.supported(G, draws):
            return d2d_devices.disturb(self, G, draws)
        return self.disturb_numpy(G, draws)

    def disturb_numpy(self, G, draws):
        """:meth:`disturb` in NumPy passes."""
        R = 1.0 / G
        sigma, _ = self._sigma(R)
        factor = self._factor(R, sigma, draws.astype(G.dtype, copy=False))
        factor *= G
        return factor

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        """dL/dG from dL/dG': dG'/dG = (G'/G) (1 - (sigma - eps) sigma'(R) R), since
        d sigma / dG = -sigma'(R) / G^2 = -sigma'(R) R^2. One Numba pass where
        :func:`memnp.kernels.d2d_devices.supported`, else :meth:`disturb_vjp_numpy`."""
        if d2d_devices.supported(G, draws, grad_G_disturbed):
            return d2d_devices.disturb_vjp(self, G, draws, grad_G_disturbed)
        return self.disturb_vjp_numpy(G, draws, grad_G_disturbed)

    def disturb_vjp_numpy(self, G, draws, grad_G_disturbed):
        """:meth:`disturb_vjp` in NumPy passes."""
        R = 1.0 / G
        sigma, dsigma_dR = self._sigma(R)
        draws = draws.astype(G.dtype, copy=False)
        factor = self._factor(R, sigma, draws)
        sigma -= draws
        sigma *= dsigma_dR
        sigma *= R
        np.subtract(1, sigma, out=sigma)
        sigma *= factor
        sigma *= grad_G_disturbed
        return sigma.astype(grad_G_disturbed.dtype, copy=False)
