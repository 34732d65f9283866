"""Figures: every figure function writes a real PNG and PDF from small synthetic inputs; the results
store is read into figures; importing memnp does not import matplotlib."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from memnp.plotting import boxplots, conductances, devices, heatmap, style, training  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_figure(paths, min_png_kb=8):
    """Both files exist; the PNG has the PNG signature, 300 dpi, and is not blank; the PDF is a PDF."""
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_png_kb * 1024
    # pHYs chunk: 300 dpi = 11811 pixels per metre.
    i = data.index(b"pHYs")
    assert int.from_bytes(data[i + 4:i + 8], "big") == 11811
    head = pdf.read_bytes()
    assert head[:5] == b"%PDF-" and len(head) > 2000
    assert not list(png.parent.glob(".*.part")), "temporary files left behind"


def _panel(rng, n_networks=2, epochs=12, memristive=True):
    ep = np.arange(1, epochs + 1)
    base = 10 * np.exp(-ep / 4) + 3
    val_ep = np.array([1, 4, 8, 12]) if memristive else ep
    if memristive:
        val = (10 * np.exp(-val_ep / 4) + 5)[None, :, None] + rng.normal(0, 0.5, (n_networks, val_ep.size, 3))
    else:
        val = base[None] + 1 + rng.normal(0, 0.2, (n_networks, epochs))
    test_ep = np.array([1, 4, 8, 12])
    test = (10 * np.exp(-test_ep / 4) + 8)[None, :, None] + rng.normal(0, 1, (n_networks, 4, 5))
    return {"title": "panel", "epochs": ep, "training": base[None] + rng.normal(0, 0.2, (n_networks, epochs)),
            "validation_epochs": val_ep, "validation": val, "test_epochs": test_ep, "test": test}


def _groups(rng, n=3, scale=1e-3):
    return [{"label": f"training {k}", "power": rng.normal((k + 1) * scale, scale / 100, 10),
             "error": rng.normal(10 + 5 * k, 1, 10)} for k in range(n)]


def test_training_curves(tmp_path, rng):
    paths = training.training_curves_figure(tmp_path / "train", [_panel(rng), _panel(rng, memristive=False),
                                                                 _panel(rng, 1)])
    assert_figure(paths)


def test_cnn_figure(tmp_path, rng):
    assert_figure(training.cnn_figure(tmp_path / "cnn.png", [_panel(rng, 1), _panel(rng, 1)], _groups(rng, 2)))


def test_error_vs_power(tmp_path, rng):
    panels = [{"title": "high", "groups": _groups(rng)}, {"title": "low", "groups": _groups(rng, 3, 1.0)}]
    assert_figure(boxplots.error_vs_power_figure(tmp_path / "box", panels))


def test_cnn_boxplots(tmp_path, rng):
    assert_figure(boxplots.cnn_boxplots_figure(tmp_path / "cnnbox", _groups(rng, 2)))


def test_conductance_scatter(tmp_path, rng):
    impls = [{"label": f"impl {k}", "G_plus": rng.uniform(5e-7, 2.6e-6, 500),
              "G_minus": rng.uniform(5e-7, 2.6e-6, 500)} for k in range(4)]
    rows = [{"title": "more uniform", "implementations": impls, "groups": _groups(rng, 4)},
            {"title": "less uniform", "implementations": impls[:2]}]
    assert_figure(conductances.conductance_scatter_figure(tmp_path / "g", rows, G_off=5e-7, G_on=2.6e-6))


def test_heatmap(tmp_path, rng):
    errors = rng.uniform(3, 80, (4, 5))
    errors[1, 2] = np.nan
    assert_figure(heatmap.robustness_heatmap(tmp_path / "h", errors, list("ABCDE"), list("wxyz")))
    assert_figure(heatmap.robustness_heatmap(tmp_path / "h2", errors, list("ABCDE"), list("wxyz"),
                                             normalise_rows=False))


def _siox_fit(rng):
    """A SiOx fit of synthetic curves in both regimes (6 low-resistance, 8 high-resistance)."""
    from memnp.data.devices.siox import fit_siox
    from memnp.data.devices.synthetic import synthetic_siox_curves
    from memnp.data.presets import SIOX_LOW
    low = synthetic_siox_curves(6, rng, R_range=(1 / SIOX_LOW["G_on"], 1 / SIOX_LOW["G_off"]),
                                slopes=SIOX_LOW["slopes"], intercepts=SIOX_LOW["intercepts"],
                                covariance=SIOX_LOW["covariance"])
    high = synthetic_siox_curves(8, rng)
    V, I = np.concatenate([low.V, high.V]), np.concatenate([low.I, high.I])
    return V, I, fit_siox(V, I)


def test_siox_figures(tmp_path, rng):
    V, I, fit = _siox_fit(rng)
    assert fit.low is not None and fit.high is not None
    fits = {"low": fit.low, "high": fit.high}
    assert_figure(devices.siox_iv_figure(tmp_path / "iv", V[fit.kept], I[fit.kept], fit.R, fit.c, fit.d_eps,
                                         fits))
    for parameter in ("c", "d_eps"):
        assert_figure(devices.pf_residuals_figure(tmp_path / parameter, fit.R, fit.c, fit.d_eps, fits,
                                                  parameter=parameter))
    with pytest.raises(ValueError, match="parameter"):
        devices.pf_residuals_figure(tmp_path / "x", fit.R, fit.c, fit.d_eps, parameter="R")


def test_ta_hfo2_figure(tmp_path):
    from memnp.data.devices.synthetic import synthetic_tahfo2_reads
    from memnp.data.devices.tahfo2 import extract_tahfo2
    pulses = synthetic_tahfo2_reads(0, shape=(2, 20, 8, 8))
    fit = extract_tahfo2(pulses.G_reads)
    assert_figure(devices.ta_hfo2_figure(tmp_path / "ta", pulses.G_reads, fit.G_off, fit.G_on, fit.stuck_values,
                                         stuck_mask=fit.stuck_mask, p=fit.p, synthetic=True))


def test_ta_hfo2_density_panel_says_what_it_shows(tmp_path, monkeypatch):
    from memnp.plotting.loaders import tahfo2_data
    d = tahfo2_data(tmp_path / "no-data")
    kept = _kept_figures(monkeypatch)
    devices.ta_hfo2_figure(tmp_path / "ta", d["G_reads"], d["G_off"], d["G_on"], d["stuck_values"],
                           stuck_mask=d["stuck_mask"], p=d["p"], synthetic=True)
    traces, density = kept["ta"].axes
    assert "Stuck" in density.get_title() and "$G$" in density.get_title()
    assert "Density of $G$" in density.get_xlabel() and "mS$^{-1}$" in density.get_xlabel()
    assert traces.get_title() and traces.get_ylabel() == "Conductance (mS)"


def test_mean_nonlinearity_values():
    V = np.linspace(0, 0.5, 101)
    assert np.allclose(devices.mean_nonlinearity(V, 2e-3 * V), 1.0)  # ohmic
    # I = V^2: G = V, so G(2V) / G(V) = 2 exactly.
    assert np.allclose(devices.mean_nonlinearity(V, V ** 2), 2.0)


def test_stuck_density_integrates_to_one():
    means = np.array([1e-6, 5e-5, 2e-4, 2.1e-4])
    G = np.linspace(0, 1e-3, 20001)
    density = devices.stuck_density(G, means, 2e-5)
    assert np.trapezoid(density, G) == pytest.approx(1.0, abs=1e-3)
    assert density[G.searchsorted(2e-4)] > density[G.searchsorted(6e-4)]


def test_box_stats_tukey():
    q1, median, q3, low, high, outliers = boxplots.box_stats([1, 2, 3, 4, 5, 6, 7, 8, 100])
    assert (q1, median, q3) == (3, 5, 7)
    assert (low, high) == (1, 8) and list(outliers) == [100]


def test_pair_conductances_split():
    G = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    plus, minus = conductances.pair_conductances(G)
    assert list(plus) == [1, 3, 5, 7] and list(minus) == [2, 4, 6, 8]


def test_save_is_atomic_and_replaces(tmp_path):
    fig = style.new_figure()
    fig.subplots().plot([0, 1], [0, 1])
    first = style.save(fig, tmp_path / "sub" / "f.pdf")
    assert [p.name for p in first] == ["f.png", "f.pdf"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.pdf", "f.png"]
    style.save(fig, tmp_path / "sub" / "f")  # overwrite in place
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.pdf", "f.png"]


def test_setup_colours_distinct_and_stable():
    from memnp.experiments.registry import AGNOSTIC_INFERENCES, PAPER_SIMULATIONS, SIMULATIONS
    colours = [style.setup_color(name) for name in AGNOSTIC_INFERENCES]
    assert len(set(colours)) == len(AGNOSTIC_INFERENCES)
    paper = {i for s in PAPER_SIMULATIONS for _, i in SIMULATIONS[s].pairs}  # the new ones draw lines
    assert all(name in style.SETUP_COLORS or name.endswith("_avg") for name in paper)
    assert style.setup_color("d2d_more_avg") == style.setup_color("d2d_more")
    assert style.setup_color("someone else's setup") == style.setup_color("someone else's setup")
    assert style.power_unit([2e-3, 3e-3]) == (1e3, "mW") and style.power_unit([1.1]) == (1.0, "W")


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="width"):
        style.new_figure(width=-1)
    with pytest.raises(ValueError, match="errors"):
        heatmap.robustness_heatmap(tmp_path / "h", np.zeros((2, 2)), ["a"], ["b", "c"])
    with pytest.raises(ValueError, match="power"):
        boxplots.error_vs_power_figure(tmp_path / "b", [{"groups": [{"label": "x", "error": [1, 2],
                                                                     "power": [0.0, 1.0]}]}])
    with pytest.raises(ValueError, match="training"):
        training.training_curves_figure(tmp_path / "t", [{"epochs": [1, 2], "training": [1, 2, 3]}])


def test_import_memnp_does_not_import_matplotlib():
    code = ("import sys, memnp, memnp.crossbar, memnp.nn, memnp.data, memnp.experiments; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'click'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_draw_all_on_empty_dirs(tmp_path):
    from memnp.plotting import draw_all
    drawn = draw_all(tmp_path / "results", tmp_path / "figures", data_dir=tmp_path / "no-data", strict=True)
    # Only the Ta/HfO2 figure can be drawn without results or data (from synthetic pulses).
    assert sorted(p.name for p in drawn) == ["ta_hfo2.pdf", "ta_hfo2.png"]
    assert "SiO_x-multistate-data.mat" in drawn.skipped["siox_iv"]
    for name in ("training_curves", "error_vs_power", "cnn", "weight_implementation", "robustness"):
        assert "manifest" in drawn.skipped[name]
    assert not (tmp_path / "results").exists()  # drawing never creates a results directory
    with pytest.raises(ValueError, match="unknown figure"):
        draw_all(tmp_path, only=["nope"])


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """A real results store: three simulations at the tiny scale on the embedded MNIST subset."""
    from memnp.experiments import presets, runner
    root = tmp_path_factory.mktemp("results")
    runner.reproduce(["iv_nonlinearity", "weight_implementation", "stuck_off"], presets.PRESETS["tiny"], 7,
                     root / "run", data_dir=root / "no-data")
    return root / "run"


def test_draw_all_from_results_store(tiny_results, tmp_path):
    from conftest import SHARED_DATA
    from memnp.plotting import draw_all
    shared_data = SHARED_DATA if (SHARED_DATA / "SiO_x-multistate-data.mat").is_file() else tmp_path
    drawn = draw_all(tiny_results, tmp_path / "figs", data_dir=shared_data, strict=True)
    siox = ["siox_iv", "pf_residuals_c", "pf_residuals_d_eps"]
    # No CIFAR-10 in a tiny MNIST run; the SiOx figures need the measured data.
    # nor the simulations beyond the paper (drift, adc, line_resistance).
    assert set(drawn.skipped) == ({"cnn", "combined", "drift", "adc", "line_resistance"}
                                  | (set() if shared_data == SHARED_DATA else set(siox)))
    names = {p.name for p in drawn}
    for stem in (siox if shared_data == SHARED_DATA else []) + [
            "ta_hfo2", "training_iv_nonlinearity", "training_stuck_off", "training_weight_implementation",
            "error_vs_power_iv_nonlinearity", "weight_implementation", "robustness"]:
        assert {stem + ".png", stem + ".pdf"} <= names
    for png in (p for p in drawn if p.suffix == ".png"):
        assert_figure([png, png.with_suffix(".pdf")], min_png_kb=20)
    # Re-drawable from the store alone, to identical files.
    first = (tmp_path / "figs" / "robustness.png").read_bytes()
    again = draw_all(tiny_results, tmp_path / "again", data_dir=shared_data, only=["robustness"], strict=True)
    assert again[0].read_bytes() == first


def test_figures_drawn_on_worker_processes_are_the_same_files(tiny_results, tmp_path):
    """draw_all(workers=2): the same figures, skip reasons and bytes as in this process, in the
    catalogue's order, with a progress call per figure as it is finished."""
    from memnp.plotting import draw_all
    only = ["robustness", "training_curves", "cnn", "weight_implementation"]
    alone = draw_all(tiny_results, tmp_path / "one", data_dir=tmp_path, only=only, strict=True)
    told = []
    shared = draw_all(tiny_results, tmp_path / "two", data_dir=tmp_path, only=only, strict=True, workers=2,
                      progress=lambda k, n, name: told.append((k, n, name)))
    assert [p.name for p in shared] == [p.name for p in alone] and len(alone) >= 6
    assert shared.skipped == alone.skipped and set(alone.skipped) == {"cnn"}
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(alone, shared) if a.suffix == ".png")
    assert [k for k, _, _ in told] == [1, 2, 3, 4] and {n for _, n, _ in told} == {4}
    assert {name for _, _, name in told} == set(only)


def test_figures_left_by_dead_workers_are_drawn_here(tiny_results, tmp_path, monkeypatch):
    """Worker processes that die (BrokenProcessPool) after one figure: the others are drawn in
    this process, and every figure is there once."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from memnp.plotting import draw_all, drawing

    class DyingPool:            # draws the first figure, then dies
        def __init__(self, workers, mp_context=None, initializer=None, initargs=()):
            initializer(*initargs)
            self.count = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, name):
            future = Future()
            self.count += 1
            if self.count == 1:
                future.set_result(fn(name))
            else:
                future.set_exception(BrokenProcessPool("a worker died"))
            return future

    monkeypatch.setattr(drawing, "ProcessPoolExecutor", DyingPool)
    only = ["robustness", "cnn", "weight_implementation"]
    told = []
    drawn = draw_all(tiny_results, tmp_path / "figs", data_dir=tmp_path, only=only, strict=True, workers=3,
                     progress=lambda k, n, name: told.append(name))
    assert sorted(told) == sorted(only)
    assert set(drawn.skipped) == {"cnn"}
    assert sorted(p.name for p in drawn) == sorted(f"{stem}.{ext}" for stem in ("robustness", "weight_implementation")
                                                   for ext in ("png", "pdf"))


def test_results_view_reads_records(tiny_results):
    from memnp.plotting.loaders import ResultsView
    view = ResultsView(tiny_results)
    error, power = view.error_power("high_pf", "high_pf")
    record = view.infer_records("high_pf", "high_pf")[0]
    assert error == pytest.approx(100 * (1 - np.asarray(record["accuracy"])))
    assert np.all(power > 0) and np.all(power < 1)  # high-resistance SiOx: mW, not W
    panel = view.curve_panel("high_pf", "high_pf")
    assert panel["training"].shape == (1, 2)  # one network, two epochs
    assert panel["validation"].ndim == 3  # memristive validation keeps its repeats
    G_plus, G_minus, G_off, G_on = view.conductances("d2d_more")
    assert G_plus.shape == G_minus.shape == ((784 + 1) * 25,)
    assert G_plus.min() >= G_off * (1 - 1e-6) and G_plus.max() <= G_on * (1 + 1e-6)
    assert np.isnan(view.median_error("high_pf", "tahfo2"))  # a pair that was not run


class _StubView:
    """Just enough of a ResultsView for the CNN figure."""
    trainings = {"cnn_ideal": {}, "cnn_high_pf": {}}
    inferences = {"high_pf": {}}

    def __init__(self, rng):
        self.rng = rng

    def curve_panel(self, training, inference):
        return _panel(self.rng, 1)

    def error_power(self, training, inference):
        return self.rng.normal(40, 3, 10), self.rng.normal(2e-3, 1e-5, 10)


def test_cnn_figure_from_view(tmp_path, rng):
    from memnp.plotting import catalogue
    ctx = catalogue.Context(tmp_path, None)
    ctx._view = _StubView(rng)
    paths = catalogue.cnn(ctx, tmp_path)
    assert_figure(paths)
    assert paths[0].name == "cnn.png"


# -- figures fit for a paper --------------------------------------------------------------------------
def _kept_figures(monkeypatch):
    """Replace style.save with one that keeps each Figure (by file stem) instead of writing it."""
    kept = {}

    def keep(fig, path):
        png, pdf = style.figure_paths(path)
        kept[png.stem] = fig
        return [png, pdf]

    monkeypatch.setattr(style, "save", keep)
    return kept


def _drawn_ticks(axis):
    lo, hi = sorted(axis.get_view_interval())
    return [t.get_loc() for t in axis.get_major_ticks()
            if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]


@style.styled
def test_epoch_ticks_fit_a_narrow_panel():
    from memnp.plotting.ticks import FittingIntegerLocator
    fig = style.new_figure(1.4, 1.2)
    axis = fig.subplots()
    axis.plot([1, 150], [0, 1])
    axis.xaxis.set_major_locator(FittingIntegerLocator())
    fig.canvas.draw()
    assert _drawn_ticks(axis.xaxis) == [0, 50, 100, 150]  # not 0, 20, ..., 140
    axis.set_xlim(1, 2)  # a two-epoch run: integer ticks only
    fig.canvas.draw()
    assert _drawn_ticks(axis.xaxis) == [1, 2]


@style.styled
def test_log_axis_gets_several_labels_within_a_decade():
    from memnp.plotting.ticks import label_log_axis
    fig = style.new_figure(2.0, 1.5)
    axis = fig.subplots()
    axis.set_xscale("log")
    axis.set_xlim(0.75, 3.3)
    label_log_axis(axis.xaxis)
    fig.canvas.draw()
    ticks = _drawn_ticks(axis.xaxis)
    assert len(ticks) >= 4 and {1, 2, 3} <= set(ticks)
    assert [t.label1.get_text() for t in axis.xaxis.get_major_ticks() if t.get_loc() == 1.5] == ["1.5"]
    axis.set_xlim(0.5, 2000)  # wide ranges: a label per decade
    fig.canvas.draw()
    assert _drawn_ticks(axis.xaxis) == [1, 10, 100, 1000]


def test_median_juts_out_of_degenerate_boxes():
    """n = 5 with the median on a quartile, and all five equal: the median line is the widest
    and thickest line of the box, so it shows."""
    for values in ([80.0, 84.4, 84.4, 84.4, 90.6], [89.1] * 5):
        fig = style.new_figure()
        axis = fig.subplots()
        rect = boxplots.draw_box(axis, 1.0, values, "#0072B2", width=0.2, log_x=True)
        median = float(np.median(values))
        flat = [line for line in axis.lines if np.allclose(line.get_ydata(), median)]
        widest = max(flat, key=lambda line: np.ptp(line.get_xdata()))
        assert widest.get_linewidth() > rect.get_linewidth()
        assert widest.get_xdata()[0] < rect.get_x() and widest.get_xdata()[1] > rect.get_x() + rect.get_width()


def test_power_axis_breaks_between_clusters(tmp_path, rng, monkeypatch):
    # Seven boxes near 1 mW and two near 0.2 and 1.2 W (the ideal simulation's shape).
    powers = [0.87e-3, 0.86e-3, 0.93e-3, 1.0e-3, 1.12e-3, 1.81e-3, 2.03e-3, 0.207, 1.23]
    groups = [{"label": f"setup {k}", "color": style.setup_color(name), "power": rng.normal(p, p / 100, 5),
               "error": rng.normal(10 + 4 * k, 0.5, 5)}
              for k, (p, name) in enumerate(zip(powers, style.SETUP_COLORS))]
    assert boxplots.power_parts(groups) == [[0, 1, 2, 3, 4, 5, 6], [7, 8]]
    assert boxplots.power_parts(groups[:7]) == [list(range(7))]
    kept = _kept_figures(monkeypatch)
    boxplots.error_vs_power_figure(tmp_path / "b", [{"title": "Standard training", "groups": groups}], width="page")
    fig = kept["b"]
    fig.canvas.draw()
    low, high = fig.axes
    assert low.get_shared_y_axes().joined(low, high) and not high.spines["left"].get_visible()
    # One unit (mW) for both parts; each part spans its own boxes, the low one the wider.
    assert fig.subfigs[0].get_supxlabel() == "Average power (mW)"
    assert low.get_xlim()[1] < 3.5 and 100 < high.get_xlim()[0] < 207 and 1230 < high.get_xlim()[1]
    assert low.get_position().width > 1.2 * high.get_position().width
    assert fig.subfigs[0].get_suptitle() == "Standard training"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [g["label"] for g in groups]
    # Without a jump of a decade the figure keeps one power axis per panel.
    boxplots.error_vs_power_figure(tmp_path / "c", [{"title": "t", "groups": groups[:7]}])
    assert len(kept["c"].axes) == 1 and not kept["c"].subfigs


def _cielab(colours):
    """(n, 3) CIELAB (D65) of matplotlib colours, from sRGB."""
    from matplotlib.colors import to_rgb
    rgb = np.array([to_rgb(c) for c in colours])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def test_boxes_that_would_cover_each_other_are_set_side_by_side(tmp_path, monkeypatch):
    width = 0.05
    reach = boxplots.MEDIAN_REACH * width
    log_x = np.log10([1.0, 1.01, 1.02, 2.0])
    # The first two clash (same power, overlapping whiskers); the third is close but far lower.
    whiskers = [(10.0, 12.0), (11.0, 13.0), (1.0, 2.0), (10.0, 12.0)]
    offsets = boxplots.dodge_offsets(log_x, whiskers, width)
    moved = log_x + offsets
    assert offsets[2] == offsets[3] == 0
    assert moved[1] - moved[0] == pytest.approx(1.05 * reach)
    assert (moved[0] + moved[1]) / 2 == pytest.approx((log_x[0] + log_x[1]) / 2)  # around their mean
    # Three at one power: spread in order, and a spread that reaches a neighbour pulls it in.
    offsets = boxplots.dodge_offsets(np.log10([1.0, 1.0, 1.0, 1.15]), [(0, 1)] * 4, width)
    moved = np.log10([1.0, 1.0, 1.0, 1.15]) + offsets
    assert np.all(np.diff(moved) >= reach - 1e-12)
    assert boxplots.dodge_offsets(np.log10([1.0, 3.0]), [(0, 1)] * 2, width).tolist() == [0, 0]
    # Drawn: the moved boxes keep a tick at their true median power.
    kept = _kept_figures(monkeypatch)
    groups = [{"label": f"g{k}", "power": np.full(5, p), "error": np.full(5, 10.0)}
              for k, p in enumerate([1e-3, 1.005e-3])]
    boxplots.error_vs_power_figure(tmp_path / "d", [{"title": "t", "groups": groups}])
    axis = kept["d"].axes[0]
    ticks = [line for line in axis.lines if line.get_transform() == axis.get_xaxis_transform()]
    assert sorted(line.get_xdata()[0] for line in ticks) == pytest.approx([1.0, 1.005])


def test_setup_colours_tell_the_nine_setups_apart():
    lab = _cielab(style.SETUP_COLORS.values())
    distance = np.sqrt(((lab[:, None] - lab[None]) ** 2).sum(-1))[np.triu_indices(9, 1)]
    assert len(lab) == 9 and distance.min() >= 35  # Okabe-Ito's sky-blue and blue: 26
    assert _cielab(["#000000"])[0] == pytest.approx([0, 0, 0], abs=1e-6)
    assert _cielab(["#FFFFFF"])[0] == pytest.approx([100, 0, 0], abs=0.05)


def test_error_axis_is_shared_only_when_no_panel_is_flattened(tmp_path, rng, monkeypatch):
    low = [rng.normal(8, 0.3, 5), rng.normal(8.5, 0.3, 5)]
    high = [rng.normal(12, 0.5, 5), rng.normal(24, 0.5, 5)]
    assert not boxplots.share_error_axis([low, high])
    assert boxplots.share_error_axis([high, [rng.normal(15, 3, 5), rng.normal(22, 3, 5)]])
    kept = _kept_figures(monkeypatch)
    groups = lambda errors: [{"label": f"g{k}", "error": e, "power": np.full(5, 1e-3 * (k + 1))}  # noqa: E731
                             for k, e in enumerate(errors)]
    boxplots.error_vs_power_figure(tmp_path / "b", [{"title": "low", "groups": groups(low)},
                                                    {"title": "high", "groups": groups(high)}])
    fig = kept["b"]
    fig.canvas.draw()
    lo_axis, hi_axis = fig.axes[:2]
    assert np.ptp(lo_axis.get_ylim()) < 3 < 10 < np.ptp(hi_axis.get_ylim())


def test_heatmap_colour_bar_carries_numbers(tmp_path, monkeypatch):
    kept = _kept_figures(monkeypatch)
    errors = np.array([[40.0, 45.0, 88.0], [8.0, 9.5, 8.2]])
    heatmap.robustness_heatmap(tmp_path / "h", errors, ["a", "b", "c"], ["x", "y"], normalise_rows=True)
    fig = kept["h"]
    fig.canvas.draw()
    bar = fig.axes[1]
    labels = [float(t.label2.get_text().replace("−", "-")) for t in bar.yaxis.get_major_ticks()
              if t.label2.get_visible() and t.label2.get_text()
              and bar.get_ylim()[0] <= t.get_loc() <= bar.get_ylim()[1]]
    assert len(labels) >= 3 and labels[0] == 0 and max(labels) <= 48
    assert "pp" in bar.get_ylabel()
    image = fig.axes[0].images[0].get_array()
    assert image[0].tolist() == [0.0, 5.0, 48.0]  # excess over the row's lowest, in pp
    assert image[1].tolist() == pytest.approx([0.0, 1.5, 0.2])
    # The numbers show what the colours show; the rows' labels give their lowest errors.
    assert [t.get_text() for t in fig.axes[0].texts] == ["0", "+5.0", "+48.0", "0", "+1.5", "+0.2"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x (40.0 %)", "y (8.0 %)"]


def test_heatmap_numbers_and_colours_show_the_error(tmp_path, monkeypatch):
    kept = _kept_figures(monkeypatch)
    errors = np.array([[40.0, 45.0, 88.0], [8.0, 9.5, np.nan]])
    heatmap.robustness_heatmap(tmp_path / "h", errors, ["a", "b", "c"], ["x", "y"])
    fig = kept["h"]
    fig.canvas.draw()
    axis, bar = fig.axes[:2]
    image = axis.images[0]
    assert bar.get_ylabel() == "Median test error (%)" and image.norm.vmin == 8.0 and image.norm.vmax == 88.0
    assert image.norm.__class__.__name__ == "LogNorm"  # 8 % to 88 %: a factor of 11
    texts = [t.get_text() for t in axis.texts]
    assert texts == ["40.0", "45.0", "88.0", "8.0", "9.5", "–"]
    shown = np.ma.filled(image.get_array(), np.nan)
    for text, value in zip(texts, shown.reshape(-1)):
        assert text == "–" if np.isnan(value) else float(text) == value
    labels = [float(t.label2.get_text()) for t in bar.yaxis.get_major_ticks()
              if t.label2.get_visible() and t.label2.get_text() and 8.0 <= t.get_loc() <= 88.0]
    assert len(labels) >= 3
    # A narrow range gets a linear scale (a log one would label a twentieth of a decade).
    heatmap.robustness_heatmap(tmp_path / "n", np.array([[84.0, 90.0], [92.0, 94.0]]), ["a", "b"], ["x", "y"])
    assert kept["n"].axes[0].images[0].norm.__class__.__name__ == "Normalize"


def test_network_names_come_from_one_table():
    from memnp.experiments.registry import TRAININGS
    from memnp.plotting.loaders import training_kind, training_role
    names = {name for name, _ in style.NETWORKS.values()}
    for training in TRAININGS:
        kind = training_kind(training)
        assert training_role(training) == style.NETWORKS[kind]
    assert training_role("d2d_more") == style.NETWORKS["aware"]
    assert training_role("d2d_more_std_avg")[0] == style.TRAINING_NAMES["d2d_less_std_avg"] == "Standard w (avg.)"
    assert style.TRAINING_NAMES["cnn_high_pf"] in names and style.TRAINING_NAMES["ideal"] == "Standard"
    assert len({color for _, color in style.NETWORKS.values()}) == len(style.NETWORKS)


def test_training_legend_and_grid():
    assert [h.get_label() for h in training.curve_legend_handles()] == ["Training", "Validation", "Test"]
    handles = training.curve_legend_handles(1, {"test markers", "test band"})
    assert [h.get_label() for h in handles] == ["Training", "Validation", "Test", training.TEST_BAND_LABEL]
    assert handles[2].get_marker() == "o" and handles[0].get_marker() in (None, "None", "")


def test_training_legend_names_the_test_markers_and_band(tmp_path, rng, monkeypatch):
    kept = _kept_figures(monkeypatch)
    training.training_curves_figure(tmp_path / "t", [_panel(rng, n_networks=1)])
    legend = kept["t"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["Training", "Validation", "Test", "Test IQR"]
    assert legend.legend_handles[2].get_marker() == "o"
    for n in (1, 2, 3, 4, 6, 8, 9, 10, 12, 15):
        assert n % training.grid_columns(n) == 0
    titles = training.fit_titles(["Standard → High-R PF + stuck on", "Aware → Stuck off"], 1.4)
    assert titles == ["Standard →\nHigh-R PF + stuck on", "Aware →\nStuck off"]  # alike, so aligned
    assert training.fit_titles(["A → B", "C → D"], 1.4) == ["A → B", "C → D"]


def test_training_panels_form_a_grid(tiny_results):
    from memnp.plotting.catalogue import _curve_panels, _mnist_pairs
    from memnp.plotting.loaders import ResultsView
    view = ResultsView(tiny_results)
    panels, ncols = _curve_panels(view, _mnist_pairs(view, "weight_implementation"))
    assert ncols == 5 and len(panels) == 10  # 2 devices x 5 networks, no empty cell
    assert [p["title"] for p in panels[:5]] == ["Standard", "Standard w (avg.)", "Standard w (default)",
                                                "Aware", "Aware (reg.)"]
    assert [p.get("row_label") for p in panels[::5]] == ["More unif. D2D", "Less unif. D2D"]
    panels, ncols = _curve_panels(view, _mnist_pairs(view, "stuck_off"))
    assert ncols is None and [p["title"] for p in panels] == ["Standard → Stuck off", "Aware → Stuck off"]


def test_siox_iv_tells_measured_from_fitted(tmp_path, rng, monkeypatch):
    V, I, fit = _siox_fit(rng)
    kept = _kept_figures(monkeypatch)
    devices.siox_iv_figure(tmp_path / "iv", V[fit.kept], I[fit.kept], fit.R, fit.c, fit.d_eps,
                           {"low": fit.low, "high": fit.high})
    fig = kept["iv"]
    iv_axes = [a for a in fig.axes if a.get_xlabel() == "Voltage (V)"]
    assert len(iv_axes) == 2
    for axis in iv_axes:
        assert [t.get_text() for t in axis.get_legend().get_texts()] == ["measured", "PF fit"]
        measured = [line for line in axis.lines if line.get_linestyle() == "None"]
        fitted = [line for line in axis.lines if line.get_linestyle() != "None"]
        assert measured and len(measured) == len(fitted)
        assert all(line.get_marker() == "o" for line in measured)
        assert {line.get_color() for line in fitted} == {style.COLORS["black"]}
    ylabels = [a.get_ylabel() for a in fig.axes]
    assert any("A\\,V^{-1}" in y for y in ylabels) and any("F\\,m^{-1}" in y for y in ylabels)


def test_synthetic_ta_hfo2_traces_stay_in_their_range(tmp_path):
    from memnp.plotting.loaders import tahfo2_data
    d = tahfo2_data(tmp_path / "no-data")
    assert d["synthetic"]
    # Inside [G_off, G_on] up to the 1 % read noise (the range is the medians of the extremes).
    assert d["G_reads"].min() >= 0.95 * d["G_off"] and d["G_reads"].max() <= 1.03 * d["G_on"]
    assert d["p"] == pytest.approx(0.101, abs=1e-3)
