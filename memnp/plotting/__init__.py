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
    """The paths :func:`draw_all` wrote (a list), with ``skipped``: {figure name: reason}."""

    def __init__(self, paths=(), skipped=None):
        super().__init__(paths)
        self.skipped = dict(skipped or {})


def draw_all(results_dir, figures_dir=None, data_dir=None, *, only=None, strict=False, log=None):
    """Draw every figure whose inputs exist; skip the others with a reason.

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
    Returns:
        :class:`Drawn`: the written paths (PNG and PDF of each figure), with ``.skipped``.
    """
    from .catalogue import FIGURES, Context
    from .loaders import Skip

    results_dir = Path(results_dir)
    figures_dir = Path(figures_dir) if figures_dir is not None else results_dir / "figures"
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; figures are: {', '.join(FIGURES)}")
    ctx = Context(results_dir, data_dir)
    drawn = Drawn()
    for name in names:
        try:
            paths = FIGURES[name](ctx, figures_dir)
        except Skip as exc:
            drawn.skipped[name] = str(exc)
        except Exception as exc:  # a broken figure must not lose the others
            if strict:
                raise
            drawn.skipped[name] = f"failed: {type(exc).__name__}: {exc}"
        else:
            drawn.extend(paths)
            if log:
                log(f"figure {name}: " + ", ".join(str(p) for p in paths))
            continue
        if log:
            log(f"figure {name} skipped: {drawn.skipped[name]}")
    return drawn
