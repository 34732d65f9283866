"""Reading figure inputs: device data from a data directory, and results from a results store.

Everything here returns plain arrays and dicts in the shapes the figure functions take; a missing
input raises :class:`Skip` with a reason a person can act on. The results store's layout is
described in docs/results-store.md (:mod:`memnp.experiments.store`): a ``manifest.json`` naming the
training setups (``trainings``: label, device, config, network job keys, monitored inference
setups), the inference setups, the simulations and every job, then one record JSON per job (and
one weights ``.npz`` per trained network). Errors are 100 (1 - accuracy), in per cent; powers
are in watts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class Skip(Exception):
    """A figure cannot be drawn; the message says why."""


# -- device data -------------------------------------------------------------------------------------
def siox_data(data_dir=None):
    """The measured SiOx curves and their PF fit, for :func:`memnp.plotting.devices.siox_iv_figure`.

    Returns {"V", "I": (n_kept, n_points) V and A, in the order of R; "R", "c", "d_eps": (n_kept,);
    "fits": {"low", "high": RegimeFit}}; Skip when the file is not in the data directory.
    """
    from ..data.devices.siox import SIOX_FILE_NAMES, fit_siox, load_siox_mat
    from ..data.paths import data_dir as resolve

    directory = resolve(data_dir)
    path = next((directory / n for n in SIOX_FILE_NAMES if (directory / n).is_file()), None)
    if path is None:
        raise Skip(f"the measured SiOx I-V data ({SIOX_FILE_NAMES[0]}) is not in {directory}")
    V, I = load_siox_mat(path)
    fit = fit_siox(V, I)
    n_points = 101  # 0 .. 0.5 V in 5 mV steps, the fitted range
    fits = {name: getattr(fit, name) for name in ("low", "high") if getattr(fit, name) is not None}
    return {"V": V[fit.kept, :n_points], "I": I[fit.kept, :n_points], "R": fit.R, "c": fit.c,
            "d_eps": fit.d_eps, "fits": fits}


#: Shape of the synthetic pulse array drawn when the Ta/HfO2 measurements are absent.
SYNTHETIC_TAHFO2_SHAPE = (2, 100, 32, 32)
#: Device-to-device spread of the synthetic devices' bounds. 0: every healthy device switches
#: between the same G_off and G_on (1 % read noise aside), so that the traces stay inside the range
#: that the extraction (medians of the per-device minima and maxima) reports and the figure draws;
#: with a spread, half the devices would lie outside it by construction.
SYNTHETIC_TAHFO2_SPREAD = 0.0


def tahfo2_data(data_dir=None, seed=0):
    """Ta/HfO2 pulses and their stuck-device extraction, measured if present, else synthetic.

    Returns {"G_reads", "G_off", "G_on", "stuck_values", "stuck_mask", "p", "bandwidth",
    "synthetic": bool, "note": str}.
    """
    from ..data.devices.synthetic import synthetic_tahfo2_reads
    from ..data.devices.tahfo2 import TAHFO2_FILE_NAME, extract_tahfo2, load_tahfo2
    from ..data.paths import data_dir as resolve

    path = resolve(data_dir) / TAHFO2_FILE_NAME
    note = None
    if path.is_file():
        try:
            G_reads, synthetic = load_tahfo2(path), False
        except ImportError as exc:
            note = f"synthetic ({exc})"
    else:
        note = f"synthetic (the Ta/HfO2 measurements, {TAHFO2_FILE_NAME}, are not in {path.parent})"
    if note is not None:
        G_reads = synthetic_tahfo2_reads(seed, shape=SYNTHETIC_TAHFO2_SHAPE,
                                         device_spread=SYNTHETIC_TAHFO2_SPREAD).G_reads
        synthetic = True
    fit = extract_tahfo2(G_reads)
    return {"G_reads": G_reads, "G_off": fit.G_off, "G_on": fit.G_on, "stuck_values": fit.stuck_values,
            "stuck_mask": fit.stuck_mask, "p": fit.p,
            "bandwidth": fit.bandwidth if np.isfinite(fit.bandwidth) else None,
            "synthetic": synthetic, "note": note or f"measured ({path})"}


# -- results store -----------------------------------------------------------------------------------
def _error(accuracy):
    return 100.0 * (1.0 - np.asarray(accuracy, dtype=float))


def _stack(arrays):
    """Stack per-network arrays, cutting them to the shortest along axis 0 (a run cut short)."""
    n = min(len(a) for a in arrays)
    return np.stack([np.asarray(a, dtype=float)[:n] for a in arrays])


class ResultsView:
    """Read-only access to a results directory's manifest and finished job records.

    The store is verified when the view opens (``verification``, see
    :mod:`memnp.experiments.verify`): records that fail it are never read, and every pair or
    training read that has fewer results than configured adds a line to ``notes`` (what the
    figure drawn from it must say)."""

    def __init__(self, results_dir):
        from ..experiments.store import ResultsStore
        from ..experiments.verify import verify

        self.store = ResultsStore(results_dir)
        try:
            self.manifest = self.store.read_manifest()
        except FileNotFoundError:
            raise Skip(f"no results: {self.store.manifest_path} (the manifest) does not exist") from None
        except (ValueError, json.JSONDecodeError) as exc:
            raise Skip(f"unreadable results manifest: {exc}") from None
        self.trainings = self.manifest.get("trainings", {})
        self.inferences = self.manifest.get("inferences", {})
        self.simulations = self.manifest.get("simulations", {})
        self.jobs = self.manifest.get("jobs", {})
        self._cache = {}
        self.verification = verify(self.store, self.manifest)
        self._bad = self.verification.bad_keys
        self.notes = []

    def _note_pair(self, training, inference):
        short = self.verification.shortfall(training, inference)
        if short is not None:
            self.notes.append(f"{training} → {inference}: n = {short.found} of {short.expected}")

    def _record(self, kind, key):
        if key in self._bad:
            return None
        if (kind, key) not in self._cache:
            try:
                self._cache[kind, key] = self.store.read_record(kind, key)
            except (OSError, ValueError):
                self._cache[kind, key] = None
        return self._cache[kind, key]

    def family(self, training):
        return self.trainings.get(training, {}).get("family")

    def train_records(self, training):
        """Records of the finished networks of ``training`` (in network order)."""
        keys = self.trainings.get(training, {}).get("networks", [])
        records = [r for r in (self._record("train", k) for k in keys) if r is not None]
        if len(records) < len(keys):
            self.notes.append(f"{training}: {len(records)} of {len(keys)} networks")
        return records

    def infer_records(self, training, inference):
        keys = [k for k, j in self.jobs.items()
                if j.get("kind") == "infer" and j.get("training") == training and j.get("inference") == inference]
        return [r for r in (self._record("infer", k) for k in sorted(keys)) if r is not None]

    def error_power(self, training, inference):
        """(error %, power W), each (n_networks * repeats,), or None when nothing finished."""
        self._note_pair(training, inference)
        records = self.infer_records(training, inference)
        if not records:
            return None
        error = np.concatenate([_error(r["accuracy"]) for r in records])
        power = np.concatenate([np.asarray([np.nan if p is None else p for p in r["power"]], dtype=float)
                                for r in records])
        return error, power

    def median_error(self, training, inference):
        result = self.error_power(training, inference)
        return np.nan if result is None else float(np.median(result[0]))

    def curve_panel(self, training, inference):
        """A training-curve panel (see :mod:`memnp.plotting.training`) of ``training`` with the
        test-during-training history of ``inference``; None when nothing finished."""
        records = self.train_records(training)
        if not records:
            return None
        history = [r["history"] for r in records]
        panel = {"epochs": np.asarray(history[0]["epoch"][:min(len(h["epoch"]) for h in history)]),
                 "training": _stack([_error(h["accuracy"]) for h in history])}
        panel["epochs"] = panel["epochs"][:panel["training"].shape[1]]
        validations = [r.get("validation") for r in records]
        if all(v and v.get("epoch") for v in validations):  # memristive validation: repeats
            panel["validation"] = _stack([_error(v["accuracy"]) for v in validations])
            panel["validation_epochs"] = np.asarray(validations[0]["epoch"][:panel["validation"].shape[1]])
        elif all(h.get("val_accuracy") for h in history):
            panel["validation"] = _stack([_error(h["val_accuracy"]) for h in history])
            panel["validation_epochs"] = panel["epochs"][:panel["validation"].shape[1]]
        monitor = self.trainings[training].get("monitor", [])
        if inference in monitor:
            index = monitor.index(inference)
            tests = [r["test"][index] for r in records if len(r.get("test", [])) > index]
            if tests and all(t.get("epoch") for t in tests):
                panel["test"] = _stack([_error(t["accuracy"]) for t in tests])
                panel["test_epochs"] = np.asarray(tests[0]["epoch"][:panel["test"].shape[1]])
        return panel

    def conductances(self, training, network=0):
        """(G_plus, G_minus) (S) of the first memristive layer of a trained network, mapped with its
        training stage's conductance range and mapping rule, and (G_off, G_on); None if absent."""
        from ..crossbar.mapping import (double_w_to_G, double_weights_matrix, standard_weights_matrix,
                                        w_to_G)
        from ..experiments.protocol import model_from_arrays
        from .conductances import pair_conductances

        keys = self.trainings.get(training, {}).get("networks", [])
        if len(keys) <= network or not self.store.is_done("train", keys[network]):
            if len(keys) > network:
                self.notes.append(f"{training}: network {network} missing or corrupt")
            return None
        model = model_from_arrays(self.store.read_weights(keys[network]))
        layer = model.memristive_layers[0]
        stage = model.stage
        p = {k: np.asarray(v, dtype=float) for k, v in layer.params.items()}
        shape = (layer.n_rows, layer.n_out)
        if layer.weights == "double":
            D = double_weights_matrix(p["w_pos"].reshape(shape), p["w_neg"].reshape(shape),
                                      p["b_pos"], p["b_neg"])
            G, _ = double_w_to_G(D, stage.G_off, stage.G_on)
        else:
            G, _ = w_to_G(standard_weights_matrix(p["W"].reshape(shape), p["b"]), stage.G_off,
                          stage.G_on, stage.mapping_rule)
        return (*pair_conductances(G), float(stage.G_off), float(stage.G_on))


def short_training_label(view, name):
    """A short label of a training setup for legends and heatmap columns (style.TRAINING_NAMES)."""
    from .style import TRAINING_NAMES
    return TRAINING_NAMES.get(name) or view.trainings.get(name, {}).get("label", name)


def short_inference_label(view, name):
    from .style import INFERENCE_NAMES
    return INFERENCE_NAMES.get(name) or view.inferences.get(name, {}).get("label", name)


def training_kind(name):
    """How the training setup ``name`` was trained (a key of style.NETWORKS), or None when it is
    not one of the registry's setups."""
    from ..experiments.registry import TRAININGS

    setup = TRAININGS.get(name)
    if setup is None:
        return None
    if setup.device == "ideal":
        return "standard"
    if setup.standard_weights:
        return "standard_w_avg" if setup.mapping_rule == "avg" else "standard_w_default"
    return "aware_regularised" if setup.regularised else "aware"


def training_role(name):
    """(name, colour) of a training setup by how it was trained (style.NETWORKS), for box-plot
    groups and panel titles; (name, None) for a setup the registry does not know."""
    from .style import NETWORKS

    kind = training_kind(name)
    return (name, None) if kind is None else NETWORKS[kind]
