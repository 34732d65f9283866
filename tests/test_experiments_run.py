"""End-to-end runs of the tiny preset: outputs, resume after a kill, and identical numbers from
in-process, process-pool and Dask execution."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memnp.experiments import presets, registry, runner
from memnp.experiments.store import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
TINY = presets.get("tiny")


def _numbers(root):
    """{relative path: record without timings (and without whether the job was resumed)} for every
    job record, and the weights arrays."""
    out = {}
    for path in sorted(Path(root, "jobs").rglob("*.json")):
        record = json.loads(path.read_text())
        for key in ("seconds", "finished", "resumed_from_epoch", "record_sha256"):  # the checksum covers the timings
            record.pop(key, None)
        if record.get("history"):
            record["history"].pop("seconds")
        out[str(path.relative_to(root))] = record
    for path in sorted(Path(root, "jobs").rglob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            out[str(path.relative_to(root))] = {k: data[k].tolist() for k in data.files}
    return out


def _check_complete(root):
    """Every output exists and parses; returns the manifest."""
    store = ResultsStore(root)
    manifest = store.read_manifest()
    assert manifest["runs"][-1]["finished"] is not None
    for key, job in manifest["jobs"].items():
        assert store.is_done(job["kind"], key), key
        record = store.read_record(job["kind"], key)
        assert record["training"] == job["training"] and record["seed"] == job["seed"]
        if job["kind"] == "infer":
            n = manifest["inferences"][job["inference"]]["config"]["repeats"]
            assert len(record["accuracy"]) == len(record["loss"]) == len(record["power"]) == n
            assert all(0 <= a <= 1 for a in record["accuracy"]) and all(p > 0 for p in record["power"])
        else:
            weights = store.read_weights(key)
            assert {"architecture", "stage"} <= set(weights)
            assert len(record["history"]["epoch"]) == manifest["trainings"][job["training"]]["config"]["epochs"]
    assert not list(Path(root).rglob(".*.tmp-*"))
    return manifest


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path):
    out = tmp_path / "results"
    result = runner.reproduce(registry.default_names(), TINY, 0, out)
    manifest = _check_complete(out)
    assert len(result.computed) == len(manifest["jobs"]) == len(result.plan.jobs) and not result.reused
    assert manifest["sources"]["mnist"] in ("mnist", "mnist-10k")
    assert set(manifest["simulations"]) == set(registry.default_names())
    if manifest["sources"].get("cifar10") is None:
        assert manifest["simulations"]["iv_nonlinearity_cnn"]["skipped"]
    # the ideal network's test-during-training covers every setup it is paired with, by name
    ideal = ResultsStore(out).read_record("train", manifest["trainings"]["ideal"]["networks"][0])
    assert [t["inference"] for t in ideal["test"]] == list(registry.AGNOSTIC_INFERENCES)
    from memnp.experiments.report import write_report
    paths = write_report(out)
    lines = paths["robustness.csv"].read_text().splitlines()
    assert lines[0].split(",") == ["training", *registry.AGNOSTIC_INFERENCES]
    assert len(lines) == 1 + 13 and all(cell != "" for line in lines[1:] for cell in line.split(","))
    assert "## nonideality_agnosticism" in paths["summary.md"].read_text()
    # a rerun computes nothing
    again = runner.reproduce(registry.default_names(), TINY, 0, out)
    assert again.computed == [] and len(again.reused) == len(manifest["jobs"])


def test_changed_config_or_seed_never_reuses_results(tmp_path):
    out = tmp_path / "r"
    first = runner.reproduce(["stuck_off"], TINY, 0, out)
    assert len(first.computed) == 4
    more = runner.reproduce(["stuck_off"], TINY.override(repeats=3), 0, out)
    # same networks (the trainings do not change: test repeats are capped, not raised), new inferences
    trained = {j.key for j in first.plan.jobs if j.kind == "train"}
    assert set(more.reused) == trained and len(more.computed) == 2
    other_seed = runner.reproduce(["stuck_off"], TINY, 1, out)
    assert len(other_seed.computed) == 4 and not other_seed.reused
    # merging: a second simulation with the first's scale and seed joins the manifest
    runner.reproduce(["high_d2d"], TINY, 1, out)
    assert set(ResultsStore(out).read_manifest()["simulations"]) == {"stuck_off", "high_d2d"}


def test_two_worker_processes_give_the_same_numbers(tmp_path):
    # PF (Numba kernels, whose thread count differs between the two runs) and stuck devices
    sims = ["iv_nonlinearity_and_stuck_on", "stuck_off"]
    one = runner.reproduce(sims, TINY, 4, tmp_path / "one", jobs=1)
    two = runner.reproduce(sims, TINY, 4, tmp_path / "two", jobs=2)
    assert sorted(one.computed) == sorted(two.computed)
    assert _numbers(tmp_path / "one") == _numbers(tmp_path / "two")
    _check_complete(tmp_path / "two")


def test_dask_local_cluster_gives_the_same_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")
    local = runner.reproduce(["stuck_off"], TINY, 4, tmp_path / "local")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster:
        remote = runner.reproduce(["stuck_off"], TINY, 4, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert sorted(local.computed) == sorted(remote.computed)
    assert _numbers(tmp_path / "local") == _numbers(tmp_path / "dask")


def test_unreachable_scheduler_fails_before_writing(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from memnp.experiments import executors
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    out = tmp_path / "never"
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        runner.reproduce(["stuck_off"], TINY, 0, out, scheduler="tcp://127.0.0.1:1")
    assert not out.exists()


def kill_run_when(args, directory, settle=0.0):
    """Start ``python run.py *args``, SIGKILL it once ``directory`` holds a ``*.json`` file (and
    ``settle`` seconds more have passed); returns the environment it ran with, for a rerun."""
    env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if directory.is_dir() and list(directory.glob("*.json")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()
    time.sleep(settle)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return env


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing(tmp_path):
    out = tmp_path / "resume"
    args = [sys.executable, str(ROOT / "run.py"), "reproduce", "--preset", "tiny", "--epochs", "20",
            "--only", "stuck_off", "--only", "high_d2d", "--out", str(out), "--no-figures", "--jobs", "1"]
    env = kill_run_when(args, out / "jobs" / "train")
    store = ResultsStore(out)
    manifest = store.read_manifest()
    assert manifest["runs"][-1]["finished"] is None
    finished = {key: store.record_path(job["kind"], key).stat().st_mtime_ns
                for key, job in manifest["jobs"].items() if store.is_done(job["kind"], key)}
    assert 1 <= len(finished) < len(manifest["jobs"])
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # nothing half-written
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} of {len(manifest['jobs'])} jobs already finished" in rerun.stdout
    assert f"{len(manifest['jobs']) - len(finished)} jobs computed, {len(finished)} reused" in rerun.stdout
    for key, mtime in finished.items():
        assert store.record_path(manifest["jobs"][key]["kind"], key).stat().st_mtime_ns == mtime
    _check_complete(out)


@pytest.mark.slow
def test_cifar_experiment_runs_when_cifar10_is_present(tmp_path):
    from memnp.data.cifar import SUBDIR, TEST_FILES, TRAIN_FILES, write_cifar_batch
    rng = np.random.default_rng(0)
    for name in TRAIN_FILES + TEST_FILES:  # synthetic batches in the CIFAR-10 binary format
        write_cifar_batch(tmp_path / "data" / SUBDIR / name,
                          rng.integers(0, 256, (100, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 100))
    scale = TINY.override(epochs=1)
    result = runner.reproduce(["iv_nonlinearity_cnn"], scale, 0, tmp_path / "out", data_dir=tmp_path / "data")
    manifest = _check_complete(tmp_path / "out")
    assert manifest["sources"]["cifar10"] == "cifar10"
    assert sorted(manifest["trainings"]) == ["cnn_high_pf", "cnn_ideal"]
    assert len(result.computed) == 2 + 3
    store = ResultsStore(tmp_path / "out")
    aware = store.read_record("train", manifest["trainings"]["cnn_high_pf"]["networks"][0])
    assert aware["weights"] == "double" and aware["content"]["training"]["augment"] == "auto"
    assert aware["n_synapses"] == 1025 * 25 + 26 * 10
