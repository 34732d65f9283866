"""Synthetic device data, for tests, demos and figures when measured data is absent.

Everything here is labelled synthetic (``synthetic = True`` on the returned objects, and a
``description`` saying how it was made). Defaults reproduce the published parameters (docs/model.md §6):
the high-resistance SiOx regime and the Ta/HfO2 G range.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ...crossbar.validation import (conductance_range, covariance_2x2, finite_pair, non_negative, positive,
                                    probability)
from .siox import pf_current

#: The most curves, points per curve, and reads (cycles x pulses x devices) a generator makes.
MAX_CURVES, MAX_POINTS, MAX_READS = 1_000_000, 1_000_000, 100_000_000

#: Published high-resistance SiOx regime (docs/model.md §6).
SIOX_HIGH = {"G_off": 5.24841e-7, "G_on": 2.6242e-6, "slopes": (-1.03023, -0.0901078),
             "intercepts": (-0.250595, -37.1186),
             "covariance": ((0.03208284, 0.09272695), (0.09272695, 0.32510818))}
#: Published Ta/HfO2 conductance range (S).
TAHFO2_G_OFF, TAHFO2_G_ON = 4.36e-5, 9.78e-4


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy.random.Generator or an integer seed >= 0; got {rng!r}")


def _integer(name, value, low, high):
    """An integer in [low, high] (booleans and non-integral numbers are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SyntheticIV:
    """Synthetic I-V curves.

    Attributes:
        V: (n_curves, n_points) voltages (V); I: (n_curves, n_points) currents (A).
        R: (n_curves,) nominal resistances (Ω) the PF parameters were drawn for.
        c: (n_curves,) c (A/V); d_eps: (n_curves,) dε (F/m) used to make the curves.
    """
    V: np.ndarray
    I: np.ndarray
    R: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    description: str
    synthetic: bool = True


def synthetic_siox_curves(n_curves: int, rng, *, R_range=None, slopes=SIOX_HIGH["slopes"],
                          intercepts=SIOX_HIGH["intercepts"], covariance=SIOX_HIGH["covariance"],
                          max_voltage: float = 0.5, voltage_step: float = 0.005,
                          noise: float = 0.0) -> SyntheticIV:
    """SiOx-like I-V curves from the PF model (docs/model.md §2), as the simulator draws devices.

    For each curve a nominal R is drawn log-uniformly from ``R_range`` (default the published
    high-resistance range [1/G_on, 1/G_off]); then (ln c, ln dε) = slopes ln R + intercepts + e,
    e ~ N(0, covariance); I = pf_current(V, c, dε) at V = 0, step, ..., max_voltage, times
    (1 + noise * N(0, 1)) independently per point.

    Args:
        n_curves: an integer in [1, MAX_CURVES]. rng: numpy Generator or integer seed >= 0.
        R_range: (R_min, R_max) ohms, 0 < R_min <= R_max. slopes, intercepts: pairs of finite
        numbers; covariance: 2 x 2, symmetric positive semi-definite. max_voltage > 0 (V);
        voltage_step (V) in [max_voltage / (MAX_POINTS - 1), max_voltage]. noise: relative current
        noise, >= 0.
    """
    rng = _generator(rng)
    n = _integer("n_curves", n_curves, 1, MAX_CURVES)
    noise = non_negative("noise (relative current noise)", noise)
    max_voltage = positive("max_voltage (V)", max_voltage)
    voltage_step = positive("voltage_step (V)", voltage_step)
    if voltage_step > max_voltage or max_voltage / voltage_step > MAX_POINTS - 1:
        raise ValueError(f"voltage_step (V) must be in [max_voltage / {MAX_POINTS - 1}, max_voltage] = "
                         f"[{max_voltage / (MAX_POINTS - 1):g}, {max_voltage:g}] (1 to {MAX_POINTS - 1} steps "
                         f"from 0 to max_voltage); got {voltage_step!r}")
    if R_range is None:
        R_range = (1.0 / SIOX_HIGH["G_on"], 1.0 / SIOX_HIGH["G_off"])
    lo, hi = finite_pair("R_range (R_min, R_max in ohms)", R_range)
    if not 0 < lo <= hi:
        raise ValueError(f"R_range must be (R_min, R_max) with 0 < R_min <= R_max (ohms); got {R_range}")
    slopes, intercepts = finite_pair("slopes", slopes), finite_pair("intercepts", intercepts)
    cov = np.array(covariance_2x2(covariance))
    R = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    e = rng.multivariate_normal(np.zeros(2), cov, size=n)
    ln_c = slopes[0] * np.log(R) + intercepts[0] + e[:, 0]
    ln_d = slopes[1] * np.log(R) + intercepts[1] + e[:, 1]
    with np.errstate(over="ignore", under="ignore"):
        c, d = np.exp(ln_c), np.exp(ln_d)
    if not (np.all(np.isfinite(c) & (c > 0)) and np.all(np.isfinite(d) & (d > 0))):
        raise ValueError(f"slopes, intercepts and covariance must give finite c > 0 (A/V) and d_eps > 0 (F/m) "
                         f"over R_range; got ln c from {ln_c.min():.4g} to {ln_c.max():.4g} and ln d_eps from "
                         f"{ln_d.min():.4g} to {ln_d.max():.4g} (float64 holds exp(x) for x in [-708, 709])")
    n_points = int(round(max_voltage / voltage_step)) + 1
    V = np.broadcast_to(np.arange(n_points) * voltage_step, (n, n_points)).copy()
    I = pf_current(V, c[:, None], d[:, None])
    if noise:
        I = I * (1.0 + noise * rng.standard_normal(I.shape))
    desc = (f"synthetic: {n} PF curves, R log-uniform in [{lo:.4g}, {hi:.4g}] Ω, slopes {tuple(slopes)}, "
            f"intercepts {tuple(intercepts)}, relative noise {noise}")
    return SyntheticIV(V=V, I=I, R=R, c=c, d_eps=d, description=desc)


@dataclass(frozen=True)
class SyntheticPulses:
    """A synthetic Ta/HfO2-like pulse array.

    Attributes:
        G_reads: (cycles, pulses, bit lines, word lines) conductances (S).
        stuck_mask: (bit lines, word lines) bool, the devices made stuck.
        stuck_values: (n_stuck,) the stuck devices' nominal conductances (S), in row-major order.
    """
    G_reads: np.ndarray
    stuck_mask: np.ndarray
    stuck_values: np.ndarray
    description: str
    synthetic: bool = True


def synthetic_tahfo2_reads(rng, *, shape=(2, 40, 16, 16), stuck_fraction: float = 0.101,
                           G_off: float = TAHFO2_G_OFF, G_on: float = TAHFO2_G_ON,
                           device_spread: float = 0.1, read_noise: float = 0.01) -> SyntheticPulses:
    """A pulse array in the Ta/HfO2 layout with a given fraction of stuck devices.

    Healthy devices: per-device bounds G_off exp(device_spread N(0,1)) and G_on exp(device_spread N(0,1));
    each cycle, the first half of the pulses rises from the lower to the upper bound along
    1 - exp(-3 t) (normalised), the second half falls back symmetrically. Stuck devices (exactly
    round(stuck_fraction x devices), chosen at random) stay at a value drawn uniformly from
    [G_off, G_on]. Every read is multiplied by (1 + read_noise N(0, 1)).

    Reads that the noise would make negative are clipped to 0 S.

    Args:
        rng: numpy Generator or integer seed >= 0. shape: (cycles, pulses >= 2, bit lines, word
        lines), integers, at most MAX_READS reads in all. stuck_fraction: in [0, 1].
        G_off, G_on: 0 < G_off < G_on (S). device_spread, read_noise: >= 0.
    """
    rng = _generator(rng)
    try:
        shape = None if isinstance(shape, str) else tuple(shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 4:
        raise ValueError(f"shape must be (cycles, pulses >= 2, bit lines, word lines); got {shape!r}")
    shape = tuple(_integer(f"shape[{k}] ({what})", n, 2 if k == 1 else 1, MAX_READS)
                  for k, (what, n) in enumerate(zip(("cycles", "pulses", "bit lines", "word lines"), shape)))
    if math.prod(shape) > MAX_READS:
        raise ValueError(f"shape must hold at most {MAX_READS} reads (cycles x pulses x bit lines x word lines); "
                         f"got {shape} ({math.prod(shape)} reads)")
    stuck_fraction = probability("stuck_fraction", stuck_fraction)
    G_off, G_on = conductance_range(G_off, G_on)
    device_spread = non_negative("device_spread", device_spread)
    read_noise = non_negative("read_noise", read_noise)
    cycles, pulses, rows, cols = shape
    n_dev = rows * cols
    lower = G_off * np.exp(device_spread * rng.standard_normal(n_dev))
    upper = G_on * np.exp(device_spread * rng.standard_normal(n_dev))
    n_up = pulses - pulses // 2
    t = np.linspace(0.0, 1.0, n_up)
    rise = (1 - np.exp(-3 * t)) / (1 - np.exp(-3.0))
    profile = np.concatenate([rise, rise[::-1][: pulses - n_up]])          # (pulses,)
    G = lower + profile[:, None] * (upper - lower)                            # (pulses, n_dev)
    G = np.broadcast_to(G, (cycles, pulses, n_dev)).copy()
    n_stuck = int(round(stuck_fraction * n_dev))
    stuck = np.zeros(n_dev, dtype=bool)
    stuck[rng.choice(n_dev, size=n_stuck, replace=False)] = True
    values = rng.uniform(G_off, G_on, n_stuck)
    G[:, :, stuck] = values
    G *= 1.0 + read_noise * rng.standard_normal(G.shape)
    np.maximum(G, 0.0, out=G)
    desc = (f"synthetic: Ta/HfO2-like pulses {shape}, {n_stuck} of {n_dev} devices stuck, "
            f"G_off={G_off:g} S, G_on={G_on:g} S")
    return SyntheticPulses(G_reads=G.reshape(shape), stuck_mask=stuck.reshape(rows, cols),
                           stuck_values=values, description=desc)
