"""Where jobs run: in this process, in a pool of local worker processes, or on a Dask cluster.

Every executor runs the same two pure functions, :func:`run_training_job` and
:func:`run_inference_job`, on the same inputs (the job's content and seed, the data arrays, the
trained weights), and the results come back to the client, which alone writes the results store,
so workers need no shared disk. A job's random numbers depend only on its seed record, so the
numbers do not depend on the executor or on the order jobs finish in.

Interface (used by :mod:`memnp.experiments.runner`): ``connect()`` (before anything is written:
fails early on an unreachable scheduler); ``start(datasets)`` with
{data key: {split: (images, labels)}}; ``submit(job, data_key, weights=None, on_epoch=None,
checkpoint=None, limit=1)`` returns a handle; ``submit_group(jobs, data_key, weights, on_epoch=None,
checkpoints=None, limit=None)`` submits training jobs that train in one pass
(:func:`run_training_group`: one unit of work, whose result is the list of the jobs' results);
``wait_first(handles)`` returns the handle of one finished unit (the first submitted, in
process); ``result(handle)`` its :class:`Computed` (the result and the numerics stamp of the
process that computed it), raising the unit's exception if it failed; ``close()``. ``limit``: the
largest ensemble the evaluation passes (inference repeats, validation and test passes) run in.

In-job checkpoints (a training job killed mid-way resumes at the epoch after its last save): the
runner passes a :class:`~memnp.experiments.checkpoint.TrainingCheckpoint` (three plain values,
so it pickles) with each training job. In this process and in local worker processes the job
itself reads and writes it (same machine, same disk). The Dask executor ignores it, since its
workers need no shared disk: a Dask training job that is interrupted restarts from epoch 1.
"""
import concurrent.futures
import dataclasses
import multiprocessing
import os
import time

from .. import numerics
from . import protocol
from .configs import Inference, Training
from .keys import sequence_from_record


# -- the work itself ------------------------------------------------------------------------------
def run_training_job(content, seed, data, on_epoch=None, checkpoint=None, weights=None):
    """(record, weights) of a training job (content from plan.Job); checkpoint: an optional
    TrainingCheckpoint to resume from and save to (see :func:`protocol.train`). A fine-tuning job
    (content with a "parent": the key of the training job it continues) needs ``weights``, the
    parent's trained arrays, and starts from them."""
    training = Training.from_dict(content["training"])
    if (content.get("parent") is None) != (weights is None):
        raise ValueError("a fine-tuning job needs its parent's weights, and only a fine-tuning job takes weights")
    return protocol.train(training, data, sequence_from_record(seed), on_epoch=on_epoch,
                          checkpoint=checkpoint, initial=weights)


def run_training_group(contents, seeds, data, on_epoch=None, checkpoints=None, weights=None, limit=None):
    """[(record, weights)] of training jobs trained in one pass (:func:`protocol.train_group`),
    each exactly what :func:`run_training_job` gives it alone. weights: None or one entry per job
    (a fine-tuning job's parent arrays, else None); checkpoints likewise."""
    contents = list(contents)
    weights = list(weights) if weights is not None else [None] * len(contents)
    for content, initial in zip(contents, weights):
        if (content.get("parent") is None) != (initial is None):
            raise ValueError("a fine-tuning job needs its parent's weights, and only a fine-tuning job takes weights")
    trainings = [Training.from_dict(content["training"]) for content in contents]
    return protocol.train_group(trainings, data, [sequence_from_record(seed) for seed in seeds], on_epoch=on_epoch,
                                checkpoints=checkpoints, initials=weights, limit=limit)


def run_inference_job(content, seed, test, weights, limit=1):
    """Record of an inference job: test = (images, labels), weights = the trained arrays; limit:
    the largest ensemble its repeats run in (the numbers do not depend on it)."""
    inference = Inference.from_dict(content["inference"])
    return protocol.infer(weights, inference, test, sequence_from_record(seed), limit)


@dataclasses.dataclass(frozen=True)
class Computed:
    """What a job sends back: ``result`` ((record, weights) of a training job, the record of an
    inference job) and ``numerics``, the :class:`~memnp.numerics.NumericsStamp` of the process
    that computed it (a Dask worker may run another memnp or another MEMNP_BACKEND than the client)."""

    result: object
    numerics: numerics.NumericsStamp


def _run(kind, content, seed, data, weights, on_epoch=None, checkpoint=None, limit=1):
    """kind "train", "infer" or "group" (then content, seed, weights and checkpoint are lists)."""
    stamp = numerics.current()
    if kind == "group":
        return Computed(run_training_group(content, seed, data, on_epoch, checkpoint, weights, limit), stamp)
    if kind == "train":
        return Computed(run_training_job(content, seed, data, on_epoch, checkpoint, weights), stamp)
    return Computed(run_inference_job(content, seed, data["test"], weights, limit), stamp)


def _group_args(jobs, weights, checkpoints):
    """The lists :func:`_run` takes for a group (contents, seeds, weights, checkpoints)."""
    jobs = list(jobs)
    return ([j.content for j in jobs], [j.seed for j in jobs], weights or [None] * len(jobs),
            checkpoints or [None] * len(jobs))


# -- in this process ------------------------------------------------------------------------------
class _Deferred:
    def __init__(self, job, thunk):
        self.job, self.thunk = job, thunk


class InProcess:
    """Runs jobs one at a time in this process, in submission order (``--jobs 1``)."""

    description = "in this process"

    def connect(self):
        pass

    def start(self, datasets):
        self.datasets = datasets

    def submit(self, job, data_key, weights=None, on_epoch=None, checkpoint=None, limit=1):
        data = self.datasets[data_key]
        return _Deferred(job, lambda: _run(job.kind, job.content, job.seed, data, weights, on_epoch,
                                           checkpoint, limit))

    def submit_group(self, jobs, data_key, weights=None, on_epoch=None, checkpoints=None, limit=None):
        data = self.datasets[data_key]
        contents, seeds, weights, checkpoints = _group_args(jobs, weights, checkpoints)
        return _Deferred(jobs, lambda: _run("group", contents, seeds, data, weights, on_epoch, checkpoints, limit))

    def wait_first(self, handles):
        return next(iter(handles))

    def result(self, handle):
        return handle.thunk()

    def close(self):
        pass


# -- local worker processes -----------------------------------------------------------------------
_WORKER_DATA = {}


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


#: Seconds between two checks, in a worker, that the process that started it is still alive.
PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid):
    """Make this worker process end when ``parent_pid`` (the run that started it) ends.

    On Linux the kernel sends SIGKILL to the worker when its parent dies (prctl
    PR_SET_PDEATHSIG); everywhere a daemon thread also polls the parent's PID and ends the
    process when the worker has been re-parented. So a run killed with SIGKILL or SIGTERM leaves
    no worker computing (and no resource tracker: it ends when the last process holding its pipe
    does).
    """
    import signal
    import sys
    import threading
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:   # the parent died before the above took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="memnp-parent-watch", daemon=True).start()


def _init_worker(datasets, threads, parent_pid=None):
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    _WORKER_DATA.clear()
    _WORKER_DATA.update(datasets)
    if threads:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _pool_run(kind, content, seed, data_key, weights, checkpoint, limit=1):
    return _run(kind, content, seed, _WORKER_DATA[data_key], weights, checkpoint=checkpoint, limit=limit)


class ProcessPool:
    """``workers`` local processes (``--jobs N``); the data sets are sent once to each worker.

    Each worker runs Numba's parallel kernels on cores / workers threads (at least 1), so the
    workers do not oversubscribe the machine.
    """

    def __init__(self, workers):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"jobs must be an integer >= 1; got {workers!r}")
        self.workers = workers
        self.description = f"{workers} local worker processes"
        self.threads = max(1, (_usable_cores() or 1) // workers)
        self.pool = None

    def connect(self):
        pass

    def start(self, datasets):
        # spawn: a fresh interpreter per worker (forking a process that has started Numba's
        # thread pool is not safe).
        context = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context,
                                                           initializer=_init_worker,
                                                           initargs=(datasets, self.threads, os.getpid()))

    def submit(self, job, data_key, weights=None, on_epoch=None, checkpoint=None, limit=1):
        return self.pool.submit(_pool_run, job.kind, job.content, job.seed, data_key, weights, checkpoint, limit)

    def submit_group(self, jobs, data_key, weights=None, on_epoch=None, checkpoints=None, limit=None):
        contents, seeds, weights, checkpoints = _group_args(jobs, weights, checkpoints)
        return self.pool.submit(_pool_run, "group", contents, seeds, data_key, weights, checkpoints, limit)

    def wait_first(self, handles):
        done, _ = concurrent.futures.wait(list(handles), return_when=concurrent.futures.FIRST_COMPLETED)
        return next(iter(done))

    def result(self, handle):
        return handle.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# -- a Dask cluster -------------------------------------------------------------------------------
#: How long to try reaching a Dask scheduler before giving up.
CONNECT_TIMEOUT = "30s"


def _dask_run(kind, content, seed, data, weights, limit=1):
    return _run(kind, content, seed, data, weights, limit=limit)


class Dask:
    """Jobs on a Dask distributed scheduler at ``address`` (``--scheduler``; extra ``distributed``).

    The data sets are scattered to the workers once; results come back to this client, which
    writes them. Workers need memnp installed, nothing else (no shared disk), so in-job
    checkpoints are not used: an interrupted Dask training job restarts from epoch 1.
    """

    def __init__(self, address):
        try:
            import distributed
        except ImportError:
            raise ImportError("--scheduler needs dask.distributed: pip install 'memnp[distributed]'") from None
        self.distributed = distributed
        self.address = address
        self.description = f"the Dask scheduler at {address}"
        self.client = None

    def connect(self):
        try:
            self.client = self.distributed.Client(self.address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None

    @property
    def workers(self):
        """The cluster's worker threads (units of work that run at once; 1 before ``connect``)."""
        if self.client is None:
            return 1
        try:
            return max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))
        except (KeyError, AttributeError, TypeError):
            return 1

    def start(self, datasets):
        # A one-element list: scatter the whole {split: arrays} dict as one piece of data.
        self.data = {key: self.client.scatter([value], broadcast=True, hash=False)[0]
                     for key, value in datasets.items()}

    def submit(self, job, data_key, weights=None, on_epoch=None, checkpoint=None, limit=1):
        return self.client.submit(_dask_run, job.kind, job.content, job.seed, self.data[data_key], weights, limit,
                                  pure=False)

    def submit_group(self, jobs, data_key, weights=None, on_epoch=None, checkpoints=None, limit=None):
        contents, seeds, weights, _ = _group_args(jobs, weights, None)   # Dask jobs keep no checkpoints
        return self.client.submit(_dask_run, "group", contents, seeds, self.data[data_key], weights, limit,
                                  pure=False)

    def wait_first(self, handles):
        done = self.distributed.wait(list(handles), return_when="FIRST_COMPLETED").done
        return next(iter(done))

    def result(self, handle):
        return handle.result()

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None


def make_executor(jobs=1, scheduler=None):
    """The executor for ``--jobs`` / ``--scheduler``."""
    if scheduler:
        return Dask(scheduler)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1; got {jobs!r}")
    return InProcess() if jobs == 1 else ProcessPool(jobs)
