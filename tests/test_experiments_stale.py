"""Numbers carry their version (memnp.numerics): every record and the manifest say which numerics
version and kernel backend computed them, beside the job key; a rerun into a directory holding
results of another stamp stops before computing anything, and ``--recompute-stale`` recomputes
exactly the stale jobs (and what depends on them), leaving the other files byte for byte."""
import json
import shutil
import types

import pytest
from click.testing import CliRunner

from memnp import numerics
from memnp.cli import cli
from memnp.experiments import executors, presets, runner
from memnp.experiments.stale import StaleResults
from memnp.experiments.store import ResultsStore, _sealed, write_json
from memnp.numerics import NUMERICS_VERSION, NumericsStamp

TINY = presets.get("tiny")
LOCK = ".memnp.lock"


@pytest.fixture(autouse=True)
def cpu_backend(monkeypatch):
    monkeypatch.setenv("MEMNP_BACKEND", "cpu")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny ``stuck_off`` run (2 trainings, 2 inferences) to copy."""
    out = tmp_path_factory.mktemp("stale") / "results"
    runner.reproduce(["stuck_off"], TINY, 0, out)
    return out


def _copy(finished, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(finished, out)
    return out, ResultsStore(out)


def _files(out):
    """{path: bytes} of every file in the results directory but the lock."""
    return {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != LOCK}


def _key(store, kind, training):
    manifest = store.read_manifest()
    return next(k for k, j in manifest["jobs"].items() if j["kind"] == kind and j["training"] == training)


def _restamp(store, kind, key, **fields):
    """Rewrite a job's record with ``fields`` changed (None: removed), sealed again, as an older or
    other memnp would have written it."""
    record = store.read_record(kind, key)
    for name, value in fields.items():
        record.pop(name, None)
        if value is not None:
            record[name] = value
    write_json(store.record_path(kind, key), _sealed(record))


def _numbers(record):
    return {k: v for k, v in record.items() if k not in ("finished", "seconds", "record_sha256")}


def test_stamp_reads_records_and_describes_itself(monkeypatch):
    assert NumericsStamp.of({}) == NumericsStamp(None, None)
    assert NumericsStamp.of({"numerics_version": 3, "backend": "cuda"}) == NumericsStamp(3, "cuda")
    assert NumericsStamp.of({"numerics_version": True, "backend": 5}) == NumericsStamp(None, None)
    assert NumericsStamp(2, "numpy").describe() == "numerics version 2, backend numpy"
    assert NumericsStamp(None, None).describe() == "no numerics version (an older memnp), backend unknown"
    assert NumericsStamp(1, "cpu").to_dict() == {"numerics_version": 1, "backend": "cpu"}
    for bad in (0, -1, 1.0, "1", True):
        with pytest.raises(ValueError, match="numerics version must be an integer >= 1 or None"):
            NumericsStamp(bad, "cpu")
    assert numerics.current() == NumericsStamp(NUMERICS_VERSION, "cpu")
    monkeypatch.setenv("MEMNP_BACKEND", "numpy")
    assert numerics.current().backend == "numpy"
    monkeypatch.setenv("MEMNP_BACKEND", "tpu")
    with pytest.raises(ValueError, match="backend must be one of cpu, cuda, numpy"):
        numerics.current()


def test_records_and_manifest_carry_the_stamp_beside_the_key(finished):
    store = ResultsStore(finished)
    manifest = store.read_manifest()
    assert (manifest["numerics_version"], manifest["backend"]) == (NUMERICS_VERSION, "cpu")
    for key, job in manifest["jobs"].items():
        record = store.read_record(job["kind"], key)
        assert (record["numerics_version"], record["backend"]) == (NUMERICS_VERSION, "cpu")
        assert "numerics_version" not in json.dumps(record["content"])   # not hashed into the key


@pytest.mark.parametrize("fields, found", [
    ({"numerics_version": NUMERICS_VERSION + 1}, f"1 job with numerics version {NUMERICS_VERSION + 1}, backend cpu"),
    ({"backend": "cuda"}, f"1 job with numerics version {NUMERICS_VERSION}, backend cuda"),
    ({"numerics_version": None, "backend": None}, "1 job with no numerics version (an older memnp), backend unknown"),
])
def test_a_stale_inference_record_stops_the_run_and_is_recomputed_alone(finished, tmp_path, fields, found):
    out, store = _copy(finished, tmp_path)
    key = _key(store, "infer", "ideal")
    original = store.read_record("infer", key)
    _restamp(store, "infer", key, **fields)
    before = _files(out)
    with pytest.raises(StaleResults) as info:
        runner.reproduce(["stuck_off"], TINY, 0, out)
    message = str(info.value)
    assert "\n" not in message
    for needle in (str(out), found, f"this memnp computes numerics version {NUMERICS_VERSION}, backend cpu",
                   "--recompute-stale to recompute that job (the other 3 are kept)"):
        assert needle in message, message
    assert _files(out) == before   # nothing computed, nothing written
    result = runner.reproduce(["stuck_off"], TINY, 0, out, recompute_stale=True)
    assert result.computed == [key] and len(result.reused) == 3
    after = _files(out)
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {store.record_path("infer", key), store.manifest_path}   # the rest byte for byte
    again = store.read_record("infer", key)
    assert NumericsStamp.of(again) == numerics.current()
    assert _numbers(again) == _numbers(original)   # same version here: the same numbers


def test_a_stale_network_is_recomputed_with_the_jobs_that_use_it(finished, tmp_path):
    out, store = _copy(finished, tmp_path)
    train = _key(store, "train", "stuck_off")
    infer = _key(store, "infer", "stuck_off")
    weights_sha = store.read_record("train", train)["weights_sha256"]
    _restamp(store, "train", train, numerics_version=None, backend=None)
    before = _files(out)
    with pytest.raises(StaleResults, match="1 job with no numerics version .*, 1 job depending on them; .*"
                                           r"recompute those 2 jobs \(the other 2 are kept\)"):
        runner.reproduce(["stuck_off"], TINY, 0, out)
    assert _files(out) == before
    result = runner.reproduce(["stuck_off"], TINY, 0, out, recompute_stale=True)
    assert sorted(result.computed) == sorted([train, infer])
    after = _files(out)
    kept = {p for p in before if p.stem not in (train, infer) and p != store.manifest_path}
    assert kept and all(before[p] == after[p] for p in kept)
    assert store.read_record("train", train)["weights_sha256"] == weights_sha
    assert runner.reproduce(["stuck_off"], TINY, 0, out).computed == []


def test_stale_jobs_of_simulations_outside_the_run(finished, tmp_path):
    out, store = _copy(finished, tmp_path)
    runner.reproduce(["high_d2d"], TINY, 0, out)   # same scale and seed: merged into the manifest
    key = _key(store, "infer", "d2d_high")
    _restamp(store, "infer", key, backend="numpy")
    before = _files(out)
    with pytest.raises(StaleResults, match="backend numpy; .*--recompute-stale to recompute that job"):
        runner.reproduce(["stuck_off"], TINY, 0, out)
    with pytest.raises(StaleResults, match="stale jobs belong to high_d2d: add those with --only"):
        runner.reproduce(["stuck_off"], TINY, 0, out, recompute_stale=True)
    assert _files(out) == before
    assert runner.reproduce(["high_d2d"], TINY, 0, out, recompute_stale=True).computed == [key]


@pytest.mark.parametrize("worker", ["cuda", "older memnp"])
def test_a_worker_with_another_backend_or_memnp_is_refused(tmp_path, monkeypatch, worker):
    if worker == "cuda":
        other = types.SimpleNamespace(current=lambda: NumericsStamp(NUMERICS_VERSION, "cuda"))
        monkeypatch.setattr(executors, "numerics", other)
        found = f"numerics version {NUMERICS_VERSION}, backend cuda"
    else:   # an older memnp sends its result alone, with no stamp
        monkeypatch.setattr(executors, "Computed", lambda result, stamp: result)
        found = "no numerics version \\(an older memnp\\), backend unknown"
    out = tmp_path / "results"
    with pytest.raises(RuntimeError, match=f"was computed with {found}, but this run records .* backend cpu; "
                                           "give every worker the same memnp and MEMNP_BACKEND"):
        runner.reproduce(["stuck_off"], TINY, 0, out)
    assert not list(out.glob("jobs/*/*.json"))   # nothing recorded


# -- the command line -----------------------------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_error_line(result, *needles):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output


def test_cli_reproduce_stops_on_stale_results_and_recomputes_them(finished, tmp_path):
    out, store = _copy(finished, tmp_path)
    key = _key(store, "infer", "stuck_off")
    _restamp(store, "infer", key, backend="cuda")
    args = ("reproduce", "--preset", "tiny", "--only", "stuck_off", "--out", out, "--no-figures", "--jobs", 1)
    _one_error_line(_cli(*args), "1 job with numerics version", "backend cuda", "--recompute-stale")
    result = _cli(*args, "--recompute-stale")
    assert result.exit_code == 0, result.output
    assert "1 jobs computed, 3 reused" in result.output
    assert NumericsStamp.of(store.read_record("infer", key)) == numerics.current()


TRAIN = ("train", "--epochs", "1", "--examples", "64", "64", "100", "--validation-repeats", "1",
         "--checkpoint-every", "0")


def test_cli_train_and_infer_stamp_their_records_and_stop_on_stale_ones(tmp_path):
    net = tmp_path / "net"
    assert _cli(*TRAIN, "--out", net).exit_code == 0
    record_path = net / "training.json"
    record = json.loads(record_path.read_text())
    assert NumericsStamp.of(record) == numerics.current()
    record_path.write_text(json.dumps(dict(record, numerics_version=NUMERICS_VERSION + 1)))
    weights = (net / "weights.npz").read_bytes()
    _one_error_line(_cli(*TRAIN, "--out", net), f"numerics version {NUMERICS_VERSION + 1}", "--recompute-stale",
                    "a new --out directory")
    assert (net / "weights.npz").read_bytes() == weights   # not trained
    assert _cli(*TRAIN, "--out", net, "--recompute-stale").exit_code == 0
    assert NumericsStamp.of(json.loads(record_path.read_text())) == numerics.current()

    out = tmp_path / "r.json"
    infer = ("infer", "--weights", net / "weights.npz", "--repeats", 2, "--test-examples", 100, "--out", out)
    assert _cli(*infer).exit_code == 0
    document = json.loads(out.read_text())
    assert NumericsStamp.of(document) == numerics.current()
    out.write_text(json.dumps({k: v for k, v in document.items() if k not in ("numerics_version", "backend")}))
    stale = out.read_bytes()
    _one_error_line(_cli(*infer), "no numerics version (an older memnp)", "--recompute-stale", "another --out file")
    assert out.read_bytes() == stale
    assert _cli(*infer, "--recompute-stale").exit_code == 0
    assert json.loads(out.read_text())["accuracy"] == document["accuracy"]
