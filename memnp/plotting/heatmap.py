"""The robustness heatmap: median test error of every trained network on every inference setup."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.patches import Rectangle

from . import style
from .ticks import label_log_axis


#: The error colour scale is logarithmic when the largest error is at least this many times the
#: smallest (else linear).
LOG_SCALE_RATIO = 3.0


def cell_text(error, excess=None):
    """A cell's number: the error (%) with one decimal (none at 100 %), or, given ``excess``,
    the percentage points above the row's lowest error ("+2.5"; "0" for the lowest)."""
    if excess is not None:
        return "0" if excess == 0 else f"+{excess:.1f}"
    return f"{error:.1f}" if error < 99.95 else f"{error:.0f}"


def _text_color(rgba):
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


@style.styled
def robustness_heatmap(path, errors, training_labels, inference_labels, *, normalise_rows=False,
                       mark_best=True, cmap="viridis"):
    """Median test error (%) of trained networks (columns) on inference setups (rows), annotated.

    A cell's colour and its number always show one quantity, named by the colour bar.

    Args:
        path: output path.
        errors: (n_inference, n_training) median test error (%); NaN where a pair was not run.
        training_labels: (n_training,) column labels; inference_labels: (n_inference,) row labels.
        normalise_rows: False (default): colour and number are the error itself (%), on one
            colour scale for the whole matrix (logarithmic when the errors span a factor of
            :data:`LOG_SCALE_RATIO` or more, else linear). True: colour and number are how far
            the error lies above the lowest error of its row (percentage points, "+2.5", one
            linear scale for every row), so that the ranking within an inference setup shows
            whatever its error level; each row's label then gives its lowest error (%).
        mark_best: outline the lowest error of each row (every one, when tied).
    Returns:
        [png_path, pdf_path].
    """
    errors = np.asarray(errors, dtype=float)
    if errors.ndim != 2:
        raise ValueError(f"errors must be 2-D (n_inference, n_training), got shape {errors.shape}")
    if errors.shape != (len(inference_labels), len(training_labels)):
        raise ValueError(f"errors has shape {errors.shape} but there are {len(inference_labels)} inference "
                         f"labels and {len(training_labels)} training labels")
    if not np.isfinite(errors).any():
        raise ValueError("errors has no finite entry")
    n_inf, n_train = errors.shape
    colormap = colormaps[cmap]

    shown = np.full_like(errors, np.nan)
    if normalise_rows:
        for i, row in enumerate(errors):
            if np.isfinite(row).any():
                shown[i] = row - np.nanmin(row)
        top = float(np.nanmax(shown))
        norm = Normalize(0.0, top if top > 0 else 1.0)
    else:
        positive = errors[np.isfinite(errors) & (errors > 0)]
        lo, hi = (positive.min(), positive.max()) if positive.size else (0.1, 100.0)
        if hi >= LOG_SCALE_RATIO * lo:
            norm = LogNorm(lo, hi)
        else:  # a narrow range: a linear scale labels it better than a fraction of a decade
            norm = Normalize(lo, max(hi, lo + 0.1))
        shown = np.where(errors > 0, errors, lo)
        shown[~np.isfinite(errors)] = np.nan

    width = style.PAGE_WIDTH if n_train > 5 else style.COLUMN_WIDTH
    longest = max(len(str(s)) for s in training_labels)
    fig = style.new_figure(width, height=0.9 + 0.24 * n_inf + 0.055 * longest)
    axis = fig.subplots()
    masked = np.ma.masked_invalid(shown)
    colormap = colormap.with_extremes(bad="#dddddd")
    axis.imshow(masked, cmap=colormap, norm=norm, aspect="auto", interpolation="nearest")
    font = 6.5 if n_train <= 9 else 5.5
    for i in range(n_inf):
        row = errors[i]
        best = set(np.flatnonzero(row == np.nanmin(row))) if np.isfinite(row).any() else set()
        for j in range(n_train):
            if not np.isfinite(row[j]):
                axis.text(j, i, "–", ha="center", va="center", fontsize=font, color="grey")
                continue
            rgba = colormap(norm(shown[i, j]))
            text = cell_text(row[j], shown[i, j] if normalise_rows else None)
            axis.text(j, i, text, ha="center", va="center", fontsize=font, color=_text_color(rgba),
                      fontweight="bold" if (mark_best and j in best) else "normal")
        for j in best if mark_best else ():
            axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.0))
    axis.set_xticks(range(n_train), training_labels, rotation=40, ha="right", rotation_mode="anchor")
    if normalise_rows:
        inference_labels = [f"{label} ({cell_text(np.nanmin(row))} %)" if np.isfinite(row).any() else str(label)
                            for label, row in zip(inference_labels, errors)]
    axis.set_yticks(range(n_inf), inference_labels)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_xlabel("Training")
    axis.set_ylabel("Inference")
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axis, aspect=25, pad=0.015)
    if normalise_rows:
        bar.set_label("Median test error above the row's\nlowest (pp; lowest in brackets, %)")
    else:
        bar.set_label("Median test error (%)")
        if isinstance(norm, LogNorm):
            label_log_axis(bar.ax.yaxis)
    return style.save(fig, path)
