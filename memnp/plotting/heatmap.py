"""The robustness heatmap: median test error of every trained network on every inference setup."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.patches import Rectangle

from . import style


def _text_color(rgba):
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


@style.styled
def robustness_heatmap(path, errors, training_labels, inference_labels, *, normalise_rows=True,
                       mark_best=True, cmap="viridis"):
    """Median test error (%) of trained networks (columns) on inference setups (rows), annotated.

    Args:
        path: output path.
        errors: (n_inference, n_training) median test error (%); NaN where a pair was not run.
        training_labels: (n_training,) column labels; inference_labels: (n_inference,) row labels.
        normalise_rows: colour each cell by how far its error lies above the lowest error of its
            row (percentage points, one linear scale for every row, with numbers on the colour
            bar), so that the ranking within an inference setup shows whatever its error level;
            the annotations always show the error itself. Otherwise colour the error itself, on
            one logarithmic scale for the whole matrix.
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
        norm = LogNorm(lo, max(hi, lo * 1.01))
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
            text = f"{row[j]:.1f}" if row[j] < 99.95 else f"{row[j]:.0f}"
            axis.text(j, i, text, ha="center", va="center", fontsize=font, color=_text_color(rgba),
                      fontweight="bold" if (mark_best and j in best) else "normal")
        for j in best if mark_best else ():
            axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.0))
    axis.set_xticks(range(n_train), training_labels, rotation=40, ha="right", rotation_mode="anchor")
    axis.set_yticks(range(n_inf), inference_labels)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_xlabel("Training")
    axis.set_ylabel("Inference")
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axis, aspect=25, pad=0.015)
    if normalise_rows:
        bar.set_label("Median test error above\nthe row's lowest (pp)")
    else:
        bar.set_label("Median test error (%)")
    return style.save(fig, path)
