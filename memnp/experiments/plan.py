"""The expansion of the registry's simulations (:mod:`memnp.experiments.registry`) into jobs.

Expanding the selected simulations at a given scale gives a :class:`Plan`:

- one training :class:`Job` per (training setup, network index), and
- one inference :class:`Job` per (training job, inference setup),

each keyed by a hash of its config and the run seed (:mod:`memnp.experiments.keys`). Simulations
that share a training setup share its jobs. A training job's config holds its test-during-training
stages (:func:`memnp.experiments.registry.monitor_inferences`), which do not depend on ``--only``.
A fine-tuning setup (one with a ``parent``) gives one training job per parent network, keyed by
the parent job's key and depending on it. Device files (``devices``, {preset name: Stage}) replace
built-in presets in every setup, and the variants derived from them (:func:`check_devices`).
"""
import dataclasses

from ..crossbar import Stage
from . import line_resistance
from .configs import DataSpec, Inference, Training
from .keys import job_key, seed_record
from .registry import (INFERENCES, SIMULATIONS, TRAININGS, check_names, device_stage, monitor_inferences,
                       pairs_at, used_devices)


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work: kind "train" (one network) or "infer" (one network, one setup)."""

    kind: str
    key: str
    content: dict      # hashed: the config (and the training job's key for inference)
    seed: dict         # seed_record(content, run seed)
    training: str      # training setup name
    network: int
    inference: str = None
    depends: str = None  # key of the training job an inference (or fine-tuning) job needs

    def describe(self):
        what = f"{self.training}#{self.network}"
        return what if self.kind == "train" else f"{what} -> {self.inference}"


@dataclasses.dataclass
class Plan:
    """The expansion of some simulations: jobs (trainings first) and how they map to setups."""

    trainings: dict      # name -> {"label", "config", "networks": [keys]}
    inferences: dict     # name -> {"label", "config"}
    simulations: dict    # name -> {"description", "pairs": [[t, i], ...], "skipped": reason or None}
    jobs: list
    skipped: list        # [(simulation, reason)]

    def job(self, key):
        return next(j for j in self.jobs if j.key == key)


def check_devices(names, devices):
    """``devices`` ({preset name: Stage} or None) validated against the simulations ``names``, with
    the built-in variants derived from a replaced preset rebuilt from the replacement (the drift
    reads of an edited ``siox-high-chip``, the ADC reads of an edited ``siox-high``; see
    :func:`memnp.data.presets.derived_variants`) unless ``devices`` gives a variant itself."""
    if not devices:
        return {}
    used = used_devices(names)
    for name, stage in devices.items():
        if not isinstance(stage, Stage):
            raise ValueError(f"devices must map preset names to Stage objects; got {stage!r} for {name!r}")
        if name == "ideal" or name not in used:
            raise ValueError(f"a device file replaces a preset the selected simulations use "
                             f"({', '.join(d for d in used if d != 'ideal')}); got one named {name!r}")
    from ..data.presets import derived_variants
    out = dict(devices)
    for name, stage in devices.items():
        for variant, stage_dict in derived_variants(name, stage.to_dict()).items():
            if variant not in devices and variant in used:
                try:
                    out[variant] = Stage.from_dict(stage_dict)
                except ValueError as exc:
                    raise ValueError(f"the {variant} read derived from device file {name!r}: {exc}") from None
    return out


def inference_setup_config(setup, scale, devices=None):
    """The Inference config of an inference setup at ``scale`` (``devices``: see :func:`device_stage`)."""
    if setup.wires is not None:
        return line_resistance.inference(setup, scale, devices)
    return scale.inference(device_stage(setup.device, setup.mapping_rule, devices))


def expand(names, scale, seed, sources, devices=None):
    """Jobs for the simulations ``names`` at a :class:`~memnp.experiments.presets.Scale`.

    sources: {family: resolved data name, or None when unavailable}. Pairs whose family is
    unavailable are skipped (listed in ``Plan.skipped``). devices: optional {preset name: Stage}
    replacing those built-in presets in every setup (their jobs get new keys, so nothing computed
    with the built-in preset is reused).
    """
    names = check_names(names)
    devices = check_devices(names, devices)
    trainings, inferences, simulations, jobs, skipped = {}, {}, {}, {}, []
    for name in names:
        sim = SIMULATIONS[name]
        kept, missing = [], set()
        for t_name, i_name in pairs_at(sim, scale):
            setup = TRAININGS[t_name]
            if sources.get(setup.family) is None:
                missing.add(setup.family)
                continue
            kept.append([t_name, i_name])
            if t_name not in trainings and setup.parent is not None:
                trainings[t_name] = _expand_finetune(setup, scale, seed, sources, jobs, trainings, devices)
            if t_name not in trainings:
                trainings[t_name] = _expand_training(setup, scale, seed, sources, jobs, devices)
            inf_setup = INFERENCES[i_name]
            if i_name not in inferences:
                inferences[i_name] = {"label": inf_setup.label, "device": inf_setup.device,
                                      "config": inference_setup_config(inf_setup, scale, devices).to_dict()}
                if inf_setup.wires is not None:
                    inferences[i_name]["wires_ohm"] = inf_setup.wires
            inference = Inference.from_dict(inferences[i_name]["config"])
            for network, train_key in enumerate(trainings[t_name]["networks"]):
                content = {"kind": "infer", "train": train_key, "inference": inference.to_dict()}
                key = job_key(content, seed)
                jobs.setdefault(key, Job("infer", key, content, seed_record(content, seed), t_name,
                                         network, i_name, train_key))
        reason = None
        if missing:
            reason = f"{', '.join(sorted(missing))} not available"
            skipped.append((name, reason + (" (all pairs)" if not kept else " (its pairs skipped)")))
        simulations[name] = {"description": sim.description, "pairs": kept, "skipped": reason}
    ordered = [j for j in jobs.values() if j.kind == "train"] + [j for j in jobs.values() if j.kind == "infer"]
    return Plan(trainings, inferences, simulations, ordered, skipped)


def _expand_finetune(setup, scale, seed, sources, jobs, trainings, devices=None):
    """The trainings entry of a fine-tuning setup: one job per parent network, keyed by (and
    depending on) the parent's job key; the parent setup is expanded first when it is not yet."""
    if setup.parent not in trainings:
        trainings[setup.parent] = _expand_training(TRAININGS[setup.parent], scale, seed, sources, jobs, devices)
    parent = trainings[setup.parent]
    training = line_resistance.finetune(setup, Training.from_dict(parent["config"]), scale, devices)
    keys = []
    for network, parent_key in enumerate(parent["networks"]):
        content = {"kind": "train", "training": training.to_dict(), "network": network, "parent": parent_key}
        key = job_key(content, seed)
        jobs.setdefault(key, Job("train", key, content, seed_record(content, seed), setup.name, network,
                                 depends=parent_key))
        keys.append(key)
    return {"label": setup.label, "family": setup.family, "device": setup.device, "config": training.to_dict(),
            "networks": keys, "monitor": [], "parent": setup.parent, "wires_ohm": setup.wires}


def _expand_training(setup, scale, seed, sources, jobs, devices=None):
    stage = device_stage(setup.device, setup.mapping_rule, devices)
    monitor = monitor_inferences(setup.name)
    test_stages = tuple(device_stage(INFERENCES[i].device, INFERENCES[i].mapping_rule, devices) for i in monitor)
    training = scale.training(DataSpec(name=sources[setup.family], **scale.limits(setup.family)), stage,
                              regularised=setup.regularised, standard_weights=setup.standard_weights,
                              test_stages=test_stages)
    keys = []
    for network in range(scale.networks):
        content = {"kind": "train", "training": training.to_dict(), "network": network}
        key = job_key(content, seed)
        jobs.setdefault(key, Job("train", key, content, seed_record(content, seed), setup.name, network))
        keys.append(key)
    return {"label": setup.label, "family": setup.family, "device": setup.device,
            "config": training.to_dict(), "networks": keys,
            "monitor": monitor}


def training_config(job):
    return Training.from_dict(job.content["training"])


def inference_config(job):
    return Inference.from_dict(job.content["inference"])
