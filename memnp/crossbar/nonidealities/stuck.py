"""Stuck devices (docs/model.md §2): each device stuck with probability p at a fixed value or at a value
drawn from a kernel density estimate of measured stuck conductances. Stuck devices get zero gradient.
"""
import dataclasses
import functools

import numpy as np
from scipy import special

from ..validation import draw_args, finite_array, non_negative, positive, probability
from ...kernels import fused as fused_records
from .base import STAGE_SLACK, LinearityPreserving, register

#: The largest share of StuckDistribution's values that may lie outside the stage's [G_off, G_on].
MAX_OUTSIDE = 0.5


def _same_as_stage(item, name, stage):
    """ValueError unless ``item``'s field ``name`` (G_off or G_on, S) is the stage's (up to STAGE_SLACK)."""
    ours, theirs = getattr(item, name), getattr(stage, name)
    if abs(ours - theirs) > STAGE_SLACK * theirs:
        raise ValueError(f"{type(item).__name__} {name} must equal the stage's {name} ({theirs!r} S); got "
                         f"{ours!r} S (use StuckAt for another stuck value)")


class _Stuck(LinearityPreserving):
    """Shared behaviour: draws are (mask, values); G' = where(mask, values, G)."""

    phase = "stuck"
    draws = "chip"
    #: The dataclass field that holds the fixed stuck value (None: drawn per device).
    value_field = None

    def fused(self):
        """The fused loops' stuck record (memnp.kernels.fused.Stuck; value None when drawn)."""
        fixed = self.fixed_value
        return fused_records.Stuck(float(self.p), None if fixed is None else float(fixed))

    def check_stage(self, stage):
        """A fixed stuck value must lie in the stage's [G_off, G_on]."""
        if self.value_field is None:
            return
        G_off, G_on = stage.G_off, stage.G_on
        value = getattr(self, self.value_field)
        low, high = G_off * (1 - STAGE_SLACK), G_on * (1 + STAGE_SLACK)
        if not low <= value <= high:
            raise ValueError(f"{type(self).__name__} {self.value_field} (the stuck value) must lie in the "
                             f"stage's conductance range [G_off, G_on] = [{G_off!r}, {G_on!r}] S; "
                             f"got {value!r} S")

    def _stuck_values(self, count, rng):
        raise NotImplementedError

    #: The value (S) every stuck device takes, for the classes with one (None: drawn per device).
    fixed_value = None

    def sample(self, shape, rng, dtype=np.float64):
        """(mask (shape) of stuck devices, values (shape, ``dtype``) they take, in S; 0 elsewhere)."""
        dtype = draw_args(rng, dtype)
        mask = rng.random(shape, dtype=dtype) < self.p
        fixed = self.fixed_value
        if fixed is not None:
            # One product instead of a masked assignment: the same values (True * v = v, False * v
            # = 0 for the finite v > 0 rounded to dtype).
            return mask, mask * np.dtype(dtype).type(fixed)
        values = np.zeros(shape, dtype)
        values[mask] = self._stuck_values(int(np.count_nonzero(mask)), rng)
        return mask, values

    def disturb(self, G, draws):
        """G' = where(mask, values, G) in G's dtype (a copy of G with the stuck values written in:
        the same numbers as np.where, in fewer passes)."""
        mask, values = draws
        out = np.array(G, copy=True)
        np.copyto(out, values, casting="same_kind", where=mask)
        return out

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        """dL/dG = dL/dG' with exact zeros at the stuck devices."""
        mask, _ = draws
        out = np.array(grad_G_disturbed, copy=True)
        np.copyto(out, 0, where=mask)
        return out


@register
@dataclasses.dataclass(frozen=True)
class StuckAt(_Stuck):
    """Devices stuck at ``value`` (S) with probability ``p``."""

    value: float
    p: float

    value_field = "value"
    paper = True

    def __post_init__(self):
        object.__setattr__(self, "value", positive("value", self.value))
        object.__setattr__(self, "p", probability("p", self.p))

    @property
    def label(self):
        return f"StuckAt(value={self.value:.4g},p={self.p:.4g})"

    def _stuck_values(self, count, rng):
        return self.value

    @property
    def fixed_value(self):
        return self.value


@register
@dataclasses.dataclass(frozen=True)
class StuckAtGOff(_Stuck):
    """Devices stuck at G_off (S) with probability ``p``."""

    G_off: float
    p: float

    value_field = "G_off"
    paper = True

    def __post_init__(self):
        object.__setattr__(self, "G_off", positive("G_off", self.G_off))
        object.__setattr__(self, "p", probability("p", self.p))

    @property
    def label(self):
        return f"StuckAtGOff(p={self.p:.4g})"

    def _stuck_values(self, count, rng):
        return self.G_off

    def check_stage(self, stage):
        """G_off must lie in the stage's range and be the stage's G_off."""
        super().check_stage(stage)
        _same_as_stage(self, "G_off", stage)

    @property
    def fixed_value(self):
        return self.G_off


@register
@dataclasses.dataclass(frozen=True)
class StuckAtGOn(_Stuck):
    """Devices stuck at G_on (S) with probability ``p``."""

    G_on: float
    p: float

    value_field = "G_on"
    paper = True

    def __post_init__(self):
        object.__setattr__(self, "G_on", positive("G_on", self.G_on))
        object.__setattr__(self, "p", probability("p", self.p))

    @property
    def label(self):
        return f"StuckAtGOn(p={self.p:.4g})"

    def _stuck_values(self, count, rng):
        return self.G_on

    def check_stage(self, stage):
        """G_on must lie in the stage's range and be the stage's G_on."""
        super().check_stage(stage)
        _same_as_stage(self, "G_on", stage)

    @property
    def fixed_value(self):
        return self.G_on


def scott_bandwidth(means):
    """Scott's rule as KDEpy defines it: min(std (ddof=1), IQR / 1.3489795) * N^(-1/5)."""
    means = np.asarray(means, dtype=np.float64)
    q75, q25 = np.percentile(means, [75, 25])
    sigma = min(np.std(means, ddof=1), (q75 - q25) / 1.3489795)
    return float(sigma * means.size ** (-1 / 5))


def kde_components(means, bandwidth):
    """(locations (K,), weights (K,)) of the truncated-normal mixture of docs/model.md §2; weights sum to 1.

    Each mu_i (S) gives a normal of scale h = ``bandwidth`` (S) truncated to [0, inf); when more than
    1e-8 of its mass lies below 0 (P_i) it also gets a reflected partner at -mu_i, the two weighted
    1 - P_i and P_i.
    """
    mu, h = np.asarray(means, dtype=np.float64).reshape(-1), float(bandwidth)
    below = special.ndtr(-mu / h)
    reflect = below > 1e-8
    loc = np.concatenate([mu, -mu[reflect]])
    weight = np.concatenate([np.where(reflect, 1 - below, 1.0), below[reflect]]) / mu.size
    return loc, weight


def kde_pdf(G, means, bandwidth):
    """Density (1/S) of the stuck-value mixture at conductances G (any shape, S)."""
    if not float(bandwidth) > 0:
        raise ValueError(f"bandwidth must be > 0 siemens; got {bandwidth!r}")
    loc, weight = kde_components(means, bandwidth)
    h = float(bandwidth)
    G = np.asarray(G, dtype=np.float64)
    z = (G[..., None] - loc) / h
    pdf = np.exp(-0.5 * z ** 2) / (np.sqrt(2 * np.pi) * h) / special.ndtr(loc / h)
    return np.where(G >= 0, pdf @ weight, 0.0)


@register
@dataclasses.dataclass(frozen=True)
class StuckDistribution(_Stuck):
    """Devices stuck with probability ``p`` at values drawn from a KDE of measured stuck
    conductances ``means`` (S): a mixture of normals of scale h (Scott's rule) truncated to
    [0, inf), each with a reflected partner at -mu_i when it carries more than 1e-8 of mass below 0.
    """

    means: tuple
    p: float

    paper = True

    def __post_init__(self):
        means = finite_array("means", self.means, ndim=1)
        if means.size < 2:
            raise ValueError(f"means must hold at least 2 stuck conductances; got {means.size}")
        for value in means:
            non_negative("means (each stuck conductance)", value)
        object.__setattr__(self, "means", tuple(float(v) for v in means))
        object.__setattr__(self, "p", probability("p", self.p))
        if not scott_bandwidth(self.means) > 0:
            raise ValueError("means must not be all equal (the KDE bandwidth would be 0)")

    def outside(self, G_off, G_on):
        """The probability that a stuck value drawn lies outside [G_off, G_on] (S)."""
        loc, weight = self._components()
        h = self.bandwidth
        inside = special.ndtr(loc / h)     # each component's mass on [0, inf)
        below = (inside - special.ndtr((loc - G_off) / h)) / inside
        above = special.ndtr((loc - G_on) / h) / inside
        return float(weight @ (below + above))

    def check_stage(self, stage):
        """At least half of the stuck values drawn must lie in the stage's [G_off, G_on] (measured
        stuck conductances near the range's ends spill out a little; most outside means ``means``
        are in other units or from another device)."""
        share = self.outside(stage.G_off, stage.G_on)
        if share > MAX_OUTSIDE:
            raise ValueError(f"StuckDistribution means (S) must be stuck conductances on the stage's range "
                             f"[G_off, G_on] = [{stage.G_off!r}, {stage.G_on!r}] S: at most {MAX_OUTSIDE:g} of "
                             f"the values drawn may lie outside it; got {share:.3g} (means from "
                             f"{min(self.means)!r} to {max(self.means)!r} S)")

    @functools.cached_property
    def bandwidth(self):
        """KDE bandwidth h (S) (computed once per object)."""
        return scott_bandwidth(self.means)

    paper = True

    @property
    def label(self):
        return f"StuckDistribution(n={len(self.means)},h={self.bandwidth:.4g},p={self.p:.4g})"

    @functools.cached_property
    def _kde(self):
        """kde_components of the means, read-only, computed once per object (the fields are
        frozen; a training step draws stuck values twice)."""
        loc, weight = kde_components(self.means, self.bandwidth)
        loc.setflags(write=False)
        weight.setflags(write=False)
        return loc, weight

    def _components(self):
        return self._kde

    def pdf(self, G):
        """Density (1/S) of the stuck values at conductances G (S)."""
        return kde_pdf(G, self.means, self.bandwidth)

    def mixture_mean(self):
        """Mean (S) of the stuck-value distribution (truncated-normal means, weighted)."""
        loc, weight = self._components()
        h = self.bandwidth
        alpha = -loc / h
        tn_mean = loc + h * np.exp(-0.5 * alpha ** 2) / np.sqrt(2 * np.pi) / special.ndtr(-alpha)
        return float(np.sum(weight * tn_mean))

    def _stuck_values(self, count, rng):
        loc, weight = self._components()
        h = self.bandwidth
        chosen = rng.choice(loc.size, size=count, p=weight)
        u = 1.0 - rng.random(count)  # in (0, 1], so ndtri stays finite
        # Inverse CDF of N(loc, h) truncated to [0, inf): P(Z > z) = u * P(Z > a), a = -loc / h.
        a = -loc[chosen] / h
        z = -special.ndtri(u * special.ndtr(-a))
        return np.maximum(loc[chosen] + h * z, 0.0)
