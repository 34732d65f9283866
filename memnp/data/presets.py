"""Device presets: the published device parameters (docs/model.md §6) as memnp.crossbar Stage dicts.

A *stage dict* is the JSON form of :class:`memnp.crossbar.Stage`::

    {"G_off": S, "G_on": S, "k_V": V, "mapping_rule": "default" | "avg",
     "nonidealities": [{"type": "IVNonlinearityPF", ...}, {"type": "StuckAtGOn", ...}, ...]}

A :class:`Preset` wraps one with a name, a description, its source, and whether any part is
synthetic; preset files are that record as JSON (the record, the stage dict's checks and the
files are in :mod:`memnp.data.preset_files`, whose names are offered here too). Every preset uses
k_V = 0.5 V; all but ``siox-low`` and ``tahfo2`` use the high-resistance SiOx conductance range.

``siox-high-chip`` combines the paper's high-R SiOx PF model and D2D variability with the
physical pipeline's other phases (stuck devices, drift, read noise, DAC, ADC, tiles; see
memnp.crossbar.pipeline) at illustrative values: :func:`chip_stage` builds it, also at other
drift times or ADC resolutions.

``tahfo2``: G_off, G_on and p are the published values, but the measured stuck conductances are
not public. Its StuckDistribution ``means`` are therefore a synthetic, deterministic list: the 100
standard-normal quantiles Phi^-1((i + 0.5) / 100), scaled so that their Scott bandwidth (docs/model.md §2)
is exactly the published 1.77e-5 S and centred on (G_off + G_on) / 2. Only the bandwidth is
published; the shape and centre of the list are assumptions, and the preset says so.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from .devices.tahfo2 import scott_bandwidth
from .preset_files import (FORMAT, K_V, VERSION, Preset, load_preset,  # noqa: F401  (also here)
                           load_preset_record, preset_from_fit, save_preset, validate_stage_dict)

#: The README's worked example (``siox-high-chip``): illustrative values beyond the paper's D2D
#: and PF (not measured).
CHIP = {"stuck_off_p": 0.02, "read_noise": 0.05, "drift": {"nu_mean": 0.01, "nu_std": 0.005, "t": 86400.0},
        "bits": 6, "tiles": (128, 64), "d2d": (0.25, 0.25)}

# Published values (docs/model.md §6; Joksas et al., Adv. Sci. 2022).
SIOX_LOW = {"G_off": 6.9013e-4, "G_on": 3.45065e-3, "slopes": [-1.11965, -1.33689],
            "intercepts": [0.62835, -25.9156],
            "covariance": [[0.00122933, 0.00965122], [0.00965122, 0.2470822]]}
SIOX_HIGH = {"G_off": 5.24841e-7, "G_on": 2.6242e-6, "slopes": [-1.03023, -0.0901078],
             "intercepts": [-0.250595, -37.1186],
             "covariance": [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]}
TAHFO2 = {"G_off": 4.36e-5, "G_on": 9.78e-4, "p": 0.101, "bandwidth": 1.77e-5}
#: Number of synthetic stuck values in the ``tahfo2`` preset.
TAHFO2_SYNTHETIC_N = 100
PUBLISHED = "published (Joksas et al., Adv. Sci. 9, 2105784, 2022; docs/model.md §6)"


def synthetic_stuck_means(bandwidth: float, center: float, n: int = TAHFO2_SYNTHETIC_N) -> list[float]:
    """n values (S) with Scott bandwidth exactly ``bandwidth``: scaled normal quantiles around ``center``."""
    if n < 2 or bandwidth <= 0:
        raise ValueError(f"need n >= 2 and bandwidth > 0, got n={n}, bandwidth={bandwidth}")
    z = ndtri((np.arange(n) + 0.5) / n)
    values = center + z * (bandwidth / scott_bandwidth(z))
    if values.min() < 0:
        raise ValueError("center is too small for this bandwidth: some values would be negative")
    return [float(v) for v in values]


def _pf(regime: dict) -> dict:
    return {"type": "IVNonlinearityPF", "k_V": K_V, "slopes": list(regime["slopes"]),
            "intercepts": list(regime["intercepts"]), "covariance": [list(r) for r in regime["covariance"]]}


def _stage(G_off, G_on, *nonidealities) -> dict:
    return {"G_off": G_off, "G_on": G_on, "k_V": K_V, "mapping_rule": "default",
            "nonidealities": list(nonidealities)}


def _d2d(sigma_on, sigma_off):
    g = SIOX_HIGH
    return {"type": "D2DLognormal", "G_off": g["G_off"], "G_on": g["G_on"],
            "R_on_log_std": sigma_on, "R_off_log_std": sigma_off}


# -- the worked-example chip and the sweeps of the new simulations ------------------------------------
#: Seconds in the times after programming the drift simulation reads at (a month is 30 days and a
#: year 365 days).
SECOND, HOUR, DAY = 1.0, 3600.0, 86400.0
MONTH, YEAR = 30 * DAY, 365 * DAY
#: Suffix -> time after programming (s) of the drift variants "siox-high-chip-<suffix>" (1 day is
#: "siox-high-chip" itself).
DRIFT_TIMES = {"1s": SECOND, "1h": HOUR, "1d": DAY, "1mo": MONTH, "1y": YEAR}
#: ADC resolutions of the "siox-high-adc<bits>" and "siox-high-adc<bits>-tiles" variants.
ADC_BITS = (3, 4, 5, 6, 7, 8)


def siox_high_stage(*, pf=True, d2d=None, drift=None, stuck_off=None, read_noise=None, dac_bits=None,
                    adc_bits=None, tiles=None) -> dict:
    """A stage dict on the high-resistance SiOx range, listed in physical order.

    pf: the published high-R PF I-V model; d2d: (R_on_log_std, R_off_log_std) of D2DLognormal;
    drift: (nu_mean, nu_std, t in s, t0 = 1 s); stuck_off: fraction p stuck at G_off; read_noise:
    sigma_rel; dac_bits, adc_bits: converter bits (ADC full scale "worst-case"); tiles: (rows, cols).
    """
    hi = SIOX_HIGH
    items = []
    if d2d is not None:
        items.append(_d2d(*d2d))
    if drift is not None:
        nu_mean, nu_std, t = drift
        items.append({"type": "Drift", "nu_mean": nu_mean, "nu_std": nu_std, "t": t, "t0": SECOND})
    if stuck_off is not None:
        items.append({"type": "StuckAtGOff", "G_off": hi["G_off"], "p": stuck_off})
    if read_noise is not None:
        items.append({"type": "ReadNoise", "sigma_rel": read_noise})
    if dac_bits is not None:
        items.append({"type": "DAC", "bits": dac_bits})
    if pf:
        items.append(_pf(hi))
    if adc_bits is not None:
        items.append({"type": "ADC", "bits": adc_bits, "full_scale": "worst-case"})
    if tiles is not None:
        items.append({"type": "Tiles", "rows": tiles[0], "cols": tiles[1]})
    return _stage(hi["G_off"], hi["G_on"], *items)


def _chip_variant_description(t_label):
    return CHIP_DESCRIPTION.replace("drift to one day", f"drift to {t_label}")


def _derived() -> dict[str, Preset]:
    """Variants the drift and adc simulations read at (by name, not in :func:`list_presets`)."""
    items = []
    words = {"1s": "1 s", "1h": "1 h", "1mo": "1 month", "1y": "1 year"}
    for suffix, t in DRIFT_TIMES.items():
        if suffix != "1d":
            items.append(Preset(f"siox-high-chip-{suffix}", chip_stage(t), _chip_variant_description(words[suffix]),
                                CHIP_SOURCE, synthetic=True))
    for bits in ADC_BITS:
        items.append(Preset(f"siox-high-adc{bits}", siox_high_stage(adc_bits=bits),
                            f"high-R SiOx PF read by {bits}-bit ADCs (worst-case full scale), one array",
                            PUBLISHED + " for the PF model"))
        items.append(Preset(f"siox-high-adc{bits}-tiles",
                            siox_high_stage(adc_bits=bits, tiles=CHIP["tiles"]),
                            f"high-R SiOx PF read by {bits}-bit ADCs (worst-case full scale) on "
                            f"{CHIP['tiles'][0]} x {CHIP['tiles'][1]} arrays", PUBLISHED + " for the PF model"))
    return {p.name: p for p in items}


def _builtin() -> dict[str, Preset]:
    lo, hi = SIOX_LOW, SIOX_HIGH
    t = TAHFO2
    means = synthetic_stuck_means(t["bandwidth"], (t["G_off"] + t["G_on"]) / 2)
    items = [
        Preset("siox-low", _stage(lo["G_off"], lo["G_on"], _pf(lo)),
               "SiOx, low-resistance regime, Poole-Frenkel I-V nonlinearity", PUBLISHED),
        Preset("siox-high", _stage(hi["G_off"], hi["G_on"], _pf(hi)),
               "SiOx, high-resistance regime, Poole-Frenkel I-V nonlinearity", PUBLISHED),
        Preset("stuck-off",
               _stage(hi["G_off"], hi["G_on"], {"type": "StuckAtGOff", "G_off": hi["G_off"], "p": 0.05}),
               "5 % of devices stuck at G_off (high-resistance SiOx range)", PUBLISHED),
        Preset("siox-high-stuck-on", _stage(hi["G_off"], hi["G_on"], _pf(hi),
                                            {"type": "StuckAtGOn", "G_on": hi["G_on"], "p": 0.05}),
               "high-resistance SiOx Poole-Frenkel nonlinearity and 5 % of devices stuck at G_on", PUBLISHED),
        Preset("d2d-more-uniform", _stage(hi["G_off"], hi["G_on"], _d2d(0.25, 0.25)),
               "device-to-device lognormal variability, more uniform (sigma_on 0.25, sigma_off 0.25)",
               PUBLISHED),
        Preset("d2d-less-uniform", _stage(hi["G_off"], hi["G_on"], _d2d(0.05, 0.5)),
               "device-to-device lognormal variability, less uniform (sigma_on 0.05, sigma_off 0.5)",
               PUBLISHED),
        Preset("d2d-high", _stage(hi["G_off"], hi["G_on"], _d2d(0.5, 0.5)),
               "high device-to-device lognormal variability (sigma_on 0.5, sigma_off 0.5)", PUBLISHED),
        Preset("tahfo2",
               _stage(t["G_off"], t["G_on"], {"type": "StuckDistribution", "means": means, "p": t["p"]}),
               "Ta/HfO2 crossbar: 10.1 % of devices stuck at values from a KDE; the stuck values are "
               f"SYNTHETIC ({TAHFO2_SYNTHETIC_N} scaled normal quantiles with the published Scott bandwidth "
               "1.77e-5 S, centred on (G_off + G_on) / 2)",
               PUBLISHED + " for G_off, G_on, p and the bandwidth; stuck values synthetic", synthetic=True),
    ]
    items.append(Preset("siox-high-chip", chip_stage(), CHIP_DESCRIPTION, CHIP_SOURCE, synthetic=True))
    return {p.name: p for p in items}


CHIP_SOURCE = (PUBLISHED + " for the PF model, G_off, G_on and the D2D sigmas; stuck fraction, drift, "
               "read noise, converters and tiles illustrative")
CHIP_DESCRIPTION = ("a high-R SiOx chip: PF, D2D (sigma_on = sigma_off = 0.25), 2 % stuck at G_off, drift to "
                    "one day (nu 0.01 +- 0.005), 5 % read noise, 6-bit DAC and ADC, 128 x 64 tiles; the "
                    "values beyond the paper's are ILLUSTRATIVE, not measured")


def chip_stage(t: float | None = None, adc_bits: int | None = None, tiles: bool = True) -> dict:
    """The stage dict of the ``siox-high-chip`` preset (the README's worked example), optionally at
    another time since programming ``t`` (s), ADC resolution or without tiles."""
    hi, c = SIOX_HIGH, CHIP
    drift = dict(c["drift"], t=float(c["drift"]["t"] if t is None else t))
    items = [_d2d(*c["d2d"]), {"type": "Drift", **drift, "t0": 1.0},
             {"type": "StuckAtGOff", "G_off": hi["G_off"], "p": c["stuck_off_p"]},
             {"type": "ReadNoise", "sigma_rel": c["read_noise"]}, {"type": "DAC", "bits": c["bits"]}, _pf(hi),
             {"type": "ADC", "bits": c["bits"] if adc_bits is None else int(adc_bits), "full_scale": "worst-case"}]
    if tiles:
        items.append({"type": "Tiles", "rows": c["tiles"][0], "cols": c["tiles"][1]})
    return _stage(hi["G_off"], hi["G_on"], *items)


def derived_variants(name: str, stage: dict) -> dict[str, dict]:
    """{variant name: stage dict} of the built-in variants derived from preset ``name``, rebuilt
    from ``stage`` (that preset's stage dict as a user edited it, e.g. a ``--device-file``):

    - ``siox-high-chip``: the drift variants ``siox-high-chip-<suffix>``, the edited chip with the
      time of every Drift set to :data:`DRIFT_TIMES` (a chip without drift reads the same at every
      time, so its variants are the chip itself);
    - ``siox-high``: ``siox-high-adc<bits>`` and ``siox-high-adc<bits>-tiles``, the edited stage's
      nonidealities (less any ADC and Tiles) followed by the ADC and the tiles of the built-in ones.

    Other names have no variants ({}). The stage dicts are fresh copies.
    """
    out = {}
    if name == "siox-high-chip":
        for suffix, t in DRIFT_TIMES.items():
            if suffix == "1d":
                continue
            variant = copy.deepcopy(stage)
            for item in variant.get("nonidealities", ()):
                if item.get("type") == "Drift":
                    item["t"] = float(t)
            out[f"{name}-{suffix}"] = variant
    elif name == "siox-high":
        kept = [item for item in stage.get("nonidealities", ()) if item.get("type") not in ("ADC", "Tiles")]
        for bits in ADC_BITS:
            adc = {"type": "ADC", "bits": bits, "full_scale": "worst-case"}
            for suffix, extra in (("", []), ("-tiles", [{"type": "Tiles", "rows": CHIP["tiles"][0],
                                                          "cols": CHIP["tiles"][1]}])):
                variant = copy.deepcopy(stage)
                variant.pop("pipeline", None)   # the order of the phases, recorded anew by the Stage
                variant["nonidealities"] = copy.deepcopy(kept) + [adc] + extra
                out[f"siox-high-adc{bits}{suffix}"] = variant
    return out


_PRESETS = _builtin()
_DERIVED = _derived()
_ALL = {**_PRESETS, **_DERIVED}


def list_presets(derived: bool = False) -> list[str]:
    """Names of the built-in presets; with ``derived``, also the drift and ADC variants of the
    new simulations (siox-high-chip-1s .. -1y, siox-high-adc3 .. 8 and their -tiles forms)."""
    return list(_ALL if derived else _PRESETS)


def _names_text():
    return (f"{', '.join(_PRESETS)} (or a variant: siox-high-chip-{{{','.join(s for s in DRIFT_TIMES if s != '1d')}}}, "
            f"siox-high-adc{{{ADC_BITS[0]}..{ADC_BITS[-1]}}}[-tiles])")


def preset_record(name: str) -> Preset:
    """The built-in :class:`Preset` called ``name`` (a :func:`list_presets` name or a variant)."""
    if name not in _ALL:
        raise ValueError(f"preset name must be one of {_names_text()}, got {name!r}")
    return _ALL[name]


def preset(name: str) -> dict:
    """The stage dict of built-in preset ``name`` (a fresh copy)."""
    return copy.deepcopy(preset_record(name).stage)


def preset_stage(name_or_path):
    """A memnp.crossbar.Stage from a built-in preset name or a preset file path."""
    if isinstance(name_or_path, str) and name_or_path in _ALL:
        return _ALL[name_or_path].to_stage()
    if isinstance(name_or_path, (str, os.PathLike)) and Path(name_or_path).is_file():
        return load_preset_record(name_or_path).to_stage()
    raise ValueError(f"name_or_path must be a preset name ({_names_text()}) or an existing "
                     f"preset file, got {name_or_path!r}")
