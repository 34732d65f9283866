"""Every figure memnp draws, each built from the results store (or the data directory) alone.

Each entry is a function ``(context, figures_dir) -> [paths]`` that raises :class:`Skip` (with a
reason) when its inputs are missing. ``context`` holds the data directory and, once opened, the
:class:`~memnp.plotting.loaders.ResultsView` (or the reason it could not be opened).
"""
from __future__ import annotations

import numpy as np

from . import boxplots, conductances, devices, heatmap, style, sweeps, training
from . import line_resistance
from .loaders import (ResultsView, Skip, short_inference_label, short_training_label, siox_data,
                      tahfo2_data, training_role)

#: Simulations drawn by their own figure functions rather than the generic curves and boxes.
_SPECIAL = ("nonideality_agnosticism", "iv_nonlinearity_cnn", "combined", "drift", "adc", "line_resistance")


class Context:
    """Lazily opened inputs of the figures."""

    def __init__(self, results_dir, data_dir):
        self.results_dir, self.data_dir = results_dir, data_dir
        self._view, self._reason, self._siox = None, None, None

    @property
    def view(self):
        if self._view is None and self._reason is None:
            try:
                self._view = ResultsView(self.results_dir)
            except Skip as exc:
                self._reason = str(exc)
        if self._view is None:
            raise Skip(self._reason)
        return self._view

    @property
    def siox(self):
        if self._siox is None:
            self._siox = siox_data(self.data_dir)
        return self._siox


# -- devices -----------------------------------------------------------------------------------------
def siox_iv(ctx, out):
    d = ctx.siox
    return devices.siox_iv_figure(out / "siox_iv", d["V"], d["I"], d["R"], d["c"], d["d_eps"], d["fits"])


def pf_residuals(parameter):
    def draw(ctx, out):
        d = ctx.siox
        return devices.pf_residuals_figure(out / f"pf_residuals_{parameter}", d["R"], d["c"], d["d_eps"],
                                           d["fits"], parameter=parameter)
    return draw


def ta_hfo2(ctx, out):
    d = tahfo2_data(ctx.data_dir)
    return devices.ta_hfo2_figure(out / "ta_hfo2", d["G_reads"], d["G_off"], d["G_on"], d["stuck_values"],
                                  stuck_mask=d["stuck_mask"], bandwidth=d["bandwidth"], p=d["p"],
                                  synthetic=d["synthetic"])


# -- results -----------------------------------------------------------------------------------------
def _mnist_pairs(view, simulation):
    return [(t, i) for t, i in view.simulations.get(simulation, {}).get("pairs", [])
            if view.family(t) == "mnist"]


def _simulation_names(view):
    return [name for name in view.simulations if name not in _SPECIAL]


def _curve_panels(view, pairs):
    """(panels, ncols) of the training curves of ``pairs``. When the pairs cross every training
    kind with every inference device once (as iv_nonlinearity and weight_implementation do), the
    panels form that grid: a column per network (titled on the top row), a row per inference
    device (named by the first panel's y label). Otherwise a panel per pair, titled
    "network → inference", in the order of the pairs."""
    entries = []
    for t, i in pairs:
        panel = view.curve_panel(t, i)
        if panel is not None:
            entries.append((training_role(t)[0], view.inferences.get(i, {}).get("device"), i, t, panel))
    names = list(dict.fromkeys(e[0] for e in entries))
    devices = list(dict.fromkeys(e[1] for e in entries))
    cells = {(e[1], e[0]) for e in entries}
    if len(names) > 1 and len(devices) > 1 and len(cells) == len(entries) == len(names) * len(devices):
        entries.sort(key=lambda e: (devices.index(e[1]), names.index(e[0])))
        panels = []
        for k, (name, device, i, _, panel) in enumerate(entries):
            panel["title"] = name if k < len(names) else ""
            if k % len(names) == 0:
                panel["row_label"] = short_inference_label(view, i)
            panels.append(panel)
        return panels, len(names)
    by_role = len(set(cells)) == len(entries)  # the kinds tell the panels apart
    panels = []
    for name, _, i, t, panel in entries:
        panel["title"] = f"{name if by_role else short_training_label(view, t)} → {short_inference_label(view, i)}"
        panels.append(panel)
    return panels, None


def training_curves(ctx, out):
    """One figure per simulation: a panel per (training, inference) pair of MNIST networks."""
    view = ctx.view
    paths, reasons = [], []
    for sim in _simulation_names(view):
        panels, ncols = _curve_panels(view, _mnist_pairs(view, sim))
        if panels:
            paths += training.training_curves_figure(out / f"training_{sim}", panels, ncols=ncols)
        else:
            reasons.append(sim)
    if not paths:
        raise Skip("no finished MNIST training jobs in the results" if not reasons else
                   f"no finished training jobs for {', '.join(reasons)}")
    return paths


def _groups_for_inference(view, pairs, inference_device):
    groups = []
    for t, i in pairs:
        if view.inferences.get(i, {}).get("device") != inference_device:
            continue
        result = view.error_power(t, i)
        if result is None or not np.isfinite(result[1]).any():
            continue
        label, color = training_role(t)
        if any(g["label"] == label for g in groups):
            label = f"{label}: {short_training_label(view, t)}"
        groups.append({"label": label, "color": color, "error": result[0], "power": result[1]})
    return groups


def error_vs_power(ctx, out):
    """One figure per simulation: test error against power, a panel per inference device."""
    view = ctx.view
    paths = []
    for sim in _simulation_names(view):
        pairs = _mnist_pairs(view, sim)
        trainings = {t for t, _ in pairs}
        if len(trainings) == 1:  # one network, many setups: one panel, a box per setup
            (t,) = trainings
            groups = []
            for _, i in pairs:
                result = view.error_power(t, i)
                if result is not None and np.isfinite(result[1]).any():
                    groups.append({"label": short_inference_label(view, i), "color": style.setup_color(i),
                                   "error": result[0], "power": result[1]})
            panels = [{"title": f"{training_role(t)[0]} training", "groups": groups}] if groups else []
        else:
            devices_seen = []
            for _, i in pairs:
                device = view.inferences.get(i, {}).get("device")
                if device not in devices_seen:
                    devices_seen.append(device)
            panels = []
            for device in devices_seen:
                name = next(i for _, i in pairs if view.inferences.get(i, {}).get("device") == device)
                groups = _groups_for_inference(view, pairs, device)
                if groups:
                    panels.append({"title": short_inference_label(view, name), "groups": groups})
        if panels:
            width = "page" if len(panels) > 2 or max(len(p["groups"]) for p in panels) > 4 else "column"
            paths += boxplots.error_vs_power_figure(out / f"error_vs_power_{sim}", panels, width=width)
    if not paths:
        raise Skip("no finished MNIST inference jobs with power in the results")
    return paths


def cnn(ctx, out):
    view = ctx.view
    trainings = [t for t in ("cnn_ideal", "cnn_high_pf") if t in view.trainings]
    if not trainings:
        raise Skip("no CIFAR-10 CNN in the results (run iv_nonlinearity_cnn with CIFAR-10 present)")
    panels, groups = [], []
    for t in trainings:
        panel = view.curve_panel(t, "high_pf")
        if panel is not None:
            panel["title"] = f"{short_training_label(view, t)} → {short_inference_label(view, 'high_pf')}"
            panels.append(panel)
        result = view.error_power(t, "high_pf")
        if result is not None:
            label, color = training_role(t)
            groups.append({"label": short_training_label(view, t), "color": color, "error": result[0],
                           "power": result[1]})
    if not panels or not groups:
        raise Skip("the CIFAR-10 CNN jobs have not finished")
    return training.cnn_figure(out / "cnn", panels, groups,
                               box_title=f"Test on {short_inference_label(view, 'high_pf')}")


_WEIGHT_ROWS = ((style.INFERENCE_NAMES["d2d_more"],
                 ("d2d_more_std_avg", "d2d_more_std_default", "d2d_more", "d2d_more_reg")),
                (style.INFERENCE_NAMES["d2d_less"],
                 ("d2d_less_std_avg", "d2d_less_std_default", "d2d_less", "d2d_less_reg")))


def weight_implementation(ctx, out):
    view = ctx.view
    pairs = dict(view.simulations.get("weight_implementation", {}).get("pairs", []))
    rows, G_range = [], None
    for title, names in _WEIGHT_ROWS:
        impls, groups = [], []
        for name in names:
            label, color = training_role(name)
            found = view.conductances(name) if name in view.trainings else None
            if found is None:
                continue
            G_plus, G_minus, G_off, G_on = found
            G_range = (G_off, G_on)
            impls.append({"label": label, "color": color, "G_plus": G_plus, "G_minus": G_minus})
            result = view.error_power(name, pairs[name]) if name in pairs else None
            if result is not None and np.isfinite(result[1]).any():
                groups.append({"label": label, "color": color, "error": result[0], "power": result[1]})
        if impls:
            rows.append({"title": title, "implementations": impls, "groups": groups})
    if not rows:
        raise Skip("no trained weight_implementation networks in the results")
    return conductances.conductance_scatter_figure(out / "weight_implementation", rows,
                                                   G_off=G_range[0], G_on=G_range[1])


def robustness(ctx, out):
    from ..experiments.registry import AGNOSTIC_INFERENCES, AGNOSTIC_TRAININGS

    view = ctx.view
    cols = [t for t in AGNOSTIC_TRAININGS if t in view.trainings]
    rows = [i for i in AGNOSTIC_INFERENCES if i in view.inferences]
    errors = np.array([[view.median_error(t, i) for t in cols] for i in rows]).reshape(len(rows), len(cols))
    if not np.isfinite(errors).any():
        raise Skip("no finished MNIST inference jobs for the robustness matrix")
    return heatmap.robustness_heatmap(out / "robustness", errors,
                                      [short_training_label(view, t) for t in cols],
                                      [short_inference_label(view, i) for i in rows])


def _sweep_series(view, training, inferences, x, **fields):
    """A series of :mod:`memnp.plotting.sweeps` (median and quartiles per point), or None."""
    stats = []
    for i in inferences:
        result = view.error_power(training, i)
        stats.append(np.percentile(result[0], [25, 50, 75]) if result is not None else [np.nan] * 3)
    stats = np.asarray(stats, dtype=float).reshape(len(inferences), 3)
    if not np.isfinite(stats[:, 1]).any():
        return None
    return dict(fields, x=np.asarray(x, dtype=float), q25=stats[:, 0], median=stats[:, 1], q75=stats[:, 2])


_SWEEP_STYLE = {"ideal": ("Ideal training", style.TRAINING_COLORS["standard"]),
                "chip_1s": ("Aware, trained at 1 s", style.TRAINING_COLORS["aware"]),
                "chip": ("Aware, trained at 1 day", style.TRAINING_COLORS["aware_regularised"]),
                "high_pf": ("Aware (high-R PF)", style.TRAINING_COLORS["aware"])}


def combined(ctx, out):
    """The combined simulation: test error against power on the whole chip, a box per training."""
    from ..experiments.registry import SIMULATIONS

    view = ctx.view
    styles = {"ideal": ("Ideal training", style.TRAINING_COLORS["standard"]),
              "high_pf": ("Aware (PF alone)", style.TRAINING_COLORS["aware"]),
              "chip": ("Aware (whole chip)", style.TRAINING_COLORS["aware_regularised"])}
    groups = []
    for training, inference in SIMULATIONS["combined"].pairs:
        result = view.error_power(training, inference)
        if result is not None and np.isfinite(result[1]).any():
            label, color = styles[training]
            groups.append({"label": label, "color": color, "error": result[0], "power": result[1]})
    if not groups:
        raise Skip("no finished combined inference jobs in the results (run --only combined)")
    panels = [{"title": "Whole chip, 1 day after programming", "groups": groups}]
    return boxplots.error_vs_power_figure(out / "error_vs_power_combined", panels)


def drift(ctx, out):
    """The drift simulation: test error against the time after programming (log axis)."""
    from ..experiments.registry import DRIFT_READS, DRIFT_TRAININGS

    view = ctx.view
    names = [name for name, *_ in DRIFT_READS]
    seconds = [t for *_, t in DRIFT_READS]
    series = []
    for training in DRIFT_TRAININGS:
        label, color = _SWEEP_STYLE[training]
        found = _sweep_series(view, training, names, seconds, label=label, color=color)
        if found is not None:
            series.append(found)
    if not series:
        raise Skip("no finished drift inference jobs in the results (run --only drift)")
    trained_at = {_SWEEP_STYLE["chip_1s"][0]: seconds[0], _SWEEP_STYLE["chip"][0]: seconds[names.index("chip")]}
    return sweeps.drift_figure(out / "drift", series, trained_at=trained_at)


def adc(ctx, out):
    """The adc simulation: test error against the ADC's bits, one array and 128 x 64 tiles."""
    from ..data.presets import ADC_BITS
    from ..experiments.registry import ADC_TRAININGS

    view = ctx.view
    series = []
    for training in ADC_TRAININGS:
        label, color = _SWEEP_STYLE[training]
        for suffix, layout, linestyle, marker in (("", "one array", "-", "o"), ("_tiles", "128 x 64 tiles", "--", "s")):
            found = _sweep_series(view, training, [f"adc{b}{suffix}" for b in ADC_BITS], ADC_BITS,
                                  label=f"{label}, {layout}", group=label, variant=layout, color=color,
                                  linestyle=linestyle, marker=marker)
            if found is not None:
                series.append(found)
    if not series:
        raise Skip("no finished adc inference jobs in the results (run --only adc)")
    references = []  # the same networks on PF without converters, when iv_nonlinearity ran too
    for training in ADC_TRAININGS:
        result = view.error_power(training, "high_pf")
        if result is not None:
            label, color = _SWEEP_STYLE[training]
            references.append({"label": f"{label}, no ADC", "variant": "no ADC", "color": color,
                               "value": np.median(result[0])})
    return sweeps.adc_figure(out / "adc", series, references=references)


#: The figures drawn from the data directory alone (not from the results store).
DEVICE_FIGURES = ("siox_iv", "pf_residuals_c", "pf_residuals_d_eps", "ta_hfo2")


def is_result_figure(stem):
    """Whether a figure file stem is one drawn from the results store (not from device data):
    those are removed when no simulation in the store draws them any more."""
    return stem in ("cnn", "weight_implementation", "robustness", "drift", "adc", "line_resistance") \
        or stem.startswith(("training_", "error_vs_power_"))


#: name -> figure function, in drawing order.
FIGURES = {
    "siox_iv": siox_iv,
    "pf_residuals_c": pf_residuals("c"),
    "pf_residuals_d_eps": pf_residuals("d_eps"),
    "ta_hfo2": ta_hfo2,
    "training_curves": training_curves,
    "error_vs_power": error_vs_power,
    "cnn": cnn,
    "weight_implementation": weight_implementation,
    "robustness": robustness,
    "combined": combined,
    "drift": drift,
    "adc": adc,
    "line_resistance": line_resistance.draw,
}
