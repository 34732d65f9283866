"""What a stage asks of the device-resident step (memnp.kernels.cuda_step and its phases).

:func:`unsupported` names what the CUDA kernels cannot run; :func:`adc_table` reads the ADCs'
constants per row of arrays from the stage (its Tiles and the ADC's full scale, as
memnp.crossbar.tiling computes it); :func:`kde_table` the table of a StuckDistribution's values
(memnp.kernels.cuda_stuck). They read the stage's classes, so they live above the kernels.
"""
import numpy as np
from scipy import special

from ..crossbar import tiling
from ..crossbar.nonidealities.iv import IVNonlinearityPF
from ..crossbar.nonidealities.programming import MIN_FRACTION, ProgrammingNoise
from ..crossbar.nonidealities.stuck import StuckDistribution, kde_components
from ..kernels import cuda_phases
from ..kernels import fused as fused_records

__all__ = ["unsupported", "adc_table", "programming_noise", "stage_columns", "kde_table", "kde_tables"]


def unsupported(stage):
    """None when the kernels run ``stage`` (a Stage), else the reason (a sentence naming the
    nonideality): in the currents phase PF or nothing (a linear read, I = V G''; the ideal stage
    is one); D2DLognormal or ProgrammingNoise, Drift, stuck devices with a fixed value or
    StuckDistribution, ReadNoise, DAC, ADC and Tiles may come with either; nothing else. Either
    mapping rule: double weights do not use it (the CPU maps them as G = k_G D + G_off whatever
    the rule), standard weights are mapped by it."""
    if stage is None:
        return "a stage is needed (got None)"
    phases = stage.phases
    currents = phases.get("currents")
    if currents is not None and not isinstance(currents, IVNonlinearityPF):
        got = [type(item).__name__ for item in stage.nonidealities]
        return f"the stage's currents phase must be IVNonlinearityPF or none (a linear read); got {got}"
    for name, item in phases.items():
        label = type(item).__name__
        if name not in cuda_phases.PHASES:
            return f"{label} (phase {name!r}) is not supported on the device"
        if name == "programming" and type(item) is ProgrammingNoise:
            continue
        if name in fused_records.CONDUCTANCE_SLOTS:
            record = fused_records.params(item, name)
            drawn = name == "stuck" and record is not None and record.value is None
            if record is None or (drawn and not isinstance(item, StuckDistribution)):
                return f"{label} (phase {name!r}) is not supported on the device"
    return None


def programming_noise(stage):
    """(sigma_rel, sigma_abs (S), the floor's fraction of G) of the stage's ProgrammingNoise, or
    None: what memnp.kernels.cuda_phases' programming columns hold."""
    item = stage.phases.get("programming")
    if type(item) is not ProgrammingNoise:
        return None
    return float(item.sigma_rel), float(item.sigma_abs), MIN_FRACTION


def stage_columns(stage, dtype):
    """The stage's columns of the device step's constants (memnp.kernels.cuda_phases.stage_columns,
    with what is read from the classes here: the programming noise, and a StuckDistribution's
    table size and bandwidth (:func:`kde_table`))."""
    out = cuda_phases.stage_columns(stage, dtype, programming_noise(stage))
    kde = kde_table(stage)
    if kde is not None:
        out[cuda_phases.KDE_N - cuda_phases.TILE_ROWS] = len(kde[0])
        out[cuda_phases.KDE_H - cuda_phases.TILE_ROWS] = kde[1]
    return out


def adc_table(stage, m, blocks, dtype):
    """float64 (blocks, 3): per row of arrays b (rows b R ... of an m-row crossbar, R the tiles'
    rows): the ADCs' levels / fs, fs / levels and fs (A), each rounded to ``dtype`` as
    memnp.kernels.tiling.adc_constants rounds them (the full scales of memnp.crossbar.tiling);
    zeros without an ADC or past the crossbar."""
    out = np.zeros((blocks, 3), dtype=np.float64)
    adc = stage.phases.get("adc")
    if adc is None:
        return out
    tiles = stage.phases.get("tiles")
    bounds = tiles.row_bounds(m) if tiles is not None else [(0, m)]
    t = np.dtype(dtype).type
    for b, (r0, r1) in enumerate(bounds):
        fs = float(tiling._full_scale(stage, adc, r1 - r0))
        out[b] = t(adc.levels / fs), t(fs / adc.levels), t(fs)
    return out


def kde_table(stage):
    """(table (N, 3) float64, h (S)) of the stage's StuckDistribution, or None without one: per
    component of its mixture (kde_components) the normalised cumulative weight (as NumPy's
    ``Generator.choice`` makes its cdf), loc (S) and tail = ndtr(loc / h), the numbers its
    ``_stuck_values`` uses; memnp.kernels.cuda_stuck draws the values from them."""
    stuck = stage.phases.get("stuck")
    if not isinstance(stuck, StuckDistribution):
        return None
    h = stuck.bandwidth
    loc, weight = kde_components(stuck.means, h)
    cdf = weight.cumsum()
    cdf /= cdf[-1]
    return np.stack([cdf, loc, special.ndtr(loc / h)], axis=1), h


def kde_tables(stages):
    """float64 (K, N, 3): the K stages' :func:`kde_table` tables, zeros past a table's components
    or without a StuckDistribution (N >= 1)."""
    tables = [kde_table(stage) for stage in stages]
    out = np.zeros((len(tables), max([len(t[0]) for t in tables if t is not None], default=1), 3))
    for k, t in enumerate(tables):
        if t is not None:
            out[k, :len(t[0])] = t[0]
    return out
