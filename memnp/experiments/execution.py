"""Executing a plan's jobs (:func:`execute`, for :mod:`memnp.experiments.runner`): the data sets
loaded once, training jobs submitted in groups (:mod:`memnp.experiments.grouping`), each job that
needs a network (an inference or fine-tuning job) submitted as soon as that network is trained,
and every result written to the results store as it arrives: a training job's record and weights
(its checkpoint then removed), an inference job's record. A write that fails (disk full, a
directory made read-only mid-run) saves the job's files to a rescue directory and stops the run.
"""
import datetime

from .. import __version__, numerics
from . import datasource, grouping
from .configs import DataSpec, canonical_json
from .outputs import rescue
from .store import ResultsStore

TRAIN_FORMAT = "memnp-train/1"
INFER_FORMAT = "memnp-infer/1"


def now():
    """The current UTC time, ISO 8601 to the second (a record's and a run's times)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _data_key(training_config):
    return canonical_json(training_config["data"])


def execute(plan, todo, done, store, executor, data_dir, download, progress, checkpoint_every, stamp, group):
    """Run the jobs ``todo`` of ``plan`` on ``executor`` and store each result; returns (keys of the
    jobs computed, in order of completion; [[keys]] of the training groups submitted).

    ``done``: keys of the finished jobs (a job that depends on one of them starts at once, with its
    network read from ``store``; the set grows as jobs finish); ``stamp``: the run's NumericsStamp,
    which every computed job must carry; ``group``: ``--group`` (see :mod:`.grouping`);
    ``progress``: a :class:`memnp.experiments.runner.Progress`.
    """
    trainings = {name: entry["config"] for name, entry in plan.trainings.items()}
    needed = {_data_key(trainings[j.training]): trainings[j.training]["data"] for j in todo}
    datasets = {key: datasource.load(DataSpec.from_dict(spec), data_dir, download)
                for key, spec in needed.items()}
    limit = grouping.largest(group)
    workers = getattr(executor, "workers", 1)
    waiting = {}   # training key -> [jobs that need its network]
    pending = {}   # handle -> [jobs] (a training group) or job
    computed, groups = [], []
    executor.start(datasets)

    def submit(job, weights=None):
        pending[executor.submit(job, _data_key(trainings[job.training]), weights, limit=limit)] = job

    def train(ready):
        """Submit the ready training jobs [(job, parent weights or None)], grouped."""
        parents = {job.key: weights for job, weights in ready}
        formed = grouping.form_groups([job for job, _ in ready], trainings, group, workers)
        # the largest groups first, so that worker processes end together (the order changes no number)
        for members in sorted(formed, key=len, reverse=True):
            groups.append([job.key for job in members])
            checkpoints = [store.checkpoint(job.key, checkpoint_every) if checkpoint_every > 0 else None
                           for job in members]
            weights = [parents[job.key] for job in members]
            data_key = _data_key(trainings[members[0].training])
            if len(members) > 1:
                progress.group_start(members)
            on_epoch = lambda e, n, members=members: progress.group_epoch(members, e, n)  # noqa: E731
            pending[executor.submit_group(members, data_key, weights, on_epoch, checkpoints, limit)] = members

    ready = []
    for job in todo:   # a job with ``depends`` (inference, fine-tuning) waits for that network
        if job.depends is not None and job.depends not in done:
            waiting.setdefault(job.depends, []).append(job)
        elif job.kind == "train":
            ready.append((job, None if job.depends is None else store.read_weights(job.depends)))
        else:
            submit(job, store.read_weights(job.depends))
    train(ready)
    while pending:
        handle = executor.wait_first(pending)
        unit = pending.pop(handle)
        members = unit if isinstance(unit, list) else [unit]
        try:
            computed_job = executor.result(handle)
        except Exception as exc:
            what = " ".join(f"{j.describe()} ({j.key})" for j in members)
            kind = "training group" if len(members) > 1 else f"{members[0].kind} job"
            raise RuntimeError(f"{kind} {what} failed: {type(exc).__name__}: {exc}") from exc
        # a Dask worker with another MEMNP_BACKEND, or an older memnp (which sends no stamp)
        worker = getattr(computed_job, "numerics", None) or numerics.NumericsStamp(None, None)
        if worker != stamp:
            raise RuntimeError(f"{members[0].kind} job {members[0].describe()} ({members[0].key}) was computed with "
                               f"{worker.describe()}, but this run records {stamp.describe()}; "
                               "give every worker the same memnp and MEMNP_BACKEND as this process")
        results = computed_job.result if isinstance(unit, list) else [computed_job.result]
        ready = []
        for job, result in zip(members, results):
            weights = _store_result(plan, store, job, result, stamp)
            for follower in waiting.pop(job.key, []):
                if follower.kind == "train":
                    ready.append((follower, weights))
                else:
                    submit(follower, weights)
            done.add(job.key)
            computed.append(job.key)
            progress.job_done(job)
        train(ready)
    return computed, groups


def _store_result(plan, store, job, result, stamp):
    """Write one job's record (and a training job's weights, which it returns; None for an
    inference job)."""
    base = {"content": job.content, "seed": job.seed, "training": job.training,
            "network": job.network, "memnp_version": __version__, **stamp.to_dict(), "finished": now()}
    if job.kind != "train":
        record = dict(base, format=INFER_FORMAT, inference=job.inference, train_key=job.depends, **result)
        _write_or_rescue(store, job, lambda s: s.write_infer(job.key, record))
        return None
    record, weights = result
    for name, entry in zip(plan.trainings[job.training]["monitor"], record["test"]):
        entry["inference"] = name
    record = dict(base, format=TRAIN_FORMAT, **record)
    _write_or_rescue(store, job, lambda s: s.write_train(job.key, record, weights))
    store.checkpoint(job.key, 0).remove()
    return weights


def _write_or_rescue(store, job, write):
    """``write(store)``; when that fails (disk full, directory made read-only mid-run), the job's
    files go to a rescue directory (a results store of their own) and the run stops with a
    RuntimeError saying where they are."""
    try:
        write(store)
    except OSError as exc:
        try:
            where = rescue(lambda directory: write(ResultsStore(directory)), job.kind)
            kept = f"; this job's files were saved to {where} instead (copy its jobs/ into {store.root})"
        except OSError as again:
            kept = f"; they could not be saved elsewhere either ({again})"
        raise RuntimeError(f"cannot write the results of {job.kind} job {job.describe()} into {store.root}: "
                           f"{exc.strerror or exc}{kept}") from exc
