"""The :class:`Preset` record (a stage dict with a name and its provenance), the checks of a stage
dict's shape, and preset files: JSON records written atomically (:func:`save_preset`), read back
(:func:`load_preset_record`, :func:`load_preset`), or made from a device fit
(:func:`preset_from_fit`). The built-in presets are in :mod:`memnp.data.presets`.

A *stage dict* is the JSON form of :class:`memnp.crossbar.Stage`::

    {"G_off": S, "G_on": S, "k_V": V, "mapping_rule": "default" | "avg",
     "nonidealities": [{"type": "IVNonlinearityPF", ...}, {"type": "StuckAtGOn", ...}, ...]}

A preset file is ``{"format": "memnp-preset", "version": 1, "name", "description", "source",
"synthetic", "stage"}``.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..crossbar.nonidealities.base import schema as nonideality_keys
from ._atomic import atomic_write_text

FORMAT = "memnp-preset"
VERSION = 1
#: The voltage scale k_V (V) of every built-in preset and of presets made from fits.
K_V = 0.5


def _check_number(where, key, value, positive=False, unit_interval=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}: {key} must be > 0, got {value}")
    if unit_interval and not 0 <= value <= 1:
        raise ValueError(f"{where}: {key} must be in [0, 1], got {value}")


def validate_stage_dict(stage: dict) -> None:
    """Check the shape of a stage dict (types, keys, ranges); ValueError naming the problem.

    memnp.crossbar.Stage.from_dict does the full validation; this catches malformed files early.
    """
    if not isinstance(stage, dict):
        raise ValueError(f"stage must be a dict, got {type(stage).__name__}")
    for key in ("G_off", "G_on", "k_V"):
        if key not in stage:
            raise ValueError(f"stage: missing key {key!r}")
        _check_number("stage", key, stage[key], positive=True)
    if not stage["G_off"] < stage["G_on"]:
        raise ValueError(f"stage: need G_off < G_on, got {stage['G_off']} and {stage['G_on']}")
    if stage.get("mapping_rule", "default") not in ("default", "avg"):
        raise ValueError(f"stage: mapping_rule must be 'default' or 'avg', got {stage.get('mapping_rule')!r}")
    nonidealities = stage.get("nonidealities", [])
    if not isinstance(nonidealities, list):
        raise ValueError("stage: nonidealities must be a list of dicts")
    keys = nonideality_keys()    # type -> required keys, from the registered classes
    for i, item in enumerate(nonidealities):
        where = f"stage nonideality {i}"
        if not isinstance(item, dict) or item.get("type") not in keys:
            raise ValueError(f"{where}: type must be one of {', '.join(keys)}, "
                             f"got {item.get('type') if isinstance(item, dict) else item!r}")
        for key in keys[item["type"]]:
            if key not in item:
                raise ValueError(f"{where} ({item['type']}): missing key {key!r}")
        if "p" in item:
            _check_number(where, "p", item["p"], unit_interval=True)
        if item["type"] == "StuckDistribution":
            means = item["means"]
            if not isinstance(means, list) or len(means) < 2:
                raise ValueError(f"{where}: means must be a list of at least 2 conductances")
            for m in means:
                _check_number(where, "means[...]", m)
                if m < 0:
                    raise ValueError(f"{where}: means must be >= 0, got {m}")


@dataclass(frozen=True)
class Preset:
    """A named stage dict with provenance.

    Attributes:
        name: short identifier. stage: the stage dict. description: one line.
        source: where the numbers come from. synthetic: True when any value is not measured.
    """
    name: str
    stage: dict
    description: str = ""
    source: str = ""
    synthetic: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        validate_stage_dict(self.stage)
        object.__setattr__(self, "stage", copy.deepcopy(self.stage))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "description": self.description,
                "source": self.source, "synthetic": bool(self.synthetic), "stage": copy.deepcopy(self.stage)}

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a memnp preset record (format must be {FORMAT!r})")
        if d.get("version") != VERSION:
            raise ValueError(f"preset version must be {VERSION}, got {d.get('version')!r}")
        return cls(name=d.get("name"), stage=d.get("stage"), description=d.get("description", ""),
                   source=d.get("source", ""), synthetic=bool(d.get("synthetic", False)))

    def to_stage(self):
        """A memnp.crossbar.Stage built from the stage dict."""
        from ..crossbar import Stage
        return Stage.from_dict(copy.deepcopy(self.stage))


def preset_from_fit(fit, regime: str | None = None, *, name: str | None = None, k_V: float = K_V,
                    description: str = "", source: str = "fitted by memnp") -> Preset:
    """A :class:`Preset` from a SiOxFit (``regime`` "low" or "high") or a TaHfO2Fit."""
    from .devices.siox import SiOxFit
    from .devices.tahfo2 import TaHfO2Fit
    if isinstance(fit, SiOxFit):
        if regime not in ("low", "high"):
            raise ValueError(f"regime must be 'low' or 'high' for a SiOx fit, got {regime!r}")
        stage = fit.stage_dict(regime, k_V)
        default = f"siox-{regime}-fitted"
    elif isinstance(fit, TaHfO2Fit):
        stage = fit.stage_dict(k_V)
        default = "tahfo2-fitted"
    else:
        raise ValueError(f"fit must be a SiOxFit or TaHfO2Fit, got {type(fit).__name__}")
    return Preset(name or default, stage, description, source,
                  synthetic=bool(getattr(fit, "synthetic", False)))


def save_preset(obj, path: str | os.PathLike, *, name: str | None = None, description: str = "",
                source: str = "user", synthetic: bool = False) -> Path:
    """Write a :class:`Preset` or a stage dict (wrapped with the given metadata) as JSON, atomically."""
    if isinstance(obj, Preset):
        record = obj
    elif isinstance(obj, dict):
        record = Preset(name or Path(path).stem, obj, description, source, synthetic)
    else:
        raise ValueError(f"obj must be a Preset or a stage dict, got {type(obj).__name__}")
    path = Path(path)
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2) + "\n")
    return path


def load_preset_record(path: str | os.PathLike) -> Preset:
    """Read a preset file written by :func:`save_preset`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    try:
        return Preset.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_preset(path: str | os.PathLike) -> dict:
    """The stage dict stored in a preset file."""
    return copy.deepcopy(load_preset_record(path).stage)
