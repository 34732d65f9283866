"""The results store: one file per job, written atomically, keyed by a hash of config and seed.

Layout (see docs/results-store.md)::

    <root>/manifest.json            the run: preset, seed, data, setups, experiments, every job
    <root>/.memnp.lock              the advisory lock of the run using it (outputs.RunLock)
    <root>/jobs/train/<key>.npz     trained weights (the checkpoint), plain arrays
    <root>/jobs/train/<key>.json    training record: config, seed, histories, checkpoint, timing
    <root>/jobs/infer/<key>.json    inference record: per-repeat accuracy, loss and power
    <root>/checkpoints/<key>.{npz,json}  state of a training job still running (removed when done)
    <root>/report/                  summary.md, summary.csv, robustness.csv, diagonal.csv (drift.csv, adc.csv)
    <root>/figures/                 figures (memnp.plotting)

Every file is written to a temporary file in the same directory, flushed, synced and moved into
place with ``os.replace``, so a reader sees either the old file or the complete new one. A job is
finished when its record JSON parses, names its key, matches its own checksum (``record_sha256``:
required of inference records, checked on training records that have one, so an edited record is
computed again), and (for training) the weights file exists and has the SHA-256 the record gives:
the record is written after the weights, so a run killed at any moment leaves either a finished
job or none. Rerunning skips finished jobs. Keys hash the config and seed, so a changed config is
a new key and never reuses stale results. A manifest that exists but is damaged raises
:class:`CorruptManifest` and is never replaced. Files get the mode ``open()`` would give them
(0666 less the umask). Nothing is unpickled: weights are loaded with ``allow_pickle=False`` and
records are JSON. In-job checkpoints (:mod:`memnp.experiments.checkpoint`) let a training job
killed mid-way resume at the epoch after its last save; they are deleted once the job's record is
written. The file functions (atomic writes, reading back, SHA-256) live in
:mod:`memnp.experiments.files`, which this module and the checkpoints share; they stay importable
from here.
"""
import hashlib
from pathlib import Path

from .checkpoint import TrainingCheckpoint
from .configs import canonical_json
from .files import TMP_MARK as _TMP_MARK
from .files import file_sha256, finite as _finite, read_json, read_npz, write_json, write_npz, write_text

__all__ = ["MANIFEST", "FORMAT", "ResultsStore", "CorruptManifest", "record_sha256", "remove_stale_figure_parts",
           "file_sha256", "read_json", "read_npz", "write_json", "write_npz", "write_text"]

MANIFEST = "manifest.json"
FORMAT = "memnp-results/1"
_MANIFEST_KEYS = ("trainings", "inferences", "simulations", "jobs")


def record_sha256(record):
    """SHA-256 of a job record as stored (NaN as null), over its canonical JSON without the
    ``record_sha256`` field itself: a record edited after it was written no longer matches."""
    body = {k: v for k, v in _finite(record).items() if k != "record_sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _sealed(record):
    record = _finite(record)
    return dict(record, record_sha256=record_sha256(record))


class ResultsStore:
    """A results directory (see the module docstring for its layout)."""

    def __init__(self, root):
        self.root = Path(root)

    # paths ---------------------------------------------------------------------------------
    @property
    def manifest_path(self):
        return self.root / MANIFEST

    @property
    def report_dir(self):
        return self.root / "report"

    @property
    def figures_dir(self):
        return self.root / "figures"

    def record_path(self, kind, key):
        _check_kind(kind)
        return self.root / "jobs" / kind / f"{key}.json"

    def weights_path(self, key):
        return self.root / "jobs" / "train" / f"{key}.npz"

    @property
    def checkpoint_dir(self):
        return self.root / "checkpoints"

    def checkpoint(self, key, every_seconds):
        """The in-job checkpoint of training job ``key``, saved at most every ``every_seconds`` s."""
        return TrainingCheckpoint(self.checkpoint_dir, key, every_seconds)

    # jobs ----------------------------------------------------------------------------------
    def is_done(self, kind, key):
        """Whether the job's files are complete and consistent (see the module docstring)."""
        return self.finished_record(kind, key) is not None

    def finished_record(self, kind, key):
        """The job's record when the job is finished (see :meth:`is_done`), else None."""
        try:
            record = self.read_record(kind, key)
        except (OSError, ValueError):
            return None
        sealed = record.get("record_sha256")
        if (sealed is None and kind == "infer") or (sealed is not None and sealed != record_sha256(record)):
            return None   # edited (or written without a checksum): computed again
        if kind == "train":
            path = self.weights_path(key)
            if not (path.is_file() and file_sha256(path) == record.get("weights_sha256")):
                return None
        return record

    def read_record(self, kind, key):
        """The job's record; ValueError if it does not parse or names another key."""
        record = read_json(self.record_path(kind, key))
        if not isinstance(record, dict) or record.get("key") != key or record.get("kind") != kind:
            raise ValueError(f"record {self.record_path(kind, key)} does not belong to {kind} job {key}")
        return record

    def infer_records(self, manifest, training, inference):
        """The readable records of the manifest's inference jobs of one (training, inference)
        pair, in key order (unreadable ones are left out)."""
        out = []
        for key, job in sorted(manifest.get("jobs", {}).items()):
            if job.get("kind") == "infer" and job.get("training") == training and job.get("inference") == inference:
                try:
                    out.append(self.read_record("infer", key))
                except (OSError, ValueError):
                    continue
        return out

    def write_train(self, key, record, weights):
        """Weights first, then the record naming their SHA-256 (the record marks completion)."""
        sha = write_npz(self.weights_path(key), weights)
        record = _sealed(dict(record, key=key, kind="train", weights_file=self.weights_path(key).name,
                              weights_sha256=sha))
        write_json(self.record_path("train", key), record)
        return record

    def write_infer(self, key, record):
        """The record, with its ``record_sha256`` (a record that no longer matches it is redone)."""
        record = _sealed(dict(record, key=key, kind="infer"))
        write_json(self.record_path("infer", key), record)
        return record

    def read_weights(self, key):
        return read_npz(self.weights_path(key))

    # the run -------------------------------------------------------------------------------
    def write_manifest(self, manifest):
        write_json(self.manifest_path, dict(manifest, format=FORMAT))

    def read_manifest(self):
        if not self.manifest_path.is_file():
            raise FileNotFoundError(f"{self.manifest_path} not found: {self.root} is not a memnp results "
                                    "directory (run `python run.py reproduce --out DIR` first)")
        try:
            manifest = read_json(self.manifest_path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptManifest(self.manifest_path, f"it does not parse as JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise CorruptManifest(self.manifest_path, f"it holds a {type(manifest).__name__}, not an object")
        missing = [k for k in _MANIFEST_KEYS if not isinstance(manifest.get(k), (dict, list))]
        if manifest.get("format") == FORMAT and missing:
            raise CorruptManifest(self.manifest_path, f"it lacks {', '.join(missing)}")
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{self.manifest_path}: unknown format {manifest.get('format')!r} (expected {FORMAT})")
        return manifest

    def remove_stale_temporaries(self):
        """Delete temporary files left by a killed run: this store's own ``.*.tmp-*`` files, and
        the figures' ``.NAME.png.*.part`` / ``.NAME.pdf.*.part`` (memnp.plotting's atomic saves)."""
        removed = 0
        for directory in (self.root, self.root / "jobs" / "train", self.root / "jobs" / "infer",
                          self.report_dir, self.checkpoint_dir):
            if directory.is_dir():
                for path in directory.glob(f".*{_TMP_MARK}*"):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed + remove_stale_figure_parts(self.figures_dir)


class CorruptManifest(ValueError):
    """A manifest.json that exists but cannot be used; it is never silently replaced."""

    def __init__(self, path, why):
        super().__init__(f"{path} is corrupt or truncated: {why}. memnp will not replace it with a "
                         "shorter history: restore it (e.g. from a backup), or move it away to start a "
                         "new manifest (finished jobs under jobs/ are found and reused)")


def remove_stale_figure_parts(directory):
    """Delete ``.*.png.*.part`` / ``.*.pdf.*.part`` temporaries in a figures ``directory``; how many."""
    removed = 0
    directory = Path(directory)
    if directory.is_dir():
        for pattern in (".*.png.*.part", ".*.pdf.*.part"):
            for path in directory.glob(pattern):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _check_kind(kind):
    if kind not in ("train", "infer"):
        raise ValueError(f"job kind must be 'train' or 'infer'; got {kind!r}")
