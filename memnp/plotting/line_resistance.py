"""The ``line_resistance`` figure: test error against the line resistance r, a panel per device
regime (low- and high-resistance SiOx), a line per training (ideal, PF-aware, fine-tuned at r).

The r axis is logarithmic; r = 0 (no wires) sits one step left of the smallest r > 0, after a
break in the axis, with the tick label "0". Each series is a dict {"label", "color", "r": (k,)
ohms, "median", "q25", "q75": (k,) test error in per cent (NaN where a point has no result)},
optionally "marker" and "linestyle"; markers show the medians, bars the interquartile range.
"""
from __future__ import annotations

import numpy as np

from . import style
from .loaders import Skip

#: How far left of the smallest r > 0 the r = 0 point is drawn (decades).
ZERO_OFFSET = 0.75
#: (training kind, label, colour, marker) of the three trainings (memnp.experiments.report_line_resistance).
KINDS = (("ideal", "Ideal training", style.TRAINING_COLORS["standard"], "o"),
         ("aware", "PF-aware", style.TRAINING_COLORS["aware"], "s"),
         ("fine-tuned", "PF-aware, fine-tuned at r", style.TRAINING_COLORS["aware_regularised"], "^"))


def _check(panels):
    if not panels:
        raise ValueError("panels must hold at least one panel")
    out = []
    for panel in panels:
        series = []
        for s in panel["series"]:
            r = np.asarray(s["r"], dtype=float)
            arrays = {k: np.asarray(s[k], dtype=float) for k in ("median", "q25", "q75")}
            if r.ndim != 1 or any(a.shape != r.shape for a in arrays.values()):
                raise ValueError(f"series {s.get('label')!r}: r, median, q25 and q75 must be 1-D of one length")
            if (r < 0).any() or not np.isfinite(r).all():
                raise ValueError(f"series {s.get('label')!r}: r must be finite and >= 0 ohm")
            series.append(dict(s, r=r, **arrays))
        out.append(dict(panel, series=series))
    if not any(np.isfinite(s["median"]).any() for p in out for s in p["series"]):
        raise ValueError("the panels have no finite median")
    return out


def zero_position(panels):
    """The x position (ohm, on the log axis) where r = 0 is drawn."""
    positive = [float(r) for p in panels for s in p["series"] for r in s["r"] if r > 0]
    smallest = min(positive) if positive else 1.0
    return smallest / 10 ** ZERO_OFFSET


@style.styled
def line_resistance_figure(path, panels):
    """Median test error (%) against r (ohm per segment), one panel per device regime.

    Args:
        path: output path (PNG and PDF are written).
        panels: [{"title", "series": [...]}] (see the module docstring).
    Returns:
        [png_path, pdf_path].
    """
    panels = _check(panels)
    x0 = zero_position(panels)
    fig = style.new_figure("page", aspect=0.36)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        ticks = set()
        for s in panel["series"]:
            ok = np.isfinite(s["median"])
            x = np.where(s["r"] > 0, s["r"], x0)
            ticks.update(s["r"][ok].tolist())
            marker, linestyle = s.get("marker", "o"), s.get("linestyle", "-")
            lo, hi = s["median"] - s["q25"], s["q75"] - s["median"]
            ax.errorbar(x[ok], s["median"][ok], yerr=np.vstack([lo[ok], hi[ok]]), color=s["color"],
                        marker=marker, linestyle="none", capsize=1.5, elinewidth=0.6, label=s["label"])
            wired = ok & (s["r"] > 0)
            ax.plot(x[wired], s["median"][wired], color=s["color"], linestyle=linestyle, linewidth=0.9)
            zero = ok & (s["r"] == 0)
            if zero.any() and wired.any():  # dotted across the axis break
                first = int(np.flatnonzero(wired)[0])
                ax.plot([x0, x[first]], [s["median"][zero][0], s["median"][first]], color=s["color"],
                        linestyle=":", linewidth=0.7)
        ax.set_xscale("log")
        ticks = sorted(ticks)
        ax.set_xticks([x0 if t == 0 else t for t in ticks], ["0" if t == 0 else f"{t:g}" for t in ticks])
        ax.minorticks_off()
        positive = [t for t in ticks if t > 0]
        if 0 in ticks and positive:   # the break between r = 0 and the log axis
            gap = np.sqrt(x0 * positive[0])
            ax.plot([gap / 1.08, gap * 1.08], [0, 0], transform=ax.get_xaxis_transform(), color="white",
                    linewidth=2.5, clip_on=False, zorder=3)
            for dx in (1 / 1.08, 1.08):
                ax.plot([gap * dx / 1.04, gap * dx * 1.04], [-0.02, 0.02], transform=ax.get_xaxis_transform(),
                        color="black", linewidth=0.6, clip_on=False, zorder=4)
        ax.set_xlim(x0 / 10 ** 0.35, (positive[-1] if positive else x0) * 10 ** 0.35)
        ax.set_title(panel["title"])
        ax.set_xlabel("Line resistance r (Ω per segment)")
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("Test error (%)")
    handles = {}
    for ax in axes:  # one entry per training, above the panels (where it covers no data)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncols=len(handles))
    return style.save(fig, path)


def panels_from_rows(rows):
    """Figure panels from :func:`memnp.experiments.report_line_resistance.rows` (one per device)."""
    from ..experiments.line_resistance import DEVICES

    panels = []
    for _, device, _, label in DEVICES:
        series = []
        for kind, name, color, marker in KINDS:
            points = sorted((row for row in rows if row["device"] == device and row["training_kind"] == kind
                             and row["n_results"]), key=lambda row: row["r_ohm"])
            if points:
                series.append({"label": name, "color": color, "marker": marker,
                               "r": [p["r_ohm"] for p in points],
                               "median": [p["median_error_pct"] for p in points],
                               "q25": [p["q25_error_pct"] for p in points],
                               "q75": [p["q75_error_pct"] for p in points]})
        if series:
            panels.append({"title": label[0].upper() + label[1:], "series": series})
    return panels


def draw(ctx, out):
    """The catalogue entry: the figure from a results directory (Skip without sweep results)."""
    from ..experiments import report_line_resistance

    view = ctx.view
    rows = report_line_resistance.rows(view.store, view.manifest, view.verification)
    for row in rows:
        view._note_pair(row["training"], row["inference"])
    panels = panels_from_rows(rows)
    if not panels:
        raise Skip("no finished line_resistance inference jobs in the results (run --only line_resistance)")
    return line_resistance_figure(out / "line_resistance", panels)
