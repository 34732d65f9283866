"""In-job checkpoints: a training job stopped after epoch k and resumed gives exactly the numbers
and weights of an uninterrupted one; unusable checkpoints are ignored; the runner removes them."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memnp.experiments import datasource, presets, protocol, registry, runner
from memnp.experiments.checkpoint import TrainingCheckpoint
from memnp.experiments.configs import DataSpec, Training
from memnp.experiments.store import ResultsStore
from test_experiments_run import _numbers, kill_run_when

ROOT = Path(__file__).resolve().parents[1]
SPEC = DataSpec("mnist-10k", train=128, validation=64, test=100)
TINY = presets.get("tiny")


class Stop(Exception):
    """Raised from on_epoch to stop a job the way a kill would (after the epoch's checkpoint)."""


def _stop(epoch, epochs):
    raise Stop


@pytest.fixture(scope="module")
def data():
    return datasource.load(SPEC)


def _training(device="siox-high", epochs=5, **kw):
    stage = registry.device_stage(device)
    fields = dict(data=SPEC, stage=stage, epochs=epochs, learning_rate=0.5, validation_every=2,
                  validation_repeats=2, test_every=2, test_repeats=2, test_stages=(stage,))
    fields.update(kw)
    return Training(**fields)


def _run(training, data, checkpoint=None, stop_after=None, seed=3):
    """protocol.train; with stop_after=k, stopped by an exception right after epoch k (None returned)."""
    def on_epoch(epoch, epochs):
        if epoch == stop_after:
            raise Stop
    try:
        return protocol.train(training, data, np.random.SeedSequence(seed), on_epoch=on_epoch,
                              checkpoint=checkpoint)
    except Stop:
        return None


def _without_timing(record):
    record = json.loads(json.dumps(record))  # a deep copy
    for key in ("seconds", "resumed_from_epoch"):
        record.pop(key)
    record["history"].pop("seconds")
    return record


def _assert_same(a, b):
    (record_a, weights_a), (record_b, weights_b) = a, b
    assert _without_timing(record_a) == _without_timing(record_b)
    assert set(weights_a) == set(weights_b)
    for name in weights_a:
        assert weights_a[name].dtype == weights_b[name].dtype
        np.testing.assert_array_equal(weights_a[name], weights_b[name])


@pytest.fixture
def momentum(request, monkeypatch):
    """Train with SGD momentum (the Training config has none): velocities must be saved too."""
    value = request.param
    if value:
        build = protocol.build_model

        def with_momentum(*args, **kw):
            model = build(*args, **kw)
            model.optimizer.momentum = value
            return model
        monkeypatch.setattr(protocol, "build_model", with_momentum)
    return value


@pytest.mark.parametrize("momentum", [0.0, 0.9], indirect=True)
@pytest.mark.parametrize("device", ["siox-high", "ideal"])
def test_resumed_job_equals_uninterrupted(data, tmp_path, device, momentum):
    # siox-high: double weights, PF draws from rng["train"], memristive validation; ideal: standard
    # weights and the standard (every-epoch) checkpoint.
    training = _training(device)
    whole = _run(training, data)
    assert whole[0]["resumed_from_epoch"] is None
    checkpoint = TrainingCheckpoint(tmp_path, "job", every_seconds=0)
    assert _run(training, data, checkpoint, stop_after=1) is None
    assert _run(training, data, checkpoint, stop_after=3) is None  # resumes at 2, stops after 3
    state = checkpoint.load()
    assert state.epoch == 3 and state.history["epoch"] == [1, 2, 3]
    if momentum:  # one velocity per update group: the double-weight matrix D or W and b
        names = {"layer1.D", "layer3.D"} if device != "ideal" else {"layer1.W", "layer1.b", "layer3.W",
                                                                    "layer3.b"}
        assert set(state.velocity) == names and all(np.any(v != 0) for v in state.velocity.values())
    else:
        assert state.velocity == {}
    resumed = _run(training, data, checkpoint)
    assert resumed[0]["resumed_from_epoch"] == 3
    assert resumed[0]["history"]["epoch"] == [1, 2, 3, 4, 5]
    _assert_same(whole, resumed)
    if device == "ideal":
        assert resumed[0]["checkpoint"]["kind"] == "standard"
    else:
        assert resumed[0]["validation"]["epoch"] and resumed[0]["checkpoint"]["kind"] == "memristive"


def test_saves_after_every_epoch_but_the_last_and_respects_the_interval(data, tmp_path):
    training = _training("stuck-off", epochs=3)
    every_epoch = TrainingCheckpoint(tmp_path / "a", "job", every_seconds=0)
    seen = []
    protocol.train(training, data, np.random.SeedSequence(1), checkpoint=every_epoch,
                   on_epoch=lambda e, n: seen.append(every_epoch.load().epoch))
    assert seen == [1, 2, 2]  # on_epoch runs after the save; nothing is saved after the last epoch
    rarely = TrainingCheckpoint(tmp_path / "b", "job", every_seconds=3600)
    protocol.train(training, data, np.random.SeedSequence(1), checkpoint=rarely)
    assert not rarely.json_path.exists() and not rarely.npz_path.exists()


def test_unusable_checkpoints_are_ignored(data, tmp_path):
    training = _training("stuck-off", epochs=3)
    whole = _run(training, data)
    checkpoint = TrainingCheckpoint(tmp_path, "job", every_seconds=3600)

    def fresh(key="job"):
        checkpoint.remove()
        _run(training, data, TrainingCheckpoint(tmp_path, key, every_seconds=0), stop_after=2)
        assert TrainingCheckpoint(tmp_path, key).load().epoch == 2

    def restarts():
        result = _run(training, data, checkpoint)
        assert result[0]["resumed_from_epoch"] is None
        _assert_same(whole, result)

    fresh()  # the npz changed after the JSON named its SHA-256
    raw = bytearray(checkpoint.npz_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    checkpoint.npz_path.write_bytes(bytes(raw))
    assert checkpoint.load() is None
    restarts()
    fresh()  # a JSON that does not parse
    checkpoint.json_path.write_text('{"format": "memnp-checkpoint/1", "key"')
    assert checkpoint.load() is None
    restarts()
    fresh("other")  # the files of another job
    other = TrainingCheckpoint(tmp_path, "other")
    other_npz = other.npz_path
    other.json_path.rename(checkpoint.json_path)
    other_npz.rename(checkpoint.npz_path)
    assert checkpoint.load() is None  # the JSON names the key "other"
    restarts()
    fresh()  # the npz is missing
    checkpoint.npz_path.unlink()
    assert checkpoint.load() is None
    restarts()
    fresh()  # a usable checkpoint of a job that does not fit: other weights, fewer epochs
    assert _run(_training("stuck-off", epochs=3, standard_weights=True), data, checkpoint)[0][
        "resumed_from_epoch"] is None
    assert _run(_training("stuck-off", epochs=2), data, checkpoint)[0]["resumed_from_epoch"] is None


def test_checkpoint_arguments_are_validated(tmp_path):
    for bad in (-1, float("nan"), float("inf"), "soon", True):
        with pytest.raises(ValueError, match="every_seconds must be a finite number >= 0"):
            TrainingCheckpoint(tmp_path, "job", bad)
    for bad in ("", "../up", "a b"):
        with pytest.raises(ValueError, match="key must be"):
            TrainingCheckpoint(tmp_path, bad, 1)
    for bad in (-0.5, float("nan"), "x"):
        with pytest.raises(ValueError, match=r"checkpoint_every \(--checkpoint-every\) must be"):
            runner.check_checkpoint_every(bad)
    with pytest.raises(ValueError, match="checkpoint_every"):
        runner.reproduce(["stuck_off"], TINY, 0, tmp_path / "never", checkpoint_every=-1)
    assert not (tmp_path / "never").exists()


# -- the runner and executors ---------------------------------------------------------------------
class _StopFirstJob(runner.Progress):
    """Stops the run (as a kill would) after epoch ``k`` of the first training job."""

    def __init__(self, k, store):
        self.k, self.store, self.saved = k, store, None

    def epoch(self, job, epoch, epochs):
        if epoch < epochs:  # saved before on_epoch
            assert self.store.checkpoint(job.key, 0).load().epoch == epoch
        if epoch == self.k:
            self.saved = job.key
            raise Stop


def test_runner_resumes_in_a_worker_process_and_removes_checkpoints(tmp_path):
    scale = TINY.override(epochs=3)
    reference = runner.reproduce(["stuck_off"], scale, 2, tmp_path / "ref", checkpoint_every=0)
    out = tmp_path / "out"
    store = ResultsStore(out)
    stop = _StopFirstJob(2, store)
    with pytest.raises(RuntimeError, match="failed: Stop"):
        runner.reproduce(["stuck_off"], scale, 2, out, progress=stop, checkpoint_every=1e-9)
    assert store.checkpoint(stop.saved, 0).load().epoch == 2
    # the pool's worker process loads the checkpoint the in-process run left
    again = runner.reproduce(["stuck_off"], scale, 2, out, jobs=2, checkpoint_every=1e-9)
    assert sorted(again.computed) == sorted(reference.computed)
    assert store.read_record("train", stop.saved)["resumed_from_epoch"] == 2
    others = [j.key for j in again.plan.jobs if j.kind == "train" and j.key != stop.saved]
    assert others and all(store.read_record("train", k)["resumed_from_epoch"] is None for k in others)
    assert _numbers(tmp_path / "ref") == _numbers(out)
    assert not store.checkpoint_dir.exists()  # every checkpoint removed once its record was written


def test_leftover_checkpoint_of_a_finished_job_is_removed(tmp_path):
    out = tmp_path / "out"
    first = runner.reproduce(["stuck_off"], TINY, 0, out, checkpoint_every=0)
    key = next(j.key for j in first.plan.jobs if j.kind == "train")
    store = ResultsStore(out)
    (store.checkpoint_dir / f"{key}.json").parent.mkdir()
    (store.checkpoint_dir / f"{key}.json").write_text("{}")
    (store.checkpoint_dir / f".{key}.json.tmp-abc").write_text("")
    again = runner.reproduce(["stuck_off"], TINY, 0, out)
    assert again.computed == [] and not store.checkpoint_dir.exists()


def test_killed_run_resumes_mid_job_from_its_checkpoint(tmp_path):
    epochs = 40
    reference = tmp_path / "reference"
    runner.reproduce(["stuck_off"], TINY.override(epochs=epochs), 0, reference, checkpoint_every=0)
    out = tmp_path / "killed"
    args = [sys.executable, str(ROOT / "run.py"), "reproduce", "--preset", "tiny", "--epochs", str(epochs),
            "--only", "stuck_off", "--out", str(out), "--no-figures", "--jobs", "1",
            "--checkpoint-every", "0.000001"]
    checkpoints = out / "checkpoints"
    env = kill_run_when(args, checkpoints, settle=0.05)  # killed a few epochs after the first save
    saved = {path.stem: json.loads(path.read_text())["epoch"] for path in checkpoints.glob("*.json")}
    assert len(saved) == 1 and 1 <= min(saved.values()) < epochs
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    store = ResultsStore(out)
    for key, epoch in saved.items():
        assert store.read_record("train", key)["resumed_from_epoch"] == epoch
        assert f"from its in-job checkpoint after epoch {epoch} of {epochs}" in rerun.stdout
    assert _numbers(reference) == _numbers(out)
    assert not checkpoints.exists()


# -- the command line -----------------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from memnp.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_train_resumes_from_its_checkpoint_and_validates_the_option(data, tmp_path):
    from memnp.experiments import keys
    training = _training("stuck-off", epochs=3)
    config = tmp_path / "training.json"
    config.write_text(json.dumps(training.to_dict()))
    whole = _cli("train", "--config", config, "--seed", 4, "--out", tmp_path / "whole", "--checkpoint-every", 0)
    assert whole.exit_code == 0, whole.output
    # leave the checkpoint `train --config ... --seed 4` would have written after epoch 1
    content = {"kind": "train", "training": training.to_dict(), "network": 0}
    checkpoint = TrainingCheckpoint(tmp_path / "resumed" / "checkpoints", keys.job_key(content, 4), 0)
    with pytest.raises(Stop):
        protocol.train(training, data, keys.seed_sequence(content, 4), checkpoint=checkpoint,
                       on_epoch=_stop)
    assert checkpoint.load().epoch == 1
    resumed = _cli("train", "--config", config, "--seed", 4, "--out", tmp_path / "resumed")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from the in-job checkpoint after epoch 1 of" in resumed.output
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    a, b = (json.loads((tmp_path / d / "training.json").read_text()) for d in ("whole", "resumed"))
    assert a["weights_sha256"] == b["weights_sha256"] and a["history"]["loss"] == b["history"]["loss"]
    assert (a["resumed_from_epoch"], b["resumed_from_epoch"]) == (None, 1)
    for command in (("train", "--config", config), ("reproduce", "--preset", "tiny", "--no-figures")):
        for bad, message in (("-1", "not in the range x>=0"), ("nan", "must be a number of seconds >= 0")):
            result = _cli(*command, "--out", tmp_path / "never", "--checkpoint-every", bad)
            assert result.exit_code == 2 and "--checkpoint-every" in result.output and message in result.output
    assert not (tmp_path / "never").exists()


# -- numerics version and backend (memnp.numerics) ------------------------------------------------
def test_checkpoint_of_another_numerics_version_or_backend_is_never_resumed(data, tmp_path):
    from memnp.numerics import NUMERICS_VERSION, NumericsStamp, current
    training = _training("stuck-off", epochs=3)
    checkpoint = TrainingCheckpoint(tmp_path, "job", every_seconds=0)
    _run(training, data, checkpoint, stop_after=2)
    info = json.loads(checkpoint.json_path.read_text())
    assert (info["numerics_version"], info["backend"]) == (NUMERICS_VERSION, "cpu")
    assert checkpoint.stamp() == current() and checkpoint.load().epoch == 2
    for edit, found in (({"backend": "cuda"}, NumericsStamp(NUMERICS_VERSION, "cuda")),
                        ({"numerics_version": NUMERICS_VERSION + 1}, NumericsStamp(NUMERICS_VERSION + 1, "cpu")),
                        ({"numerics_version": None, "backend": None}, NumericsStamp(None, None))):
        checkpoint.json_path.write_text(json.dumps(dict(info, **edit)))
        assert checkpoint.stamp() == found
        assert checkpoint.load() is None   # and so protocol.train starts at epoch 1
    checkpoint.json_path.write_text(json.dumps(info))
    assert checkpoint.load().epoch == 2
    assert TrainingCheckpoint(tmp_path, "absent").stamp() is None


def test_runner_stops_at_a_stale_checkpoint_and_discards_it_on_request(tmp_path):
    from memnp.experiments.stale import StaleResults
    scale = TINY.override(epochs=3)
    reference = runner.reproduce(["stuck_off"], scale, 2, tmp_path / "ref", checkpoint_every=0)
    out = tmp_path / "out"
    store = ResultsStore(out)
    stop = _StopFirstJob(2, store)
    with pytest.raises(RuntimeError, match="failed: Stop"):
        runner.reproduce(["stuck_off"], scale, 2, out, progress=stop, checkpoint_every=1e-9)
    path = store.checkpoint(stop.saved, 0).json_path
    path.write_text(json.dumps(dict(json.loads(path.read_text()), backend="cuda")))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".memnp.lock"}
    with pytest.raises(StaleResults, match=r"1 in-job checkpoint with numerics version \d+, backend cuda; "
                                           r".*--recompute-stale to discard the 1 checkpoint"):
        runner.reproduce(["stuck_off"], scale, 2, out, checkpoint_every=1e-9)
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".memnp.lock"}
    again = runner.reproduce(["stuck_off"], scale, 2, out, checkpoint_every=1e-9, recompute_stale=True)
    assert sorted(again.computed) == sorted(reference.computed)
    assert store.read_record("train", stop.saved)["resumed_from_epoch"] is None   # started over
    assert _numbers(tmp_path / "ref") == _numbers(out)


def test_checkpoint_and_store_import_no_circle():
    """files.py imports neither store.py nor checkpoint.py, and checkpoint.py does not import
    store.py (store.py imports checkpoint.py): imports point one way."""
    import ast

    def imported(name):
        tree = ast.parse((ROOT / "memnp" / "experiments" / f"{name}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1} | \
            {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
             and node.module is None for alias in node.names}

    assert not {"store", "checkpoint"} & imported("files")
    assert "store" not in imported("checkpoint") and "files" in imported("checkpoint")
    assert "checkpoint" in imported("store")


def test_cli_train_stops_at_a_stale_checkpoint_and_starts_over_on_request(data, tmp_path):
    from memnp.experiments import keys
    training = _training("stuck-off", epochs=3)
    config = tmp_path / "training.json"
    config.write_text(json.dumps(training.to_dict()))
    content = {"kind": "train", "training": training.to_dict(), "network": 0}
    checkpoint = TrainingCheckpoint(tmp_path / "out" / "checkpoints", keys.job_key(content, 4), 0)
    with pytest.raises(Stop):
        protocol.train(training, data, keys.seed_sequence(content, 4), checkpoint=checkpoint, on_epoch=_stop)
    info = json.loads(checkpoint.json_path.read_text())
    checkpoint.json_path.write_text(json.dumps({k: v for k, v in info.items() if k not in ("numerics_version",
                                                                                          "backend")}))
    stopped = _cli("train", "--config", config, "--seed", 4, "--out", tmp_path / "out")
    assert stopped.exit_code == 1 and "Traceback" not in stopped.output
    assert "1 in-job checkpoint with no numerics version (an older memnp)" in stopped.output
    assert "--recompute-stale to discard the 1 checkpoint" in stopped.output
    assert not (tmp_path / "out" / "training.json").exists() and checkpoint.json_path.exists()
    again = _cli("train", "--config", config, "--seed", 4, "--out", tmp_path / "out", "--recompute-stale")
    assert again.exit_code == 0, again.output
    assert "resuming" not in again.output
    assert json.loads((tmp_path / "out" / "training.json").read_text())["resumed_from_epoch"] is None
