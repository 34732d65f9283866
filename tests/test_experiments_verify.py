"""The report verifies what it reads: every job the manifest lists must be finished and sealed, and
every pair must have the results its configuration asks for; else it stops, or with partial=True
leaves the bad records out and marks what is short. Stale report files are removed."""
import csv
import json

import numpy as np
import pytest

from memnp.experiments import report
from memnp.experiments.store import ResultsStore, write_json
from memnp.experiments.verify import IncompleteResults, verify

#: (training, network) -> (accuracy per repeat, power per repeat W), all on high_pf.
NUMBERS = {("ideal", 0): ([0.6, 0.5, 0.7], [1e-3, 2e-3, 3e-3]),
           ("ideal", 1): ([0.4, 0.55, 0.65], [2e-3, 2e-3, 2e-3]),
           ("high_pf", 0): ([0.9, 0.92, 0.91], [4e-3, 4e-3, 4e-3]),
           ("high_pf", 1): ([0.93, 0.925, 0.9], [4e-3, 4e-3, 4e-3])}


def _store(root):
    """Two networks each of 'ideal' and 'high_pf' (trained elsewhere: training jobs are not
    listed) tested on 'high_pf' with three repeats; returns {(training, network): infer key}."""
    store = ResultsStore(root)
    jobs, keys = {}, {}
    for n, ((training, network), (acc, power)) in enumerate(NUMBERS.items()):
        key = keys[training, network] = f"i{n}"
        jobs[key] = {"kind": "infer", "training": training, "network": network, "inference": "high_pf",
                     "depends": f"t{n}", "seed": {}, "file": f"jobs/infer/{key}.json"}
        store.write_infer(key, {"accuracy": acc, "loss": [1.0] * 3, "power": power, "n_synapses": 19885})
    store.write_manifest({
        "preset": "test", "seed": 0, "sources": {"mnist": "mnist-10k"}, "scale": {"epochs": 1},
        "trainings": {"ideal": {"label": "ideal training", "networks": ["t0", "t1"]},
                      "high_pf": {"label": "aware", "networks": ["t2", "t3"]}},
        "inferences": {"high_pf": {"label": "high-R SiOx PF", "config": {"repeats": 3}}},
        "simulations": {"iv_nonlinearity": {"description": "d", "skipped": None,
                                            "pairs": [["ideal", "high_pf"], ["high_pf", "high_pf"]]}},
        "jobs": jobs})
    return store, keys


def _edit(store, key, **changes):
    """Change an inference record on disk, keeping its (now stale) record_sha256."""
    path = store.record_path("infer", key)
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def _rows(paths):
    return {r["training"]: r for r in csv.DictReader(open(paths["summary.csv"]))}


def test_a_complete_store_verifies_and_reports_every_result(tmp_path):
    store, _ = _store(tmp_path)
    found = verify(store, store.read_manifest())
    assert found.ok and found.expected == {("ideal", "high_pf"): 6, ("high_pf", "high_pf"): 6}
    rows = _rows(report.write_report(tmp_path))
    assert rows["ideal"]["n_results"] == rows["ideal"]["n_expected"] == "6"
    assert "Incomplete results" not in (tmp_path / "report" / "summary.md").read_text()


def test_an_edited_record_stops_the_report_and_names_the_file(tmp_path):
    store, keys = _store(tmp_path)
    _edit(store, keys["high_pf", 1], accuracy=[0.001, 0.001, 0.001])   # 92.5 % made 0.1 %
    with pytest.raises(IncompleteResults) as caught:
        report.write_report(tmp_path)
    message = str(caught.value)
    assert f"jobs/infer/{keys['high_pf', 1]}.json: record_sha256 does not match" in message
    assert "--partial" in message and not (tmp_path / "report").exists()


def test_partial_leaves_a_corrupt_record_out_and_marks_the_cell(tmp_path):
    store, keys = _store(tmp_path)
    _edit(store, keys["high_pf", 1], accuracy=[0.001, 0.001, 0.001])
    (store.record_path("infer", keys["ideal", 0])).unlink()
    paths = report.write_report(tmp_path, partial=True)
    assert {p.key for p in paths.verification.problems} == {keys["high_pf", 1], keys["ideal", 0]}
    rows = _rows(paths)
    kept = 100 * (1 - np.array(NUMBERS["high_pf", 0][0]))   # the edited record is not used
    assert rows["high_pf"]["n_results"] == "3" and rows["high_pf"]["n_expected"] == "6"
    assert float(rows["high_pf"]["median_error_pct"]) == pytest.approx(np.median(kept))
    ideal = 100 * (1 - np.array(NUMBERS["ideal", 1][0]))
    assert float(rows["ideal"]["median_error_pct"]) == pytest.approx(np.median(ideal))
    text = paths["summary.md"].read_text()
    assert "## Incomplete results (written with --partial)" in text
    assert f"- `jobs/infer/{keys['ideal', 0]}.json` (infer ideal -> high_pf): missing" in text
    assert "| ideal training | high-R SiOx PF | 3 of 6 * |" in text
    assert f"| SiOx high resistance | {np.median(ideal):.1f} * / 41.6 | {np.median(kept):.1f} * / 9.1 |" in text
    assert "aware training beats ideal training (* from fewer results than configured)" in text


def test_fewer_repeats_than_configured_are_never_a_silent_median(tmp_path):
    store, keys = _store(tmp_path)
    store.write_infer(keys["ideal", 1], {"accuracy": [0.4], "loss": [1.0], "power": [2e-3], "n_synapses": 19885})
    found = verify(store, store.read_manifest())
    assert not found.problems   # a sealed record: only short
    assert [s.line() for s in found.shortfalls] == ["iv_nonlinearity: ideal -> high_pf has 4 of 6 results"]
    with pytest.raises(IncompleteResults, match="ideal -> high_pf has 4 of 6 results"):
        report.write_report(tmp_path)
    text = report.write_report(tmp_path, partial=True)["summary.md"].read_text()
    assert "| ideal training | high-R SiOx PF | 4 of 6 * |" in text
    assert "- iv_nonlinearity: ideal -> high_pf: 4 of 6 results" in text


def test_a_missing_training_record_and_weights_are_named(tmp_path):
    store, _ = _store(tmp_path)
    manifest = store.read_manifest()
    record = store.write_train("t0", {"history": {}}, {"w": np.zeros(3)})
    manifest["jobs"]["t0"] = {"kind": "train", "training": "ideal", "network": 0, "inference": None,
                              "depends": None, "seed": {}, "file": "jobs/train/t0.json"}
    manifest["jobs"]["t1"] = dict(manifest["jobs"]["t0"], network=1, file="jobs/train/t1.json")
    write_json(store.manifest_path, manifest)
    assert record["weights_sha256"]
    store.weights_path("t0").write_bytes(b"not the weights")
    lines = verify(store, store.read_manifest()).lines()
    assert lines == ["jobs/train/t0.json: its weights file t0.npz does not match the record's weights_sha256",
                     "jobs/train/t1.json: missing"]


def test_report_files_of_simulations_no_longer_in_the_store_are_removed(tmp_path):
    store, _ = _store(tmp_path)
    store.report_dir.mkdir(parents=True)
    for name in ("drift.csv", "adc.csv", "line_resistance.csv", "notes.txt"):
        (store.report_dir / name).write_text("old\n")
    paths = report.write_report(tmp_path)
    assert sorted(p.name for p in paths.removed) == ["adc.csv", "drift.csv", "line_resistance.csv"]
    assert sorted(p.name for p in store.report_dir.iterdir()) == [
        "diagonal.csv", "notes.txt", "robustness.csv", "summary.csv", "summary.md"]
