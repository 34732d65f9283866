"""The command line at its edges: outputs that cannot be written (checked before any work, and
finished work rescued when a write fails late), strict options, file modes that follow the umask,
and no progress-bar labels off a terminal."""
import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import one_error_line as _one_error_line
from cli_helpers import run_cli as _run
from memnp.experiments import outputs

TRAIN = ("train", "--epochs", "1", "--examples", "64", "64", "100", "--validation-repeats", "1",
         "--checkpoint-every", "0")


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    """weights.npz of a one-epoch ideal network."""
    net = tmp_path_factory.mktemp("net")
    result = _run(*TRAIN, "--out", net)
    assert result.exit_code == 0, result.output
    return net / "weights.npz"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "results"
    result = _run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", out, "--no-figures",
                  "--jobs", "1")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    from memnp.data.devices import synthetic_siox_curves
    data = synthetic_siox_curves(40, 0, covariance=[[1e-6, 0], [0, 1e-6]])
    path = tmp_path_factory.mktemp("curves") / "curves.npz"
    np.savez(path, V=data.V, I=data.I)
    return path


def _unwritable(tmp_path, kind, request):
    """An output path that cannot be written, and the path the error must name."""
    if kind == "under a file":
        blocker = tmp_path / "blocker"
        blocker.write_text("x")
        return blocker / "out", blocker
    if kind == "proc":
        return Path("/proc/memnp-out"), "/proc"
    if kind == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        return locked / "out", locked
    if kind == "immutable":   # chattr +i stops root too (needs CAP_LINUX_IMMUTABLE and ext4 or the like)
        import subprocess
        locked = tmp_path / "immutable"
        locked.mkdir()
        try:
            made = subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0
        except OSError:
            made = False
        if not made:
            pytest.skip("chattr +i is not available here")
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(locked)]))
        return locked / "out", locked
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["under a file", "proc", "read-only", "immutable"])
def test_unwritable_outputs_fail_before_any_work(tmp_path, kind, small_net, results, curves, monkeypatch, request):
    from memnp.experiments import protocol
    target, named = _unwritable(tmp_path, kind, request)

    def no_training(*args, **kw):
        raise AssertionError("trained although --out cannot be written")

    monkeypatch.setattr(protocol, "train", no_training)
    monkeypatch.setattr(protocol, "infer", no_training)
    _one_error_line(_run(*TRAIN, "--out", target), target, named)
    _one_error_line(_run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", target), target, named)
    _one_error_line(_run("infer", "--weights", small_net, "--out", target / "r.json"), named)
    _one_error_line(_run("fit-device", curves, "--regime", "high", "--out", target / "dev.json"), named)
    _one_error_line(_run("figures", "--results", results, "--out", target, "--only", "robustness"), named)
    assert not Path(target).exists()


def test_a_file_in_the_way_of_report_or_figures(results, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    shutil.rmtree(copy / "report")
    (copy / "report").write_text("in the way")
    _one_error_line(_run("report", "--results", copy), copy / "report", "not a directory")
    (copy / "figures").write_text("in the way")
    _one_error_line(_run("figures", "--results", copy, "--only", "robustness"), copy / "figures")


def _failing_under(out, real):
    """``real`` (a writer taking a path first) that fails with ENOSPC for paths under ``out``."""
    def write(path, *args, **kw):
        if Path(path).resolve().is_relative_to(Path(out).resolve()):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kw)
    return write


def _rescued(output):
    """The rescue directory an error message names."""
    line = next(line for line in output.splitlines() if "saved to" in line)
    return Path(line.split("saved to ", 1)[1].split(" instead")[0])


def test_a_failed_write_after_training_rescues_the_network(tmp_path, monkeypatch):
    from memnp.experiments import store
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "net"
    monkeypatch.setattr(store, "write_npz", _failing_under(out, store.write_npz))
    result = _run(*TRAIN, "--out", out)
    _one_error_line(result, out, "No space left on device", "saved to")
    rescued = _rescued(result.output)
    assert rescued.parent == tmp_path and rescued.name.startswith("memnp-rescue-train-")
    record = json.loads((rescued / "training.json").read_text())
    assert record["weights_sha256"] == store.file_sha256(rescued / "weights.npz")
    assert {"architecture", "stage"} <= set(store.read_npz(rescued / "weights.npz"))


def test_a_failed_write_of_an_inference_record_is_rescued(tmp_path, small_net, monkeypatch):
    from memnp.experiments import store
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "records" / "r.json"
    monkeypatch.setattr(store, "write_json", _failing_under(out.parent, store.write_json))
    result = _run("infer", "--weights", small_net, "--repeats", "2", "--test-examples", "100", "--out", out)
    _one_error_line(result, "saved to")
    assert len(json.loads((_rescued(result.output) / "r.json").read_text())["accuracy"]) == 2


def test_rescue_falls_back_to_the_temporary_directory(tmp_path, monkeypatch):
    import tempfile
    if os.geteuid() == 0:
        monkeypatch.chdir("/proc")   # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        monkeypatch.chdir(locked)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    where = outputs.rescue(lambda d: (d / "x.txt").write_text("kept"), "test")
    assert where.parent == tmp_path and (where / "x.txt").read_text() == "kept"


def test_a_failed_job_write_mid_run_is_rescued(tmp_path, monkeypatch):
    from memnp.experiments import presets, runner, store
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    monkeypatch.setattr(store, "write_json", _failing_under(out / "jobs" / "infer", store.write_json))
    with pytest.raises(RuntimeError, match="No space left on device") as info:
        runner.reproduce(["stuck_off"], presets.get("tiny"), 0, out)
    rescued = Path(str(info.value).split("saved to ", 1)[1].split(" instead")[0])
    (record,) = rescued.glob("jobs/infer/*.json")
    assert store.ResultsStore(rescued).is_done("infer", record.stem)


# -- strict options -------------------------------------------------------------------------------
def _usage_error(result, *needles):
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_configs_missing_stage_or_data_list_the_missing_keys(tmp_path):
    config = tmp_path / "t.json"
    config.write_text(json.dumps({"epochs": 3}))
    _usage_error(_run("train", "--config", config, "--out", tmp_path / "n"), "missing: data, stage")
    config.write_text(json.dumps({"repeats": 3}))
    weights = tmp_path / "w.npz"
    np.savez(weights, a=np.zeros(2))
    _usage_error(_run("infer", "--weights", weights, "--config", config), "missing: stage")
    assert not (tmp_path / "n").exists()


def test_out_of_range_labels_are_caught_at_load(tmp_path):
    from memnp.data.idx import write_idx
    mnist = tmp_path / "data" / "mnist"
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        labels[3] = 12
        write_idx(mnist / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(mnist / f"{prefix}-labels-idx1-ubyte", labels)
    result = _run(*TRAIN, "--dataset", "mnist", "--data-dir", tmp_path / "data", "--out", tmp_path / "n")
    _usage_error(result, "label 3 is 12, outside the classes [0, 9]")


def test_missing_data_dir_is_an_error_not_a_fallback(tmp_path, results):
    nowhere = tmp_path / "nowhere"
    for args in ((*TRAIN, "--out", tmp_path / "n"),
                 ("reproduce", "--preset", "tiny", "--out", tmp_path / "r"),
                 ("figures", "--results", results, "--out", tmp_path / "f")):
        _usage_error(_run(*args, "--data-dir", nowhere), f"--data-dir {nowhere} does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_figures_need_a_manifest(tmp_path):
    _usage_error(_run("figures", "--results", tmp_path, "--out", tmp_path / "f"), "manifest.json not found")
    assert not (tmp_path / "f").exists()


def test_option_bounds_and_combinations(tmp_path, small_net):
    _usage_error(_run("reproduce", "--scheduler", "tcp://127.0.0.1:1", "--checkpoint-every", "5",
                      "--out", tmp_path / "r"), "--checkpoint-every does not work with --scheduler")
    for command in (("reproduce", "--preset", "tiny"), ("train",)):
        _usage_error(_run(*command, "--epochs", "100001", "--out", tmp_path / "r"), "--epochs")
    weights = tmp_path / "w.json"
    weights.write_text("{}")
    result = _run("infer", "--weights", weights)
    _usage_error(result, "not an .npz archive")
    assert "pickle" not in result.output
    for command in (("train", "--out", tmp_path / "n"), ("infer", "--weights", small_net)):
        _usage_error(_run(*command, "--device", "bogus"), "--device 'bogus'")
    _usage_error(_run("train", "--test-device", "bogus", "--out", tmp_path / "n"), "--test-device 'bogus'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]


# -- file modes and progress output ---------------------------------------------------------------
@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_are_written_with_the_users_umask(tmp_path, umask, mask):
    from memnp.data._atomic import atomic_write_text
    from memnp.experiments.store import write_json, write_npz
    umask(mask)
    want = 0o666 & ~mask
    write_json(tmp_path / "a.json", {"x": 1})
    write_npz(tmp_path / "b.npz", {"x": np.zeros(2)})
    atomic_write_text(tmp_path / "c.txt", "x")
    paths = [tmp_path / n for n in ("a.json", "b.npz", "c.txt")]
    try:
        from memnp.plotting import style
    except ImportError:
        style = None
    if style is not None:
        paths += style.save(style.new_figure(), tmp_path / "fig")
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_cli_outputs_follow_the_umask_and_print_no_bar_labels(tmp_path, umask, results, curves):
    umask(0o022)
    result = _run(*TRAIN, "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    assert "epochs" not in result.output.splitlines()
    fit = _run("fit-device", curves, "--regime", "high", "--out", tmp_path / "dev.json")
    assert fit.exit_code == 0, fit.output
    rerun = _run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", tmp_path / "res",
                 "--no-figures", "--jobs", "1")
    assert rerun.exit_code == 0, rerun.output
    lines = rerun.output.splitlines()
    assert "jobs" not in lines and not any(line.strip().endswith(": epochs") for line in lines)
    assert sum(line.startswith("job ") and " done: " in line for line in lines) == 4
    written = [tmp_path / "net" / "weights.npz", tmp_path / "net" / "training.json", tmp_path / "dev.json",
               *(p for p in (tmp_path / "res").rglob("*") if p.is_file() and p.name != outputs.LOCK_FILE)]
    assert len(written) > 10
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
