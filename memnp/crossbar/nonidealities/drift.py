"""Drift phase (memnp.crossbar.pipeline): conductances relax after programming as a power law of
the time since programming, G(t) = G (t / t0) ** (-nu), with an exponent nu per device.

The exponents are "chip" draws (held over a test pass in chip mode). Stuck devices do not drift:
the stuck phase comes after this one and overrides it.
"""
import dataclasses
import math

import numpy as np

from ...kernels import drift as drift_loops
from ...kernels import fused as fused_records
from ...kernels.normal import Z_MAX, standard_normal
from ..validation import draw_args, non_negative, positive
from .base import LinearityPreserving, register

#: The largest factor by which drift may lower a conductance: (t / t0) ** nu <= MAX_DECAY for the
#: largest exponent drawn, nu_mean + Z_MAX nu_std (a device keeps at least 1e-6 of its programmed
#: conductance: far beyond measured drift, and G stays > 0 in float32).
MAX_DECAY = 1e6


@register
@dataclasses.dataclass(frozen=True)
class Drift(LinearityPreserving):
    """Power-law drift: G(t) = G (t / t0) ** (-nu), nu = max(nu_mean + nu_std z, 0), z ~ N(0, 1)
    per device.

    nu_mean, nu_std: mean and standard deviation of the drift exponent (dimensionless, >= 0);
    t: time since programming (s, >= t0); t0: the time at which G is the programmed value (s, > 0).
    No device may drift down by more than :data:`MAX_DECAY` (ValueError otherwise).
    The draws are the factors (t / t0) ** (-nu) (m, n), so a pass applies them with one product.
    """

    nu_mean: float
    nu_std: float
    t: float
    t0: float = 1.0

    phase = "drift"
    draws = "chip"

    def __post_init__(self):
        object.__setattr__(self, "nu_mean", non_negative("nu_mean", self.nu_mean))
        object.__setattr__(self, "nu_std", non_negative("nu_std", self.nu_std))
        object.__setattr__(self, "t", positive("t (seconds since programming)", self.t))
        object.__setattr__(self, "t0", positive("t0 (seconds)", self.t0))
        if self.t < self.t0:
            raise ValueError(f"t (seconds since programming) must be >= t0 = {self.t0!r} s (G is the programmed "
                             f"value at t0 and drifts down after it); got t = {self.t!r} s")
        largest = (self.nu_mean + Z_MAX * self.nu_std) * math.log(self.t / self.t0)
        if largest > math.log(MAX_DECAY):
            raise ValueError(f"Drift must lower conductances by at most a factor {MAX_DECAY:g}: (nu_mean + "
                             f"{Z_MAX:.3g} nu_std) ln(t / t0) must be <= {math.log(MAX_DECAY):.4g}; got "
                             f"{largest:.4g} (nu_mean={self.nu_mean!r}, nu_std={self.nu_std!r}, "
                             f"t={self.t!r} s, t0={self.t0!r} s)")

    @property
    def label(self):
        return f"Drift(nu_mean={self.nu_mean:.4g},nu_std={self.nu_std:.4g},t={self.t:.4g},t0={self.t0:.4g})"

    def fused(self):
        """The fused loops' drift record (memnp.kernels.fused.Drift)."""
        return fused_records.Drift(float(self.nu_mean), float(self.nu_std), math.log(self.t / self.t0))

    def exponents(self, z):
        """nu (shape and dtype of z) from standard normal draws z."""
        dtype = z.dtype.type
        nu = np.multiply(z, dtype(self.nu_std))
        nu += dtype(self.nu_mean)
        return np.maximum(nu, dtype(0), out=nu)

    def sample(self, shape, rng, dtype=np.float64):
        """Factors (t / t0) ** (-nu) (shape, ``dtype``), one exponent per device from memnp's
        seeded Box-Muller normals (computed in float64, rounded to ``dtype``): one Numba pass
        (:mod:`memnp.kernels.drift`) for float32 and float64, else :meth:`sample_numpy`."""
        dtype = draw_args(rng, dtype)
        if dtype in (np.float32, np.float64):
            return drift_loops.factors(rng, shape, dtype, self.nu_mean, self.nu_std, math.log(self.t / self.t0))
        return self.sample_numpy(shape, rng, dtype)

    def sample_numpy(self, shape, rng, dtype=np.float64):
        """:meth:`sample` in NumPy passes (the reference)."""
        nu = self.exponents(standard_normal(rng, shape, np.float64))
        return np.exp(-math.log(self.t / self.t0) * nu).astype(dtype)

    def disturb(self, G, draws):
        """G(t) (shape and dtype of G, S)."""
        return np.multiply(G, draws.astype(G.dtype, copy=False))

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        """dL/dG = (t / t0) ** (-nu) dL/dG(t)."""
        return np.multiply(grad_G_disturbed, draws.astype(grad_G_disturbed.dtype, copy=False))
