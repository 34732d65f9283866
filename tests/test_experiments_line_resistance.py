"""The line_resistance simulation: paper job keys unchanged, its expansion (setups, pairs, shared
trainings, fine-tuning jobs keyed by their parent), fine-tuning from given weights, wire power in
inference records, and a tiny end-to-end run with its report section and figure."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from memnp.crossbar import Stage
from memnp.experiments import Inference, line_resistance, presets, protocol, registry, runner
from memnp.experiments.executors import run_training_job
from memnp.experiments.store import ResultsStore

DATA = Path(__file__).parent / "data"
SOURCES = {"mnist": "mnist-10k", "cifar10": None}
TINY = presets.get("tiny")


def _key_script():
    spec = importlib.util.spec_from_file_location("keys_before_lr", DATA / "make_keys_before_line_resistance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_job_keys_are_those_of_main():
    """Every job key of the nine simulations (alone and together; tiny, default and paper
    scales) is the one main gave before line_resistance existed."""
    pinned = json.loads((DATA / "keys_before_line_resistance.json").read_text())
    assert _key_script().table() == pinned


def test_default_set_and_names():
    assert "line_resistance" not in registry.default_names()
    assert "line_resistance" not in registry.default_names("default")
    assert registry.default_names("paper")[-1] == "line_resistance"
    assert registry.check_names(["line_resistance"]) == ["line_resistance"]
    sim = registry.SIMULATIONS["line_resistance"]
    assert not sim.monitor and not sim.default
    # every r of R_VALUES on both devices: ideal and aware everywhere, fine-tuned where r > 0
    assert len(sim.pairs) == 2 * (3 * len(line_resistance.R_VALUES) - 1)
    assert ("lr_high_ft_r0p1", "lr_high_r0p1") in sim.pairs and ("low_pf", "lr_low_r10") in sim.pairs
    assert registry.TRAININGS["lr_low_ft_r3"].parent == "low_pf"
    assert registry.INFERENCES["lr_low_r0p3"].wires == 0.3
    assert line_resistance.r_tag(0) == "r0" and line_resistance.r_tag(0.1) == "r0p1"


def test_tiny_expansion_pairs_and_shared_trainings():
    plan = registry.expand(["line_resistance"], TINY, 0, SOURCES)
    assert line_resistance.settings(TINY).r_values == (0.0, 1.0)
    assert list(plan.trainings) == ["ideal", "low_pf", "lr_low_ft_r1", "high_pf", "lr_high_ft_r1"]
    assert sorted(plan.inferences) == ["lr_high_r0", "lr_high_r1", "lr_low_r0", "lr_low_r1"]
    assert plan.simulations["line_resistance"]["pairs"] == [
        ["ideal", "lr_low_r0"], ["low_pf", "lr_low_r0"], ["ideal", "lr_low_r1"], ["low_pf", "lr_low_r1"],
        ["lr_low_ft_r1", "lr_low_r1"], ["ideal", "lr_high_r0"], ["high_pf", "lr_high_r0"],
        ["ideal", "lr_high_r1"], ["high_pf", "lr_high_r1"], ["lr_high_ft_r1", "lr_high_r1"]]
    assert len([j for j in plan.jobs if j.kind == "infer"]) == 10
    # the ideal and PF-aware networks are iv_nonlinearity's, keys and configs alike
    paper = registry.expand(["iv_nonlinearity"], TINY, 0, SOURCES)
    for name in ("ideal", "low_pf", "high_pf"):
        assert plan.trainings[name]["networks"] == paper.trainings[name]["networks"]
        assert plan.trainings[name]["config"] == paper.trainings[name]["config"]
    # together with other simulations the sweep shares those jobs and changes no key
    both = registry.expand(["iv_nonlinearity", "line_resistance"], TINY, 0, SOURCES)
    assert {j.key for j in paper.jobs} | {j.key for j in plan.jobs} == {j.key for j in both.jobs}
    # a training's test-during-training never includes the sweep's setups
    assert not any(i.startswith("lr_") for i in both.trainings["high_pf"]["monitor"])


def test_finetune_jobs_depend_on_their_parent():
    plan = registry.expand(["line_resistance"], TINY.override(networks=2), 5, SOURCES)
    parents = plan.trainings["high_pf"]["networks"]
    jobs = [plan.job(k) for k in plan.trainings["lr_high_ft_r1"]["networks"]]
    assert [j.depends for j in jobs] == parents and [j.content["parent"] for j in jobs] == parents
    assert [j.kind for j in jobs] == ["train", "train"] and [j.network for j in jobs] == [0, 1]
    order = [j.key for j in plan.jobs]
    assert all(order.index(j.key) > order.index(j.depends) for j in jobs)
    config = registry.training_config(jobs[0])
    s = line_resistance.settings(TINY)
    assert config.epochs == s.finetune_epochs and config.checkpoint == "memristive" and config.validation_every == 1
    assert config.data.train == s.finetune_train and config.test_stages == ()
    assert [type(n).__name__ for n in config.stage.nonidealities] == ["IVNonlinearityPF", "LineResistance", "Tiles"]
    # another parent (another run seed) -> another fine-tuning key
    other = registry.expand(["line_resistance"], TINY.override(networks=2), 6, SOURCES)
    assert not set(plan.trainings["lr_high_ft_r1"]["networks"]) & set(other.trainings["lr_high_ft_r1"]["networks"])
    entry = plan.trainings["lr_high_ft_r1"]
    assert entry["parent"] == "high_pf" and entry["wires_ohm"] == 1.0 and entry["monitor"] == []


def test_sweep_inference_configs():
    plan = registry.expand(["line_resistance"], presets.get("default"), 0, SOURCES)
    s = line_resistance.settings(presets.get("default"))
    assert sorted({v["wires_ohm"] for v in plan.inferences.values()}) == list(s.r_values)
    wired = Inference.from_dict(plan.inferences["lr_low_r10"]["config"])
    assert wired.test_examples == s.test_examples and wired.repeats == 2
    wires = wired.stage.phases["wires"]
    assert (wires.r_word, wires.r_bit) == (10.0, 10.0)
    tiles = wired.stage.phases["tiles"]
    assert (tiles.rows, tiles.cols) == (128, 64)
    assert wired.stage.G_on == Stage.from_dict(registry.device_stage("siox-low").to_dict()).G_on
    bare = Inference.from_dict(plan.inferences["lr_high_r0"]["config"])
    assert "wires" not in bare.stage.phases and "tiles" in bare.stage.phases
    # test_examples is left out of an unset config's dict (the paper's inference keys)
    assert "test_examples" not in Inference(stage=bare.stage).to_dict()
    with pytest.raises(ValueError, match="test_examples"):
        Inference(stage=bare.stage, test_examples=0)
    with pytest.raises(ValueError, match="r_values"):
        line_resistance.SweepScale((0.5,), finetune_epochs=1)


def _tiny_data(n=64):
    with np.load(Path(protocol.__file__).parents[1] / "data" / "mnist-10k.npz", allow_pickle=False) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    return {"train": (images[:n], labels[:n]), "validation": (images[n:n + 32], labels[n:n + 32]),
            "test": (images[n + 32:n + 64], labels[n + 32:n + 64])}


def test_training_starts_from_given_weights():
    plan = registry.expand(["line_resistance"], TINY, 0, SOURCES)
    parent_job = plan.job(plan.trainings["high_pf"]["networks"][0])
    data = _tiny_data()
    _, parent = run_training_job(dict(parent_job.content, training=dict(parent_job.content["training"], epochs=1)),
                                 parent_job.seed, data)
    job = plan.job(plan.trainings["lr_high_ft_r1"]["networks"][0])
    tiny_step = dict(job.content["training"], learning_rate=1e-12)
    record, weights = run_training_job(dict(job.content, training=tiny_step), job.seed, data, weights=parent)
    for name in ("layer1.w_pos", "layer3.b_neg"):   # a negligible step from the parent's weights
        np.testing.assert_allclose(weights[name], parent[name], rtol=0, atol=1e-6)
    assert record["checkpoint"]["kind"] == "memristive" and len(record["history"]["epoch"]) == 1
    # from scratch (the same config) the weights are the fresh initialisation's, not the parent's
    _, fresh = protocol.train(registry.training_config(job).replace(learning_rate=1e-12), data,
                              np.random.SeedSequence(1))
    assert np.abs(fresh["layer1.w_pos"] - parent["layer1.w_pos"]).max() > 1e-2
    with pytest.raises(ValueError, match="parent's weights"):
        run_training_job(job.content, job.seed, data)
    with pytest.raises(ValueError, match="only a fine-tuning job"):
        run_training_job(parent_job.content, parent_job.seed, data, weights=parent)
    ideal_job = plan.job(plan.trainings["ideal"]["networks"][0])
    _, standard = run_training_job(dict(ideal_job.content, training=dict(ideal_job.content["training"], epochs=1)),
                                   ideal_job.seed, data)
    with pytest.raises(ValueError, match="do not fit"):
        run_training_job(job.content, job.seed, data, weights=standard)


def test_evaluate_reports_wire_power_with_the_same_draws():
    """With wires, evaluation runs batch by batch to read the wire power: the same accuracy, loss
    and total power as one model.evaluate call with the same Generator."""
    from memnp.nn import mnist_mlp
    stage = line_resistance.wires_stage("siox-high", 3.0)
    model = mnist_mlp(np.random.default_rng(0), weights="double", stage=stage)
    data = _tiny_data()
    x, y = protocol.to_float(data["test"][0]), data["test"][1]
    ours = protocol.evaluate(model, x, y, stage, np.random.default_rng(4), batch_size=12)
    plain = model.evaluate(x, y, rng=np.random.default_rng(4), stage=stage, batch_size=12, power=True)
    assert ours["accuracy"] == plain["accuracy"]
    np.testing.assert_allclose([ours["loss"], ours["power"]], [plain["loss"], plain["power"]], rtol=1e-12)
    assert 0 < ours["wire_power"] < 0.1 * ours["power"]   # high-R devices: the wires take little
    low = line_resistance.wires_stage("siox-low", 3.0)
    model = mnist_mlp(np.random.default_rng(0), weights="double", stage=low)
    hot = protocol.evaluate(model, x, y, low, np.random.default_rng(4), batch_size=32)
    assert hot["wire_power"] > 0.2 * hot["power"]          # low-R devices: much of it
    bare = protocol.evaluate(model, x, y, line_resistance.wires_stage("siox-low", 0.0), np.random.default_rng(4), 32)
    assert "wire_power" not in bare and bare["power"] > hot["power"]


def test_tiny_run_report_and_figure(tmp_path):
    """``reproduce --preset tiny --only line_resistance`` (2 r values, tiny data) through the CLI:
    every job, wire power where there are wires, the report section and CSV, the figure; a rerun
    computes nothing."""
    from click.testing import CliRunner
    from memnp.cli import cli

    out = tmp_path / "r"
    args = ["reproduce", "--preset", "tiny", "--only", "line_resistance", "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "15 jobs computed, 0 reused" in result.output
    store, manifest = ResultsStore(out), ResultsStore(out).read_manifest()
    assert list(manifest["simulations"]) == ["line_resistance"]
    for key, job in manifest["jobs"].items():
        record = store.read_record(job["kind"], key)
        if job["kind"] == "infer":
            wired = manifest["inferences"][job["inference"]]["wires_ohm"] > 0
            assert len(record["accuracy"]) == 1 and ("wire_power" in record) == wired
            if wired:
                assert 0 < record["wire_power"][0] < record["power"][0]
        elif job["depends"]:
            assert record["content"]["parent"] == job["depends"]
    text = (out / "report" / "summary.md").read_text()
    assert "## line_resistance: test error against the line resistance" in text and "wire power" in text
    lines = (out / "report" / "line_resistance.csv").read_text().splitlines()
    assert len(lines) == 1 + 10 and lines[0].startswith("device,training_kind,training,inference,r_ohm")
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert row["device"] == "siox-low" and row["training_kind"] == "ideal" and float(row["wire_power_W"]) == 0
    assert (out / "figures" / "line_resistance.png").stat().st_size > 0
    assert (out / "figures" / "line_resistance.pdf").stat().st_size > 0
    again = runner.reproduce(["line_resistance"], TINY, 0, out)
    assert again.computed == [] and len(again.reused) == 15


def test_figure_input_checks(tmp_path):
    from memnp.plotting import line_resistance as figure
    series = {"label": "a", "color": "#000000", "r": [0, 0.1, 1], "median": [5, 6, 9], "q25": [4, 5, 8],
              "q75": [6, 7, 10]}
    paths = figure.line_resistance_figure(tmp_path / "f", [{"title": "t", "series": [series]}])
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert figure.zero_position([{"series": [dict(series, r=np.array([0, 0.1, 1]))]}]) == pytest.approx(0.1 / 10 ** 0.75)
    with pytest.raises(ValueError, match=">= 0 ohm"):
        figure.line_resistance_figure(tmp_path / "g", [{"title": "t", "series": [dict(series, r=[-1, 0.1, 1])]}])
    with pytest.raises(ValueError, match="one length"):
        figure.line_resistance_figure(tmp_path / "g", [{"title": "t", "series": [dict(series, median=[1, 2])]}])
