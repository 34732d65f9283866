"""Reproducing the paper: protocol, the nine simulations, the results store, executors and report.

- :mod:`.configs`: :class:`Training`, :class:`Inference`, :class:`DataSpec` (frozen, validated, JSON).
- :mod:`.protocol`: :func:`train` (checkpointing, memristive validation, test-during-training) and
  :func:`infer` (repeats recording accuracy, loss and power); the one link to :mod:`memnp.nn`.
- :mod:`.registry`: the simulations of docs/model.md §7 as data and their expansion into jobs.
- :mod:`.presets`: run scales ``tiny``, ``default`` and ``paper``.
- :mod:`.keys`: job keys (config + seed hashes) and per-job seeds.
- :mod:`.store`: the results directory (atomic files, resume); see docs/results-store.md.
- :mod:`.executors`: in process, local worker processes, Dask.
- :mod:`.runner`: :func:`reproduce`. :mod:`.report`: markdown and CSV summaries.
"""
from .configs import DataSpec, Inference, Training
from .presets import PRESETS, Scale
from .registry import INFERENCES, SIMULATIONS, TRAININGS
from .store import ResultsStore

__all__ = ["DataSpec", "Inference", "Training", "Scale", "PRESETS", "SIMULATIONS", "TRAININGS",
           "INFERENCES", "ResultsStore", "reproduce", "write_report", "train", "infer"]


def __getattr__(name):
    if name == "reproduce":
        from .runner import reproduce
        return reproduce
    if name == "write_report":
        from .report import write_report
        return write_report
    if name in ("train", "infer"):
        from . import protocol
        return getattr(protocol, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
