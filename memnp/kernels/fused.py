"""What a nonideality hands the fused loops: its kernel parameters, as small named records.

The fused loops (:mod:`memnp.kernels.conductance_chain`: the conductance phases in one pass;
:mod:`memnp.kernels.stage_draws`: every phase's draws from one block of raw words) read no
nonideality's fields. A nonideality that one of their loops can run returns, from its
``fused()`` method, the record of that loop below; ``None`` (the default of
:class:`memnp.crossbar.nonidealities.base.Nonideality`) keeps it on its own path, phase by phase.
Returning a record is a promise: the class's ``sample``, ``apply`` and ``apply_vjp`` compute
exactly what the loop computes from these parameters (the same draws from the same words, the
same operations), which tests/test_pipeline_fused.py checks bit for bit for memnp's classes.

:data:`LOOPS` says which record a loop slot (a phase name) takes; the slots run in this order.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class D2D:
    """Lognormal D2D variability, G' = G exp(sigma (sigma / 2 - eps)), eps one Box-Muller normal
    per device; sigma = s_on + slope (R - r_on) for R = 1 / G in [r_on, r_off] (ohm), clamped
    outside (memnp.kernels.d2d_devices)."""

    r_on: float
    r_off: float
    slope: float
    s_on: float


@dataclasses.dataclass(frozen=True)
class Drift:
    """Power-law drift factors (t / t0) ** -nu, nu = max(nu_mean + nu_std z, 0), z one
    Box-Muller normal per device; ``log_ratio`` = ln(t / t0) (memnp.kernels.drift)."""

    nu_mean: float
    nu_std: float
    log_ratio: float


@dataclasses.dataclass(frozen=True)
class Stuck:
    """Stuck devices: stuck with probability ``p`` (one uniform per device as NumPy's
    ``Generator.random`` makes it), at ``value`` (S), or at values drawn per device when
    ``value`` is None (the conductance loop takes those; the one-block draws do not)."""

    p: float
    value: object = None


@dataclasses.dataclass(frozen=True)
class ReadNoise:
    """Read-noise factors max(1 + sigma z, floor), z one Box-Muller normal per device
    (memnp.kernels.read_noise)."""

    sigma: float
    floor: float


@dataclasses.dataclass(frozen=True)
class PF:
    """PF residuals L (z_cos, z_sin) of one raw word per device, with ``factor`` L (2 x 2 nested
    tuples), and the device parameters from ``slopes`` (s_c, s_d) and ``intercepts`` (b_c, b_d)
    (memnp.kernels.pf_devices)."""

    factor: tuple
    slopes: tuple
    intercepts: tuple


#: Loop slot (the phase it runs in) -> the record it takes, in the loops' order.
LOOPS = {"programming": D2D, "drift": Drift, "stuck": Stuck, "read_noise": ReadNoise, "currents": PF}
#: The slots of the conductance loop (memnp.kernels.conductance_chain), in order.
CONDUCTANCE_SLOTS = ("programming", "drift", "stuck", "read_noise")


def params(item, slot):
    """``item.fused()`` when it is the record of loop ``slot``, else None (the item, or the slot,
    is not one the fused loops run)."""
    record = LOOPS.get(slot)
    fused = getattr(item, "fused", None)
    if record is None or fused is None:
        return None
    value = fused()
    return value if isinstance(value, record) else None
