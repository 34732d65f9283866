"""Tick locators that fit their labels into the axis they label.

Matplotlib's default locators guess how many labels fit from the font size alone, so a narrow
panel gets "100120140" on an epoch axis, and a log axis spanning less than a decade gets one or two
labels. These locators estimate each label's width (from its characters and the tick font size)
and the axis length (from the axes' size on the figure), and choose the densest set of ticks
whose labels keep a gap between them.

- :class:`FittingIntegerLocator`: integer ticks at 1, 2, 2.5 or 5 times a power of ten (epochs).
- :class:`ReadableLogLocator`: log-axis ticks at "nice" mantissas, from (1, 1.5, 2, 3, 4, 5, 6, 8)
  per decade down to one per decade, labelled in plain numbers by :func:`plain_number`.
- :func:`label_log_axis`: put both on an axis, with unlabelled minor ticks at 2..9.
"""
from __future__ import annotations

import numpy as np
from matplotlib import rcParams
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter

#: Width of one character of a tick label, as a fraction of the font size (DejaVu Sans digits are
#: 0.64 em wide; a little more leaves room for the decimal point and rounding).
CHAR_WIDTH_EM = 0.68
#: Least gap between two neighbouring labels, in units of the font size.
GAP_EM = 0.9

#: Mantissas per decade, densest first.
LOG_MANTISSAS = ((1, 1.5, 2, 3, 4, 5, 6, 8), (1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,))


def plain_number(value, _position=None):
    """A tick label without exponent notation: 0.5, 1, 1.5, 20, 1000."""
    return f"{value:.6g}" if abs(value) < 1e5 else f"{value:.0e}"


def _font_size_pt(axis):
    """Tick label font size (points) of ``axis``."""
    ticks = axis.get_major_ticks(1)
    if ticks:
        return float(ticks[0].label1.get_fontsize())
    name = "xtick.labelsize" if axis.axis_name == "x" else "ytick.labelsize"
    return float(FontProperties(size=rcParams[name]).get_size_in_points())


def _axis_length_pt(axis):
    """Length (points) of ``axis`` on its figure."""
    axes = axis.axes
    box = axes.get_position()  # figure fraction
    figure = axes.figure
    while getattr(figure, "figure", None) is not None and figure.figure is not figure:  # subfigures
        figure = figure.figure
    size = figure.get_size_inches()
    return 72.0 * (box.width * size[0] if axis.axis_name == "x" else box.height * size[1])


def _label_extent_pt(text, font_pt, along_x):
    """Room (points) a label needs along its axis: its width on an x axis, its height on a y axis."""
    return len(text) * CHAR_WIDTH_EM * font_pt if along_x else 1.2 * font_pt


def _fits(positions_pt, labels, font_pt, along_x):
    """Whether labels centred at ``positions_pt`` (ascending) keep :data:`GAP_EM` between them."""
    for k in range(len(labels) - 1):
        need = (0.5 * (_label_extent_pt(labels[k], font_pt, along_x)
                       + _label_extent_pt(labels[k + 1], font_pt, along_x)) + GAP_EM * font_pt)
        if positions_pt[k + 1] - positions_pt[k] < need:
            return False
    return True


class FittingIntegerLocator(Locator):
    """Integer ticks (steps 1, 2, 2.5, 5 or 10 times a power of ten), as many as fit their labels."""

    def __init__(self, max_ticks=8):
        self.max_ticks = int(max_ticks)

    def __call__(self):
        lo, hi = sorted(self.axis.get_view_interval())
        return self.tick_values(lo, hi)

    def tick_values(self, vmin, vmax):
        axis = getattr(self, "axis", None)
        if axis is None or axis.axes is None:
            return MaxNLocator(nbins=self.max_ticks, integer=True).tick_values(vmin, vmax)
        length, font = _axis_length_pt(axis), _font_size_pt(axis)
        along_x = axis.axis_name == "x"
        best = None
        for nbins in range(self.max_ticks, 0, -1):
            ticks = MaxNLocator(nbins=nbins, integer=True, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)
            inside = ticks[(ticks >= vmin - 1e-9) & (ticks <= vmax + 1e-9)]
            pos = length * (inside - vmin) / (vmax - vmin) if vmax > vmin else np.zeros(inside.size)
            best = ticks
            if _fits(pos, [plain_number(t) for t in inside], font, along_x):
                return ticks
        return best


class ReadableLogLocator(Locator):
    """Log-axis ticks at the densest set of :data:`LOG_MANTISSAS` whose labels fit, so that a
    range of under a decade still gets several labelled ticks; wide ranges fall back to one tick
    every one or more decades (matplotlib's LogLocator)."""

    def __init__(self, max_ticks=9):
        self.max_ticks = int(max_ticks)

    def __call__(self):
        lo, hi = sorted(self.axis.get_view_interval())
        return self.tick_values(lo, hi)

    def tick_values(self, vmin, vmax):
        if not (vmin > 0 and vmax > vmin):
            return LogLocator().tick_values(max(vmin, 1e-300), max(vmax, 1e-300))
        axis = getattr(self, "axis", None)
        length = _axis_length_pt(axis) if axis is not None and axis.axes is not None else 144.0
        font = _font_size_pt(axis) if axis is not None and axis.axes is not None else 7.0
        along_x = axis is None or axis.axis_name == "x"
        log_lo, log_hi = np.log10(vmin), np.log10(vmax)
        decades = np.arange(np.floor(log_lo) - 1, np.ceil(log_hi) + 1)
        for mantissas in LOG_MANTISSAS:
            ticks = np.array(sorted(float(f"{m * 10.0 ** d:.6g}") for d in decades for m in mantissas))
            inside = ticks[(ticks >= vmin * (1 - 1e-9)) & (ticks <= vmax * (1 + 1e-9))]
            if inside.size > self.max_ticks:
                continue
            pos = length * (np.log10(inside) - log_lo) / (log_hi - log_lo)
            if _fits(pos, [plain_number(t) for t in inside], font, along_x):
                return ticks
        return LogLocator(numticks=max(2, self.max_ticks // 2)).tick_values(vmin, vmax)


def label_log_axis(axis):
    """Readable ticks on a log ``axis`` (an XAxis or YAxis): labelled major ticks from
    :class:`ReadableLogLocator` in plain numbers, unlabelled minor ticks at 2..9 of each decade."""
    axis.set_major_locator(ReadableLogLocator())
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_locator(LogLocator(subs=np.arange(2, 10)))
    axis.set_minor_formatter(NullFormatter())
