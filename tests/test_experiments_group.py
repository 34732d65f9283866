"""Training groups: protocol.train_group trains K networks in one pass and gives each network
exactly the record and weights protocol.train gives it alone (timings excepted), on the tiny
preset's setups; resumes each member from its own checkpoint; refuses networks that cannot step
together; and the evaluation passes give the same numbers as ensemble members as one by one."""
import json

import numpy as np
import pytest

from memnp.experiments import datasource, passes, presets, protocol, registry, runner
from memnp.experiments.checkpoint import TrainingCheckpoint
from memnp.experiments.configs import DataSpec, Inference, Training
from memnp.experiments.keys import sequence_from_record

TINY = presets.get("tiny").override(epochs=3)


class Stop(Exception):
    """Raised from on_epoch: the pass stops as a kill would (after the epoch's checkpoints)."""


@pytest.fixture(scope="module")
def plan():
    sources = {"mnist": "mnist-10k", "cifar10": None}
    return registry.expand(registry.default_names(), TINY, 5, sources)


@pytest.fixture(scope="module")
def data(plan):
    first = next(iter(plan.trainings.values()))["config"]["data"]
    return datasource.load(DataSpec.from_dict(first))


def _jobs(plan, names):
    jobs = [j for j in plan.jobs if j.kind == "train" and j.training in names]
    assert [j.training for j in jobs] == [n for n in plan.trainings if n in names]
    return jobs


def _config(job):
    return Training.from_dict(job.content["training"])


def _seq(job):
    return sequence_from_record(job.seed)


def _plain(record):
    """The record without its timings, as JSON (NaN compared as a token)."""
    record = json.loads(json.dumps(record))
    for key in ("seconds", "resumed_from_epoch"):
        record.pop(key)
    record["history"].pop("seconds")
    return record


def _assert_same(alone, grouped):
    (ra, wa), (rg, wg) = alone, grouped
    assert _plain(ra) == _plain(rg)
    assert set(wa) == set(wg)
    for name in wa:
        assert wa[name].dtype == wg[name].dtype and np.array_equal(wa[name], wg[name]), name


# the tiny preset's setups, grouped as the runner groups them: PF (low-R and high-R, L1 or not),
# D2D with double weights, D2D with standard weights (avg rule), the worked-example chip
GROUPS = [("low_pf", "low_pf_reg", "high_pf", "high_pf_reg"),
          ("d2d_high", "d2d_more_reg", "d2d_less"),
          ("d2d_more_std_avg", "d2d_less_std_avg"),
          ("chip", "chip_1s")]


@pytest.mark.parametrize("names", GROUPS, ids=lambda n: "+".join(n))
def test_each_member_of_a_group_equals_its_network_trained_alone(plan, data, names):
    jobs = _jobs(plan, names)
    alone = [protocol.train(_config(j), data, _seq(j)) for j in jobs]
    grouped = protocol.train_group([_config(j) for j in jobs], data, [_seq(j) for j in jobs])
    assert len(grouped) == len(jobs)
    for a, g in zip(alone, grouped):
        _assert_same(a, g)
    # a record says what was kept, and the histories are full
    assert all(len(r["history"]["epoch"]) == TINY.epochs for r, _ in grouped)


def test_members_of_other_epochs_leave_the_pass_and_limit_changes_no_number(plan, data):
    jobs = _jobs(plan, GROUPS[0][:3])
    configs = [_config(j).replace(epochs=e) for j, e in zip(jobs, (3, 1, 2))]
    alone = [protocol.train(c, data, _seq(j)) for c, j in zip(configs, jobs)]
    grouped = protocol.train_group(configs, data, [_seq(j) for j in jobs], limit=1)
    for a, g in zip(alone, grouped):
        _assert_same(a, g)
    assert [len(r["history"]["epoch"]) for r, _ in grouped] == [3, 1, 2]


def test_a_stopped_group_resumes_every_member_from_its_checkpoint(plan, data, tmp_path):
    jobs = _jobs(plan, GROUPS[0][:3])
    configs = [_config(j).replace(epochs=4) for j in jobs]
    reference = protocol.train_group(configs, data, [_seq(j) for j in jobs])
    checkpoints = [TrainingCheckpoint(tmp_path, j.key, 0) for j in jobs]

    def stop_after_2(epoch, epochs):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        protocol.train_group(configs, data, [_seq(j) for j in jobs], on_epoch=stop_after_2, checkpoints=checkpoints)
    assert [c.load().epoch for c in checkpoints] == [2, 2, 2]
    # one member's checkpoint is older (a kill between two members' saves): it joins at epoch 2
    TrainingCheckpoint(tmp_path, jobs[1].key, 0).remove()
    with pytest.raises(Stop):
        protocol.train(configs[1], data, _seq(jobs[1]), on_epoch=lambda e, n: _raise(e == 1),
                       checkpoint=checkpoints[1])
    assert [c.load().epoch for c in checkpoints] == [2, 1, 2]
    resumed = protocol.train_group(configs, data, [_seq(j) for j in jobs], checkpoints=checkpoints)
    assert [r["resumed_from_epoch"] for r, _ in resumed] == [2, 1, 2]
    for a, g in zip(reference, resumed):
        _assert_same(a, g)


def _raise(condition):
    if condition:
        raise Stop


def test_networks_that_cannot_step_together_are_refused(plan, data):
    ideal, pf = _jobs(plan, ("ideal", "high_pf"))
    with pytest.raises(ValueError, match=r"trainings\[1\] .* architecture"):
        protocol.train_group([_config(pf), _config(ideal)], data, [_seq(pf), _seq(ideal)])
    stuck, tahfo2, avg, default = _jobs(plan, ("stuck_off", "tahfo2", "d2d_more_std_avg", "d2d_more_std_default"))
    for one, other in ((pf, stuck), (stuck, tahfo2), (avg, default)):  # phases, classes, mapping rule
        with pytest.raises(ValueError, match=r"trainings\[1\] .* training stage phases"):
            protocol.train_group([_config(one), _config(other)], data, [_seq(one), _seq(other)])
    with pytest.raises(ValueError, match=r"trainings\[1\] .* batch size"):
        protocol.train_group([_config(pf), _config(pf).replace(batch_size=32)], data, [_seq(pf), _seq(stuck)])
    with pytest.raises(ValueError, match="at least one"):
        protocol.train_group([], data, [])
    with pytest.raises(ValueError, match="seed_sequences must hold one entry per training"):
        protocol.train_group([_config(pf)], data, [])
    with pytest.raises(ValueError, match="limit"):
        protocol.train_group([_config(pf)], data, [_seq(pf)], limit=0)


def test_inference_repeats_as_ensemble_members_equal_the_repeats_one_by_one(plan, data):
    pf = _jobs(plan, ("high_pf",))[0]
    _, weights = protocol.train(_config(pf).replace(epochs=1), data, _seq(pf))
    test = data["test"]
    for name in ("high_pf", "high_pf_stuck_on", "chip"):
        inference = registry.INFERENCES[name]
        config = Inference(stage=registry.device_stage(inference.device), repeats=5)
        one = protocol.infer(weights, config, test, np.random.SeedSequence(7))
        many = protocol.infer(weights, config, test, np.random.SeedSequence(7), limit=3)
        for key in ("accuracy", "loss", "power"):
            assert one[key] == many[key], (name, key)
        assert len(set(one["loss"])) > 1   # the repeats differ


def test_evaluate_many_validates_its_limit():
    with pytest.raises(ValueError, match="limit"):
        passes.evaluate_many([], 0)
