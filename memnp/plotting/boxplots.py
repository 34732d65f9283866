"""Box plots of test error: against average power (log axis), and by category (the CNN figure).

A *group* is a mapping with ``label`` (str), ``error`` ((n,) test error, %), optionally ``power``
((n,) average power per test pass, W) and ``color``. Boxes follow Tukey's convention: the box spans
the quartiles, the line is the median, whiskers reach the furthest point within 1.5 IQR, and
points beyond are drawn individually. The median line is thicker than the box's outline and juts
out of the box on both sides, so it stays visible when it falls on a quartile or when every value
is equal (a few repeats of a test set with a coarse error step, e.g. n = 5).
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch, Rectangle

from . import style
from .ticks import label_log_axis


def box_stats(values):
    """(q1, median, q3, whisker_low, whisker_high, outliers) of ``values`` ((n,), NaN ignored)."""
    values = np.asarray(values, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("a box needs at least one finite value")
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    low, high = float(inside.min()), float(inside.max())
    outliers = values[(values < low) | (values > high)]
    return float(q1), float(median), float(q3), low, high, outliers


#: Width of the median line relative to the box's.
MEDIAN_REACH = 1.3


def draw_box(axis, x, values, color, *, width=0.5, log_x=False):
    """Draw one box of ``values`` centred at ``x``.

    ``width``: in data units, or in decades when ``log_x`` (so boxes look equal on a log axis).
    Returns the box's Rectangle (for legends).
    """
    q1, median, q3, low, high, outliers = box_stats(values)
    if log_x:
        if not x > 0:
            raise ValueError(f"x must be > 0 on a log axis, got {x!r}")
        left, right = x * 10 ** (-width / 2), x * 10 ** (width / 2)
        cap_left, cap_right = x * 10 ** (-width / 4), x * 10 ** (width / 4)
        median_left, median_right = x * 10 ** (-MEDIAN_REACH * width / 2), x * 10 ** (MEDIAN_REACH * width / 2)
    else:
        left, right = x - width / 2, x + width / 2
        cap_left, cap_right = x - width / 4, x + width / 4
        median_left, median_right = x - MEDIAN_REACH * width / 2, x + MEDIAN_REACH * width / 2
    rect = Rectangle((left, q1), right - left, q3 - q1, facecolor=color, alpha=0.35,
                     edgecolor="none", zorder=2)
    axis.add_patch(rect)
    axis.add_patch(Rectangle((left, q1), right - left, q3 - q1, facecolor="none",
                             edgecolor=color, lw=0.9, zorder=3))
    axis.plot([median_left, median_right], [median, median], color=color, lw=1.8, zorder=4,
              solid_capstyle="butt")
    axis.plot([x, x], [q3, high], color=color, lw=0.8, zorder=2)
    axis.plot([x, x], [q1, low], color=color, lw=0.8, zorder=2)
    axis.plot([cap_left, cap_right], [high, high], color=color, lw=0.8, zorder=2)
    axis.plot([cap_left, cap_right], [low, low], color=color, lw=0.8, zorder=2)
    if outliers.size:
        axis.plot(np.full(outliers.shape, x), outliers, ls="none", marker="o", ms=2.2,
                  mfc="none", mec=color, mew=0.6, zorder=3)
    return rect


#: Colours of groups without one: standard, aware, aware + regularised, then the rest.
_DEFAULT_CYCLE = [style.COLORS[k] for k in ("vermilion", "blue", "bluish-green", "reddish-purple",
                                             "orange", "sky-blue", "grey", "black")]


def _group_color(group, index):
    return group.get("color") or _DEFAULT_CYCLE[index % len(_DEFAULT_CYCLE)]


def _check_groups(groups, need_power):
    if not groups:
        raise ValueError("groups must hold at least one group")
    for g in groups:
        if "label" not in g or "error" not in g:
            raise ValueError(f"each group needs 'label' and 'error', got keys {sorted(g)}")
        if need_power:
            if "power" not in g:
                raise ValueError(f"group {g['label']!r} has no 'power' (W)")
            power = np.asarray(g["power"], dtype=float)
            if not np.all(power[np.isfinite(power)] > 0):
                raise ValueError(f"group {g['label']!r}: power must be > 0 W for a log axis")


def share_error_axis(panel_errors, *, log=False, least_fraction=0.4):
    """Whether panels may share their error axis: only when each panel's errors span at least
    ``least_fraction`` of the range of all panels together (else a shared axis would flatten the
    panel whose errors lie close together, such as a low-error device beside a high-error one).

    panel_errors: one list of (n,) error arrays (%) per panel. log: compare on a log scale.
    """
    spans = []
    for errors in panel_errors:
        values = np.concatenate([np.asarray(e, dtype=float).reshape(-1) for e in errors])
        values = values[np.isfinite(values) & ((values > 0) if log else True)]
        if values.size == 0:
            continue
        values = np.log10(values) if log else values
        spans.append((values.min(), values.max()))
    if len(spans) < 2:
        return True
    lows, highs = zip(*spans)
    total = max(highs) - min(lows)
    if total <= 0:
        return True
    return all((hi - lo) >= least_fraction * total for lo, hi in spans)


def box_width(positions, widest=0.12, narrowest=0.05):
    """Box width (decades) for boxes at ``positions`` on a log axis: ``widest`` unless two boxes
    are closer, then 80 % of the smallest gap, but no less than ``narrowest``."""
    logs = np.unique(np.round(np.log10(np.asarray(positions, dtype=float)), 6))
    if logs.size < 2:
        return widest
    return float(np.clip(0.8 * np.diff(logs).min(), narrowest, widest))


def _median_power(group):
    return float(np.nanmedian(np.asarray(group["power"], dtype=float)))


#: Least jump (decades) between the median powers of neighbouring boxes that breaks the power
#: axis (:func:`power_parts`): boxes a decade or more apart would otherwise leave most of a log
#: axis empty and squeeze the others together.
BREAK_DECADES = 1.0


def power_parts(groups, gap=BREAK_DECADES):
    """The groups split where their sorted median powers jump by more than ``gap`` decades:
    a list of index lists (into ``groups``), in ascending power; one list when nothing jumps."""
    powers = np.array([_median_power(g) for g in groups])
    order = np.argsort(powers, kind="stable")
    jumps = np.flatnonzero(np.diff(np.log10(powers[order])) > gap)
    return [sorted(part.tolist()) for part in np.split(order, jumps + 1)]


def _legend_patch(color, label):
    """A legend handle drawn like the boxes: light face, solid outline."""
    return Patch(facecolor=to_rgba(color, 0.35), edgecolor=color, lw=0.9, label=label)


#: Height (axes fraction) of the ticks that mark the median power of a box moved aside.
DODGE_TICK = 0.05


def dodge_offsets(log_x, whiskers, width):
    """Horizontal offsets (decades) that set boxes which would cover each other side by side.

    Two boxes clash when their centres ``log_x`` ((n,) log10 of the power) lie closer than their
    median lines reach (``MEDIAN_REACH * width`` decades) and their whisker ranges (``whiskers``:
    (n,) (low, high) test error) overlap. Each group of clashing boxes is spread around its mean
    position, just far enough apart, in the order of the powers (repeated until nothing clashes,
    as a spread group may reach a neighbour). Boxes that clash with none keep offset 0.
    """
    log_x = np.asarray(log_x, dtype=float)
    n = log_x.size
    reach = MEDIAN_REACH * width
    x = log_x.copy()
    for _ in range(n):
        parent = list(range(n))

        def root(i):
            while parent[i] != i:
                i = parent[i]
            return i

        clashed = False
        for a in range(n):
            for b in range(a + 1, n):
                if (abs(x[a] - x[b]) < reach - 1e-12 and whiskers[a][0] <= whiskers[b][1]
                        and whiskers[b][0] <= whiskers[a][1]):
                    parent[root(a)] = root(b)
                    clashed = True
        if not clashed:
            break
        groups = {}
        for i in range(n):
            groups.setdefault(root(i), []).append(i)
        for members in groups.values():
            if len(members) > 1:
                members.sort(key=lambda i: (log_x[i], i))
                spread = 1.05 * reach * (np.arange(len(members)) - (len(members) - 1) / 2)
                x[members] = x[members].mean() + spread
    return x - log_x


def draw_error_vs_power(axis, groups, *, width=None, ylog=False, power_scale=None):
    """Boxes of test error at each group's median power on ``axis`` (log x). Returns legend handles.

    The x axis is shown in the SI-prefixed unit picked from all groups' powers, or in
    ``power_scale`` = (factor, unit) when given; ``width`` is the box width in decades (default
    :func:`box_width`). Boxes that would cover each other are set side by side
    (:func:`dodge_offsets`), each with a tick at its true median power on the power axis.
    """
    _check_groups(groups, need_power=True)
    all_power = np.concatenate([np.asarray(g["power"], dtype=float).reshape(-1) for g in groups])
    scale, unit = style.power_unit(all_power) if power_scale is None else power_scale
    if width is None:
        width = box_width([_median_power(g) for g in groups])
    handles = []
    powers = scale * np.array([_median_power(g) for g in groups])
    whiskers = [box_stats(g["error"])[3:5] for g in groups]
    xs = powers * 10 ** dodge_offsets(np.log10(powers), whiskers, width)
    for i, g in enumerate(groups):
        color = _group_color(g, i)
        draw_box(axis, xs[i], g["error"], color, width=width, log_x=True)
        if xs[i] != powers[i]:  # moved aside: a tick on the power axis keeps its median power
            axis.plot([powers[i]] * 2, [0.0, DODGE_TICK], transform=axis.get_xaxis_transform(), color=color,
                      lw=1.2, solid_capstyle="butt", zorder=5)
        handles.append(_legend_patch(color, g["label"]))
    lo, hi = xs.min() * 10 ** (-0.6 * width - 0.15), xs.max() * 10 ** (0.6 * width + 0.15)
    axis.set_xscale("log")
    axis.set_xlim(lo, hi)
    label_log_axis(axis.xaxis)
    if ylog:
        axis.set_yscale("log")
        label_log_axis(axis.yaxis)
    axis.set_xlabel(f"Average power ({unit})")
    axis.set_ylabel("Test error (%)")
    axis.autoscale_view(scalex=False)
    return handles


@style.styled
def error_vs_power_figure(path, panels, *, ylog=False, width="column"):
    """Test error against average power, one box per (training, inference) group, per panel.

    A panel whose boxes lie in clusters more than :data:`BREAK_DECADES` apart gets a broken
    power axis (:func:`power_parts`): one part per cluster, side by side on one error axis, in
    one power unit, with break marks between them.

    Args:
        path: output path.
        panels: [{"title": str, "groups": [group, ...]}, ...] (module docstring). Panels share the
            error axis unless that would squeeze one panel's boxes (:func:`share_error_axis`).
        ylog: log scale for the error axis.
        width: "column", "page" or inches.
    Returns:
        [png_path, pdf_path].
    """
    if not panels:
        raise ValueError("panels must hold at least one panel")
    n = len(panels)
    fig = style.new_figure(width, height=2.3 if n <= 2 else 2.5)
    for panel in panels:
        _check_groups(panel.get("groups"), need_power=True)
    share = share_error_axis([[g["error"] for g in p["groups"]] for p in panels], log=ylog)
    parts = [power_parts(p["groups"]) for p in panels]
    seen = {}
    if all(len(p) == 1 for p in parts):
        axes = fig.subplots(1, n, sharey=share, squeeze=False)[0]
        for axis, panel in zip(axes, panels):
            for h in draw_error_vs_power(axis, panel["groups"], ylog=ylog):
                seen.setdefault(h.get_label(), h)
            if panel.get("title"):
                axis.set_title(panel["title"], fontsize=7.5)
        for axis in axes[1:]:
            if share:
                axis.set_ylabel("")
    else:
        first = None
        subfigures = fig.subfigures(1, n, squeeze=False)[0]  # a panel's title spans its parts
        for k, (sub, panel, panel_parts) in enumerate(zip(subfigures, panels, parts)):
            for h in _draw_broken_panel(sub, panel, panel_parts, ylog=ylog, sharey=first if share else None,
                                        ylabel=k == 0 or not share):
                seen.setdefault(h.get_label(), h)
            first = first or sub.axes[0]
    fig.legend(handles=list(seen.values()), loc="outside upper center", ncols=min(3, len(seen)),
               handlelength=1.2, columnspacing=1.0)
    return style.save(fig, path)


#: Length (axes fraction of the part's height) of the diagonal break marks on the power axis.
_BREAK_MARK = 0.025


def _draw_broken_panel(fig, panel, parts, *, ylog, sharey, ylabel):
    """One panel on a broken power axis: a part (axes) per cluster of ``parts``, left to right in
    ascending power, on ``fig`` (a Figure or SubFigure). Returns the legend handles."""
    groups = panel["groups"]
    width = box_width([_median_power(g) for g in groups])
    all_power = np.concatenate([np.asarray(g["power"], dtype=float).reshape(-1) for g in groups])
    scale, unit = style.power_unit(all_power)
    margin = 2 * (0.6 * width + 0.15)  # the decades draw_error_vs_power adds around the boxes
    ratios = []
    for part in parts:
        logs = np.log10([_median_power(groups[i]) for i in part])
        ratios.append(max(np.ptp(logs) + margin, 0.25 * len(part)))
    axes = fig.subplots(1, len(parts), squeeze=False, gridspec_kw={"width_ratios": ratios, "wspace": 0.06})[0]
    anchor = sharey if sharey is not None else axes[0]
    for axis in axes:
        if axis is not anchor:
            axis.sharey(anchor)
    handles = {}
    for j, (axis, part) in enumerate(zip(axes, parts)):
        for i, h in zip(part, draw_error_vs_power(axis, [groups[i] for i in part], width=width, ylog=ylog,
                                                  power_scale=(scale, unit))):
            handles[i] = h
        axis.set_xlabel("")
        if j > 0 or not ylabel:
            axis.set_ylabel("")
        if j > 0:
            axis.spines["left"].set_visible(False)
            axis.tick_params(axis="y", which="both", left=False, labelleft=False)
        d = _BREAK_MARK
        for x in ((1.0,) if j == 0 else (0.0,) if j == len(parts) - 1 else (0.0, 1.0)):
            axis.plot([x - d, x + d], [-d, d], transform=axis.transAxes, color="black", lw=0.6,
                      clip_on=False)
    fig.supxlabel(f"Average power ({unit})", fontsize=style.RC_PARAMS["axes.labelsize"])
    if panel.get("title"):
        fig.suptitle(panel["title"], fontsize=7.5)
    return [handles[i] for i in range(len(groups))]


def draw_category_boxes(axis, groups):
    """Boxes of test error at integer positions, one per group, labelled by group (and power)."""
    _check_groups(groups, need_power=False)
    labels = []
    for i, g in enumerate(groups):
        draw_box(axis, i, g["error"], _group_color(g, i), width=0.5)
        label = g["label"]
        if "power" in g:
            scale, unit = style.power_unit(g["power"])
            label += f"\n{scale * float(np.nanmedian(np.asarray(g['power'], dtype=float))):.3g} {unit}"
        labels.append(label)
    axis.set_xticks(range(len(groups)), labels)
    axis.set_xlim(-0.6, len(groups) - 0.4)
    axis.set_ylabel("Test error (%)")


@style.styled
def cnn_boxplots_figure(path, groups, *, title=None):
    """CIFAR-10 CNN test error by training (standard vs nonideality-aware), with median powers.

    Args:
        path: output path.
        groups: [group, ...] (module docstring); ``power`` optional (shown under the label).
    Returns:
        [png_path, pdf_path].
    """
    fig = style.new_figure(0.3 * style.PAGE_WIDTH + 0.6 * len(groups), height=2.2)
    axis = fig.subplots()
    draw_category_boxes(axis, groups)
    axis.set_xlabel("Training")
    if title:
        axis.set_title(title, fontsize=7.5)
    return style.save(fig, path)
