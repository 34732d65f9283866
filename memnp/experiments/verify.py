"""Checking a results store before anything is reported or drawn from it.

:func:`verify` walks every job the manifest lists and asks the store whether it is finished
(:meth:`~memnp.experiments.store.ResultsStore.is_done`: the record parses, names its key, matches
its ``record_sha256``, and a training job's weights match their SHA-256). A job that is not is a
:class:`Problem` naming its file and why. It then counts, for every (training, inference) pair of
the manifest's simulations, the results of the finished inference records (networks x repeats)
against what the configuration asks for (the training's networks x the inference's repeats): a
pair with fewer is a :class:`Shortfall`.

``report``, ``figures`` and the end of ``reproduce`` stop with :class:`IncompleteResults` when
the verification finds anything; with ``--partial`` they go on, leave the bad records out of every
number, mark the short pairs, and still exit non-zero.
"""
import dataclasses
import json

from .store import file_sha256, record_sha256

#: How many files an error message names before it says "and N more".
LISTED = 10


@dataclasses.dataclass(frozen=True)
class Problem:
    """A job the manifest lists whose files are missing or do not check out.

    path: the record file (relative to the results directory); kind: "train" or "infer";
    key: the job key; training, inference: the job's setups (inference None for training);
    reason: why (missing, does not parse, checksum mismatch, ...).
    """
    path: str
    kind: str
    key: str
    training: str
    inference: object
    reason: str

    def line(self):
        return f"{self.path}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class Shortfall:
    """A (training, inference) pair with fewer results than its configuration asks for."""
    simulation: str
    training: str
    inference: str
    found: int      # results (networks x repeats) in finished, verified records
    expected: int   # the training's networks x the inference's repeats

    def line(self):
        return f"{self.simulation}: {self.training} -> {self.inference} has {self.found} of {self.expected} results"


@dataclasses.dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``problems`` (tuple of Problem), ``shortfalls`` (tuple of
    Shortfall), ``expected`` ({(training, inference): results expected, or None when the manifest
    does not say})."""
    problems: tuple
    shortfalls: tuple
    expected: dict

    @property
    def ok(self):
        return not self.problems and not self.shortfalls

    @property
    def bad_keys(self):
        """Keys of the jobs whose records must not be used."""
        return frozenset(p.key for p in self.problems)

    def shortfall(self, training, inference):
        """The Shortfall of a pair, or None when it has every result it should."""
        return next((s for s in self.shortfalls if (s.training, s.inference) == (training, inference)), None)

    def lines(self, limit=LISTED):
        """Short lines naming the bad files and the short pairs (at most ``limit`` of each)."""
        out = []
        for items in (self.problems, self.shortfalls):
            out += [item.line() for item in items[:limit]]
            if len(items) > limit:
                out.append(f"... and {len(items) - limit} more")
        return out


class IncompleteResults(ValueError):
    """The results store has missing or corrupt job files, or pairs with fewer results than
    configured; the message lists them (a line each, at most :data:`LISTED` of a kind)."""

    def __init__(self, root, verification, outcome="the report was not written"):
        self.verification = verification
        n_bad, n_short = len(verification.problems), len(verification.shortfalls)
        head = []
        if n_bad:
            head.append(f"{n_bad} job file(s) missing or corrupt")
        if n_short:
            head.append(f"{n_short} setup pair(s) with fewer results than configured")
        super().__init__(
            f"{root}: {' and '.join(head)}, so {outcome}:\n  "
            + "\n  ".join(verification.lines())
            + "\nRerun the same `reproduce` command to compute them again, or add --partial to go on without "
              "them, the affected cells and figures marked (the exit status is then still 1).")


def _diagnose(store, kind, key):
    """Why the job ``key`` is not finished (the store's is_done said so)."""
    path = store.record_path(kind, key)
    if not path.is_file():
        return "missing"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"does not parse as JSON ({type(exc).__name__})"
    if not isinstance(record, dict) or record.get("key") != key or record.get("kind") != kind:
        return f"does not belong to {kind} job {key}"
    sealed = record.get("record_sha256")
    if sealed is None:
        return "has no record_sha256 (written or edited by hand)"
    if sealed != record_sha256(record):
        return "record_sha256 does not match its contents (edited after it was written)"
    if kind == "train":
        weights = store.weights_path(key)
        if not weights.is_file():
            return f"its weights file {weights.name} is missing"
        if file_sha256(weights) != record.get("weights_sha256"):
            return f"its weights file {weights.name} does not match the record's weights_sha256"
    return "not finished (the store does not accept it)"


def _expected(manifest, training, inference):
    """Results a pair should have: the training's networks x the inference's repeats (None
    when the manifest does not give both)."""
    networks = manifest.get("trainings", {}).get(training, {}).get("networks")
    repeats = manifest.get("inferences", {}).get(inference, {}).get("config", {}).get("repeats")
    if not isinstance(networks, list) or not isinstance(repeats, int):
        return None
    return len(networks) * repeats


def verify(store, manifest):
    """Check every job of ``manifest`` in ``store`` and count every pair's results (see the
    module docstring); returns a :class:`Verification`."""
    problems = []
    for key, job in sorted(manifest.get("jobs", {}).items()):
        kind = job.get("kind")
        if kind not in ("train", "infer") or store.is_done(kind, key):
            continue
        path = store.record_path(kind, key).relative_to(store.root)
        problems.append(Problem(str(path), kind, key, job.get("training"), job.get("inference"),
                                _diagnose(store, kind, key)))
    bad = {p.key for p in problems}
    found = {}
    for key, job in manifest.get("jobs", {}).items():
        if job.get("kind") != "infer" or key in bad:
            continue
        try:
            record = store.read_record("infer", key)
        except (OSError, ValueError):
            continue
        pair = (job.get("training"), job.get("inference"))
        found[pair] = found.get(pair, 0) + len(record.get("accuracy") or ())
    shortfalls, expected = [], {}
    for name, sim in manifest.get("simulations", {}).items():
        for training, inference in sim.get("pairs", []):
            pair = (training, inference)
            if pair not in expected:
                expected[pair] = _expected(manifest, training, inference)
                n = found.get(pair, 0)
                if expected[pair] is not None and n < expected[pair]:
                    shortfalls.append(Shortfall(name, training, inference, n, expected[pair]))
    problems.sort(key=lambda p: (p.kind != "train", p.path))
    return Verification(tuple(problems), tuple(shortfalls), expected)
