"""Stale results: finished jobs (and in-job checkpoints) of another numerics version or backend.

A results directory holds the numbers of one memnp numerics version and one kernel backend
(:mod:`memnp.numerics`). Before a run computes anything, :func:`find_stale` reads every finished
job the manifest lists and every in-job checkpoint of an unfinished training job, and compares
their stamps with this process's. Stale are:

- finished jobs whose record carries another numerics version or backend, or none at all (written
  by an older memnp: "unversioned");
- finished jobs that depend on a stale one (an inference job of a stale network, a fine-tuning
  job started from it), however deep: once the network is recomputed their numbers no longer
  belong to it;
- in-job checkpoints of another stamp (never resumed either: see
  :meth:`memnp.experiments.checkpoint.TrainingCheckpoint.load`).

Unfinished jobs are not stale: they are computed anyway. Record files the manifest does not list
(left by a run of another scale, seed or data) are not read. A run finding stale results stops
with :class:`StaleResults` (one line: what was found, what this memnp computes, how many jobs,
the fix); with ``recompute_stale`` it recomputes exactly the stale jobs and keeps the others.
"""
import collections
import dataclasses

from ..numerics import NumericsStamp
from .files import read_json


@dataclasses.dataclass(frozen=True)
class StaleJobs:
    """What :func:`find_stale` found.

    current: this process's NumericsStamp. total: how many jobs were checked (the manifest's).
    found: {key: NumericsStamp} of finished jobs whose own record has another stamp.
    derived: keys of finished jobs that are stale only because they depend on a stale job.
    checkpoints: {key: NumericsStamp} of unfinished training jobs' in-job checkpoints of another stamp.
    """

    current: NumericsStamp
    total: int
    found: dict
    derived: frozenset
    checkpoints: dict

    @property
    def keys(self):
        """Keys of the stale finished jobs (their own stamp or a stale dependency)."""
        return frozenset(self.found) | self.derived

    def __bool__(self):
        return bool(self.found or self.derived or self.checkpoints)

    def describe(self):
        """What was found, e.g. ``3 jobs with no numerics version (an older memnp), backend unknown,
        2 jobs depending on them, 1 in-job checkpoint with numerics version 1, backend cuda``."""
        parts = [f"{_count(n, 'job')} with {stamp.describe()}" for stamp, n in _by_stamp(self.found)]
        if self.derived:
            parts.append(f"{_count(len(self.derived), 'job')} depending on them")
        parts += [f"{_count(n, 'in-job checkpoint')} with {stamp.describe()}"
                  for stamp, n in _by_stamp(self.checkpoints)]
        return ", ".join(parts)


class StaleResults(ValueError):
    """A rerun into a results directory holding results of another numerics version or backend.

    stale: the StaleJobs found in ``root``. outside: names of the simulations whose stale jobs this
    run does not include (then ``--recompute-stale`` cannot help). instead: the other way out, as
    the message ends it ("or use ...")."""

    def __init__(self, stale, root, outside=(), instead="a new results directory"):
        self.stale = stale
        self.outside = tuple(outside)
        n, m = len(stale.keys), len(stale.checkpoints)
        if self.outside:
            fix = (f"--recompute-stale recomputes only the jobs of this run's simulations, and stale jobs "
                   f"belong to {', '.join(self.outside)}: add those with --only (or leave out --only), or use "
                   f"{instead}")
        else:
            kept = f" (the other {stale.total - n} are kept)" if stale.total > n else ""
            does = [f"recompute {'that job' if n == 1 else f'those {n} jobs'}{kept}"] if n else []
            does += [f"discard the {_count(m, 'checkpoint')} (those jobs start at epoch 1)"] if m else []
            fix = f"rerun with --recompute-stale to {' and '.join(does)}, or use {instead}"
        super().__init__(f"{root} holds results of another numerics version or backend: {stale.describe()}; "
                         f"this memnp computes {stale.current.describe()} and does not mix the two: {fix}")


def find_stale(store, jobs, current):
    """The stale jobs and checkpoints of ``store`` (a ResultsStore) among ``jobs`` ({key: manifest
    job entry with "kind" and "depends"}), against ``current`` (a NumericsStamp)."""
    found, finished, checkpoints = {}, set(), {}
    for key, job in jobs.items():
        record = store.finished_record(job["kind"], key)
        if record is None:
            if job["kind"] == "train":
                stamp = store.checkpoint(key, 0).stamp()
                if stamp is not None and stamp != current:
                    checkpoints[key] = stamp
            continue
        finished.add(key)
        stamp = NumericsStamp.of(record)
        if stamp != current:
            found[key] = stamp
    derived, stale = set(), set(found)
    changed = True
    while changed:   # a dependency chain (train -> fine-tune -> infer) is a few links long
        changed = False
        for key in finished - stale:
            if jobs[key].get("depends") in stale:
                derived.add(key)
                stale.add(key)
                changed = True
    return StaleJobs(current, len(jobs), found, frozenset(derived), checkpoints)


def read_stamp(path):
    """The NumericsStamp of the JSON record at ``path`` (a ``train`` or ``infer`` output), or None
    when there is no readable record there (nothing to protect: it is written anew)."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return NumericsStamp.of(record) if isinstance(record, dict) else None


def single_job(current, record_stamp=None, checkpoint_stamp=None, key="job"):
    """The StaleJobs of a one-job output (``train --out``, ``infer --out``): its record's stamp and
    its in-job checkpoint's (None: absent), against ``current``."""
    found = {key: record_stamp} if record_stamp is not None and record_stamp != current else {}
    checkpoints = {key: checkpoint_stamp} if checkpoint_stamp is not None and checkpoint_stamp != current else {}
    return StaleJobs(current, 1, found, frozenset(), checkpoints)


def simulations_of(keys, manifest):
    """Sorted names of the manifest's simulations that the jobs ``keys`` belong to ("earlier
    runs" when a job's pair is in none of them)."""
    names = set()
    for key in keys:
        job = manifest["jobs"][key]
        hits = {name for name, sim in manifest.get("simulations", {}).items()
                for training, inference in sim.get("pairs", ())
                if training == job.get("training") and (job["kind"] == "train" or inference == job.get("inference"))}
        names |= hits or {"earlier runs"}
    return sorted(names)


def _by_stamp(stamps):
    """[(stamp, how many)] in a stable order (unversioned first, then by version and backend)."""
    counts = collections.Counter(stamps.values())
    return sorted(counts.items(), key=lambda item: (item[0].version or 0, item[0].backend or ""))


def _count(n, noun):
    return f"{n} {noun}{'' if n == 1 else 's'}"
