"""Running a plan: validate, skip finished jobs, execute the rest, write the store, report.

:func:`reproduce` is what ``python run.py reproduce`` calls. Everything that can be wrong with the
input (simulation names, scale, seed, executor options, the output path and whether it can be
written) is checked before anything is written; then the run takes the results directory's lock
(:class:`~memnp.experiments.outputs.RunLock`: a second run stops at once) and reads the manifest.
Then, before anything is computed or written, it looks for results of another numerics version
or backend (:mod:`memnp.experiments.stale`): any stop the run (StaleResults), unless
``recompute_stale`` asks to recompute them. Every record it writes carries the run's stamp
(:mod:`memnp.numerics`). Training jobs are submitted first; each inference job (and each
fine-tuning job, a training job that starts from another's network) is submitted as soon as the
network it needs is trained (or at once, when the network was trained by an earlier run); that
part, and the writing of each result, is :mod:`memnp.experiments.execution`.

With ``checkpoint_every`` > 0 (seconds), training jobs run in this process or in local worker
processes save their state to ``<out>/checkpoints/`` at most that often, and a rerun resumes them
at the epoch after the last save; a job's checkpoint is deleted once its record is written. Dask
jobs do not checkpoint (see :mod:`memnp.experiments.executors`).
"""
import dataclasses
import math
import time
from pathlib import Path

from .. import __version__, numerics
from . import datasource, plan as planning, registry
from .configs import canonical_json
from .execution import INFER_FORMAT, TRAIN_FORMAT, execute, now  # noqa: F401  (the formats: also here)
from .executors import make_executor
from .keys import check_seed
from .outputs import LOCK_FILE, RunLock, check_writable
from .presets import Scale
from .stale import StaleResults, find_stale, simulations_of
from .store import ResultsStore

DATA_NAMES = {"mnist-10k": "the embedded MNIST subset (6,400 / 1,600 / 2,000 digits; full MNIST not found)",
              "mnist": "full MNIST", "cifar10": "CIFAR-10"}


class Progress:
    """Callbacks the runner reports through (the CLI draws progress bars with them)."""

    def message(self, text):
        pass

    def jobs_start(self, total, finished):
        pass

    def job_done(self, job):
        pass

    def epoch(self, job, epoch, epochs):
        pass

    def group_start(self, jobs):
        """Training jobs (two or more) submitted to train together in one pass."""

    def group_epoch(self, jobs, epoch, epochs):
        """After an epoch of a group's pass (in this process); by default :meth:`epoch` for each."""
        for job in jobs:
            self.epoch(job, epoch, epochs)

    def close(self):
        pass


@dataclasses.dataclass
class RunResult:
    store: ResultsStore
    plan: planning.Plan
    computed: list      # keys of the jobs computed by this run
    reused: list        # keys of jobs found finished
    seconds: float
    groups: list = dataclasses.field(default_factory=list)  # [[keys]]: the training jobs trained together


def check_output_dir(out):
    """The output directory as a Path; ValueError if it exists as a file, is a foreign directory,
    or cannot be written (see :func:`memnp.experiments.outputs.check_writable`).

    A directory is memnp's when it holds a ``manifest.json`` or a ``jobs/train`` or ``jobs/infer``
    directory (a results directory whose manifest was moved away), or nothing but the lock file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    ours = (out / "manifest.json").is_file() or any((out / "jobs" / kind).is_dir() for kind in ("train", "infer"))
    if out.is_dir() and not ours and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise ValueError(f"--out {out} is a non-empty directory without a memnp manifest.json; "
                         "choose an empty or new directory (memnp does not write into other directories)")
    return check_writable(out, "--out")


def resolve_sources(families, data_dir=None, download=False):
    """{family: data name or None}, and {family: reason} for the unavailable ones."""
    sources, reasons = {}, {}
    for family in families:
        try:
            sources[family] = datasource.resolve(family, data_dir, download)
        except datasource.DataUnavailable as exc:
            sources[family], reasons[family] = None, str(exc)
    return sources, reasons


def device_files(paths):
    """{preset name: Stage} from preset JSON files (memnp.data.preset_files.save_preset, ``fit-device``);
    ValueError for an unreadable file or two files of one name."""
    from ..data.preset_files import load_preset_record
    out = {}
    for path in paths or ():
        record = load_preset_record(path)
        if record.name in out:
            raise ValueError(f"two device files are named {record.name!r} (the second: {path})")
        try:
            out[record.name] = record.to_stage()
        except ValueError as exc:
            raise ValueError(f"device file {path}: {exc}") from None
    return out


def plan_run(names, scale, seed, data_dir=None, download=False, devices=None):
    """(plan, sources, reasons): the validated expansion of ``names`` (nothing written); devices:
    preset files (paths) or {preset name: Stage} replacing those built-in presets."""
    if not isinstance(scale, Scale):
        raise ValueError(f"scale must be a Scale; got {type(scale).__name__}")
    seed = check_seed(seed)
    names = registry.check_names(names)
    if devices is not None and not isinstance(devices, dict):
        devices = device_files(devices)
    planning.check_devices(names, devices)
    families = sorted({registry.TRAININGS[t].family for n in names for t, _ in registry.SIMULATIONS[n].pairs})
    sources, reasons = resolve_sources(families, data_dir, download)
    return planning.expand(names, scale, seed, sources, devices), sources, reasons


def _signature(scale, seed, sources):
    return {"scale": scale.to_dict(), "seed": seed, "sources": sources}


def build_manifest(store, plan, scale, seed, sources, preset, names, stamp=None):
    """The manifest: merged with the existing one when scale, seed and data sources are the same.
    stamp: the NumericsStamp of this run (default: :func:`memnp.numerics.current`), recorded as
    ``numerics_version`` and ``backend``."""
    signature = _signature(scale, seed, sources)
    manifest = None
    try:
        old = store.read_manifest()   # a corrupt one raises (CorruptManifest): never replaced silently
    except FileNotFoundError:
        old = None
    if old is not None and canonical_json(old.get("signature")) == canonical_json(signature):
        manifest = old
    if manifest is None:
        manifest = {"signature": signature, "preset": preset, "scale": scale.to_dict(), "seed": seed,
                    "sources": sources, "trainings": {}, "inferences": {}, "simulations": {}, "jobs": {},
                    "runs": []}
    manifest["memnp_version"] = __version__
    manifest.update((stamp or numerics.current()).to_dict())
    manifest["trainings"].update(plan.trainings)
    manifest["inferences"].update(plan.inferences)
    manifest["simulations"].update(plan.simulations)
    from ..kernels.backend import device_description
    manifest["gpu"] = device_description()   # the GPU of a cuda run (name, compute capability), else None
    for job in plan.jobs:
        manifest["jobs"][job.key] = {"kind": job.kind, "training": job.training, "network": job.network,
                                     "inference": job.inference, "depends": job.depends, "seed": job.seed,
                                     "file": str(store.record_path(job.kind, job.key).relative_to(store.root))}
    manifest.setdefault("runs", []).append({"started": now(), "finished": None, "only": list(names)})
    return manifest


def check_checkpoint_every(seconds):
    """``checkpoint_every`` as a float >= 0 (0: no in-job checkpoints); ValueError otherwise."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(seconds, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"checkpoint_every (--checkpoint-every) must be a number of seconds >= 0 "
                         f"(0: off); got {seconds!r}")
    return value


def skip_message(family, reason, affected, download=False):
    """The one line that says which simulations are skipped for want of ``family``'s data, and
    why: ``reason`` nests "<x> is not available: " once per layer that passed it on, so only the
    innermost name and detail are kept (the first line; the list of files follows in the data
    loader's own message). download: whether --download was given (then it is not suggested)."""
    parts = reason.splitlines()[0].rstrip(":").split(" is not available: ")
    what = parts[-2] if len(parts) >= 2 else DATA_NAMES.get(family, family)
    detail = parts[-1] if len(parts) >= 2 else parts[0]
    detail = detail.replace("these files are missing", "its files are missing").replace(" (downloads are off)",
                                                                                        "; downloads are off")
    hint = ("Use --data-dir DIR with a copy of it (the download did not succeed)." if download
            else "Use --data-dir DIR or --download.")
    return f"skip: {what} is not available ({detail}), so these are skipped: {', '.join(affected)}. {hint}"


def reproduce(names, scale, seed, out, data_dir=None, download=False, jobs=1, scheduler=None,
              preset=None, progress=None, checkpoint_every=60.0, lock=None, devices=None,
              recompute_stale=False, group="auto"):
    """Run the simulations ``names`` at ``scale`` into the results directory ``out``.

    checkpoint_every: seconds between in-job checkpoints of a training job (0: none).
    lock: a :class:`~memnp.experiments.outputs.RunLock` on ``out`` that the caller releases
    (to keep holding it while it writes more, such as the report); by default the run takes its
    own and releases it when done. Either way it is taken once the input is validated, before the
    manifest is read: another run holding it raises ResultsLocked at once.
    devices: preset JSON files (or {preset name: Stage}) replacing the built-in presets of their
    names in every setup of this run (``reproduce --device-file``).
    """
    progress = progress or Progress()
    start = time.perf_counter()
    checkpoint_every = check_checkpoint_every(checkpoint_every)
    stamp = numerics.current()   # an unknown MEMNP_BACKEND stops here
    out = check_output_dir(out)
    executor = make_executor(jobs, scheduler)
    plan, sources, reasons = plan_run(names, scale, seed, data_dir, download, devices)
    for family, source in sources.items():
        if source is not None:
            progress.message(f"data: {family} -> {DATA_NAMES.get(source, source)}")
    for family, reason in reasons.items():
        affected = [f"{sim} ({'all pairs' if 'all pairs' in why else 'its ' + family + ' pairs'})"
                    for sim, why in plan.skipped if why.startswith(family)]
        progress.message(skip_message(family, reason, affected, download))
    store = ResultsStore(out)
    executor.connect()
    own_lock = lock is None
    lock = RunLock(out) if own_lock else lock
    try:
        lock.acquire()
        manifest = build_manifest(store, plan, scale, seed, sources, preset, names, stamp)
        stale = check_stale(store, manifest, plan, stamp, recompute_stale)
        if len(manifest["runs"]) == 1 and store.manifest_path.is_file():
            progress.message(f"{store.manifest_path} described a run with another scale, seed or data; "
                             "it now describes this one (the other run's job files are kept)")
        return _run(plan, manifest, store, executor, data_dir, download, progress, start, checkpoint_every,
                    stale, group)
    finally:
        executor.close()
        if own_lock:
            lock.release()


def check_stale(store, manifest, plan, stamp, recompute_stale):
    """The stale jobs of the manifest's (:func:`memnp.experiments.stale.find_stale`); raises
    StaleResults when there are any and ``recompute_stale`` is false, or when some of them are
    not jobs of ``plan`` (this run could not recompute them)."""
    stale = find_stale(store, manifest["jobs"], stamp)
    if stale and not recompute_stale:
        raise StaleResults(stale, store.root)
    outside = stale.keys - {job.key for job in plan.jobs}
    if outside:
        raise StaleResults(stale, store.root, simulations_of(outside, manifest))
    return stale


def _run(plan, manifest, store, executor, data_dir, download, progress, start, checkpoint_every, stale, group):
    out = store.root
    out.mkdir(parents=True, exist_ok=True)
    store.remove_stale_temporaries()
    store.write_manifest(manifest)
    for key in stale.checkpoints:   # of another numerics version or backend: never resumed
        store.checkpoint(key, 0).remove()
    if stale:
        progress.message(f"--recompute-stale: {stale.describe()}: recomputing {len(stale.keys)} of "
                         f"{stale.total} jobs" + (", without their checkpoints" if stale.checkpoints else ""))
    done = {j.key for j in plan.jobs if j.key not in stale.keys and store.is_done(j.kind, j.key)}
    for key in done:  # a run killed between a job's record and its checkpoint's removal
        store.checkpoint(key, 0).remove()
    reused = sorted(done)
    todo = [j for j in plan.jobs if j.key not in done]
    if checkpoint_every > 0:
        for job in todo:
            state = store.checkpoint(job.key, checkpoint_every).load() if job.kind == "train" else None
            if state is not None:
                epochs = plan.trainings[job.training]["config"]["epochs"]
                progress.message(f"resuming {job.describe()} from its in-job checkpoint after epoch "
                                 f"{state.epoch} of {epochs}")
    progress.jobs_start(len(plan.jobs), len(done))
    computed, groups = [], []
    if todo:
        computed, groups = execute(plan, todo, done, store, executor, data_dir, download, progress,
                                    checkpoint_every, stale.current, group)
    manifest["runs"][-1]["finished"] = now()
    store.write_manifest(manifest)
    try:  # only when empty: no job left a checkpoint
        store.checkpoint_dir.rmdir()
    except OSError:
        pass
    progress.close()
    return RunResult(store, plan, computed, reused, time.perf_counter() - start, groups)
