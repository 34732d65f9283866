"""Figure layout: every figure of a small run is laid out by matplotlib and checked for overlapping
tick labels, text outside the figure, unreadable log axes, misaligned tick labels and legends
drawn over the plotted data.

The run is built once per module at the default preset's shape (150 epochs, a test pass every 20
epochs, 5 inference repeats) on 32 examples per split, so that the epoch axes and boxes look like
the default preset's while the run takes seconds. The figures are drawn through
:func:`memnp.plotting.draw_all` with ``style.save`` replaced by a function that keeps the Figure
instead of writing files; each check runs on matplotlib's own layout (``fig.canvas.draw()`` and
every text's ``get_window_extent``).
"""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.axis import Tick  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.path import Path  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from memnp.plotting import style  # noqa: E402

#: Simulations whose training and error-vs-power figures the catalogue draws.
SIMULATIONS = ("ideal", "iv_nonlinearity", "iv_nonlinearity_and_stuck_on", "stuck_distribution",
               "stuck_off", "high_d2d", "weight_implementation")
RESULT_FIGURES = ([f"training_{s}" for s in SIMULATIONS] + [f"error_vs_power_{s}" for s in SIMULATIONS]
                  + ["weight_implementation", "robustness", "ta_hfo2", "cnn", "line_resistance",
                     "error_vs_power_combined", "drift", "adc"])
SIOX_FIGURES = ["siox_iv", "pf_residuals_c", "pf_residuals_d_eps"]
#: Smallest gap (points) between two tick labels of one axis.
MIN_GAP_PT = 1.0
#: How far (points) a text may reach past the figure's edge (antialiasing).
EDGE_TOLERANCE_PT = 0.5


# -- layout checks -----------------------------------------------------------------------------------
def _in_view(axis, loc):
    lo, hi = sorted(axis.get_view_interval())
    span = hi - lo
    return lo - 1e-9 * abs(span) <= loc <= hi + 1e-9 * abs(span)


def drawn_tick_labels(axis):
    """The tick labels matplotlib draws on ``axis`` (an XAxis or YAxis): visible, non-empty, and
    at a tick inside the view interval (labels of ticks outside it are not drawn)."""
    labels = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if not _in_view(axis, tick.get_loc()):
            continue
        for label in (tick.label1, tick.label2):
            if label.get_visible() and label.get_text().strip():
                labels.append(label)
    return labels


def _gap(a, b, renderer):
    """Distance (display units) between two tick labels; negative when they overlap. Rotated labels
    are compared as the rotated rectangles they are, not as their axis-aligned bounding boxes."""
    box_a, box_b = a.get_window_extent(renderer), b.get_window_extent(renderer)
    angle = np.deg2rad(a.get_rotation())
    if angle == 0 or a.get_rotation() != b.get_rotation():
        return max(box_a.x0 - box_b.x1, box_b.x0 - box_a.x1, box_a.y0 - box_b.y1, box_b.y0 - box_a.y1)
    # A rotated rectangle's bounding box has the rectangle's centre: compare the centres along the
    # text's direction and across it, against the unrotated widths and heights.
    sizes = []
    for label in (a, b):
        w, h, _ = renderer.get_text_width_height_descent(label.get_text(), label.get_fontproperties(),
                                                        ismath=label._preprocess_math(label.get_text())[1])
        sizes.append((w, h))
    delta = np.array([box_b.x0 + box_b.x1 - box_a.x0 - box_a.x1, box_b.y0 + box_b.y1 - box_a.y0 - box_a.y1]) / 2
    along = abs(delta @ [np.cos(angle), np.sin(angle)]) - (sizes[0][0] + sizes[1][0]) / 2
    across = abs(delta @ [-np.sin(angle), np.cos(angle)]) - (sizes[0][1] + sizes[1][1]) / 2
    return max(along, across)


def visible_texts(artist):
    """Every visible, non-empty Text under ``artist``, skipping invisible subtrees and ticks (the
    drawn tick labels are found by :func:`drawn_tick_labels`)."""
    if not artist.get_visible() or isinstance(artist, Tick):
        return
    if isinstance(artist, Text) and artist.get_text().strip():
        yield artist
    for child in artist.get_children():
        yield from visible_texts(child)


def layout_problems(fig):
    """Lay ``fig`` out at the PNG's resolution and list what a reader would see as broken (empty
    list: none). Text metrics depend on the resolution, so the check uses the saved one."""
    fig.set_dpi(style.DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72.0
    problems = []
    texts = list(visible_texts(fig))
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        name = f"axes {k} ({ax.get_title() or ax.get_ylabel() or ax.get_xlabel() or 'untitled'!r})"
        for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = drawn_tick_labels(axis)
            texts += labels
            boxes = [(lab.get_text(), lab.get_window_extent(renderer)) for lab in labels]
            for i in range(len(labels)):
                for j in range(i + 1, len(labels)):
                    if _gap(labels[i], labels[j], renderer) < MIN_GAP_PT * pt:
                        problems.append(f"{name}: {which} tick labels {boxes[i][0]!r} and "
                                        f"{boxes[j][0]!r} overlap")
            # Unrotated x labels sit on one line (a minor label set lower than a major one reads badly).
            bottom = {t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()}
            tops = [b.y1 for lab, (_, b) in zip(labels, boxes) if lab in bottom and not lab.get_rotation()]
            if which == "x" and len(tops) > 1 and max(tops) - min(tops) > 0.5 * pt:
                problems.append(f"{name}: x tick labels are not on one line")
            if axis.get_scale() == "log":
                lo, hi = sorted(axis.get_view_interval())
                decades = np.log10(hi / lo)
                need = 3 if decades <= 2 else 2
                if len(labels) < need:
                    problems.append(f"{name}: log {which} axis over {decades:.2f} decades has "
                                    f"{len(labels)} labelled ticks, fewer than {need}")
    problems += _frame_overlaps(fig, renderer)
    problems += legend_overlaps(fig, renderer)
    figure_box, tolerance = fig.bbox, EDGE_TOLERANCE_PT * pt
    for text in texts:
        box = text.get_window_extent(renderer)
        if (box.x0 < figure_box.x0 - tolerance or box.y0 < figure_box.y0 - tolerance
                or box.x1 > figure_box.x1 + tolerance or box.y1 > figure_box.y1 + tolerance):
            problems.append(f"text {text.get_text()!r} reaches outside the figure "
                            f"({box.x0:.0f}..{box.x1:.0f} x {box.y0:.0f}..{box.y1:.0f} in "
                            f"{figure_box.width:.0f} x {figure_box.height:.0f})")
    return problems


def _frame_overlaps(fig, renderer):
    """Overlaps between the texts around the axes: titles, axis labels, tick labels of different
    axes, and the figure's legends and suptitle (texts inside an axes are the figure's own
    business and are not compared)."""
    owned = []  # (owner, is a tick label, text)
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label):
            owned.append((k, False, t))
        owned += [(k, True, t) for t in drawn_tick_labels(ax.xaxis) + drawn_tick_labels(ax.yaxis)]
    for legend in fig.legends:
        owned += [("legend", False, t) for t in legend.get_texts()]
    if fig._suptitle is not None:
        owned.append(("suptitle", False, fig._suptitle))
    owned = [(o, tick, t, t.get_window_extent(renderer)) for o, tick, t in owned
             if t.get_visible() and t.get_text().strip()]
    problems = []
    for i in range(len(owned)):
        for j in range(i + 1, len(owned)):
            (a_owner, a_tick, a, a_box), (b_owner, b_tick, b, b_box) = owned[i], owned[j]
            if a_owner == b_owner and a_tick and b_tick:
                continue  # tick labels of one axes: compared per axis, rotation included
            if a_box.overlaps(b_box) and _gap(a, b, renderer) < 0:
                problems.append(f"{a.get_text()!r} and {b.get_text()!r} overlap")
    return problems


def _drawn(style_value):
    return style_value not in (None, "", " ", "None", "none")


def _finite_runs(vertices):
    """The runs of consecutive finite rows of ``vertices`` ((n, 2)): a NaN breaks a drawn line."""
    ok = np.isfinite(vertices).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
    return [vertices[a:b] for a, b in zip(edges[::2], edges[1::2])]


def data_marks(ax, renderer):
    """What ``ax`` plots, in display coordinates, as (description, kind, geometry, clip Bbox or None):
    kind "path" (geometry: (Path, filled)) for lines, boxes, bands and other patches; "points"
    (geometry: ((n, 2) centres, (n,) radii)) for markers and scatter points; "box" (geometry: a
    Bbox) for texts inside the axes."""
    pt = ax.figure.dpi / 72.0

    def clip(artist):
        return artist.get_clip_box() if artist.get_clip_on() else None

    for line in ax.lines:
        if not line.get_visible():
            continue
        name = f"line {line.get_label()!r}"
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if _drawn(line.get_linestyle()):
            for run in _finite_runs(xy):
                if len(run) > 1:
                    yield name, "path", (Path(run), False), clip(line)
        if _drawn(line.get_marker()):
            xy = xy[np.isfinite(xy).all(axis=1)]
            yield f"markers of {name}", "points", (xy, np.full(len(xy), line.get_markersize() / 2 * pt)), clip(line)
    for patch in ax.patches:
        if patch.get_visible():
            filled = patch.get_fill() and patch.get_facecolor()[3] > 0
            path = patch.get_transform().transform_path(patch.get_path())
            yield f"patch ({type(patch).__name__})", "path", (path, filled), clip(patch)
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        name = f"{type(coll).__name__} {coll.get_label()!r}"
        if isinstance(coll, PathCollection):  # scatter: a marker per offset
            xy = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float))
            sizes = np.broadcast_to(np.asarray(coll.get_sizes(), dtype=float), (len(xy),))
            keep = np.isfinite(xy).all(axis=1)
            yield name, "points", (xy[keep], np.sqrt(sizes[keep]) / 2 * pt), clip(coll)
            continue
        faces = coll.get_facecolor()
        filled = len(faces) > 0 and np.max(np.asarray(faces)[:, 3]) > 0
        transform = coll.get_transform()
        for path in coll.get_paths():
            yield name, "path", (transform.transform_path(path), filled), clip(coll)
    for text in ax.texts:
        if text.get_visible() and text.get_text().strip():
            yield f"text {text.get_text()!r}", "box", text.get_window_extent(renderer), None


def _hits(region, kind, geometry):
    if kind == "box":
        return region.overlaps(geometry)
    if kind == "points":
        xy, radius = geometry
        return bool(np.any((xy[:, 0] + radius > region.x0) & (xy[:, 0] - radius < region.x1)
                           & (xy[:, 1] + radius > region.y0) & (xy[:, 1] - radius < region.y1)))
    path, filled = geometry
    vertices = path.vertices
    if vertices.size == 0 or not np.isfinite(vertices).all():
        return any(_hits(region, kind, (Path(run), filled)) for run in _finite_runs(vertices)
                   if len(run) > 1)
    return path.intersects_bbox(region, filled=filled)


def legend_overlaps(fig, renderer):
    """Legends (of an axes or of the figure) drawn over plotted data: lines, markers, boxes,
    bands or texts of any axes, compared in display coordinates against the legend's entries
    (:func:`legend_entry_boxes`), within the part of the figure each artist is clipped to."""
    legends = [(f"legend of axes {k}", ax.get_legend()) for k, ax in enumerate(fig.axes)
               if ax.get_visible() and ax.get_legend() is not None]
    legends += [("figure legend", legend) for legend in fig.legends]
    problems = []
    for where, legend in legends:
        if not legend.get_visible():
            continue
        for k, ax in enumerate(fig.axes):
            if not ax.get_visible():
                continue
            for name, kind, geometry, clip_box in data_marks(ax, renderer):
                for box in legend_entry_boxes(legend, renderer):
                    region = box if clip_box is None else Bbox.intersection(box, clip_box)
                    if region is None or region.width <= 0 or region.height <= 0:
                        continue
                    if _hits(region, kind, geometry):
                        problems.append(f"{where} lies on {name} of axes {k}")
                        break
    return problems


def legend_entry_boxes(legend, renderer):
    """Display boxes of a legend's entries (each handle with its label) and of its title: what
    the legend draws, without the empty room beside a short label in a column of long ones."""
    boxes = [row.get_window_extent(renderer) for column in legend._legend_handle_box.get_children()
             for row in column.get_children()]
    title = legend.get_title()
    if title.get_visible() and title.get_text().strip():
        boxes.append(title.get_window_extent(renderer))
    return boxes


# -- figures of a small run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """{figure stem: Figure} of every figure drawn from a 150-epoch run on 32 examples per split,
    with the SiOx figures from the shared data when it is present."""
    from conftest import SHARED_DATA
    from memnp.experiments import presets, runner
    from memnp.experiments.registry import SIMULATIONS as ALL
    from memnp.plotting import catalogue, draw_all
    from memnp.plotting.loaders import ResultsView

    root = tmp_path_factory.mktemp("layout")
    scale = presets.Scale("layout", epochs=150, networks=1, inference_repeats=5, validation_every=10,
                          validation_repeats=1, test_every=20, test_repeats=1,
                          mnist_limits=(32, 32, 32), learning_rate=0.3)
    runner.reproduce([s for s in ALL if s != "iv_nonlinearity_cnn"], scale, 0, root / "run",
                     data_dir=root / "no-data")
    data_dir = SHARED_DATA if (SHARED_DATA / "SiO_x-multistate-data.mat").is_file() else root / "no-data"
    kept = {}

    def keep(fig, path):
        png, pdf = style.figure_paths(path)
        kept[png.stem] = fig
        return [png, pdf]

    patch = pytest.MonkeyPatch()
    patch.setattr(style, "save", keep)
    try:
        draw_all(root / "run", root / "figures", data_dir=data_dir, strict=True)
        # No CIFAR-10 here: the CNN figure is drawn from two MNIST networks standing in for the CNNs.
        ctx = catalogue.Context(root / "run", data_dir)
        ctx._view = _CnnStandIn(ResultsView(root / "run"))
        catalogue.cnn(ctx, root / "figures")
    finally:
        patch.undo()
    return kept


class _CnnStandIn:
    """A ResultsView whose CNN trainings are the MNIST networks "ideal" and "high_pf"."""

    def __init__(self, view):
        self.view = view
        self.trainings = {"cnn_ideal": {}, "cnn_high_pf": {}}
        self.inferences = view.inferences

    def _mnist(self, training):
        return {"cnn_ideal": "ideal", "cnn_high_pf": "high_pf"}[training]

    def curve_panel(self, training, inference):
        return self.view.curve_panel(self._mnist(training), inference)

    def error_power(self, training, inference):
        return self.view.error_power(self._mnist(training), inference)


@pytest.mark.parametrize("stem", RESULT_FIGURES + SIOX_FIGURES)
def test_figure_layout(figures, stem):
    if stem in SIOX_FIGURES and stem not in figures:
        pytest.skip("the measured SiOx data is not in the shared data directory")
    assert stem in figures, f"{stem} was not drawn; drawn: {sorted(figures)}"
    problems = layout_problems(figures[stem])
    assert not problems, f"{stem}:\n" + "\n".join(problems)


def test_layout_check_finds_overlaps_and_clipping():
    """The checker itself: crowded tick labels, a title past the edge and a one-label log axis."""
    fig = style.new_figure(1.2, 1.0)
    ax = fig.subplots()
    ax.plot([0, 150], [0, 1])
    ax.set_xticks(range(0, 151, 10))
    ax.set_title("a title far wider than this small figure can hold")
    problems = layout_problems(fig)
    assert any("tick labels" in p and "overlap" in p for p in problems)
    assert any("outside the figure" in p for p in problems)
    fig = style.new_figure(2.0, 1.5)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_xlim(1.1, 3.0)
    ax.xaxis.set_minor_formatter(NullFormatter())
    assert any("labelled ticks" in p for p in layout_problems(fig))
    fig = style.new_figure(2.0, 1.5)
    ax = fig.subplots()
    ax.set_xlabel("an axis label on its tick labels")
    ax.xaxis.set_label_coords(0.5, -0.02)
    assert any("overlap" in p and "axis label" in p for p in layout_problems(fig))


def test_legend_check_finds_legends_on_data():
    """The checker itself: a legend over a line, over markers alone, over a band or over a box is
    caught; the same legend in an empty corner is not."""
    from matplotlib.patches import Rectangle

    x = np.linspace(0, 1, 50)

    def figure_with(draw, loc):
        fig = style.new_figure(2.5, 1.8)
        ax = fig.subplots()
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        draw(ax)
        ax.legend(handles=[ax.plot([], [], color="k", label="a long legend label")[0]], loc=loc)
        return fig

    def line(ax):
        ax.plot(x, 0.9 - 0.0 * x, color="C0", label="flat line")

    def markers(ax):
        ax.plot([0.15, 0.5, 0.85], [0.9, 0.9, 0.9], ls="none", marker="o", label="points")

    def band(ax):
        ax.fill_between(x, 0.7, 0.95, alpha=0.2)

    def box(ax):
        ax.add_patch(Rectangle((0.7, 0.75), 0.2, 0.2, facecolor="C1"))

    for draw, name in ((line, "flat line"), (markers, "markers"), (band, "FillBetween"), (box, "Rectangle")):
        problems = legend_overlaps_of(figure_with(draw, "upper right"))
        assert problems and name in problems[0], (name, problems)
        assert not legend_overlaps_of(figure_with(draw, "lower left")), name


def legend_overlaps_of(fig):
    fig.set_dpi(style.DPI)
    fig.canvas.draw()
    return legend_overlaps(fig, fig.canvas.get_renderer())
