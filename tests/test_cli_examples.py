"""The shipped sample configs (examples/) run, a training.json written by `train` is a valid
`train --config`, and the CLI's defaults, printing and bench pass-through (issue 9, item 6)."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memnp.cli import cli
from memnp.cli.group import _split_bench_arguments
from memnp.experiments import Inference, Training
from memnp.experiments.configs import training_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {"epochs": 2, "validation_every": 1, "validation_repeats": 2, "test_every": 2, "test_repeats": 1,
        "data": {"name": "mnist-10k", "train": 128, "validation": 64, "test": 100}}


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_every_example_is_a_valid_config():
    trains = sorted(EXAMPLES.glob("train-*.json"))
    infers = sorted(EXAMPLES.glob("infer-*.json"))
    assert trains and infers
    for path in trains:
        training = Training.from_dict(json.loads(path.read_text()))
        assert training.learning_rate == 0.3 and not training.stage.is_ideal
    for path in infers:
        assert Inference.from_dict(json.loads(path.read_text())).repeats == 25


def test_the_examples_run_at_tiny_scale_and_training_json_trains_again(tmp_path):
    config = dict(json.loads((EXAMPLES / "train-siox-high.json").read_text()), **TINY)
    (tmp_path / "train.json").write_text(json.dumps(config))
    result = _run("train", "--config", tmp_path / "train.json", "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    assert "kept the weights of the best epoch: " in result.output and " of 2 (median validation accuracy " in result.output
    accuracy = result.output.split("median validation accuracy ")[1].split(" %")[0]
    assert len(accuracy.split(".")[1]) == 2                   # rounded: two decimals of a percentage

    inference = dict(json.loads((EXAMPLES / "infer-siox-high.json").read_text()), repeats=2)
    (tmp_path / "infer.json").write_text(json.dumps(inference))
    result = _run("infer", "--weights", tmp_path / "net" / "weights.npz", "--config", tmp_path / "infer.json",
                  "--test-examples", "100", "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "r.json").read_text())["accuracy"]) == 2

    # the record train wrote is itself a config: the same setup and seed give the same network
    record = json.loads((tmp_path / "net" / "training.json").read_text())
    assert training_config(record) == training_config(config)
    result = _run("train", "--config", tmp_path / "net" / "training.json", "--out", tmp_path / "again")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "net" / "weights.npz", allow_pickle=False) as first, \
            np.load(tmp_path / "again" / "weights.npz", allow_pickle=False) as second:
        assert sorted(first.files) == sorted(second.files)
        for name in first.files:
            np.testing.assert_array_equal(first[name], second[name])


def test_train_default_learning_rate_is_the_default_presets(tmp_path):
    text = " ".join(_run("train", "--help").output.split())
    assert "SGD learning rate. 0.3, as reproduce's default preset" in text and "[default: 0.3" in text
    assert "Use 0.01 with --epochs 1000 for the paper's protocol" in text
    result = _run("train", "--epochs", "1", "--examples", "64", "64", "100", "--dataset", "mnist-10k",
                  "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "net" / "training.json").read_text())
    assert record["content"]["training"]["learning_rate"] == 0.3
    assert "kept the weights of the best epoch: 1 of 1 (validation accuracy " in result.output


def test_bench_passes_options_through():
    assert _split_bench_arguments(["kernels", "--quick"]) == (["kernels"], ["--quick"])
    assert _split_bench_arguments(["kernels", "epoch", "--cases", "c", "--quick"]) == \
        (["kernels", "epoch"], ["--cases", "c", "--quick"])
    assert _split_bench_arguments(["kernels", "--", "--quick"]) == (["kernels"], ["--quick"])
    assert _split_bench_arguments(["kernels"]) == (["kernels"], [])
    result = _run("bench", "bogus", "--quick")
    assert result.exit_code == 2 and "unknown benchmark 'bogus'" in result.output


@pytest.mark.parametrize("args", [["kernels", "--quick", "--help"], ["epoch", "--help"]])
def test_bench_options_reach_the_script(capfd, args):
    result = _run("bench", *args)
    assert result.exit_code == 0, result.output
    assert f"== bench/{args[0]}.py {' '.join(args[1:])}" in result.output
    assert f"usage: {args[0]}.py" in capfd.readouterr().out      # the script's own argparse help


def test_the_cifar_skip_line_says_it_once(tmp_path):
    from memnp.experiments import datasource
    from memnp.experiments.runner import skip_message
    with pytest.raises(datasource.DataUnavailable) as info:
        datasource.resolve("cifar10", tmp_path)
    line = skip_message("cifar10", str(info.value), ["iv_nonlinearity_cnn (all pairs)"])
    assert "\n" not in line and line.count("not available") == 1 and line.count("skipped") == 1
    assert line.startswith("skip: CIFAR-10 (binary version) is not available (its files are missing from ")
    assert str(tmp_path) in line and line.endswith("so these are skipped: iv_nonlinearity_cnn (all pairs). "
                                                   "Use --data-dir DIR or --download.")
