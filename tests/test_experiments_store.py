"""The results store (atomic files, finished-job checks) and the report computed from it."""
import csv
import json

import numpy as np
import pytest

from memnp.experiments import report
from memnp.experiments.store import ResultsStore, read_npz, write_json, write_npz


def _weights():
    return {"architecture": np.array(['{"layers": []}']), "layer1.W": np.arange(6, dtype=np.float32).reshape(2, 3)}


def test_finished_jobs_need_a_matching_record_and_intact_weights(tmp_path):
    store = ResultsStore(tmp_path)
    assert not store.is_done("train", "k1")
    record = store.write_train("k1", {"history": {"loss": [1.0, float("nan")]}}, _weights())
    assert store.is_done("train", "k1")
    assert record["weights_sha256"] and store.read_record("train", "k1")["history"]["loss"] == [1.0, None]
    np.testing.assert_array_equal(store.read_weights("k1")["layer1.W"], _weights()["layer1.W"])
    # truncated weights: not finished
    path = store.weights_path("k1")
    path.write_bytes(path.read_bytes()[:-10])
    assert not store.is_done("train", "k1")
    # a record that is not valid JSON, or names another job: not finished
    store.write_infer("k2", {"accuracy": [0.5]})
    assert store.is_done("infer", "k2")
    store.record_path("infer", "k2").write_text('{"key": "k2", "kind": "infer", "accur')
    assert not store.is_done("infer", "k2")
    write_json(store.record_path("infer", "k3"), {"key": "other", "kind": "infer"})
    assert not store.is_done("infer", "k3")
    with pytest.raises(ValueError, match="job kind must be"):
        store.record_path("plot", "k3")


def test_atomic_writes_keep_the_old_file_on_failure_and_clean_up(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_stale_temporaries_are_removed(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_infer("k", {"accuracy": [1.0]})
    stale = store.record_path("infer", "k").parent / ".k.json.tmp-abc123"
    stale.write_text("partial")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert store.remove_stale_temporaries() == 1
    assert not stale.exists() and keep.exists() and store.is_done("infer", "k")


def test_npz_files_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        read_npz(path)
    with pytest.raises(ValueError, match="dtype object"):
        write_npz(tmp_path / "w.npz", {"bad": np.array([{"a": 1}], dtype=object)})


def test_manifest_must_exist_and_have_the_format(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a memnp results directory"):
        store.read_manifest()
    write_json(store.manifest_path, {"format": "other"})
    with pytest.raises(ValueError, match="unknown format"):
        store.read_manifest()


def _synthetic_store(root):
    """Two networks of 'ideal' and one of 'high_pf' evaluated on 'high_pf' with known numbers."""
    store = ResultsStore(root)
    jobs = {}
    numbers = {("ideal", 0): ([0.6, 0.5, 0.7], [1e-3, 2e-3, 3e-3]),
               ("ideal", 1): ([0.4, 0.55, 0.65], [2e-3, 2e-3, 2e-3]),
               ("high_pf", 0): ([0.9, 0.92, 0.91], [4e-3, 4e-3, 4e-3])}
    for i, ((training, network), (acc, power)) in enumerate(numbers.items()):
        key = f"i{i}"
        jobs[key] = {"kind": "infer", "training": training, "network": network, "inference": "high_pf",
                     "depends": f"t{i}", "seed": {}, "file": f"jobs/infer/{key}.json"}
        store.write_infer(key, {"accuracy": acc, "loss": [1.0] * 3, "power": power, "n_synapses": 19885})
    store.write_manifest({
        "preset": "test", "seed": 0, "sources": {"mnist": "mnist-10k"}, "scale": {"epochs": 1},
        "trainings": {"ideal": {"label": "ideal training"}, "high_pf": {"label": "aware"}},
        "inferences": {"high_pf": {"label": "high-R SiOx PF"}},
        "simulations": {"iv_nonlinearity": {"description": "d", "skipped": None,
                                            "pairs": [["ideal", "high_pf"], ["high_pf", "high_pf"],
                                                      ["high_pf_reg", "high_pf"]]}},
        "jobs": jobs})
    return numbers


def test_report_numbers(tmp_path):
    numbers = _synthetic_store(tmp_path)
    paths = report.write_report(tmp_path)
    rows = list(csv.DictReader(open(paths["summary.csv"])))
    assert [r["training"] for r in rows] == ["ideal", "high_pf", "high_pf_reg"]
    ideal = rows[0]
    errors = 100 * (1 - np.array(numbers["ideal", 0][0] + numbers["ideal", 1][0]))
    assert int(ideal["n_results"]) == 6
    assert float(ideal["median_error_pct"]) == pytest.approx(np.median(errors))
    q25, q75 = np.percentile(errors, [25, 75])
    assert float(ideal["iqr_error_pct"]) == pytest.approx(q75 - q25)
    power = np.mean(numbers["ideal", 0][1] + numbers["ideal", 1][1])
    assert float(ideal["mean_power_W"]) == pytest.approx(power)
    assert float(ideal["efficiency_TOPS_per_W"]) == pytest.approx(2 * 19885 / (50e-9 * power) / 1e12)
    assert float(ideal["paper_median_error_pct"]) == 41.6 and float(ideal["paper_power_W"]) == 1.6e-3
    assert rows[2]["n_results"] == "0" and rows[2]["median_error_pct"] == ""
    text = paths["summary.md"].read_text()
    assert f"| SiOx high resistance | {np.median(errors):.1f} / 41.6 | 9.0 / 9.1 | – / 7.1 |" in text
    assert "- yes: high-R SiOx: ideal training's median error is above aware training's (4.7 x;" in text
    assert "- yes: SiOx high resistance: aware training beats ideal training" in text
    diagonal = list(csv.DictReader(open(paths["diagonal.csv"])))
    high = next(r for r in diagonal if r["inference"] == "high_pf")
    assert float(high["aware_median_error_pct"]) == pytest.approx(9.0)
    assert float(high["aware_paper_pct"]) == 9.1
    matrix = list(csv.DictReader(open(paths["robustness.csv"])))
    assert [r["training"] for r in matrix] == ["ideal", "high_pf"]
    assert float(matrix[1]["high_pf"]) == pytest.approx(9.0) and matrix[1]["ideal"] == ""
