"""memnp's figures (matplotlib, Agg canvas, PNG at 300 dpi and PDF, sized for a paper column).

This package and ``memnp.cli`` are the only parts of memnp that import matplotlib; ``import memnp``
does not load it.

- :mod:`.style`: sizes, fonts, colours and the atomic save helper.
- Figure functions on plain data (arrays and dicts, SI units) plus an output path, each writing
  ``<path>.png`` and ``<path>.pdf``: :mod:`.devices` (SiOx I-V curves and PF fits, PF residuals
  with Q-Q plots, Ta/HfO2 pulses and KDE), :mod:`.training` (training curves, the CNN figure),
  :mod:`.boxplots` (test error against power), :mod:`.conductances` (G+ against G- per weight
  implementation), :mod:`.heatmap` (the robustness matrix).
- :mod:`.loaders` reads the results store and the data directory into those inputs, and
  :mod:`.catalogue` lists every figure; :func:`draw_all` draws them all.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["Drawn", "draw_all"]


class Drawn(list):
    """The paths :func:`draw_all` wrote (a list), with ``skipped``: {figure name: reason},
    ``partial``: {figure name: [what it lacks]} (figures drawn from fewer results than
    configured, with ``partial=True``) and ``removed``: stale figure files deleted."""

    def __init__(self, paths=(), skipped=None):
        super().__init__(paths)
        self.skipped = dict(skipped or {})
        self.partial = {}
        self.removed = []


def draw_all(results_dir, figures_dir=None, data_dir=None, *, only=None, strict=False, log=None,
             partial=False, prune=False, progress=None, workers=1):
    """Draw every figure whose inputs exist; skip the others with a reason.

    The results store is verified first (unless only device figures are asked for) (:mod:`memnp.experiments.verify`): a missing or corrupt
    job file, or a pair with fewer results than configured, raises
    :class:`~memnp.experiments.verify.IncompleteResults` (nothing drawn) unless ``partial``; then
    the bad records are left out, and each figure drawn from fewer results than configured says
    so in a red line at its foot (and is listed in ``Drawn.partial``).

    Args:
        results_dir: a results directory written by ``reproduce`` (it may be absent or empty:
            the result figures are then skipped).
        figures_dir: where the figures go (default ``<results_dir>/figures``).
        data_dir: the data directory holding measured device data (default: memnp's data
            directory, ``$MEMNP_DATA`` or ``~/.cache/memnp``). Nothing is downloaded.
        only: names of the figures to draw (see :data:`memnp.plotting.catalogue.FIGURES`).
        strict: re-raise a figure's unexpected error instead of recording it as a skip reason.
        log: optional callable taking one line of text (e.g. ``print``), told of every figure
            drawn or skipped.
        partial: draw from a store that fails verification (see above).
        prune: afterwards delete the result figures (:func:`.catalogue.is_result_figure`) in
            ``figures_dir`` that this call did not draw (their simulations are no longer in the
            store, or have no finished job); meant for a full redraw (``only`` None).
        progress: optional callable ``(k, n, name)``, called before drawing the k-th of n figures
            (with ``workers`` > 1: as the k-th is finished).
        workers: how many processes draw the figures (1: this one; more: that many new processes,
            at most one per figure; the same files).
    Returns:
        :class:`Drawn`: the written paths (PNG and PDF of each figure), with ``.skipped``.
    """
    from ..experiments.verify import IncompleteResults
    from .catalogue import DEVICE_FIGURES, FIGURES, Context, is_result_figure
    from .drawing import draw_many
    from .loaders import Skip

    results_dir = Path(results_dir)
    figures_dir = Path(figures_dir) if figures_dir is not None else results_dir / "figures"
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; figures are: {', '.join(FIGURES)}")
    ctx = Context(results_dir, data_dir)
    try:
        view = ctx.view
    except Skip:
        view = None   # no results store: only the device figures can be drawn
    from_results = any(name not in DEVICE_FIGURES for name in names)
    if view is not None and from_results and not view.verification.ok and not partial:
        raise IncompleteResults(results_dir, view.verification, "no figure was drawn")
    drawn = Drawn()
    outcomes = draw_many(ctx, figures_dir, names, strict=strict, workers=workers, done=progress)
    for name in names:     # in the catalogue's order, however they were drawn
        outcome = outcomes[name]
        if outcome.skipped is not None:
            drawn.skipped[name] = outcome.skipped
            if log:
                log(f"figure {name} skipped: {outcome.skipped}")
            continue
        drawn.extend(outcome.paths)
        if outcome.partial:
            drawn.partial[name] = list(outcome.partial)
        if log:
            log(f"figure {name}: " + ", ".join(str(p) for p in outcome.paths))
    if prune and figures_dir.is_dir():
        kept = {path.name for path in drawn}
        for path in sorted(figures_dir.iterdir()):
            if path.suffix in (".png", ".pdf") and is_result_figure(path.stem) and path.name not in kept:
                path.unlink()
                drawn.removed.append(path)
    return drawn
