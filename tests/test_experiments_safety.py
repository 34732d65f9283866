"""One run per results directory (the lock), manifests that are never silently replaced, sealed
inference records, and kills that leave no process behind and no temporary file after a rerun."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from memnp.cli import cli
from memnp.experiments import outputs, presets, runner
from memnp.experiments.store import CorruptManifest, ResultsStore

ROOT = Path(__file__).resolve().parents[1]
TINY = presets.get("tiny")
RUN = [sys.executable, str(ROOT / "run.py")]


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _env():
    return dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))


# -- the lock -------------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_directory_stops_at_once_naming_the_first(tmp_path):
    out = tmp_path / "results"
    first = subprocess.Popen(RUN + ["reproduce", "--preset", "tiny", "--only", "stuck_off", "--epochs", "400",
                                    "--out", str(out), "--no-figures", "--jobs", "1", "--checkpoint-every", "0"],
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "manifest.json").is_file() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, first.stderr.read().decode()
        before = (out / "manifest.json").read_bytes()
        start = time.perf_counter()
        second = subprocess.run(RUN + ["reproduce", "--preset", "tiny", "--only", "high_d2d", "--out", str(out),
                                       "--no-figures", "--jobs", "1"],
                                env=_env(), capture_output=True, text=True, timeout=120)
        waited = time.perf_counter() - start
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"in use by another memnp run (PID {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr and waited < 60
        assert (out / "manifest.json").read_bytes() == before
        report = _cli("report", "--results", out)       # the report waits for the run too
        assert report.exit_code == 1 and f"PID {first.pid}" in report.output
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    # the killed run's lock is gone with it: the directory is usable at once
    with outputs.RunLock(out):
        pass


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    code = ("import sys, time; from memnp.experiments.outputs import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(outputs.ResultsLocked, match=f"PID {holder.pid}"):
            outputs.RunLock(tmp_path).acquire()
        with pytest.raises(outputs.ResultsLocked):
            runner.reproduce(["stuck_off"], TINY, 0, tmp_path)
        assert not (tmp_path / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    outer = outputs.RunLock(tmp_path).acquire()
    with outputs.RunLock(tmp_path):   # the same process: no deadlock
        pass
    outer.release()


def test_sequential_runs_with_different_only_are_both_listed(tmp_path):
    out = tmp_path / "results"
    for name in ("stuck_off", "high_d2d"):
        result = _cli("reproduce", "--preset", "tiny", "--only", name, "--out", out, "--no-figures", "--jobs", "1")
        assert result.exit_code == 0, result.output
    manifest = ResultsStore(out).read_manifest()
    assert set(manifest["simulations"]) == {"stuck_off", "high_d2d"}
    assert [run["only"] for run in manifest["runs"]] == [["stuck_off"], ["high_d2d"]]
    summary = (out / "report" / "summary.md").read_text()
    assert "## stuck_off" in summary and "## high_d2d" in summary


# -- the manifest and the records -----------------------------------------------------------------
@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "results"
    runner.reproduce(["stuck_off"], TINY, 0, out)
    return out


@pytest.mark.parametrize("damage", ["truncated", "not an object", "no jobs"])
def test_a_corrupt_manifest_is_an_error_and_never_replaced(finished, damage):
    path = finished / "manifest.json"
    text = path.read_text()
    manifest = json.loads(text)
    broken = {"truncated": text[: len(text) // 2], "not an object": "[1, 2]",
              "no jobs": json.dumps({k: v for k, v in manifest.items() if k != "jobs"})}[damage]
    path.write_text(broken)
    with pytest.raises(CorruptManifest, match="corrupt or truncated"):
        runner.reproduce(["high_d2d"], TINY, 0, finished)
    for command in (("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", finished),
                    ("report", "--results", finished), ("figures", "--results", finished)):
        result = _cli(*command)
        assert result.exit_code == 2 and "corrupt or truncated" in result.output, result.output
        assert "Traceback" not in result.output
    assert path.read_text() == broken
    # moved away (as the message says), a rerun writes a new manifest and reuses every job
    path.rename(finished / "manifest.broken.json")
    again = runner.reproduce(["stuck_off"], TINY, 0, finished)
    assert again.computed == [] and len(again.reused) == len(manifest["jobs"])


def test_an_edited_inference_record_is_detected_and_recomputed(finished):
    store = ResultsStore(finished)
    manifest = store.read_manifest()
    key = next(k for k, job in manifest["jobs"].items() if job["kind"] == "infer")
    path = store.record_path("infer", key)
    original = json.loads(path.read_text())
    assert len(original["record_sha256"]) == 64 and store.is_done("infer", key)
    edited = dict(original, accuracy=[1.0] * len(original["accuracy"]))
    path.write_text(json.dumps(edited))
    assert not store.is_done("infer", key)
    unsealed = {k: v for k, v in original.items() if k != "record_sha256"}
    path.write_text(json.dumps(unsealed))   # a record without its checksum is not trusted either
    assert not store.is_done("infer", key)
    again = runner.reproduce(["stuck_off"], TINY, 0, finished)
    assert again.computed == [key]
    assert json.loads(path.read_text())["accuracy"] == original["accuracy"]
    # training records are sealed too; an edit there is caught the same way
    train_key = next(k for k, job in manifest["jobs"].items() if job["kind"] == "train")
    train_path = store.record_path("train", train_key)
    record = json.loads(train_path.read_text())
    train_path.write_text(json.dumps(dict(record, epochs_done=99)))
    assert not store.is_done("train", train_key)


def test_stale_figure_temporaries_are_removed_by_a_rerun(finished):
    figures = finished / "figures"
    figures.mkdir(exist_ok=True)
    stale = [figures / ".robustness.png.abc123.part", figures / ".robustness.pdf.x_y.part"]
    for path in stale:
        path.write_bytes(b"")
    keep = figures / ".hidden-notes.txt"
    keep.write_text("mine")
    runner.reproduce(["stuck_off"], TINY, 0, finished)
    assert not any(path.exists() for path in stale) and keep.exists()


# -- kills ----------------------------------------------------------------------------------------
def _children():
    """{pid: parent pid} of every process (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid):
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid):
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_pool_run_leaves_no_worker_alive(tmp_path, sig):
    out = tmp_path / "results"
    args = RUN + ["reproduce", "--preset", "tiny", "--only", "stuck_off", "--epochs", "3000", "--out", str(out),
                  "--no-figures", "--jobs", "2", "--checkpoint-every", "0.000001"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        children = set()
        while time.time() < deadline and proc.poll() is None:   # both workers are training
            children = _descendants(proc.pid)
            if len(children) >= 3 and len(list((out / "checkpoints").glob("*.json"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None and len(children) >= 3, proc.stderr.read().decode()
        proc.send_signal(sig)
        proc.wait(timeout=10)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)]
        assert "Traceback" not in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stderr.close()
    # a rerun (here a short one) clears the temporaries the kill left, in figures/ as in jobs/
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / ".robustness.png.k1ll3d.part").write_bytes(b"")
    (out / "jobs" / "train").mkdir(parents=True, exist_ok=True)
    (out / "jobs" / "train" / ".abc.npz.tmp-k1ll3d").write_bytes(b"")
    rerun = subprocess.run([{"3000": "1", "0.000001": "0"}.get(a, a) for a in args], env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.rglob(".*.part")) and not list(out.rglob(".*.tmp-*"))
