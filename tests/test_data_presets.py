"""Device presets: published values, JSON round trip, the synthetic Ta/HfO2 list, Stage conversion."""
import json

import pytest

from memnp.data import presets
from memnp.data.devices import synthetic, tahfo2


def test_names_and_common_values():
    names = presets.list_presets()
    assert names == ["siox-low", "siox-high", "stuck-off", "siox-high-stuck-on", "d2d-more-uniform",
                     "d2d-less-uniform", "d2d-high", "tahfo2", "siox-high-chip"]
    for name in names:
        stage = presets.preset(name)
        assert stage["k_V"] == 0.5
        json.dumps(stage)  # JSON-serialisable
        if name not in ("siox-low", "tahfo2"):
            assert (stage["G_off"], stage["G_on"]) == (5.24841e-7, 2.6242e-6)
    low = presets.preset("siox-low")
    assert (low["G_off"], low["G_on"]) == (6.9013e-4, 3.45065e-3)


def test_published_parameters():
    pf = presets.preset("siox-high")["nonidealities"][0]
    assert pf == {"type": "IVNonlinearityPF", "k_V": 0.5, "slopes": [-1.03023, -0.0901078],
                  "intercepts": [-0.250595, -37.1186],
                  "covariance": [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]}
    low = presets.preset("siox-low")["nonidealities"][0]
    assert low["slopes"] == [-1.11965, -1.33689] and low["intercepts"] == [0.62835, -25.9156]
    assert presets.preset("stuck-off")["nonidealities"] == [
        {"type": "StuckAtGOff", "G_off": 5.24841e-7, "p": 0.05}]
    types = [n["type"] for n in presets.preset("siox-high-stuck-on")["nonidealities"]]
    assert types == ["IVNonlinearityPF", "StuckAtGOn"]
    assert presets.preset("siox-high-stuck-on")["nonidealities"][1] == {
        "type": "StuckAtGOn", "G_on": 2.6242e-6, "p": 0.05}
    sigmas = {n: tuple(presets.preset(n)["nonidealities"][0][k] for k in ("R_on_log_std", "R_off_log_std"))
              for n in ("d2d-more-uniform", "d2d-less-uniform", "d2d-high")}
    assert sigmas == {"d2d-more-uniform": (0.25, 0.25), "d2d-less-uniform": (0.05, 0.5),
                      "d2d-high": (0.5, 0.5)}


def test_tahfo2_synthetic_means_have_published_bandwidth():
    record = presets.preset_record("tahfo2")
    assert record.synthetic and "SYNTHETIC" in record.description
    stage = record.stage
    assert (stage["G_off"], stage["G_on"]) == (4.36e-5, 9.78e-4)
    (item,) = stage["nonidealities"]
    assert item["type"] == "StuckDistribution" and item["p"] == 0.101
    assert len(item["means"]) == 100 and min(item["means"]) > 0
    assert tahfo2.scott_bandwidth(item["means"]) == pytest.approx(1.77e-5, rel=1e-12)
    assert sum(item["means"]) / 100 == pytest.approx((4.36e-5 + 9.78e-4) / 2, rel=1e-12)
    assert not presets.preset_record("siox-high").synthetic


def test_presets_are_copies():
    stage = presets.preset("siox-high")
    stage["G_off"] = 1.0
    stage["nonidealities"][0]["slopes"][0] = 0.0
    assert presets.preset("siox-high")["G_off"] == 5.24841e-7
    assert presets.preset("siox-high")["nonidealities"][0]["slopes"][0] == -1.03023


def test_save_and_load_round_trip(tmp_path):
    path = presets.save_preset(presets.preset_record("tahfo2"), tmp_path / "t.json")
    record = presets.load_preset_record(path)
    assert record == presets.preset_record("tahfo2")
    assert presets.load_preset(path) == presets.preset("tahfo2")
    # A plain stage dict, e.g. a fitted one.
    data = synthetic.synthetic_tahfo2_reads(rng=1)
    fit = tahfo2.extract_tahfo2(data.G_reads)
    path = presets.save_preset(fit.stage_dict(), tmp_path / "mine.json", description="my crossbar")
    record = presets.load_preset_record(path)
    assert record.name == "mine" and record.description == "my crossbar"
    assert record.stage["nonidealities"][0]["means"] == [float(v) for v in fit.stuck_values]
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*.part"))


def test_preset_from_fit():
    data = synthetic.synthetic_tahfo2_reads(rng=1)
    record = presets.preset_from_fit(tahfo2.extract_tahfo2(data.G_reads))
    assert record.name == "tahfo2-fitted" and record.stage["nonidealities"][0]["type"] == "StuckDistribution"
    with pytest.raises(ValueError, match="SiOxFit or TaHfO2Fit"):
        presets.preset_from_fit({"G_off": 1})


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("G_on"), "missing key 'G_on'"),
    (lambda s: s.update(G_off=1.0), "G_off < G_on"),
    (lambda s: s.update(mapping_rule="max"), "mapping_rule"),
    (lambda s: s["nonidealities"].append({"type": "Warp"}), "type must be one of"),
    (lambda s: s["nonidealities"].append({"type": "Drift", "nu_std": 0.1, "t": 10.0}), "missing key .nu_mean."),
    (lambda s: s["nonidealities"].append({"type": "StuckAtGOn", "G_on": 1.0}), "missing key 'p'"),
    (lambda s: s["nonidealities"].append({"type": "StuckAt", "value": 1.0, "p": 2}),
     r"p must be in \[0, 1\]"),
])
def test_invalid_stage_dicts(mutate, message):
    stage = presets.preset("stuck-off")
    mutate(stage)
    with pytest.raises(ValueError, match=message):
        presets.Preset("x", stage)


def test_bad_files(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        presets.load_preset(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"G_off": 1e-6}))
    with pytest.raises(ValueError, match="format"):
        presets.load_preset(tmp_path / "b.json")
    with pytest.raises(ValueError, match="preset name must be one of"):
        presets.preset("nope")


def test_stages_build():
    crossbar = pytest.importorskip("memnp.crossbar")
    for name in presets.list_presets():
        stage = presets.preset_stage(name)
        assert isinstance(stage, crossbar.Stage)
        assert stage.to_dict()["G_on"] == presets.preset(name)["G_on"]
    assert presets.preset_stage("tahfo2").nonidealities[0].bandwidth == pytest.approx(1.77e-5)
