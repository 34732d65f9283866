"""Paper mode stays exact under the nonideality pipeline (issue 10, item 4): a tiny reproduce run
gives the job keys, labels and numbers recorded before the pipeline existed
(tests/data/paper_tiny_reference.json, from ``reproduce --preset tiny --seed 0`` on the embedded
MNIST subset)."""
import json
from pathlib import Path

from memnp.experiments import presets, registry, runner
from memnp.experiments.store import ResultsStore

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "paper_tiny_reference.json").read_text())
#: The same with --sampling chip, for the simulations with stuck devices, PF and D2D.
CHIP_REFERENCE = json.loads((DATA / "paper_tiny_chip_reference.json").read_text())


def _compare(out, reference=REFERENCE):
    manifest = ResultsStore(out).read_manifest()
    store = ResultsStore(out)
    assert manifest["jobs"], "no jobs ran"
    for key, job in manifest["jobs"].items():
        assert key in reference["jobs"], f"job key {key} ({job['training']}) is new: paper keys changed"
        ref = reference["jobs"][key]
        assert (job["kind"], job["training"], job["network"], job["inference"]) == \
            (ref["kind"], ref["training"], ref["network"], ref["inference"])
        record = store.read_record(job["kind"], key)
        if job["kind"] == "infer":
            for name in ("accuracy", "loss", "power"):
                assert record[name] == ref[name], (key, name)
        else:
            assert record["history"]["loss"] == ref["loss"] and record["history"]["accuracy"] == ref["accuracy"]
            assert record["weights_sha256"] == ref["weights_sha256"], key
    for name, inference in manifest["inferences"].items():
        assert inference["label"] == reference["labels"][name]
    return manifest


def test_tiny_preset_keeps_keys_labels_and_numbers(tmp_path):
    """Every simulation of the tiny preset (every kind of paper stage: PF, PF with stuck-on
    devices, lognormal D2D, the stuck KDE, stuck-off): the same job keys, and bit-identical
    accuracies, losses, powers, training histories and weights."""
    runner.reproduce(registry.default_names(), presets.get("tiny"), 0, tmp_path / "r")
    manifest = _compare(tmp_path / "r")
    assert set(manifest["jobs"]) == set(REFERENCE["jobs"])


def test_chip_sampling_keeps_keys_and_numbers(tmp_path):
    """Chip sampling (one set of chip draws per repeat; paper stages have no read noise, so the
    new read stream draws nothing) gives the numbers recorded before the pipeline."""
    scale = presets.get("tiny").override(sampling="chip")
    runner.reproduce(CHIP_REFERENCE["simulations"], scale, 0, tmp_path / "r")
    manifest = _compare(tmp_path / "r", CHIP_REFERENCE)
    assert set(manifest["jobs"]) == set(CHIP_REFERENCE["jobs"])
