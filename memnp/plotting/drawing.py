"""Drawing the catalogue's figures one by one, in this process or in worker processes.

:func:`draw_one` draws one figure and says how it went (a :class:`Outcome`); :func:`draw_many`
draws several, on ``workers`` new processes when there are more than one (each figure is a
separate task: the figures are independent, and their costs differ by ten times). A worker
process opens the results store once, for all the figures it draws. The files are the same
either way.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

__all__ = ["Outcome", "draw_one", "draw_many"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One figure's result: the paths written, or the reason it was skipped (a missing input, or
    "failed: ..." for an error), and the footnotes of a figure drawn from partial results."""

    name: str
    paths: tuple = ()
    skipped: str | None = None
    partial: tuple = ()


def draw_one(ctx, figures_dir, name, strict=False):
    """Draw the figure ``name`` of :data:`memnp.plotting.catalogue.FIGURES` from ``ctx`` (a
    catalogue Context); an :class:`Outcome`. ``strict``: re-raise an unexpected error instead of
    recording it."""
    from . import style
    from .catalogue import FIGURES
    from .loaders import Skip

    notes = style.Notes()
    try:
        view = ctx.view
    except Skip:
        view = None
    if view is not None:
        view.notes = notes
    token = style.FOOTNOTE.set(notes)
    try:
        paths = FIGURES[name](ctx, figures_dir)
    except Skip as exc:
        return Outcome(name, skipped=str(exc))
    except Exception as exc:  # a broken figure must not lose the others
        if strict:
            raise
        return Outcome(name, skipped=f"failed: {type(exc).__name__}: {exc}")
    finally:
        style.FOOTNOTE.reset(token)
    return Outcome(name, paths=tuple(paths), partial=tuple(dict.fromkeys(notes.all)))


#: A worker process's Context (the results store opened once) and where it draws.
_worker = {}


def _start_worker(results_dir, data_dir, figures_dir, strict):
    from .catalogue import Context
    _worker.update(ctx=Context(results_dir, data_dir), figures_dir=figures_dir, strict=strict)


def _draw_in_worker(name):
    return draw_one(_worker["ctx"], _worker["figures_dir"], name, _worker["strict"])


def draw_many(ctx, figures_dir, names, strict=False, workers=1, done=None):
    """{name: Outcome} of the figures ``names``, drawn in this process (``workers`` 1) or on up to
    ``workers`` new processes. ``done``: optional callable ``(k, n, name)`` told as the k-th of n
    figures starts (in this process) or is finished (in another). Should the worker processes die
    (killed, out of memory), the figures they left are drawn here."""
    outcomes = {}
    n = len(names)
    workers = min(int(workers), n)
    if workers > 1:
        try:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker,
                                       initargs=(ctx.results_dir, ctx.data_dir, figures_dir, strict))
            with pool:
                futures = [pool.submit(_draw_in_worker, name) for name in names]
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes[outcome.name] = outcome
                    if done:
                        done(len(outcomes), n, outcome.name)
        except BrokenProcessPool:
            pass     # the rest below, in this process
    for name in names:
        if name not in outcomes:
            if done:
                done(len(outcomes) + 1, n, name)
            outcomes[name] = draw_one(ctx, figures_dir, name, strict)
    return outcomes
