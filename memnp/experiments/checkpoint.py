"""In-job checkpoints: the full state of a running training job, so a killed job resumes mid-way.

A checkpoint is two files in one directory, named by the job's key:

- ``<key>.a.npz`` or ``<key>.b.npz`` (written first, atomically; read with ``allow_pickle=False``;
  a save writes the slot the current JSON does not name, so the arrays the JSON names are never
  overwritten, whenever the run is killed): the model's
  parameters under ``params/layer{i}.{name}``, the optimiser's momentum velocities under
  ``velocity/<optimiser key>`` (none for plain SGD) and the best-so-far weights under
  ``best/<name>`` (the layout of :func:`memnp.experiments.protocol.model_arrays`; absent while
  no epoch has been kept). Arrays keep their dtype and shape exactly.
- ``<key>.json`` (written second, atomically): the job key, the slot and SHA-256 of the ``.npz``, the
  number of epochs completed, the history / validation / test records so far, the best
  (epoch, value), the seconds spent so far and the exact state of every random stream
  (``Generator.bit_generator.state``: a dict of ints and strings), and the numerics version and
  kernel backend that computed it (:mod:`memnp.numerics`).

The JSON is written after the ``.npz`` and names its SHA-256, so a pair from a run killed between
the two writes is never used. :meth:`TrainingCheckpoint.load` treats anything missing, unreadable,
inconsistent, belonging to another key or written under another numerics version or backend
(or by a memnp that recorded neither) as no checkpoint at all (the job then starts at epoch 1);
it never raises. NaN and infinite floats are written as JSON's ``NaN`` / ``Infinity`` tokens (which
Python's json module reads back), so a resumed history is bit-for-bit the uninterrupted one.
"""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .. import numerics
from .files import file_sha256, read_npz, write_npz, write_text

FORMAT = "memnp-checkpoint/1"
_GROUPS = ("params", "velocity", "best")
_SLOTS = ("a", "b")


@dataclasses.dataclass
class TrainingState:
    """Everything a training job needs to continue after ``epoch`` completed epochs.

    params: {"layer{i}.{name}": array}, the model's parameters (shapes as in the layers, e.g.
    (n_in, n_out) and (n_out,), unitless weights). velocity: {optimiser key: array}, SGD's momentum
    velocities (same shapes as the parameters they belong to; empty without momentum).
    best_weights: the best-so-far weights in the layout of ``protocol.model_arrays`` (numeric
    arrays plus the one-element ``architecture`` and ``stage`` string arrays), or None.
    history, validation, test: the record's dicts / list so far (see docs/results-store.md).
    best_epoch, best_value: the kept epoch (None: none yet) and its validation accuracy.
    seconds: wall-clock seconds spent on the job so far (s). rng: {stream name: bit generator state}.
    """

    epoch: int
    params: dict
    velocity: dict
    best_weights: dict
    history: dict
    validation: dict
    test: list
    best_epoch: int
    best_value: float
    seconds: float
    rng: dict


class TrainingCheckpoint:
    """Saves and loads one training job's :class:`TrainingState` under ``directory``.

    directory: where ``<key>.npz`` and ``<key>.json`` live. key: the job's key (a string of
    letters, digits, ``-`` and ``_``). every_seconds: the least time (s) between two saves during
    training (0: after every epoch); :func:`memnp.experiments.protocol.train` reads it.
    The object holds only these three values, so it pickles to a worker process.
    """

    def __init__(self, directory, key, every_seconds=60.0):
        key = str(key)
        if not key or not all(c.isalnum() or c in "-_" for c in key):
            raise ValueError(f"key must be a non-empty string of letters, digits, '-' and '_'; got {key!r}")
        try:
            every = float(every_seconds)
        except (TypeError, ValueError):
            every = math.nan
        if isinstance(every_seconds, bool) or not math.isfinite(every) or every < 0:
            raise ValueError(f"every_seconds must be a finite number >= 0; got {every_seconds!r}")
        self.directory = Path(directory)
        self.key = key
        self.every_seconds = every

    def __repr__(self):
        return f"TrainingCheckpoint({str(self.directory)!r}, {self.key!r}, every_seconds={self.every_seconds})"

    def _slot_path(self, slot):
        return self.directory / f"{self.key}.{slot}.npz"

    def _named_slot(self):
        """The npz slot the current JSON names ("a" when there is no readable JSON)."""
        try:
            slot = json.loads(self.json_path.read_text(encoding="utf-8")).get("npz_slot")
        except (OSError, ValueError, AttributeError):
            return _SLOTS[0]
        return slot if slot in _SLOTS else _SLOTS[0]

    @property
    def npz_path(self):
        """The arrays file the current JSON names."""
        return self._slot_path(self._named_slot())

    @property
    def json_path(self):
        return self.directory / f"{self.key}.json"

    def save(self, state):
        """Write ``state`` (a :class:`TrainingState`): the arrays first, then the JSON naming them."""
        arrays = {}
        for group, values in zip(_GROUPS, (state.params, state.velocity, state.best_weights or {})):
            for name, array in values.items():
                arrays[f"{group}/{name}"] = array
        named = self._named_slot() if self.json_path.is_file() else None
        slot = _SLOTS[1] if named == _SLOTS[0] else _SLOTS[0]     # never the slot the JSON names
        sha = write_npz(self._slot_path(slot), arrays)
        info = {"format": FORMAT, "key": self.key, "npz_slot": slot, "npz_sha256": sha, "epoch": int(state.epoch),
                "has_best_weights": state.best_weights is not None,
                "history": state.history, "validation": state.validation, "test": state.test,
                "best": {"epoch": state.best_epoch, "value": state.best_value},
                "seconds": float(state.seconds), "rng": state.rng, **numerics.current().to_dict()}
        write_text(self.json_path, json.dumps(info, indent=1, default=_plain) + "\n")

    def load(self):
        """The saved :class:`TrainingState`, or None when there is none usable (never raises for a
        missing, unreadable, half-written or foreign checkpoint)."""
        try:
            return self._load()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _load(self):
        if not self.json_path.is_file():
            return None
        info = json.loads(self.json_path.read_text(encoding="utf-8"))
        if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("key") != self.key \
                or info.get("npz_slot") not in _SLOTS:
            return None
        npz_path = self._slot_path(info["npz_slot"])
        if numerics.NumericsStamp.of(info) != numerics.current():
            return None   # another numerics version or backend: never resumed
        if not npz_path.is_file() or file_sha256(npz_path) != info["npz_sha256"]:
            return None
        groups = {group: {} for group in _GROUPS}
        for name, array in read_npz(npz_path).items():
            group, _, rest = name.partition("/")
            if group not in groups or not rest:
                return None
            groups[group][rest] = array
        epoch = info["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            return None
        best = info["best"]
        return TrainingState(epoch=epoch, params=groups["params"], velocity=groups["velocity"],
                             best_weights=groups["best"] if info["has_best_weights"] else None,
                             history=info["history"], validation=info["validation"], test=info["test"],
                             best_epoch=best["epoch"], best_value=best["value"],
                             seconds=float(info["seconds"]), rng=info["rng"])

    def stamp(self):
        """The :class:`~memnp.numerics.NumericsStamp` of this job's checkpoint on disk, or None when
        there is no readable checkpoint JSON of this key (an unversioned one has version None)."""
        try:
            info = json.loads(self.json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("key") != self.key:
            return None
        return numerics.NumericsStamp.of(info)

    def remove(self):
        """Delete the files (the JSON first, so a half-removed checkpoint is never used)."""
        for path in (self.json_path,) + tuple(self._slot_path(slot) for slot in _SLOTS):
            path.unlink(missing_ok=True)


def _plain(value):
    """JSON for NumPy scalars (json calls this for objects it does not know)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a checkpoint's JSON")
