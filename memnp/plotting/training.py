"""Training curves: training, validation and nonideal test error per epoch (MNIST and CNN figures).

A *panel* is a mapping:
    title: str (optional)
    epochs: (n_epochs,) epoch numbers (1-based) of the training curve
    training: (n_networks, n_epochs) or (n_epochs,) training error (%)
    validation_epochs: (n_val,) epochs at which validation ran
    validation: (n_networks, n_val) or (n_networks, n_val, repeats) or (n_val,) validation error (%);
        with repeats (memristive validation) the median over repeats is drawn
    test_epochs: (n_test,) epochs of the test-during-training evaluations (optional)
    test: (n_networks, n_test, repeats) or (n_networks, n_test) or (n_test,) test error (%) on the
        panel's inference setup (optional); the median over repeats is drawn, with the
        interquartile range shaded
    row_label: str (optional): names the panel's row of a grid; drawn above the y label of the
        row's first panel
One line per trained network; networks are told apart by line style, as in the paper.
"""
from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import style
from .ticks import FittingIntegerLocator

LINESTYLES = ["-", (0, (4, 1.5)), (0, (1, 1)), (0, (4, 1.5, 1, 1.5)), (0, (6, 1, 1, 1, 1, 1))]
#: Legend labels of the curves (the test curve is on the inference setup the panel's title names).
ROLE_LABELS = style.CURVE_LABELS


def _networks(values, n_points, name, repeats_allowed):
    """Reshape ``values`` to (n_networks, n_points[, repeats])."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim == 3 and not repeats_allowed:
        raise ValueError(f"{name} must be (n_networks, n_points), got shape {values.shape}")
    if values.ndim not in (2, 3) or values.shape[1] != n_points:
        raise ValueError(f"{name} must have {n_points} points along axis 1 (its epochs), got shape {values.shape}")
    return values


def _check_panel(panel):
    if "epochs" not in panel or "training" not in panel:
        raise ValueError(f"a training-curve panel needs 'epochs' and 'training', got keys {sorted(panel)}")
    epochs = np.asarray(panel["epochs"], dtype=float).reshape(-1)
    out = {"epochs": epochs, "training": _networks(panel["training"], epochs.size, "training", False)}
    for role in ("validation", "test"):
        if panel.get(role) is None:
            continue
        role_epochs = np.asarray(panel.get(f"{role}_epochs", epochs), dtype=float).reshape(-1)
        out[f"{role}_epochs"] = role_epochs
        out[role] = _networks(panel[role], role_epochs.size, role, True)
    return out


#: Opacity of the test curve's interquartile band.
TEST_BAND_ALPHA = 0.15
#: Legend label of that band.
TEST_BAND_LABEL = "Test IQR"


def draw_training_curves(axis, panel, *, log_y=False):
    """Draw one panel's curves on ``axis`` (see the module docstring for ``panel``).

    Returns the set of the optional marks drawn, for the legend: "test markers" (a marker at
    each test evaluation) and "test band" (the test error's interquartile range).
    """
    data = _check_panel(panel)
    colors = style.CURVE_COLORS
    drawn = set()
    for k, curve in enumerate(data["training"]):
        axis.plot(data["epochs"], curve, color=colors["training"], lw=0.8,
                  ls=LINESTYLES[k % len(LINESTYLES)])
    for role in ("validation", "test"):
        if role not in data:
            continue
        x = data[f"{role}_epochs"]
        for k, values in enumerate(data[role]):
            ls = LINESTYLES[k % len(LINESTYLES)]
            if values.ndim == 2:  # (n_points, repeats)
                median = np.nanmedian(values, axis=1)
                if role == "test" and values.shape[1] > 1:
                    q1, q3 = np.nanpercentile(values, [25, 75], axis=1)
                    axis.fill_between(x, q1, q3, color=colors[role], alpha=TEST_BAND_ALPHA, lw=0)
                    drawn.add("test band")
            else:
                median = values
            marker = "o" if x.size <= 30 and role == "test" else None
            if marker:
                drawn.add("test markers")
            axis.plot(x, median, color=colors[role], lw=0.8, ls=ls, marker=marker, ms=2)
    if log_y:
        axis.set_yscale("log")
    axis.xaxis.set_major_locator(FittingIntegerLocator())
    if panel.get("title"):
        axis.set_title(panel["title"], fontsize=7.5)
    return drawn


def curve_legend_handles(n_networks=1, marks=()):
    """Legend handles for the three curve roles (and the network line styles when > 1).

    ``marks``: the optional marks drawn (:func:`draw_training_curves`' return values): the test
    handle then carries the markers, and the band gets an entry."""
    handles = [Line2D([], [], color=style.CURVE_COLORS[r], label=ROLE_LABELS[r],
                      marker="o" if r == "test" and "test markers" in marks else None, ms=2)
               for r in ROLE_LABELS]
    if "test band" in marks:
        handles.append(Patch(facecolor=style.CURVE_COLORS["test"], alpha=TEST_BAND_ALPHA, lw=0,
                             label=TEST_BAND_LABEL))
    if n_networks > 1:
        handles += [Line2D([], [], color="grey", ls=LINESTYLES[k % len(LINESTYLES)], lw=0.8,
                           label=f"network {k + 1}") for k in range(min(n_networks, len(LINESTYLES)))]
    return handles


def _legend_columns(n_entries, n_panel_columns):
    """Legend entries per row: one row when they fit the figure's width, else two rows."""
    fits = 6 if n_panel_columns >= 3 else 3
    return n_entries if n_entries <= fits else -(-n_entries // 2)


def grid_columns(n_panels):
    """Panels per row for ``n_panels``: all in one row up to 3, else the first of 3, 4, 5, 2 that
    fills every row (no empty cells), else 3."""
    if n_panels <= 3:
        return max(1, n_panels)
    return next((c for c in (3, 4, 5, 2) if n_panels % c == 0), 3)


#: Width of one character of a title, as a fraction of its font size (DejaVu Sans, mixed case).
_TITLE_CHAR_EM = 0.58


def fit_titles(titles, panel_width_in, font_pt=7.5, separator=" → "):
    """Panel titles that fit ``panel_width_in``: when one is too wide, every title that holds
    ``separator`` is broken after it, so that the titles of a figure stay alike (and its panels
    aligned)."""
    width_pt = 72.0 * panel_width_in
    if all(len(t) * _TITLE_CHAR_EM * font_pt <= width_pt for t in titles if t):
        return list(titles)
    return [t.replace(separator, separator.rstrip() + "\n") if t else t for t in titles]


@style.styled
def training_curves_figure(path, panels, *, log_y=False, ncols=None, title=None):
    """Training, validation and test error against epoch, one panel per setup.

    Args:
        path: output path.
        panels: [panel, ...] (module docstring). Panels share both axes.
        log_y: log scale for the error axis.
        ncols: panels per row (default :func:`grid_columns`).
    Returns:
        [png_path, pdf_path].
    """
    if not panels:
        raise ValueError("panels must hold at least one panel")
    ncols = int(ncols or grid_columns(len(panels)))
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = -(-len(panels) // ncols)
    width = "column" if ncols <= 2 else "page"
    fig = style.new_figure(width, height=0.4 + 1.55 * nrows)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    titles = fit_titles([p.get("title") or "" for p in panels], 0.85 * fig.get_figwidth() / ncols)
    n_networks, marks = 1, set()
    for idx, axis in enumerate(axes.flat):
        if idx >= len(panels):
            axis.set_visible(False)
            continue
        marks |= draw_training_curves(axis, {**panels[idx], "title": titles[idx]}, log_y=log_y)
        n_networks = max(n_networks, np.atleast_2d(np.asarray(panels[idx]["training"])).shape[0])
        if idx // ncols == nrows - 1 or idx + ncols >= len(panels):
            axis.set_xlabel("Epoch")
            axis.tick_params(labelbottom=True)
        if idx % ncols == 0:
            row_label = panels[idx].get("row_label")
            axis.set_ylabel(f"{row_label}\nError (%)" if row_label else "Error (%)")
    handles = curve_legend_handles(n_networks, marks)
    fig.legend(handles=handles, loc="outside upper center", ncols=_legend_columns(len(handles), ncols),
               handlelength=1.8, columnspacing=1.0)
    if title:
        fig.suptitle(title)
    return style.save(fig, path)


@style.styled
def cnn_figure(path, panels, groups, *, box_title="Test (nonideal inference)"):
    """The CIFAR-10 CNN figure: training curves (one panel per training) and test-error boxes.

    Args:
        path: output path.
        panels: [panel, ...] curve panels, e.g. standard and nonideality-aware training.
        groups: [group, ...] of :mod:`memnp.plotting.boxplots` (label, error %, optional power W).
        box_title: title of the boxes' panel (which inference setup the boxes show).
    Returns:
        [png_path, pdf_path].
    """
    from .boxplots import draw_category_boxes

    if not panels:
        raise ValueError("panels must hold at least one panel")
    fig = style.new_figure("page", height=2.3)
    axes = fig.subplots(1, len(panels) + 1, sharey=True, width_ratios=[1.0] * len(panels) + [0.8])
    n_networks, marks = 1, set()
    for axis, panel in zip(axes[:-1], panels):
        marks |= draw_training_curves(axis, panel)
        axis.set_xlabel("Epoch")
        n_networks = max(n_networks, np.atleast_2d(np.asarray(panel["training"])).shape[0])
    axes[0].set_ylabel("Error (%)")
    draw_category_boxes(axes[-1], groups)
    axes[-1].set_ylabel("")
    axes[-1].set_xlabel("Training")
    axes[-1].set_title(box_title, fontsize=7.5)
    handles = curve_legend_handles(n_networks, marks)
    fig.legend(handles=handles, loc="outside upper center", ncols=_legend_columns(len(handles), 3),
               handlelength=1.8, columnspacing=1.0)
    return style.save(fig, path)

