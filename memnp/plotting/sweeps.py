"""Figures of the simulations beyond the paper that sweep one parameter: test error against the
time after programming (``drift``, log axis) and against the ADC's bits (``adc``).

Each series is a dict {"label", "color", "x": (k,), "median", "q25", "q75": (k,) test error in
per cent, NaN where a point has no result}, optionally "linestyle" and "marker"; the line joins the
medians and the band spans the interquartile range. A series may also name its "group" (what
its colour stands for, e.g. the training) and its "variant" (what its line style and marker stand
for, e.g. the array layout): the legend then has one entry per group and one per variant instead
of one per series. Legends sit above the axes, where they cover no data.
"""
from __future__ import annotations

import numpy as np

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import style

#: Tick labels of the drift figure's time axis (seconds -> words).
TIME_TICKS = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 2592000.0: "1 month", 31536000.0: "1 year"}


def _check(series):
    if not series:
        raise ValueError("series must hold at least one series")
    out = []
    for s in series:
        x = np.asarray(s["x"], dtype=float)
        arrays = {k: np.asarray(s[k], dtype=float) for k in ("median", "q25", "q75")}
        if any(a.shape != x.shape for a in arrays.values()) or x.ndim != 1:
            raise ValueError(f"series {s.get('label')!r}: x, median, q25 and q75 must be 1-D of one length")
        out.append(dict(s, x=x, **arrays))
    if not any(np.isfinite(s["median"]).any() for s in out):
        raise ValueError("series have no finite median")
    return out


def _draw(ax, s):
    ok = np.isfinite(s["median"])
    ax.fill_between(s["x"][ok], s["q25"][ok], s["q75"][ok], color=s["color"], alpha=BAND_ALPHA, linewidth=0)
    ax.plot(s["x"][ok], s["median"][ok], color=s["color"], linestyle=s.get("linestyle", "-"),
            marker=s.get("marker", "o"), label=s["label"])


#: Colour of the legend entries that stand for a line style, marker or band of every colour.
_NEUTRAL = style.COLORS["grey"]
#: Opacity of the interquartile bands.
BAND_ALPHA = 0.18
#: Legend label of the interquartile bands.
BAND_LABEL = "Interquartile range"


def legend_handles(series, references=(), *, trained_at=False):
    """Legend handles for every mark of a sweep figure: the series (factored by "group" and
    "variant" when every series names both), the reference lines, the hollow trained-at marker
    (when ``trained_at``) and the interquartile band, in an order that fills two legend columns
    with the colours first."""
    factored = all("group" in s and "variant" in s for s in series)
    colours, styles = [], []
    if factored:
        for group, color in dict.fromkeys((s["group"], s["color"]) for s in series):
            colours.append(Line2D([], [], color=color, lw=2.0, label=group))
        for variant, ls, marker in dict.fromkeys((s["variant"], s.get("linestyle", "-"), s.get("marker", "o"))
                                                 for s in series):
            styles.append(Line2D([], [], color=_NEUTRAL, ls=ls, marker=marker, label=variant))
    else:
        colours += [Line2D([], [], color=s["color"], ls=s.get("linestyle", "-"), marker=s.get("marker", "o"),
                           label=s["label"]) for s in series]
    shown_references = {}
    for ref in references:
        if factored and "variant" in ref:
            shown_references.setdefault(ref["variant"], Line2D([], [], color=_NEUTRAL, ls=":", lw=0.8,
                                                               label=ref["variant"]))
        else:
            shown_references.setdefault(ref["label"], Line2D([], [], color=ref["color"], ls=":", lw=0.8,
                                                             label=ref["label"]))
    styles += list(shown_references.values())
    if trained_at:
        styles.append(Line2D([], [], ls="none", marker="o", markersize=7, markerfacecolor="none",
                             markeredgecolor=_NEUTRAL, label="Time trained for"))
    band = Patch(facecolor=_NEUTRAL, alpha=BAND_ALPHA, lw=0, label=BAND_LABEL)
    # Two columns, filled column-wise: the colours (and the band) left, the styles right.
    return colours + [band] + styles if styles else colours + [band]


def _legend(fig, handles):
    fig.legend(handles=handles, loc="outside upper center", ncols=2 if len(handles) > 2 else len(handles),
               handlelength=2.0, columnspacing=1.2)


@style.styled
def drift_figure(path, series, *, trained_at=None):
    """Median test error (%) against the time after programming (s, log axis), one line per training.

    Args:
        path: output path (PNG and PDF are written).
        series: see the module docstring; "x" in seconds (> 0).
        trained_at: optional {series label: seconds}: a hollow marker at the time each aware
            training was trained for.
    Returns:
        [png_path, pdf_path].
    """
    series = _check(series)
    if any((s["x"] <= 0).any() for s in series):
        raise ValueError("drift times must be > 0 seconds")
    fig = style.new_figure("column", aspect=0.72)
    ax = fig.add_subplot()
    for s in series:
        _draw(ax, s)
        t = (trained_at or {}).get(s["label"])
        if t is not None and t in set(s["x"].tolist()):
            i = int(np.flatnonzero(s["x"] == t)[0])
            ax.plot([t], [s["median"][i]], marker="o", markersize=7, markerfacecolor="none",
                    markeredgecolor=s["color"], linestyle="none")
    ax.set_xscale("log")
    ticks = sorted({float(x) for s in series for x in s["x"]})
    ax.set_xticks(ticks, [TIME_TICKS.get(t, f"{t:.3g} s") for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("Time after programming")
    ax.set_ylabel("Test error (%)")
    marked = any(t is not None and t in set(s["x"].tolist())
                 for s in series for t in [(trained_at or {}).get(s["label"])])
    _legend(fig, legend_handles(series, trained_at=marked))
    return style.save(fig, path)


@style.styled
def adc_figure(path, series, *, references=()):
    """Median test error (%) against the ADC's bits, one line per (training, array layout).

    Args:
        path: output path. series: see the module docstring; "x" in bits.
        references: optional [{"label", "color", "value": median error % without ADCs}, optionally
            "variant" (its legend entry when the series are factored)], drawn as dotted
            horizontal lines.
    Returns:
        [png_path, pdf_path].
    """
    series = _check(series)
    fig = style.new_figure("column", aspect=0.72)
    ax = fig.add_subplot()
    for s in series:
        _draw(ax, s)
    for ref in references:
        ax.axhline(float(ref["value"]), color=ref["color"], linestyle=":", linewidth=0.8,
                   label=ref.get("label"))
    bits = sorted({int(x) for s in series for x in s["x"]})
    ax.set_xticks(bits)
    ax.set_xlabel("ADC resolution (bits)")
    ax.set_ylabel("Test error (%)")
    _legend(fig, legend_handles(series, references))
    return style.save(fig, path)
