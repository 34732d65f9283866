"""The simulations beyond the paper (issue 10, item 6: ``combined``, ``drift``, ``adc``): the paper's
job keys are untouched, the registry expands them sharing the trainings they should, their devices
are the documented chip and its variants, and a tiny run writes their report tables and figures."""
import json
from pathlib import Path

import numpy as np
import pytest

from memnp.data import presets as device_presets
from memnp.experiments import presets, registry, runner

DATA = Path(__file__).parent / "data"
NEW = ("combined", "drift", "adc")
SOURCES = {"mnist": "mnist-10k", "cifar10": "cifar10"}


def _keys(scale, seed, simulation):
    plan = registry.expand([simulation], presets.get(scale), seed, SOURCES)
    return sorted(f"{j.kind}:{j.training}:{j.inference or ''}:{j.network}:{j.key}" for j in plan.jobs)


def test_paper_job_keys_are_those_of_the_main_branch():
    """tests/data/paper_job_keys.json was written by tests/data/make_paper_job_keys.py on the main
    branch (before the pipeline and the new simulations): every key of the nine simulations, at
    three scales, is still the same."""
    reference = json.loads((DATA / "paper_job_keys.json").read_text())
    assert len(reference) == 3
    for case, simulations in reference.items():
        scale, seed = case.split("/seed=")
        assert sorted(simulations) == sorted(registry.PAPER_SIMULATIONS)
        for name, keys in simulations.items():
            assert _keys(scale, int(seed), name) == keys, (case, name)
    # and selecting the new simulations too changes none of them
    plan = registry.expand(list(registry.SIMULATIONS), presets.get("tiny"), 0, SOURCES)
    every = {f"{j.kind}:{j.training}:{j.inference or ''}:{j.network}:{j.key}" for j in plan.jobs}
    assert set().union(*map(set, reference["tiny/seed=0"].values())) <= every


def test_new_simulations_expand_with_shared_trainings():
    assert list(registry.SIMULATIONS)[9:12] == list(NEW)
    assert registry.PAPER_SIMULATIONS == tuple(registry.SIMULATIONS)[:9]
    for name in NEW:
        assert not registry.SIMULATIONS[name].monitor
        assert registry.check_names([name]) == [name]
    assert registry.SIMULATIONS["combined"].pairs == (("ideal", "chip"), ("high_pf", "chip"), ("chip", "chip"))
    times = ["chip_1s", "chip_1h", "chip", "chip_1mo", "chip_1y"]
    assert registry.SIMULATIONS["drift"].pairs == tuple((t, i) for t in ("ideal", "chip_1s", "chip") for i in times)
    adc = registry.SIMULATIONS["adc"].pairs
    assert len(adc) == 24 and {t for t, _ in adc} == {"ideal", "high_pf"}
    assert {i for _, i in adc} == {f"adc{b}{s}" for b in range(3, 9) for s in ("", "_tiles")}
    tiny = presets.get("tiny")
    plan = registry.expand(list(NEW), tiny, 0, SOURCES)
    trains = [j for j in plan.jobs if j.kind == "train"]
    assert sorted(j.training for j in trains) == ["chip", "chip_1s", "high_pf", "ideal"]
    # 3 + 15 + 24 pairs; (ideal, chip) and (chip, chip) are the same jobs in combined and drift
    assert len([j for j in plan.jobs if j.kind == "infer"]) == 40
    # the shared trainings are the paper's own jobs (same keys as when expanded for the paper)
    paper = registry.expand(["iv_nonlinearity"], tiny, 0, SOURCES)
    shared = {j.training: j.key for j in paper.jobs if j.kind == "train" and j.training in ("ideal", "high_pf")}
    assert shared == {j.training: j.key for j in trains if j.training in ("ideal", "high_pf")}
    for name in ("chip", "chip_1s"):
        assert registry.monitor_inferences(name) == [] and plan.trainings[name]["monitor"] == []
    assert registry.monitor_inferences("ideal") == list(registry.AGNOSTIC_INFERENCES)


def test_chip_preset_and_variants():
    stage = device_presets.preset_stage("siox-high-chip")
    assert list(stage.phases) == ["programming", "drift", "stuck", "read_noise", "dac", "currents", "adc", "tiles"]
    p = stage.phases
    assert (p["programming"].R_on_log_std, p["programming"].R_off_log_std) == (0.25, 0.25)
    assert (p["drift"].nu_mean, p["drift"].nu_std, p["drift"].t, p["drift"].t0) == (0.01, 0.005, 86400.0, 1.0)
    assert (type(p["stuck"]).__name__, p["stuck"].p, p["stuck"].G_off) == ("StuckAtGOff", 0.02, stage.G_off)
    assert p["read_noise"].sigma_rel == 0.05 and p["dac"].bits == 6 and p["adc"].bits == 6
    assert p["adc"].full_scale == "worst-case" and (p["tiles"].rows, p["tiles"].cols) == (128, 64)
    assert p["currents"] == device_presets.preset_stage("siox-high").nonpreserving
    assert device_presets.preset_record("siox-high-chip").synthetic
    assert "siox-high-chip" in device_presets.list_presets()
    assert "siox-high-chip-1y" not in device_presets.list_presets()
    seconds = {"1s": 1.0, "1h": 3600.0, "1mo": 30 * 86400.0, "1y": 365 * 86400.0}
    for suffix, t in seconds.items():
        variant = device_presets.preset_stage(f"siox-high-chip-{suffix}")
        assert variant.phases["drift"].t == t
        assert [n for n in variant.nonidealities if n.label != variant.phases["drift"].label] == \
            [n for n in stage.nonidealities if n.label != p["drift"].label]
    for bits in range(3, 9):
        one = device_presets.preset_stage(f"siox-high-adc{bits}")
        tiled = device_presets.preset_stage(f"siox-high-adc{bits}-tiles")
        assert list(one.phases) == ["currents", "adc"] and one.phases["adc"].bits == bits
        assert list(tiled.phases) == ["currents", "adc", "tiles"] and tiled.phases["adc"].bits == bits
    # every new inference setup's device is a preset
    for name in {i for s in NEW for _, i in registry.SIMULATIONS[s].pairs}:
        registry.device_stage(registry.INFERENCES[name].device)


def test_chip_preset_round_trips_through_a_json_file(tmp_path):
    """What `train --device FILE` / `infer --device FILE` read: a preset file with pipeline classes."""
    path = device_presets.save_preset(device_presets.preset_record("siox-high-chip"), tmp_path / "chip.json")
    assert device_presets.preset_stage(path) == device_presets.preset_stage("siox-high-chip")
    data = json.loads(path.read_text())
    data["stage"]["nonidealities"].append({"type": "ReadNoise"})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sigma_rel"):
        device_presets.load_preset_record(path)


@pytest.mark.slow
def test_tiny_run_of_the_new_simulations_in_chip_mode(tmp_path):
    """Every new simulation end to end at the tiny scale with --sampling chip (the chip's draws
    held over a test pass, read noise fresh), then its report tables and figures."""
    out = tmp_path / "r"
    scale = presets.get("tiny").override(sampling="chip", repeats=2)
    result = runner.reproduce(list(NEW), scale, 0, out)
    assert len(result.computed) == 44 and not result.reused
    from memnp.experiments.report import write_report
    from memnp.experiments.store import ResultsStore
    manifest = ResultsStore(out).read_manifest()
    errors = {}
    for key, job in manifest["jobs"].items():
        record = ResultsStore(out).read_record(job["kind"], key)
        if job["kind"] == "infer":
            assert manifest["inferences"][job["inference"]]["config"]["sampling"] == "chip"
            assert len(record["accuracy"]) == 2 and all(p > 0 for p in record["power"])
            errors[job["training"], job["inference"]] = record
    # drift lowers every conductance: the same network draws less power a year after programming
    for training in ("ideal", "chip_1s", "chip"):
        assert np.mean(errors[training, "chip_1y"]["power"]) < np.mean(errors[training, "chip_1s"]["power"])
    paths = write_report(out)
    text = paths["summary.md"].read_text()
    for heading in ("## combined", "## drift", "## adc", "Beyond the paper: drift", "Beyond the paper: ADC"):
        assert heading in text
    drift = paths["drift.csv"].read_text().splitlines()
    assert drift[0] == "training,inference,seconds,median_error_pct,iqr_error_pct" and len(drift) == 1 + 15
    adc = paths["adc.csv"].read_text().splitlines()
    assert len(adc) == 1 + 24 and all(line.split(",")[3] != "" for line in adc[1:])
    pytest.importorskip("matplotlib")
    from memnp.plotting import draw_all
    drawn = draw_all(out, tmp_path / "figs", only=["combined", "drift", "adc"], strict=True)
    names = {p.name for p in drawn}
    assert {"drift.png", "drift.pdf", "adc.png", "adc.pdf", "error_vs_power_combined.png"} <= names
    assert not drawn.skipped


def test_reproduce_takes_preset_files_in_place_of_built_in_presets(tmp_path):
    """runner.plan_run (reproduce --device-file): a file named like a preset the simulations use
    replaces it; only the jobs that use it get new keys."""
    record = device_presets.preset_record("siox-high-chip")
    edited = record.to_dict()
    edited["stage"]["nonidealities"][3]["sigma_rel"] = 0.1   # ReadNoise: 10 % instead of 5 %
    path = tmp_path / "chip.json"
    path.write_text(json.dumps(edited))
    tiny = presets.get("tiny")
    built_in, _, _ = runner.plan_run(["combined"], tiny, 0)
    replaced, _, _ = runner.plan_run(["combined"], tiny, 0, devices=[path])
    assert replaced.trainings["ideal"]["networks"] == built_in.trainings["ideal"]["networks"]
    assert replaced.trainings["high_pf"]["networks"] == built_in.trainings["high_pf"]["networks"]
    assert replaced.trainings["chip"]["networks"] != built_in.trainings["chip"]["networks"]
    noise = replaced.inferences["chip"]["config"]["stage"]["nonidealities"][3]
    assert noise == {"type": "ReadNoise", "sigma_rel": 0.1}
    assert {j.key for j in replaced.jobs}.isdisjoint({j.key for j in built_in.jobs if j.training == "chip"})
    with pytest.raises(ValueError, match="replaces a preset the selected simulations use"):
        runner.plan_run(["stuck_off"], tiny, 0, devices=[path])
    with pytest.raises(ValueError, match="two device files"):
        runner.plan_run(["combined"], tiny, 0, devices=[path, path])
    edited["stage"]["nonidealities"][6]["bits"] = 40   # ADC
    path.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match=r"device file .*chip.json: bits must be an integer from 1 to 16"):
        runner.plan_run(["combined"], tiny, 0, devices=[path])


def test_cli_train_infer_and_reproduce_read_the_chip_from_json(tmp_path):
    from click.testing import CliRunner

    from memnp.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    path = device_presets.save_preset(device_presets.preset_record("siox-high-chip"), tmp_path / "chip.json")
    result = run("train", "--device", path, "--epochs", "1", "--examples", 64, 32, 32, "--validation-every", 1,
                 "--validation-repeats", 1, "--out", tmp_path / "net", "--checkpoint-every", 0)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "net" / "training.json").read_text())
    assert saved["content"]["training"]["stage"]["pipeline"][-1] == "tiles"
    result = run("infer", "--weights", tmp_path / "net" / "weights.npz", "--device", path, "--repeats", 2,
                 "--sampling", "chip", "--test-examples", 50, "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "Tiles(rows=128,cols=64)" in result.output and len(json.loads((tmp_path / "r.json").read_text())["accuracy"]) == 2
    result = run("reproduce", "--preset", "tiny", "--only", "stuck_off", "--device-file", path,
                 "--out", tmp_path / "res")
    assert result.exit_code == 2 and "replaces a preset the selected simulations use" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "res").exists()


def test_sweep_figures_from_plain_data(tmp_path):
    pytest.importorskip("matplotlib")
    from memnp.plotting import sweeps
    t = np.array([1.0, 3600.0, 86400.0, 2592000.0, 31536000.0])
    series = [{"label": "a", "color": "#0072B2", "x": t, "median": [10, 11, 12, np.nan, 14],
               "q25": [9, 10, 11, np.nan, 13], "q75": [11, 12, 13, np.nan, 15]}]
    for paths in (sweeps.drift_figure(tmp_path / "drift", series, trained_at={"a": 86400.0}),
                  sweeps.adc_figure(tmp_path / "adc", [dict(series[0], x=[3, 4, 5, 6, 7])],
                                    references=[{"label": "no ADC", "color": "#000000", "value": 9.0}])):
        png, pdf = paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 8000
        assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="> 0 seconds"):
        sweeps.drift_figure(tmp_path / "bad", [dict(series[0], x=t - 1)])


def test_sweep_legends_name_every_mark(tmp_path, monkeypatch):
    """The legends sit above the axes and name the bands and the trained-at markers; the adc
    legend has one entry per training colour and one per array layout."""
    pytest.importorskip("matplotlib")
    from memnp.plotting import sweeps, style
    kept = {}
    monkeypatch.setattr(style, "save", lambda fig, path: kept.setdefault(style.figure_paths(path)[0].stem, fig))
    t = np.array([1.0, 3600.0, 86400.0])
    mk = lambda label, color, **kw: dict(label=label, color=color, x=t, median=[10, 11, 12],  # noqa: E731
                                         q25=[9, 10, 11], q75=[11, 12, 13], **kw)
    sweeps.drift_figure(tmp_path / "drift", [mk("Ideal", "#D55E00"), mk("Aware at 1 day", "#0072B2")],
                        trained_at={"Aware at 1 day": 86400.0})
    fig = kept["drift"]
    assert not fig.axes[0].get_legend() and len(fig.legends) == 1
    assert [x.get_text() for x in fig.legends[0].get_texts()] == ["Ideal", "Aware at 1 day", sweeps.BAND_LABEL,
                                                                  "Time trained for"]
    bits = np.array([3.0, 4.0, 5.0])
    series = [dict(mk(f"{g}, {v}", c, group=g, variant=v, linestyle=ls), x=bits)
              for g, c in (("Ideal", "#D55E00"), ("Aware", "#0072B2")) for v, ls in (("one array", "-"), ("tiles", "--"))]
    sweeps.adc_figure(tmp_path / "adc", series, references=[
        {"label": "Ideal, no ADC", "variant": "no ADC", "color": "#D55E00", "value": 9.0},
        {"label": "Aware, no ADC", "variant": "no ADC", "color": "#0072B2", "value": 8.0}])
    texts = [x.get_text() for x in kept["adc"].legends[0].get_texts()]
    assert texts == ["Ideal", "Aware", sweeps.BAND_LABEL, "one array", "tiles", "no ADC"]
    with pytest.raises(ValueError, match="one length"):
        sweeps.adc_figure(tmp_path / "bad", [dict(series[0], x=[3, 4])])
