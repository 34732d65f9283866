"""Conductances of differential pairs (G+ against G-) per weight implementation, with error boxes.

An *implementation* is a mapping with ``label`` (str), ``G_plus`` and ``G_minus`` ((n,) S: the
conductances of the positive and negative device of each pair, before any disturbance) and
optionally ``color``. A *row* groups the implementations trained for one setup:
    {"title": str, "implementations": [implementation, ...],
     "groups": [boxplots group, ...] (optional: test error % and power W per implementation)}
"""
from __future__ import annotations

import numpy as np

from . import style
from .boxplots import _DEFAULT_CYCLE, draw_error_vs_power, share_error_axis


def pair_conductances(G):
    """(G_plus, G_minus) flattened from a crossbar conductance matrix G (rows, 2 n_out) in S.

    Even columns hold the positive devices and odd columns the negative ones (docs/model.md §1).
    """
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[1] % 2:
        raise ValueError(f"G must be (rows, 2 * n_out) with interleaved pairs, got shape {G.shape}")
    return G[:, 0::2].reshape(-1), G[:, 1::2].reshape(-1)


def _subsample(a, b, max_points, rng):
    if a.size <= max_points:
        return a, b
    keep = rng.choice(a.size, size=max_points, replace=False)
    return a[keep], b[keep]


@style.styled
def conductance_scatter_figure(path, rows, *, G_off=None, G_on=None, max_points=3000, seed=0):
    """G+ against G- for every weight implementation (one scatter per implementation and row),
    and under each row's scatters, when given, its test-error-vs-power box plots.

    Args:
        path: output path.
        rows: [row, ...] (module docstring).
        G_off, G_on: conductance range (S), drawn as dotted guides when given.
        max_points: at most this many pairs per scatter (a seeded random subset).
        seed: seed of the subset.
    Returns:
        [png_path, pdf_path].
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    for row in rows:
        if not row.get("implementations"):
            raise ValueError(f"row {row.get('title')!r} has no implementations")
    rng = np.random.default_rng(seed)
    ncols = max(len(r["implementations"]) for r in rows)
    with_boxes = [r for r in rows if r.get("groups")]
    every = np.concatenate([np.concatenate([np.asarray(i["G_plus"], float).ravel(),
                                            np.asarray(i["G_minus"], float).ravel()])
                            for r in rows for i in r["implementations"]])
    scale, unit = (1e6, "µS") if np.nanmax(every) < 1e-3 else (1e3, "mS")
    top = scale * max(float(np.nanmax(every)), float(G_on or 0.0))
    lim = (0.0, 1.04 * top)

    width = "page" if ncols > 2 else "column"
    fig = style.new_figure(width, height=1.75 * len(rows) * (1 if ncols > 2 else 1.6) + 2.0 * bool(with_boxes))
    grid = fig.add_gridspec(len(rows) + bool(with_boxes), 1,
                            height_ratios=[1.0] * len(rows) + ([1.1] if with_boxes else []))
    scatter_axes = []
    for r, row in enumerate(rows):
        sub = grid[r].subgridspec(1, ncols)
        for j, impl in enumerate(row["implementations"]):
            axis = fig.add_subplot(sub[j])
            scatter_axes.append(axis)
            color = impl.get("color") or _DEFAULT_CYCLE[j % len(_DEFAULT_CYCLE)]
            a = np.asarray(impl["G_plus"], float).ravel()
            b = np.asarray(impl["G_minus"], float).ravel()
            if a.shape != b.shape:
                raise ValueError(f"{impl['label']!r}: G_plus and G_minus must have equal sizes, "
                                 f"got {a.size} and {b.size}")
            a, b = _subsample(a, b, max_points, rng)
            axis.scatter(scale * a, scale * b, s=1.5, color=color, alpha=0.35, edgecolors="none",
                         rasterized=True)
            for G in (G_off, G_on):
                if G is not None:
                    axis.axvline(scale * G, color="grey", ls=":", lw=0.5)
                    axis.axhline(scale * G, color="grey", ls=":", lw=0.5)
            axis.set_xlim(*lim)
            axis.set_ylim(*lim)
            axis.set_aspect("equal", adjustable="box")
            axis.set_title(impl["label"], fontsize=7, color=color)
            axis.set_xlabel(rf"$G_+$ ({unit})")
            if j == 0:
                axis.set_ylabel(f"{row.get('title', '')}\n" + rf"$G_-$ ({unit})".lstrip())
            else:
                axis.tick_params(labelleft=False)
    if with_boxes:
        sub = grid[len(rows)].subgridspec(1, len(with_boxes))
        share = share_error_axis([[g["error"] for g in row["groups"]] for row in with_boxes])
        first = None
        handles = {}
        for k, row in enumerate(with_boxes):
            axis = fig.add_subplot(sub[k], sharey=first if share else None)
            first = first or axis
            groups = [dict(g) for g in row["groups"]]
            for j, g in enumerate(groups):
                g.setdefault("color", _DEFAULT_CYCLE[j % len(_DEFAULT_CYCLE)])
            for h in draw_error_vs_power(axis, groups):
                handles.setdefault(h.get_label(), h)
            axis.set_title(row.get("title", ""), fontsize=7.5)
            if k and share:
                axis.set_ylabel("")
        fig.legend(handles=list(handles.values()), loc="outside lower center",
                   ncols=min(4, len(handles)), handlelength=1.2, columnspacing=1.0)
    return style.save(fig, path)
