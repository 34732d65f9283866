"""The command line: help, invalid input (clear errors, nothing written), and each command."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from memnp.cli import arguments, cli

COMMANDS = ["reproduce", "train", "infer", "report", "figures", "fit-device", "bench"]


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command):
    result = _run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "python run.py" in result.output


def test_no_command_means_reproduce():
    assert arguments([]) == ["reproduce"]
    assert arguments(["--preset", "tiny"]) == ["reproduce", "--preset", "tiny"]
    assert arguments(["--help"]) == ["--help"]
    assert arguments(["train", "--out", "x"]) == ["train", "--out", "x"]


def test_import_memnp_loads_neither_click_nor_matplotlib():
    code = ("import sys, memnp, memnp.experiments, memnp.experiments.runner, memnp.experiments.report; "
            "print('click' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "Invalid value for '--epochs'"),
    (["--only", "everything"], "Invalid value for '--only'"),
    (["--preset", "huge"], "Invalid value for '--preset'"),
    (["--seed", "-3"], "Invalid value for '--seed'"),
    (["--jobs", "0"], "Invalid value for '--jobs'"),
    (["--repeats", "x"], "Invalid value for '--repeats'"),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "either --jobs or --scheduler"),
    (["--scheduler", "nowhere"], "--scheduler must be an address like tcp://HOST:PORT"),
])
def test_invalid_reproduce_input_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = _run("reproduce", "--preset", "tiny", "--out", out, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_reproduce_refuses_foreign_or_file_outputs(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    result = _run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", foreign)
    assert result.exit_code == 2 and "without a memnp manifest.json" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    afile = tmp_path / "file"
    afile.write_text("x")
    result = _run("reproduce", "--preset", "tiny", "--out", afile)
    assert result.exit_code == 2 and "is not a directory" in result.output


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "results"
    result = _run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", out, "--seed", "2")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_reproduce_writes_results_report_and_figures(tiny_results):
    out, output = tiny_results
    assert "4 jobs computed, 0 reused" in output
    assert f"results: {out.resolve()}" in output
    assert f"report: {(out / 'report' / 'summary.md').resolve()}" in output
    assert "figures: " in output or "figures not drawn" in output
    for name in ("summary.md", "summary.csv", "robustness.csv", "diagonal.csv"):
        assert (out / "report" / name).stat().st_size > 0
    rerun = _run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", out, "--seed", "2",
                 "--no-figures")
    assert "0 jobs computed, 4 reused" in rerun.output and "figures" not in rerun.output


def test_report_and_figures_commands_read_the_store(tiny_results, tmp_path):
    out, _ = tiny_results
    result = _run("report", "--results", out)
    assert result.exit_code == 0 and "summary.csv" in result.output
    missing = _run("report", "--results", tmp_path)
    assert missing.exit_code == 2 and "not a memnp results directory" in missing.output
    figures = _run("figures", "--results", out, "--out", tmp_path / "figs", "--only", "robustness")
    assert figures.exit_code == 0
    if "figures not drawn" not in figures.output:
        assert (tmp_path / "figs" / "robustness.png").is_file()


def test_train_with_a_reproduce_config_gives_the_same_network(tiny_results, tmp_path):
    out, _ = tiny_results
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["trainings"]["stuck_off"]
    config = tmp_path / "training.json"
    config.write_text(json.dumps(entry["config"]))
    result = _run("train", "--config", config, "--seed", "2", "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    ours = np.load(tmp_path / "net" / "weights.npz", allow_pickle=False)
    stored = np.load(out / "jobs" / "train" / f"{entry['networks'][0]}.npz", allow_pickle=False)
    assert sorted(ours.files) == sorted(stored.files)
    for name in ours.files:
        np.testing.assert_array_equal(ours[name], stored[name])
    record = json.loads((tmp_path / "net" / "training.json").read_text())
    assert record["checkpoint"]["kind"] == "memristive"


def test_train_and_infer_from_flags(tmp_path):
    net = tmp_path / "net"
    result = _run("train", "--device", "stuck-off", "--epochs", "2", "--examples", "128", "64", "100",
                  "--validation-every", "1", "--validation-repeats", "2", "--test-device", "d2d-high",
                  "--test-every", "1", "--test-repeats", "1", "--out", net)
    assert result.exit_code == 0, result.output
    record = json.loads((net / "training.json").read_text())
    assert record["validation"]["epoch"] == [1, 2] and len(record["test"]) == 1
    assert record["content"]["training"]["stage"]["nonidealities"][0]["type"] == "StuckAtGOff"
    rec_path = tmp_path / "r.json"
    result = _run("infer", "--weights", net / "weights.npz", "--device", "d2d-high", "--repeats", "3",
                  "--sampling", "chip", "--test-examples", "100", "--out", rec_path)
    assert result.exit_code == 0, result.output
    assert "median error" in result.output and "TOPS/W" in result.output
    inferred = json.loads(rec_path.read_text())
    assert len(inferred["accuracy"]) == 3 and inferred["content"]["inference"]["sampling"] == "chip"
    # the same command and seed give the same numbers
    again = _run("infer", "--weights", net / "weights.npz", "--device", "d2d-high", "--repeats", "3",
                 "--sampling", "chip", "--test-examples", "100", "--out", tmp_path / "r2.json")
    assert json.loads((tmp_path / "r2.json").read_text())["accuracy"] == inferred["accuracy"]


def test_train_and_infer_invalid_input_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"stage": ')
    result = _run("infer", "--weights", bad, "--device", "siox-high", "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "is not a readable .npz file" in result.output
    result = _run("train", "--config", bad, "--out", tmp_path / "n1")
    assert result.exit_code == 2 and "is not a readable JSON file" in result.output
    config = tmp_path / "t.json"
    config.write_text(json.dumps({"data": {"name": "mnist-10k"}, "stage": {"G_off": 1e-6, "G_on": 1e-5},
                                  "epochs": -1}))
    result = _run("train", "--config", config, "--out", tmp_path / "n2")
    assert result.exit_code == 2 and "epochs must be an integer >= 1" in result.output
    result = _run("train", "--device", "unobtainium", "--out", tmp_path / "n3")
    assert result.exit_code == 2 and "preset name" in result.output
    result = _run("train", "--examples", "9000", "10", "10", "--dataset", "mnist-10k", "--out", tmp_path / "n4")
    assert result.exit_code == 2 and "exceeds" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "t.json"]


def test_fit_device_recovers_synthetic_pf_parameters(tmp_path):
    from memnp.data.devices import synthetic_siox_curves
    from memnp.data.presets import SIOX_HIGH, load_preset_record
    curves = synthetic_siox_curves(40, 0, covariance=[[1e-6, 0], [0, 1e-6]])
    path = tmp_path / "curves.npz"
    np.savez(path, V=curves.V, I=curves.I)
    result = _run("fit-device", path, "--regime", "high", "--out", tmp_path / "dev.json", "--name", "mine")
    assert result.exit_code == 0, result.output
    record = load_preset_record(tmp_path / "dev.json")
    pf = record.stage["nonidealities"][0]
    assert record.name == "mine" and pf["type"] == "IVNonlinearityPF"
    np.testing.assert_allclose(pf["slopes"], SIOX_HIGH["slopes"], atol=0.02)
    # the preset works as a training device
    result = _run("train", "--device", tmp_path / "dev.json", "--epochs", "1", "--examples", "64", "64", "100",
                  "--validation-repeats", "1", "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    # no low-resistance curves: a clear error, nothing written
    result = _run("fit-device", path, "--regime", "low", "--out", tmp_path / "low.json")
    assert result.exit_code == 2 and "fewer than 3 curves" in result.output
    assert not (tmp_path / "low.json").exists()


def test_fit_device_on_the_measured_siox_data(shared_data, tmp_path):
    from memnp.data.presets import SIOX_HIGH, SIOX_LOW, load_preset_record
    result = _run("fit-device", shared_data / "SiO_x-multistate-data.mat", "--out", tmp_path / "siox")
    assert result.exit_code == 0, result.output
    for regime, published in (("low", SIOX_LOW), ("high", SIOX_HIGH)):
        stage = load_preset_record(tmp_path / f"siox-{regime}.json").stage
        assert stage["G_off"] == pytest.approx(published["G_off"], rel=1e-4)
        np.testing.assert_allclose(stage["nonidealities"][0]["slopes"], published["slopes"], rtol=1e-4)


def test_bench_lists_and_validates_names():
    result = _run("bench", "--list")
    assert result.exit_code == 0 and "reproduce" in result.output.split()
    result = _run("bench", "nonexistent")
    assert result.exit_code == 2 and "unknown benchmark 'nonexistent'" in result.output
