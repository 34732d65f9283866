"""Evaluation passes: one network over a data set (:func:`evaluate`), the repeats of an inference
setup (:func:`repeats`), and many independent passes run as the members of ensemble passes
(:func:`evaluate_many`).

A pass is one network, one stage and one random source over (x, y) in batches. Independent
passes (the repeats of an inference setup, each with its own SeedSequence; the validation and
test passes of the networks of a training group) whose networks share an architecture and whose
stages hold the same phases run together, up to ``limit`` at a time, as one
:class:`memnp.nn.Ensemble` evaluation, each member with its own Generator: the same numbers as
the passes one by one (:func:`evaluate`). Chip sampling (a Generator rebuilt for every batch)
and power with line resistance (read per batch from the layers) run one by one.
"""
import copy
import dataclasses

import numpy as np


def evaluate(model, x, y, stage, rng, batch_size, sampling="batch", power=True):
    """One pass over (x, y): {"loss", "accuracy", "power"}.

    ``rng``: a Generator for ``batch`` sampling; for ``chip`` sampling a SeedSequence (or int) from
    which every batch's Generator is rebuilt, so each batch sees the same draws.
    """
    wires = power and has_wires(stage)
    if sampling == "batch" and not wires:
        out = model.evaluate(x, y, rng=rng, stage=stage, batch_size=batch_size, power=power)
        return {"loss": float(out["loss"]), "accuracy": float(out["accuracy"]),
                "power": None if out["power"] is None else float(out["power"])}
    if sampling not in ("batch", "chip"):
        raise ValueError(f"sampling must be 'batch' or 'chip'; got {sampling!r}")
    # Batch by batch: chip sampling rebuilds the Generator for every batch; with wires the wire
    # power of each batch is read from the layers (batch sampling: the same draws, batch after
    # batch from ``rng``, as one model.evaluate call).
    loss = hits = 0.0
    powers, wire_powers = [], []
    chip = sampling == "chip"
    read_rng = np.random.default_rng(read_seed(rng)) if chip else None
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model.evaluate(xb, yb, rng=np.random.default_rng(rng) if chip else rng, stage=stage,
                             batch_size=len(xb), power=power, draws="all" if chip else "active",
                             read_rng=read_rng)
        loss += out["loss"] * len(xb)
        hits += out["accuracy"] * len(xb)
        if power:
            powers.append(out["power"])
        if wires:
            wire_powers.append(sum(layer.power_parts()["wires"] for layer in model.memristive_layers))
    result = {"loss": loss / len(x), "accuracy": hits / len(x),
              "power": float(np.mean(powers)) if power else None}
    if wires:
        result["wire_power"] = float(np.mean(wire_powers))
    return result


def has_wires(stage):
    """True when ``stage`` has a LineResistance (the "wires" phase)."""
    return stage is not None and "wires" in stage.phases


def read_seed(seed):
    """The SeedSequence of a chip's read-noise stream: a child of ``seed`` (SeedSequence or int)
    that no other stream uses (spawn key extended by 2**32 - 1), so the chip's own draws are
    unchanged by it."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (2 ** 32 - 1,))


def repeat_source(sampling, seed_sequence):
    """What :func:`evaluate` needs for one repeat seeded by ``seed_sequence``."""
    return np.random.default_rng(seed_sequence) if sampling == "batch" else seed_sequence


def repeats(model, x, y, inference, seed_sequences, limit=1):
    """{"accuracy": [...], "loss": [...], "power": [...]} over one repeat per SeedSequence; with
    line resistance in the stage also "wire_power" [...] (W, the part of "power" the wires
    dissipate). limit: the largest number of repeats run as one ensemble pass (1: one by one;
    the numbers do not depend on it)."""
    tasks = [EvalTask(model, x, y, inference.stage, repeat_source(inference.sampling, seq), inference.batch_size,
                      inference.sampling) for seq in seed_sequences]
    return collect(evaluate_many(tasks, limit), has_wires(inference.stage))


def collect(results, wires=False):
    """{"accuracy", "loss", "power" (and "wire_power" when ``wires``): [one value per result]}."""
    names = ("accuracy", "loss", "power") + (("wire_power",) if wires else ())
    return {name: [result[name] for result in results] for name in names}


@dataclasses.dataclass
class EvalTask:
    """One pass for :func:`evaluate_many`: :func:`evaluate`'s arguments. x: (N, ...) float inputs
    (passes over the same array object may share an ensemble pass), y: (N,) labels, source: a
    Generator (batch sampling) or a SeedSequence (chip sampling)."""

    model: object
    x: np.ndarray
    y: np.ndarray
    stage: object
    source: object
    batch_size: int
    sampling: str = "batch"
    power: bool = True

    def groupable(self):
        """Whether this pass can be an ensemble member (batch sampling, no wire power)."""
        return self.sampling == "batch" and not (self.power and has_wires(self.stage))

    def signature(self):
        """What the members of one ensemble pass share: the inputs, batch size, power, the
        architecture and the stage's phases."""
        from .configs import canonical_json
        architecture = self.model.architecture()
        return (id(self.x), id(self.y), self.batch_size, self.power, stage_structure(self.stage),
                stage_structure(self.model.stage), _backend_name(self.model.backend),
                canonical_json({"layers": architecture["layers"], "dtype": architecture["dtype"],
                                "input_shape": architecture["input_shape"]}))


def evaluate_many(tasks, limit=1):
    """[{"loss", "accuracy", "power"} per task], in order: each task as :func:`evaluate` gives it
    alone, tasks that can share a pass run up to ``limit`` at a time as one ensemble pass (tasks
    on one Generator must not be in one call: give them in separate calls, in order)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit (the largest ensemble) must be an integer >= 1; got {limit!r}")
    results = [None] * len(tasks)
    groups = {}
    for i, task in enumerate(tasks):
        if limit > 1 and task.groupable():
            groups.setdefault(task.signature(), []).append(i)
        else:
            results[i] = evaluate(task.model, task.x, task.y, task.stage, task.source, task.batch_size,
                                  task.sampling, task.power)
    for indices in groups.values():
        for begin in range(0, len(indices), limit):
            chunk = indices[begin:begin + limit]
            if len(chunk) == 1:
                t = tasks[chunk[0]]
                results[chunk[0]] = evaluate(t.model, t.x, t.y, t.stage, t.source, t.batch_size, t.sampling, t.power)
                continue
            for i, result in zip(chunk, ensemble_evaluate([tasks[i] for i in chunk])):
                results[i] = result
    return results


def ensemble_evaluate(tasks):
    """The passes of ``tasks`` (one signature) as one :class:`memnp.nn.Ensemble` evaluation; a
    network that appears twice is copied, so every member is its own object."""
    from ..nn import Ensemble
    seen, models = set(), []
    for task in tasks:
        models.append(task.model if id(task.model) not in seen else copy.deepcopy(task.model))
        seen.add(id(task.model))
    first = tasks[0]
    out = Ensemble(models).evaluate([first.x] * len(tasks), [first.y] * len(tasks), rngs=[t.source for t in tasks],
                                    stages=[t.stage for t in tasks], batch_size=first.batch_size, power=first.power)
    return [{"loss": float(out["loss"][k]), "accuracy": float(out["accuracy"][k]),
             "power": None if out["power"] is None else float(out["power"][k])} for k in range(len(tasks))]


def stage_structure(stage):
    """A stage's phases (name and class) and mapping rule: what the members of one ensemble
    pass must share (their numbers may differ)."""
    if stage is None:
        return None
    return tuple((name, type(item).__name__) for name, item in stage.phases.items()), stage.mapping_rule


def _backend_name(backend):
    from ..kernels import get_backend
    return get_backend(backend).name
