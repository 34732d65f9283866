"""The command line at the edges an audit probed: every bad input is one error line naming the
option and the allowed range (no traceback, nothing written), caps on sizes, --config with the
options it sets, a diverging training, non-finite weights, and inference progress."""
import json

import numpy as np
import pytest

from cli_helpers import one_error_line as _one_error_line
from cli_helpers import run_cli as _run
from memnp.cli.common import MAX_NETWORKS, MAX_REPEATS

SMALL = ("--examples", "640", "64", "100", "--validation-every", "1", "--validation-repeats", "1",
         "--checkpoint-every", "0")


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    net = tmp_path_factory.mktemp("net")
    result = _run("train", "--epochs", "1", *SMALL, "--out", net)
    assert result.exit_code == 0, result.output
    return net / "weights.npz"


@pytest.mark.parametrize("args, needles", [
    (["reproduce", "--preset", "tiny", "--repeats", "1000000000"], ["--repeats", f"1<=x<={MAX_REPEATS}"]),
    (["reproduce", "--preset", "tiny", "--networks", "1000000"], ["--networks", f"1<=x<={MAX_NETWORKS}"]),
    (["reproduce", "--preset", "tiny", "--networks", "0"], ["--networks", f"1<=x<={MAX_NETWORKS}"]),
    (["train", "--validation-repeats", "100000"], ["--validation-repeats", f"1<=x<={MAX_REPEATS}"]),
    (["train", "--test-repeats", "100000"], ["--test-repeats", f"1<=x<={MAX_REPEATS}"]),
])
def test_sizes_have_caps_named_in_the_error(tmp_path, args, needles):
    out = tmp_path / "out"
    result = _run(*args, "--out", out)
    _one_error_line(result, *needles)
    assert result.exit_code == 2 and not out.exists()


def test_infer_repeats_have_a_cap(small_net):
    _one_error_line(_run("infer", "--weights", small_net, "--repeats", "1000000000"), "--repeats",
                    f"1<=x<={MAX_REPEATS}")


@pytest.mark.parametrize("command", [["train"], ["reproduce", "--preset", "tiny"], ["infer"]])
def test_an_empty_out_is_refused_not_the_working_directory(command, small_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = command + (["--weights", str(small_net)] if command == ["infer"] else [])
    for empty in ("", " "):
        _one_error_line(_run(*args, "--out", empty), "--out", "must not be empty")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--device", "--test-device", "--data-dir"])
def test_empty_names_are_refused(option, tmp_path):
    _one_error_line(_run("train", option, "", "--out", tmp_path / "n"), option, "must not be empty")
    assert not (tmp_path / "n").exists()


def test_train_refuses_options_that_its_config_sets(tmp_path):
    config = "examples/train-siox-high.json"
    result = _run("train", "--config", config, "--epochs", "3", "--device", "siox-low", "--out", tmp_path / "n")
    _one_error_line(result, "--device, --epochs cannot be given with --config")
    assert result.exit_code == 2 and not (tmp_path / "n").exists()
    for flag in (["--regularised"], ["--test-device", "siox-high"], ["--examples", "1", "1", "1"]):
        _one_error_line(_run("train", "--config", config, *flag, "--out", tmp_path / "n"), flag[0], "--config")
    assert "edit the file instead" in " ".join(_run("train", "--help").output.split())


def test_infer_refuses_options_that_its_config_sets(small_net, tmp_path):
    for flag in (["--repeats", "3"], ["--device", "siox-low"], ["--sampling", "chip"], ["--mapping-rule", "avg"]):
        result = _run("infer", "--weights", small_net, "--config", "examples/infer-siox-high.json", *flag,
                      "--out", tmp_path / "r.json")
        _one_error_line(result, flag[0], "cannot be given with --config")
    assert not (tmp_path / "r.json").exists()
    assert "edit the file instead" in " ".join(_run("infer", "--help").output.split())


def test_a_diverging_training_says_so_and_keeps_no_weights(tmp_path):
    out = tmp_path / "net"
    result = _run("train", "--device", "siox-high", "--learning-rate", "1e30", "--epochs", "2", *SMALL[:-2],
                  "--out", out)
    _one_error_line(result, "training diverged in epoch 1", "lower the learning rate (it is 1e+30)")
    assert result.exit_code == 1
    assert not (out / "weights.npz").exists() and not (out / "training.json").exists()
    assert not (out / "checkpoints").exists()


def test_the_protocol_raises_on_divergence_before_keeping_nan_weights():
    from memnp.experiments import Training, protocol
    from memnp.experiments.configs import DataSpec
    from memnp.experiments.datasource import load
    from memnp.data.presets import preset_stage
    training = Training(data=DataSpec(name="mnist-10k", train=640, validation=64, test=100),
                        stage=preset_stage("siox-high"), epochs=2, learning_rate=1e30, validation_every=1,
                        validation_repeats=1)
    data = load(training.data)
    with pytest.raises(protocol.TrainingDiverged, match="diverged in epoch 1"):
        protocol.train(training, data, np.random.SeedSequence(0))
    assert issubclass(protocol.TrainingDiverged, RuntimeError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_infer_refuses_non_finite_weights(small_net, tmp_path, bad):
    arrays = dict(np.load(small_net, allow_pickle=False))
    arrays["layer1.W"] = arrays["layer1.W"].copy()
    arrays["layer1.W"][3, 4] = bad
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    result = _run("infer", "--weights", path, "--test-examples", "50", "--repeats", "1")
    _one_error_line(result, "--weights", "layer1.W holds NaN or infinite values")
    assert result.exit_code == 2


def test_infer_reports_each_repeat_off_a_terminal(small_net, tmp_path):
    result = _run("infer", "--weights", small_net, "--device", "siox-high", "--repeats", "3",
                  "--test-examples", "50", "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("(50 examples), 3 repeats")    # said before the work starts
    record = json.loads((tmp_path / "r.json").read_text())
    for r, accuracy in enumerate(record["accuracy"], 1):
        assert f"repeat {r}/3: error {100 * (1 - accuracy):.2f} %" in lines[r]
    assert lines[4].startswith("median error")


# -- fit-device ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def high_curves(tmp_path_factory):
    """Synthetic high-resistance curves only (no low-resistance regime)."""
    from memnp.data.devices import synthetic_siox_curves
    data = synthetic_siox_curves(40, 0, covariance=[[1e-6, 0], [0, 1e-6]])
    path = tmp_path_factory.mktemp("curves") / "curves.npz"
    np.savez(path, V=data.V, I=data.I)
    return path, data


def test_fit_device_both_on_one_regime_fits_that_regime_and_says_so(high_curves, tmp_path):
    path, _ = high_curves
    result = _run("fit-device", path, "--out", tmp_path / "mine.json")
    assert result.exit_code == 0, result.output
    assert "only the high-resistance regime has 3 or more fitted curves" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-high.json"]


def test_fit_device_out_file_name_gives_low_and_high_files(shared_data, tmp_path):
    result = _run("fit-device", shared_data / "SiO_x-multistate-data.mat", "--out", tmp_path / "mine.json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-high.json", "mine-low.json"]


@pytest.mark.parametrize("k_v", ["50", "0.51", "nan", "inf", "0", "-1"])
def test_fit_device_k_v_stays_in_the_fitted_voltage_range(high_curves, tmp_path, k_v):
    path, _ = high_curves
    result = _run("fit-device", path, "--k-v", k_v, "--regime", "high", "--out", tmp_path / "d.json")
    _one_error_line(result, "--k-v", "0<x<=0.5")
    assert not (tmp_path / "d.json").exists()


def test_fit_device_bad_files_name_the_problem(high_curves, tmp_path):
    path, data = high_curves
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _one_error_line(_run("fit-device", empty), str(empty), "is not a readable .npz file")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    _one_error_line(_run("fit-device", garbage), "is not a readable .npz file")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.ones(3))
    _one_error_line(_run("fit-device", other), "must hold arrays named V and I", "it holds x")
    oned = tmp_path / "oned.npz"
    np.savez(oned, V=data.V[0], I=data.I[0])
    _one_error_line(_run("fit-device", oned), "I has shape (", "expected (curves, points) with at least 3 curves")
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, V=data.V[:, :50], I=data.I)
    _one_error_line(_run("fit-device", mismatch), "V has shape")
    negative = tmp_path / "negative.npz"
    np.savez(negative, V=data.V, I=-data.I)
    _one_error_line(_run("fit-device", negative), "currents at positive voltages up to 0.5 V are negative",
                    "flip the sign")
    _one_error_line(_run("fit-device", path, "--name", ""), "--name", "must not be empty")
    _one_error_line(_run("fit-device", path, "--out", ""), "--out", "must not be empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npz", "garbage.npz", "mismatch.npz",
                                                          "negative.npz", "oned.npz", "other.npz"]


# -- reproduce --device-file reaches every stage derived from the preset ---------------------------
def test_derived_variants_of_the_built_in_presets_are_the_built_in_variants():
    from memnp.data import presets
    for base, count in (("siox-high-chip", 4), ("siox-high", 12)):
        variants = presets.derived_variants(base, presets.preset(base))
        assert len(variants) == count
        for name, stage in variants.items():
            assert stage == presets.preset(name), name
    assert presets.derived_variants("stuck-off", presets.preset("stuck-off")) == {}


def _pf(stage):
    return next(item for item in stage["nonidealities"] if item["type"] == "IVNonlinearityPF")


def test_an_edited_chip_reaches_the_drift_reads(tmp_path):
    from memnp.data import presets as device_presets
    from memnp.experiments import presets, runner
    edited = device_presets.preset_record("siox-high-chip").to_dict()
    edited["stage"]["nonidealities"][3]["sigma_rel"] = 0.1   # ReadNoise: 10 % instead of 5 %
    path = tmp_path / "chip.json"
    path.write_text(json.dumps(edited))
    plan, _, _ = runner.plan_run(["drift"], presets.get("tiny"), 0, devices=[path])
    times = {"chip_1s": 1.0, "chip_1h": 3600.0, "chip": 86400.0, "chip_1mo": 2592000.0, "chip_1y": 31536000.0}
    for name, t in times.items():
        items = plan.inferences[name]["config"]["stage"]["nonidealities"]
        assert {"type": "ReadNoise", "sigma_rel": 0.1} in items, name
        assert next(item for item in items if item["type"] == "Drift")["t"] == t
    assert plan.trainings["chip_1s"]["config"]["stage"]["nonidealities"][3]["sigma_rel"] == 0.1


def test_an_edited_siox_high_reaches_the_line_resistance_sweep_and_the_adc_reads(tmp_path):
    from memnp.data import presets as device_presets
    from memnp.experiments import presets, runner
    edited = device_presets.preset_record("siox-high").to_dict()
    _pf(edited["stage"])["slopes"] = [-1.1, -0.1]
    path = tmp_path / "high.json"
    path.write_text(json.dumps(edited))
    tiny = presets.get("tiny")
    built_in, _, _ = runner.plan_run(["line_resistance", "adc"], tiny, 0)
    plan, _, _ = runner.plan_run(["line_resistance", "adc"], tiny, 0, devices=[path])
    high = [name for name in plan.inferences if name.startswith(("lr_high", "adc"))]
    assert len(high) >= 14
    for name in high:
        assert list(_pf(plan.inferences[name]["config"]["stage"])["slopes"]) == [-1.1, -0.1], name
    for name in plan.inferences:
        if name.startswith("lr_low"):
            assert plan.inferences[name] == built_in.inferences[name]
    finetuned = [name for name in plan.trainings if name.startswith("lr_high_ft")]
    assert finetuned
    for name in finetuned + ["high_pf"]:
        assert list(_pf(plan.trainings[name]["config"]["stage"])["slopes"]) == [-1.1, -0.1], name
        assert plan.trainings[name]["networks"] != built_in.trainings[name]["networks"]


# -- data directories that are files ------------------------------------------------------------------
def test_a_data_directory_that_is_a_file_is_named(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = tmp_path / "out"
    _one_error_line(_run("train", "--data-dir", afile, "--out", out), "--data-dir", "is a file")
    result = _run("reproduce", "--preset", "tiny", "--download", "--data-dir", afile / "sub", "--out", out)
    _one_error_line(result, f"--data-dir {afile / 'sub'} cannot be created: {afile} is not a directory")
    monkeypatch.setenv("MEMNP_DATA", str(afile))   # not a silent fallback to the embedded subset either
    _one_error_line(_run("train", "--out", out), f"$MEMNP_DATA {afile} is not a directory")
    _one_error_line(_run("reproduce", "--preset", "tiny", "--download", "--out", out),
                    f"$MEMNP_DATA {afile} exists and is not a directory")
    assert not out.exists()


def test_jobs_have_a_cap(tmp_path):
    from memnp.cli.common import MAX_JOBS
    out = tmp_path / "out"
    for jobs in (str(MAX_JOBS + 1), "1000000000", "0", "true"):
        result = _run("reproduce", "--preset", "tiny", "--jobs", jobs, "--out", out)
        _one_error_line(result, "--jobs", f"is not an integer from 1 to {MAX_JOBS} or 'auto'")
        result = _run("figures", "--results", tmp_path, "--out", out, "--jobs", jobs)
        _one_error_line(result, "--jobs", f"is not an integer from 1 to {MAX_JOBS} or 'auto'")
    assert not out.exists()


def test_bench_usage_errors_are_the_scripts_one_line(capfd):
    result = _run("bench", "epoch", "--threads", "0")
    assert result.exit_code == 2 and "Error:" not in result.output
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1] == "epoch.py: error: argument --threads: must be an integer from 1 to 1024; got '0'"


def test_a_diverging_reproduce_says_so_in_one_line(tmp_path):
    out = tmp_path / "out"
    result = _run("reproduce", "--preset", "tiny", "--only", "iv_nonlinearity", "--learning-rate", "1e300",
                  "--jobs", "1", "--no-figures", "--out", out)
    _one_error_line(result, "failed: TrainingDiverged: training diverged in epoch 1",
                    "lower the learning rate (it is 1e+300)", f"the finished jobs are kept in {out}")
    assert result.exit_code == 1 and not list((out / "jobs" / "train").glob("*.npz"))


def test_validation_every_beyond_the_epochs_is_refused_for_memristive_training(tmp_path):
    result = _run("train", "--device", "siox-high", "--epochs", "5", "--out", tmp_path / "n")   # default every 10
    _one_error_line(result, "--validation-every 10 exceeds --epochs 5", "give --validation-every from 1 to 5")
    assert result.exit_code == 2 and not (tmp_path / "n").exists()
