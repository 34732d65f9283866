"""Paper mode stays exact under the nonideality pipeline (issue 10, item 4): a tiny reproduce run
gives the job keys, labels and numbers recorded before the pipeline existed
(tests/data/paper_tiny_reference.json, from ``reproduce --preset tiny --seed 0`` on the embedded
MNIST subset).

Bits depend on the platform as well as on the code: the CPU that Numba compiles for, the BLAS
kernels NumPy's matrix products run on, and the NumPy and Numba versions. The first references were
recorded on an Intel Xeon; the same code on an AMD Zen 5 machine (OpenBLAS forced to its Haswell
kernels) gives losses and powers that differ by up to about 2e-7 relative, with the same keys,
labels and accuracies. So every reference file carries the platform it was recorded on
(:func:`platform`):

- on a platform that has a reference of its own, every number and weights hash must be
  bit-identical to it (this is the check that a change kept paper mode's numbers);
- elsewhere, the keys, kinds and labels must be identical and the numbers must agree with the first
  reference to ``RTOL`` (losses, powers) and ``ATOL_ACCURACY`` (accuracies), which catches any real
  change of the model but not a reordered sum.

A trained network's weights are checked through the SHA-256 of its weights file, an .npz whose
zip headers Python's ``zipfile`` writes: the same arrays give other bytes under another Python
patch release (3.11.2 and 3.11.7 differ). So a reference also records the Python it was recorded
with (:func:`python`), and the weights hashes are compared under that Python only; the numbers are
compared wherever the platform matches.

Record the references of a new platform with ``PYTHONPATH=. python tests/test_pipeline_paper.py``
(from the code of a commit whose numbers are known to be right) and commit the two files.
"""
import json
import os
import sys
from pathlib import Path

# Recording from the command line: one BLAS thread, as the tests (conftest.py) and run.py use.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from memnp.experiments import presets, registry, runner  # noqa: E402
from memnp.experiments.store import ResultsStore  # noqa: E402

DATA = Path(__file__).parent / "data"
#: Tolerances against a reference of another platform.
RTOL = 1e-5
ATOL_ACCURACY = 0.011


def platform():
    """What decides the bits of a run besides the code: Numba's target CPU, the BLAS kernels, and
    the NumPy and Numba versions."""
    import llvmlite.binding as llvm
    cpu = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    blas = os.environ.get("OPENBLAS_CORETYPE", "auto").lower()
    return f"{cpu}/openblas-{blas}/numpy-{np.__version__}/numba-{numba.__version__}"


def python():
    """The Python release whose zipfile wrote the weights files (their SHA-256 depends on it)."""
    return ".".join(map(str, sys.version_info[:3]))


def _references(stem):
    """(the reference of this platform or None, the first reference) for ``stem``."""
    first = json.loads((DATA / f"{stem}.json").read_text())
    here = platform()
    for path in sorted(DATA.glob(f"{stem}.*.json")):
        reference = json.loads(path.read_text())
        if reference.get("platform") == here:
            return reference, first
    return None, first


def _close(got, want, rtol):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=0.0)


def _compare(out, stem):
    own, first = _references(stem)
    reference = own if own is not None else first
    exact = own is not None
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
            got = {name: record[name] for name in ("accuracy", "loss", "power")}
        else:
            got = {"loss": record["history"]["loss"], "accuracy": record["history"]["accuracy"]}
        for name, value in got.items():
            if exact:
                assert value == ref[name], (key, name, platform())
            elif name == "accuracy":
                assert np.allclose(value, ref[name], rtol=0.0, atol=ATOL_ACCURACY), (key, name)
            else:
                assert _close(value, ref[name], RTOL), (key, name, value, ref[name])
        if exact and job["kind"] == "train" and reference.get("python") == python():
            assert record["weights_sha256"] == ref["weights_sha256"], key
    for name, inference in manifest["inferences"].items():
        assert inference["label"] == reference["labels"][name]
    return manifest, reference


def _run_tiny(out):
    runner.reproduce(list(registry.PAPER_SIMULATIONS), presets.get("tiny"), 0, out)


def _run_chip(out, simulations):
    runner.reproduce(simulations, presets.get("tiny").override(sampling="chip"), 0, out)


def test_tiny_preset_keeps_keys_labels_and_numbers(tmp_path):
    """Every simulation of the tiny preset (every kind of paper stage: PF, PF with stuck-on
    devices, lognormal D2D, the stuck KDE, stuck-off): the same job keys, and bit-identical
    accuracies, losses, powers, training histories and weights (to RTOL on another platform)."""
    _run_tiny(tmp_path / "r")
    manifest, reference = _compare(tmp_path / "r", "paper_tiny_reference")
    assert set(manifest["jobs"]) == set(reference["jobs"])


def test_chip_sampling_keeps_keys_and_numbers(tmp_path):
    """Chip sampling (one set of chip draws per repeat; paper stages have no read noise, so the
    new read stream draws nothing) gives the numbers recorded before the pipeline."""
    _, first = _references("paper_tiny_chip_reference")
    _run_chip(tmp_path / "r", first["simulations"])
    manifest, reference = _compare(tmp_path / "r", "paper_tiny_chip_reference")
    assert set(manifest["jobs"]) == set(reference["jobs"])


def test_platform_references_agree_with_the_first(tmp_path):
    """Every platform's own reference has the first reference's keys, labels and simulations, and
    its numbers agree with the first's to the cross-platform tolerances (so a platform reference
    cannot have been recorded from code that changed paper mode)."""
    paths = sorted(DATA.glob("paper_tiny_*reference.*.json"))
    if not paths:
        pytest.skip("no platform-specific references")
    for path in paths:
        stem = path.name.split(".")[0]
        first = json.loads((DATA / f"{stem}.json").read_text())
        own = json.loads(path.read_text())
        assert own["platform"] and set(own["jobs"]) == set(first["jobs"]), path.name
        assert own["labels"] == first["labels"] and own["simulations"] == first["simulations"]
        for key, ref in first["jobs"].items():
            for name in ("accuracy", "loss", "power"):
                if name in ref:
                    tol = (0.0, ATOL_ACCURACY) if name == "accuracy" else (RTOL, 0.0)
                    assert np.allclose(own["jobs"][key][name], ref[name], rtol=tol[0], atol=tol[1]), \
                        (path.name, key, name)


def _record(out, stem, about):
    """Write tests/data/{stem}.{platform}.json from the run in ``out``."""
    first = json.loads((DATA / f"{stem}.json").read_text())
    store = ResultsStore(out)
    manifest = store.read_manifest()
    jobs = {}
    for key, job in manifest["jobs"].items():
        record = store.read_record(job["kind"], key)
        entry = {name: job[name] for name in ("kind", "training", "network", "inference")}
        if job["kind"] == "infer":
            entry.update({name: record[name] for name in ("accuracy", "loss", "power")})
        else:
            entry.update(loss=record["history"]["loss"], accuracy=record["history"]["accuracy"],
                         weights_sha256=record["weights_sha256"])
        jobs[key] = entry
    labels = {name: inference["label"] for name, inference in manifest["inferences"].items()}
    tag = platform().replace("/", "_")
    path = DATA / f"{stem}.{tag}.json"
    path.write_text(json.dumps({"about": about, "platform": platform(), "python": python(),
                                "simulations": first["simulations"], "labels": labels, "jobs": jobs},
                               indent=1, sort_keys=True) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        _run_tiny(Path(tmp) / "tiny")
        _record(Path(tmp) / "tiny", "paper_tiny_reference",
                "reproduce --preset tiny --seed 0 on this platform: the same code's numbers as "
                "paper_tiny_reference.json, bit for bit here")
        chip = json.loads((DATA / "paper_tiny_chip_reference.json").read_text())
        _run_chip(Path(tmp) / "chip", chip["simulations"])
        _record(Path(tmp) / "chip", "paper_tiny_chip_reference",
                "reproduce --preset tiny --sampling chip --seed 0 on this platform: the same code's "
                "numbers as paper_tiny_chip_reference.json, bit for bit here")
    sys.exit(0)
