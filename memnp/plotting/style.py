"""One figure style for every memnp figure: sizes, fonts, colours, and an atomic save helper.

Figures are sized for a paper column (3.5 in) or a full page width (7.2 in) and drawn with
fonts that stay readable at that size (7-8 pt). Every figure is a plain
``matplotlib.figure.Figure`` rendered by the Agg canvas: nothing here touches pyplot's global
state or the interactive backend, and nothing ever calls ``show``.

Colours come from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies), with three of Paul Tol's where the nine inference setups need more. Each inference/training setup of the paper has a fixed colour, so the same setup
looks the same in every figure.
"""
from __future__ import annotations

import contextvars
import functools
import zlib
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data._atomic import atomic_write

#: Width of one paper column (inches).
COLUMN_WIDTH = 3.5
#: Width of a full page (two columns, inches).
PAGE_WIDTH = 7.2
#: Raster resolution of the PNG files (dots per inch).
DPI = 300

#: Okabe-Ito colours by name.
COLORS = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky-blue": "#56B4E9",
    "bluish-green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermilion": "#D55E00",
    "reddish-purple": "#CC79A7",
    "grey": "#7F7F7F",
}

#: Names and colours of the trained networks by how they were trained: one name for one network
#: in every figure (legends, panel titles, heatmap columns). "Aware" networks are trained
#: nonideality-aware with double weights (the paper's default); "Standard w" ones are trained
#: nonideality-aware with standard weights, mapped with the average or the default rule.
NETWORKS = {
    "standard": ("Standard", COLORS["vermilion"]),  # ideal (software) training
    "aware": ("Aware", COLORS["blue"]),
    "aware_regularised": ("Aware (reg.)", COLORS["bluish-green"]),
    "standard_w_avg": ("Standard w (avg.)", COLORS["reddish-purple"]),
    "standard_w_default": ("Standard w (default)", COLORS["black"]),
}

#: Colours of the training kinds (NETWORKS' colours), as in the paper's box plots.
TRAINING_COLORS = {kind: color for kind, (_, color) in NETWORKS.items()}


def network_name(kind):
    """The name of a network trained the ``kind`` way (a key of :data:`NETWORKS`)."""
    return NETWORKS[kind][0]


#: Short names of the registry's training setups (heatmap columns, titles): a network named by how
#: it was trained where that is what tells it apart, else by the device it was trained on.
TRAINING_NAMES = {
    "ideal": network_name("standard"), "low_pf": "Low-R PF", "low_pf_reg": "Low-R PF (reg.)",
    "high_pf": "High-R PF", "high_pf_reg": "High-R PF (reg.)", "high_pf_stuck_on": "High-R PF + stuck on",
    "stuck_off": "Stuck off", "tahfo2": r"Ta/HfO$_2$", "d2d_high": "High D2D",
    "d2d_more": "More unif. D2D", "d2d_more_reg": "More unif. D2D (reg.)",
    "d2d_less": "Less unif. D2D", "d2d_less_reg": "Less unif. D2D (reg.)",
    "d2d_more_std_avg": network_name("standard_w_avg"), "d2d_more_std_default": network_name("standard_w_default"),
    "d2d_less_std_avg": network_name("standard_w_avg"), "d2d_less_std_default": network_name("standard_w_default"),
    "cnn_ideal": network_name("standard"), "cnn_high_pf": network_name("aware"),
}
#: Short names of the registry's inference setups.
INFERENCE_NAMES = {
    "ideal": "Ideal", "low_pf": "Low-R PF", "high_pf": "High-R PF", "stuck_off": "Stuck off",
    "high_pf_stuck_on": "High-R PF + stuck on", "d2d_more": "More unif. D2D",
    "d2d_less": "Less unif. D2D", "d2d_high": "High D2D", "tahfo2": r"Ta/HfO$_2$",
    "d2d_more_avg": "More unif. D2D", "d2d_less_avg": "Less unif. D2D",
}

#: Curve roles of the training figures, and their legend labels.
CURVE_COLORS = {
    "training": COLORS["orange"],
    "validation": COLORS["sky-blue"],
    "test": COLORS["reddish-purple"],
}
CURVE_LABELS = {"training": "Training", "validation": "Validation", "test": "Test"}

#: The paper's nine inference setups (docs/model.md §7), by their names in memnp.experiments.registry:
#: colours chosen so that every two differ by at least 35 in CIELAB (ΔE*ab), the nine boxes of one
#: network's error-vs-power figure sharing one legend.
SETUP_COLORS = {
    "ideal": COLORS["black"],
    "low_pf": "#88CCEE",  # Paul Tol's cyan: lighter than sky-blue, apart from high_pf's blue
    "high_pf": COLORS["blue"],
    "stuck_off": "#332288",  # Paul Tol's indigo: Okabe-Ito's orange is close to vermilion
    "high_pf_stuck_on": COLORS["vermilion"],
    "d2d_more": COLORS["bluish-green"],
    "d2d_less": "#999933",  # olive: Okabe-Ito's yellow is too light on white
    "d2d_high": COLORS["reddish-purple"],
    "tahfo2": COLORS["grey"],
}

_FALLBACK = [COLORS[k] for k in ("blue", "vermilion", "bluish-green", "orange", "reddish-purple",
                                  "sky-blue", "grey", "black")]

#: Matplotlib settings of every memnp figure.
RC_PARAMS = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "figure.titlesize": 8,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "lines.linewidth": 1.0,
    "lines.markersize": 3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "pdf.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": DPI,
}


def setup_color(name):
    """Colour (hex string) of an inference setup by its registry name (a mapping-rule variant such
    as ``d2d_more_avg`` shares its device's colour); a stable colour for other names."""
    key = str(name).lower()
    key = key[:-4] if key.endswith("_avg") else key
    if key in SETUP_COLORS:
        return SETUP_COLORS[key]
    return _FALLBACK[zlib.crc32(key.encode("utf-8")) % len(_FALLBACK)]


def styled(function):
    """Decorator: run a figure function with memnp's matplotlib settings (RC_PARAMS)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC_PARAMS):
            return function(*args, **kwargs)
    return wrapper


def new_figure(width="column", height=None, aspect=0.75):
    """A new Agg-backed Figure with constrained layout.

    ``width``: "column" (3.5 in), "page" (7.2 in) or a number of inches; ``height`` in inches
    (default ``aspect * width``).
    """
    if width == "column":
        width = COLUMN_WIDTH
    elif width == "page":
        width = PAGE_WIDTH
    width = float(width)
    if not width > 0:
        raise ValueError(f"width must be 'column', 'page' or > 0 inches, got {width!r}")
    height = aspect * width if height is None else float(height)
    if not height > 0:
        raise ValueError(f"height must be > 0 inches, got {height!r}")
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_paths(path):
    """The PNG and PDF paths of a figure whose output path (with or without suffix) is ``path``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    return stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")


def _atomic_savefig(fig, target, fmt):
    atomic_write(target, lambda fh: fig.savefig(fh, format=fmt, dpi=DPI, metadata=_METADATA[fmt]))


# Fixed metadata, so that redrawing the same data gives the same files.
_METADATA = {
    "png": {"Software": "memnp"},
    "pdf": {"Creator": "memnp", "Producer": "memnp", "CreationDate": None},
}


class Notes:
    """What a figure's data lacks, gathered while it is read (``append``): :func:`save` writes the
    ``pending`` lines at the foot of the figure it saves and clears them; ``all`` keeps every line."""

    def __init__(self):
        self.pending, self.all = [], []

    def append(self, line):
        self.pending.append(line)
        self.all.append(line)


#: The :class:`Notes` of the figure being drawn (set by :func:`memnp.plotting.draw_all`), or None.
FOOTNOTE = contextvars.ContextVar("memnp_figure_footnote", default=None)


def _footnote(fig, lines, height=0.2):
    """A red line of text under the figure (``height`` inches added for it)."""
    width, old = fig.get_size_inches()
    fig.set_size_inches(width, old + height)
    share = height / (old + height)
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        try:
            engine.set(rect=(0, share, 1, 1 - share))
        except TypeError:   # a layout engine without a rect: the text may overlap
            pass
    text = "Partial results: " + "; ".join(dict.fromkeys(lines))
    fig.text(0.01, share / 2, text, ha="left", va="center", fontsize=5, color="#b00000", wrap=True)


def save(fig, path):
    """Write ``fig`` as PNG (300 dpi) and PDF next to each other, atomically; return both paths.

    ``path`` is the figure's output path, with or without a ``.png``/``.pdf`` suffix. Each file is
    written to a temporary file in the same directory and renamed into place, so a reader never
    sees a half-written figure.
    """
    png, pdf = figure_paths(path)
    notes = FOOTNOTE.get()
    if notes is not None and notes.pending:
        _footnote(fig, notes.pending)
        notes.pending.clear()
    with matplotlib.rc_context(RC_PARAMS):
        _atomic_savefig(fig, png, "png")
        _atomic_savefig(fig, pdf, "pdf")
    return [png, pdf]


def power_unit(values_W):
    """(scale, unit) that show powers (W) with a readable SI prefix, chosen from their median."""
    values_W = np.asarray(values_W, dtype=float)
    finite = values_W[np.isfinite(values_W) & (values_W > 0)]
    typical = float(np.median(finite)) if finite.size else 1.0
    for scale, unit in ((1.0, "W"), (1e3, "mW"), (1e6, "µW"), (1e9, "nW")):
        if typical * scale >= 1.0:
            return scale, unit
    return 1e9, "nW"
