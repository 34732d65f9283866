"""Device presets and the CLI with the nonideality pipeline (issue 10, item 5): the built-in
worked example, a fit-device preset extended by editing its JSON, and train / infer with them."""
import json

import pytest
from click.testing import CliRunner

from memnp.cli import cli
from memnp.crossbar import Stage
from memnp.data import presets
from memnp.nonidealities import ADC, DAC, D2DLognormal, Drift, ReadNoise, StuckAtGOff, Tiles
from pipeline_stages import G_OFF, G_ON, PF


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_the_worked_example_preset():
    record = presets.preset_record("siox-high-chip")
    assert record.synthetic and "ILLUSTRATIVE" in record.description
    stage = record.to_stage()
    expected = Stage(G_OFF, G_ON, 0.5, (PF, D2DLognormal(G_OFF, G_ON, 0.25, 0.25), StuckAtGOff(G_OFF, 0.02),
                                        ReadNoise(0.05), Drift(0.01, 0.005, 86400.0), DAC(6), ADC(6),
                                        Tiles(128, 64)))
    assert stage == expected
    assert list(stage.phases) == ["programming", "drift", "stuck", "read_noise", "dac", "currents", "adc", "tiles"]
    # variants for the drift and ADC studies
    month = Stage.from_dict(presets.chip_stage(t=30 * 86400.0, adc_bits=3, tiles=False))
    assert month.phases["drift"].t == 30 * 86400.0 and month.phases["adc"].bits == 3 and "tiles" not in month.phases


def test_a_fitted_preset_composes_with_the_new_classes(tmp_path):
    """fit-device writes a preset with one PF entry; adding entries to its JSON by hand, in any
    order, gives the combined stage (the stage dict may also carry the recorded "pipeline")."""
    record = presets.preset_record("siox-high").to_dict()
    record["stage"]["nonidealities"] += [{"type": "Tiles", "rows": 64, "cols": 32},
                                         {"type": "ReadNoise", "sigma_rel": 0.03},
                                         {"type": "ADC", "bits": 5, "full_scale": "worst-case"},
                                         {"type": "Drift", "nu_mean": 0.02, "nu_std": 0.01, "t": 3600.0}]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(record))
    stage = presets.preset_stage(path)
    assert list(stage.phases) == ["drift", "read_noise", "currents", "adc", "tiles"]
    record["stage"] = stage.to_dict()
    path.write_text(json.dumps(record))
    assert presets.preset_stage(path) == stage
    record["stage"]["nonidealities"].append({"type": "DAC"})
    with pytest.raises(ValueError, match="missing key 'bits'"):
        presets.Preset.from_dict(record)


def test_train_and_infer_with_the_chip_preset(tmp_path):
    net = tmp_path / "net"
    result = _run("train", "--device", "siox-high-chip", "--epochs", "1", "--examples", "128", "64", "100",
                  "--validation-repeats", "1", "--test-device", "siox-high-chip", "--test-every", "1",
                  "--test-repeats", "1", "--out", net)
    assert result.exit_code == 0, result.output
    record = json.loads((net / "training.json").read_text())
    stage = record["content"]["training"]["stage"]
    assert stage["pipeline"] == ["programming", "drift", "stuck", "read_noise", "dac", "currents", "adc", "tiles"]
    out = []
    for name in ("a.json", "b.json"):
        result = _run("infer", "--weights", net / "weights.npz", "--device", "siox-high-chip", "--repeats", "2",
                      "--sampling", "chip", "--test-examples", "100", "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        out.append(json.loads((tmp_path / name).read_text()))
    assert out[0]["accuracy"] == out[1]["accuracy"] and len(out[0]["accuracy"]) == 2
    assert all(p > 0 for p in out[0]["power"])


def test_cli_refuses_a_bad_pipeline_preset_cleanly(tmp_path):
    record = presets.preset_record("siox-high").to_dict()
    record["stage"]["nonidealities"].append({"type": "ADC", "bits": 20})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    result = _run("train", "--device", path, "--epochs", "1", "--out", tmp_path / "n")
    assert result.exit_code == 2 and "bits must be an integer from 1 to 16" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "n").exists()
