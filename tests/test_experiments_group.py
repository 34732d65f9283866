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


def test_a_member_resumed_past_the_others_last_epoch_waits_for_its_next_epoch(plan, data, tmp_path):
    jobs = _jobs(plan, GROUPS[0][:2])
    configs = [_config(jobs[0]).replace(epochs=1), _config(jobs[1]).replace(epochs=4)]
    reference = [protocol.train(c, data, _seq(j)) for c, j in zip(configs, jobs)]
    checkpoint = TrainingCheckpoint(tmp_path, jobs[1].key, 0)
    with pytest.raises(Stop):
        protocol.train(configs[1], data, _seq(jobs[1]), on_epoch=lambda e, n: _raise(e == 3), checkpoint=checkpoint)
    seen = []
    resumed = protocol.train_group(configs, data, [_seq(j) for j in jobs], checkpoints=[None, checkpoint],
                                   on_epoch=lambda e, n: seen.append(e))
    assert seen == [1, 4] and resumed[1][0]["resumed_from_epoch"] == 3
    for a, g in zip(reference, resumed):
        _assert_same(a, g)


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


def test_a_member_checkpoint_of_another_numerics_version_is_not_resumed(plan, data, tmp_path):
    from memnp.numerics import NUMERICS_VERSION
    jobs = _jobs(plan, GROUPS[0][:2])
    configs = [_config(j).replace(epochs=3) for j in jobs]
    reference = protocol.train_group(configs, data, [_seq(j) for j in jobs])
    checkpoints = [TrainingCheckpoint(tmp_path, j.key, 0) for j in jobs]
    with pytest.raises(Stop):
        protocol.train_group(configs, data, [_seq(j) for j in jobs], checkpoints=checkpoints,
                             on_epoch=lambda e, n: _raise(e == 2))
    info = json.loads(checkpoints[1].json_path.read_text())
    checkpoints[1].json_path.write_text(json.dumps(dict(info, numerics_version=NUMERICS_VERSION + 1)))
    resumed = protocol.train_group(configs, data, [_seq(j) for j in jobs], checkpoints=checkpoints)
    assert [r["resumed_from_epoch"] for r, _ in resumed] == [2, None]   # the other version's: from epoch 1
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


# -- the runner ------------------------------------------------------------------------------------
from memnp.experiments import grouping  # noqa: E402
from memnp.experiments.store import ResultsStore  # noqa: E402
from test_experiments_run import _numbers  # noqa: E402

RUN_TINY = presets.get("tiny")


@pytest.fixture(scope="module")
def ungrouped(tmp_path_factory):
    """The tiny preset's default simulations, one network per pass."""
    out = tmp_path_factory.mktemp("ungrouped")
    result = runner.reproduce(registry.default_names(), RUN_TINY, 0, out, group=1, checkpoint_every=0)
    assert all(len(g) == 1 for g in result.groups)
    return out, result


def _names(result, groups):
    return [sorted(result.plan.job(k).training for k in g) for g in groups]


def test_a_grouped_run_writes_the_same_files_as_an_ungrouped_one(ungrouped, tmp_path):
    reference, single = ungrouped
    result = runner.reproduce(registry.default_names(), RUN_TINY, 0, tmp_path, group="auto")
    assert sorted(result.computed) == sorted(single.computed)
    assert _numbers(tmp_path) == _numbers(reference)
    formed = sorted(_names(result, [g for g in result.groups if len(g) > 1]))
    assert formed == [["chip", "chip_1s"], ["d2d_high", "d2d_less", "d2d_less_reg", "d2d_more", "d2d_more_reg"],
                      ["d2d_less_std_avg", "d2d_more_std_avg"], ["d2d_less_std_default", "d2d_more_std_default"],
                      ["high_pf", "high_pf_reg", "low_pf", "low_pf_reg"]]
    # every training job in exactly one group
    trained = [j.key for j in result.plan.jobs if j.kind == "train"]
    assert sorted(k for g in result.groups for k in g) == sorted(trained)


def test_group_size_caps_the_groups_and_a_pool_runs_groups_as_units(ungrouped, tmp_path):
    reference, _ = ungrouped
    result = runner.reproduce(registry.default_names(), RUN_TINY, 0, tmp_path, group=2, jobs=2)
    sizes = sorted(len(g) for g in result.groups)
    assert max(sizes) == 2 and sizes.count(2) >= 6
    assert _numbers(tmp_path) == _numbers(reference)


class _StopGroup(runner.Progress):
    """Stops the run (as a kill would) after epoch ``k`` of the first group of two or more."""

    def __init__(self, k, store):
        self.k, self.store, self.stopped = k, store, None

    def group_epoch(self, jobs, epoch, epochs):
        if len(jobs) > 1 and epoch == self.k:
            self.stopped = [job.key for job in jobs]
            raise Stop


def test_a_killed_group_resumes_from_its_members_checkpoints(tmp_path):
    scale = RUN_TINY.override(epochs=4)
    names = ["iv_nonlinearity", "stuck_off"]
    reference = runner.reproduce(names, scale, 3, tmp_path / "ref", group=1, checkpoint_every=0)
    out = tmp_path / "out"
    store = ResultsStore(out)
    stop = _StopGroup(2, store)
    with pytest.raises(RuntimeError, match="training group .* failed: Stop"):
        runner.reproduce(names, scale, 3, out, progress=stop, checkpoint_every=1e-9)
    assert len(stop.stopped) > 1
    assert [store.checkpoint(k, 0).load().epoch for k in stop.stopped] == [2] * len(stop.stopped)
    again = runner.reproduce(names, scale, 3, out, checkpoint_every=1e-9)
    assert sorted(again.computed + again.reused) == sorted(reference.computed)
    assert [store.read_record("train", k)["resumed_from_epoch"] for k in stop.stopped] == [2] * len(stop.stopped)
    assert _numbers(tmp_path / "ref") == _numbers(out)
    assert not store.checkpoint_dir.exists()


def test_dask_runs_groups_as_units(ungrouped, tmp_path):
    distributed = pytest.importorskip("distributed")
    reference, _ = ungrouped
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        runner.reproduce(["iv_nonlinearity"], RUN_TINY, 0, tmp_path, scheduler=cluster.scheduler_address)
    ours = _numbers(tmp_path)
    theirs = _numbers(reference)
    assert ours and all(ours[path] == theirs[path] for path in ours)


def test_group_option_is_validated_and_groups_are_split_evenly():
    for bad in (0, -1, "two", 1.5, True, None):
        with pytest.raises(ValueError, match=r"group \(--group\) must be 'auto' or an integer >= 1"):
            grouping.check_group_size(bad)
    assert grouping.check_group_size("3") == 3 and grouping.largest("auto") == grouping.AUTO_GROUP
    assert [len(p) for p in grouping._split(list(range(7)), 3)] == [3, 2, 2]
    with pytest.raises(ValueError, match="--group"):
        runner.reproduce(["stuck_off"], RUN_TINY, 0, "/nonexistent/never", group=0)


def test_form_groups_by_signature_cap_and_workers(plan):
    configs = {name: entry["config"] for name, entry in plan.trainings.items()}
    jobs = _jobs(plan, ("low_pf", "low_pf_reg", "high_pf", "high_pf_reg", "ideal", "stuck_off"))
    by = lambda groups: [[j.training for j in g] for g in groups]  # noqa: E731
    assert by(grouping.form_groups(jobs, configs, "auto")) == [
        ["ideal"], ["low_pf", "low_pf_reg", "high_pf", "high_pf_reg"], ["stuck_off"]]
    assert by(grouping.form_groups(jobs, configs, 3)) == [
        ["ideal"], ["low_pf", "low_pf_reg"], ["high_pf", "high_pf_reg"], ["stuck_off"]]
    assert by(grouping.form_groups(jobs, configs, 1)) == [["ideal"], ["low_pf"], ["low_pf_reg"], ["high_pf"],
                                                          ["high_pf_reg"], ["stuck_off"]]
    # four workers: auto splits the largest group until each worker has a unit
    assert sorted(map(len, grouping.form_groups(jobs, configs, "auto", workers=4))) == [1, 1, 2, 2]
    # another number of epochs, batch size or data: another group
    other = dict(configs, high_pf=Training.from_dict(configs["high_pf"]).replace(epochs=5).to_dict())
    assert by(grouping.form_groups(jobs, other, "auto"))[1] == ["low_pf", "low_pf_reg", "high_pf_reg"]


def test_a_group_runs_its_validation_and_test_passes_as_ensemble_passes(plan, data, monkeypatch):
    jobs = _jobs(plan, GROUPS[0])
    sizes = []
    real = passes.ensemble_evaluate

    def counted(tasks):
        sizes.append(len(tasks))
        return real(tasks)

    monkeypatch.setattr(passes, "ensemble_evaluate", counted)
    configs = [_config(j) for j in jobs]
    protocol.train_group(configs, data, [_seq(j) for j in jobs], limit=3)
    # every validation round (TINY: 2 repeats after each of 3 epochs) of 4 members: a pass of 3 and
    # the fourth alone; the test passes after epochs 1, 2 and 3 (the last): 4 members x 1 repeat
    # under their PF test stages (other numbers, one phase structure): again 3 + 1
    rounds = TINY.epochs * TINY.validation_repeats
    assert sizes == [3] * (rounds + TINY.epochs)
    sizes.clear()
    protocol.train_group(configs, data, [_seq(j) for j in jobs], limit=1)
    assert sizes == []


# -- the command line ------------------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from memnp.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_group_option_prints_the_groups_and_is_validated(tmp_path):
    common = ["reproduce", "--preset", "tiny", "--only", "iv_nonlinearity", "--no-figures", "--jobs", "1"]
    grouped = _cli(*common, "--out", tmp_path / "auto")
    assert grouped.exit_code == 0, grouped.output
    assert "training 4 networks in one pass: low_pf#0, low_pf_reg#0, high_pf#0, high_pf_reg#0" in grouped.output
    single = _cli(*common, "--out", tmp_path / "one", "--group", "1")
    assert single.exit_code == 0 and "in one pass" not in single.output
    assert _numbers(tmp_path / "auto") == _numbers(tmp_path / "one")
    for bad in ("0", "-2", "many"):
        result = _cli(*common, "--out", tmp_path / "bad", "--group", bad)
        assert result.exit_code == 2 and "Invalid value for '--group'" in result.output
        assert "integer from 1 to 1024 or 'auto'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()
    bad_train = _cli("train", "--out", tmp_path / "t", "--group", "0")
    assert bad_train.exit_code == 2 and "Invalid value for '--group'" in bad_train.output


def test_progress_names_a_groups_members_and_counts_its_epochs(monkeypatch):
    from memnp.cli import common
    jobs = [registry.Job("train", f"k{i}", {}, {}, name, 0) for i, name in enumerate(
        ("low_pf", "low_pf_reg", "high_pf", "high_pf_reg", "d2d_more", "d2d_less"))]
    assert common.describe_group(jobs[:2]) == "low_pf#0, low_pf_reg#0"
    assert common.describe_group(jobs, width=40) == "low_pf#0, low_pf_reg#0, +4 more"
    labels, updates = [], []

    class Bar:
        pos = 0

        def __init__(self, length, label, show_pos):
            labels.append(label)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def update(self, steps):
            self.pos += steps
            updates.append(self.pos)

    monkeypatch.setattr(common, "interactive", lambda: True)
    monkeypatch.setattr(common.click, "progressbar", Bar)
    bars = common.Bars(show_epochs=True)
    for epoch in (1, 2, 3):
        bars.group_epoch(jobs[:3], epoch, 3)
    assert labels == ["  train 3 networks (low_pf#0, low_pf_reg#0, high_pf#0): epochs"] and updates == [1, 2, 3]


def test_fine_tuning_jobs_are_grouped_once_their_parents_are_trained(tmp_path, monkeypatch):
    """line_resistance's fine-tuning jobs (parent: a PF-aware network) form groups of their own,
    submitted only after every parent in them is written (the work itself is stubbed: this is
    about the order; tests/test_experiments_line_resistance.py trains them)."""
    from memnp.experiments import executors
    order = []

    def fake_group(contents, seeds, data, on_epoch=None, checkpoints=None, weights=None, limit=None):
        order.append([(c.get("parent"), w is not None) for c, w in zip(contents, weights)])
        return [({"history": {}, "test": [], "checkpoint": {}, "seconds": 0.0},
                 {"layer0.w": np.zeros(1, np.float32)}) for _ in contents]

    def fake_infer(content, seed, test, weights, limit=1):
        return {"accuracy": [0.5], "loss": [1.0], "power": [1e-3], "n_synapses": 1, "seconds": 0.0}

    monkeypatch.setattr(executors, "run_training_group", fake_group)
    monkeypatch.setattr(executors, "run_inference_job", fake_infer)
    result = runner.reproduce(["line_resistance"], RUN_TINY, 0, tmp_path, checkpoint_every=0)
    finetunes = [unit for unit in order if unit[0][0] is not None]
    assert finetunes and all(len(unit) > 1 for unit in finetunes)
    assert all(has_weights for unit in order for parent, has_weights in unit if parent is not None)
    first_finetune = order.index(finetunes[0])
    parents = {parent for unit in finetunes for parent, _ in unit}
    trained_before = {k for g in result.groups[:first_finetune] for k in g}
    assert parents <= trained_before
