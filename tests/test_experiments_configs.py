"""Configs (validation, JSON round trip), job keys and seeds, presets, the registry's expansion."""
import json

import numpy as np
import pytest

from memnp.experiments import keys, presets, registry
from memnp.experiments.configs import DataSpec, Inference, Training, evaluation_epochs

HIGH_PF = registry.device_stage("siox-high")


def _training(**kw):
    fields = dict(data=DataSpec("mnist-10k", 256, 128, 200), stage=HIGH_PF, epochs=3,
                  test_stages=(HIGH_PF, registry.device_stage("d2d-high")))
    fields.update(kw)
    return Training(**fields)


def test_training_json_round_trip_and_derived_properties():
    t = _training(regularised=True)
    back = Training.from_json(t.to_json())
    assert back == t
    assert back.to_dict() == t.to_dict()
    assert t.weights == "double" and t.memristive_checkpoint
    ideal = _training(stage=registry.device_stage("ideal"))
    assert ideal.weights == "standard" and not ideal.memristive_checkpoint
    assert _training(standard_weights=True).weights == "standard"
    assert _training(data=DataSpec("cifar10")).augmentation == "translate-flip"
    assert t.augmentation == "none"
    assert [i.stage for i in t.test_inferences()] == list(t.test_stages)


def test_inference_json_round_trip():
    inf = Inference(stage=HIGH_PF, repeats=3, sampling="chip")
    assert Inference.from_json(inf.to_json()) == inf
    assert Inference.from_dict(json.loads(inf.to_json())).stage == HIGH_PF


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("epochs", 2.5, "epochs must be an integer"),
    ("learning_rate", -0.1, "learning_rate must be a finite number > 0"),
    ("l1", float("nan"), "l1 must be a finite number >= 0"),
    ("checkpoint", "best", "checkpoint must be one of auto, standard, memristive"),
    ("regularised", "yes", "regularised must be true or false"),
    ("test_sampling", "wafer", "test_sampling must be one of batch, chip"),
    ("stage", {"G_off": 2, "G_on": 1}, "G_off must be smaller than G_on"),
])
def test_training_rejects_bad_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        _training(**{field: value})


def test_config_dicts_reject_unknown_fields_and_bad_json():
    with pytest.raises(ValueError, match="unknown Training fields: epoch"):
        Training.from_dict(dict(_training().to_dict(), epoch=3))
    with pytest.raises(ValueError, match="not valid JSON"):
        Inference.from_json("{stage")
    with pytest.raises(ValueError, match="sampling must be one of batch, chip"):
        Inference(stage=HIGH_PF, sampling="device")
    with pytest.raises(ValueError, match="data name must be one of"):
        DataSpec("imagenet")
    with pytest.raises(ValueError, match="data train \\(examples\\) must be an integer >= 1"):
        DataSpec("mnist", train=0)


def test_evaluation_epochs_are_epoch_one_and_every_kth():
    assert evaluation_epochs(100, 20) == [1, 20, 40, 60, 80, 100]
    assert evaluation_epochs(3, 1) == [1, 2, 3]
    assert evaluation_epochs(5, 20) == [1]


def test_keys_and_seeds_are_stable_and_config_sensitive():
    content = {"kind": "train", "training": _training().to_dict(), "network": 0}
    same = {"kind": "train", "training": Training.from_json(_training().to_json()).to_dict(), "network": 0}
    assert keys.job_key(content, 7) == keys.job_key(same, 7)
    assert len(keys.job_key(content, 7)) == keys.KEY_LENGTH
    assert keys.job_key(content, 7) != keys.job_key(content, 8)
    changed = dict(content, training=_training(epochs=4).to_dict())
    assert keys.job_key(changed, 7) != keys.job_key(content, 7)
    record = keys.seed_record(content, 7)
    a = np.random.default_rng(keys.sequence_from_record(record)).random(4)
    b = np.random.default_rng(keys.seed_sequence(same, 7)).random(4)
    np.testing.assert_array_equal(a, b)
    c = np.random.default_rng(keys.seed_sequence(changed, 7)).random(4)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="seed must be an integer in"):
        keys.job_key(content, -1)


def test_scale_override_and_validation():
    tiny = presets.get("tiny")
    big = tiny.override(epochs=7, repeats=9, networks=2, sampling="chip")
    assert (big.epochs, big.inference_repeats, big.networks, big.sampling) == (7, 9, 2, "chip")
    assert big.test_repeats == tiny.test_repeats  # capped by --repeats, never raised
    assert tiny.override(repeats=1).validation_repeats == 1
    with pytest.raises(ValueError, match="preset must be one of tiny, default, paper"):
        presets.get("huge")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        tiny.override(epochs=0)
    paper = presets.get("paper")
    assert (paper.epochs, paper.networks, paper.inference_repeats, paper.validation_every,
            paper.validation_repeats, paper.test_every, paper.test_repeats) == (1000, 5, 25, 20, 20, 20, 20)
    assert paper.mnist_limits == (None, None, None)


def test_registry_counts_and_sharing():
    assert len(registry.PAPER_SIMULATIONS) == 9 and len(registry.SIMULATIONS) == 13
    assert len(registry.default_names()) == 12  # line_resistance: by name or with --preset paper
    mnist = [t for t in registry.TRAININGS.values()
             if t.family == "mnist" and not t.name.startswith("chip") and t.parent is None]
    assert len(mnist) == 17
    agnostic = registry.SIMULATIONS["nonideality_agnosticism"]
    assert len(agnostic.pairs) == 13 * 9
    scale = presets.get("tiny").override(networks=2)
    plan = registry.expand(list(registry.PAPER_SIMULATIONS), scale, 0, {"mnist": "mnist-10k", "cifar10": None})
    trains = [j for j in plan.jobs if j.kind == "train"]
    infers = [j for j in plan.jobs if j.kind == "infer"]
    assert len(trains) == 17 * 2  # shared networks trained once
    # 13 x 9 agnosticism pairs + the 4 standard-weight D2D networks on their own setups, per network
    assert len(infers) == (13 * 9 + 4) * 2
    assert len({j.key for j in plan.jobs}) == len(plan.jobs)
    assert all(j.kind == "train" for j in plan.jobs[:len(trains)])
    assert [s for s, _ in plan.skipped] == ["ideal", "iv_nonlinearity_cnn"]
    assert plan.simulations["iv_nonlinearity_cnn"]["pairs"] == []
    # The standard-weight avg-rule network is evaluated with the avg rule.
    job = next(j for j in infers if j.training == "d2d_more_std_avg")
    assert registry.inference_config(job).stage.mapping_rule == "avg"
    assert registry.training_config(plan.job(job.depends)).weights == "standard"


def test_training_keys_do_not_depend_on_only():
    scale = presets.get("tiny")
    sources = {"mnist": "mnist-10k", "cifar10": None}
    alone = registry.expand(["stuck_off"], scale, 3, sources)
    everything = registry.expand(registry.default_names(), scale, 3, sources)
    assert alone.trainings["ideal"]["networks"] == everything.trainings["ideal"]["networks"]
    assert {j.key for j in alone.jobs} <= {j.key for j in everything.jobs}
    # the ideal network's test-during-training covers every setup paired with it (not agnosticism's)
    assert alone.trainings["ideal"]["monitor"] == list(registry.AGNOSTIC_INFERENCES)
    assert alone.trainings["stuck_off"]["monitor"] == ["stuck_off"]
    with pytest.raises(ValueError, match="unknown simulation 'nope'"):
        registry.expand(["nope"], scale, 3, sources)
