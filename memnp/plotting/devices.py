"""Device figures: SiOx I-V curves and their Poole-Frenkel fits, PF residuals, Ta/HfO2 pulses and KDE.

Every function takes plain arrays (SI units: V, A, Ω, S) and an output path, and writes a PNG and
a PDF through :func:`memnp.plotting.style.save`, returning both paths.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from scipy import constants, stats

from . import style
from ..crossbar.nonidealities.stuck import kde_pdf

#: 1 / G_0 (Ω), the boundary between the SiOx low- and high-resistance regimes.
INVERSE_CONDUCTANCE_QUANTUM = 1.0 / constants.physical_constants["conductance quantum"][0]
REGIMES = ("low", "high")
REGIME_TITLES = {"low": "Low resistance", "high": "High resistance"}
REGIME_COLORS = {"low": style.COLORS["blue"], "high": style.COLORS["vermilion"]}
#: Symbols of the PF parameters, and axis labels of their logarithms (the unit inside the log).
PARAMETER_SYMBOLS = {"c": r"$\ln\,c$", "d_eps": r"$\ln\,d\varepsilon$"}
PARAMETER_LABELS = {"c": r"$\ln\,[c\ /\ (\mathrm{A\,V^{-1}})]$",
                    "d_eps": r"$\ln\,[d\varepsilon\ /\ (\mathrm{F\,m^{-1}})]$"}
#: Colour map of the mean nonlinearity: dark blue (ohmic) to yellow, never black, so that the
#: measured points stand apart from the black fitted curves.
_CMAP = "plasma"
_FIT_COLOR = style.COLORS["black"]
#: Measured points drawn per I-V curve (the curves hold 101 points; every one would hide the fit).
_MEASURED_POINTS = 11


def mean_nonlinearity(V, I):
    """Mean I-V nonlinearity of curves measured from 0 V in equal steps.

    The nonlinearity at voltage V is G(2V) / G(V) with G = I / V (1 for an ohmic device); this is
    its mean over every V for which 2V was measured.

    Args:
        V: (n_curves, n_points) or (n_points,) voltages (V), V[..., 0] = 0, equal steps.
        I: (n_curves, n_points) currents (A).
    Returns:
        (n_curves,) mean nonlinearity (dimensionless).
    """
    I = np.atleast_2d(np.asarray(I, dtype=float))
    V = np.broadcast_to(np.asarray(V, dtype=float), I.shape)
    n = I.shape[1]
    if n < 3:
        raise ValueError(f"curves need at least 3 points (0, V, 2V), got {n}")
    with np.errstate(divide="ignore", invalid="ignore"):
        G = I / V
    k = np.arange(1, (n - 1) // 2 + 1)
    return np.nanmean(G[:, 2 * k] / G[:, k], axis=1)


def _si_scale(values, unit):
    """(factor, label) showing ``values`` (in ``unit``) with an SI prefix chosen from their magnitude."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = float(np.max(finite)) if finite.size else 1.0
    for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p")):
        if top * factor >= 1.0:
            return factor, prefix + unit
    return 1e12, "p" + unit


def _regime_masks(R, split_resistance):
    R = np.asarray(R, dtype=float)
    return {"low": R < split_resistance, "high": R >= split_resistance}


def _fit_line(fits, regime, parameter):
    """(slope, intercept) of ln ``parameter`` on ln R for ``regime`` from a fits mapping, or None."""
    fit = fits.get(regime) if fits else None
    if fit is None:
        return None
    index = 0 if parameter == "c" else 1
    slopes = fit["slopes"] if isinstance(fit, dict) else fit.slopes
    intercepts = fit["intercepts"] if isinstance(fit, dict) else fit.intercepts
    return float(slopes[index]), float(intercepts[index])


def _check_curves(V, I, R, c, d_eps):
    I = np.atleast_2d(np.asarray(I, dtype=float))
    V = np.broadcast_to(np.asarray(V, dtype=float), I.shape)
    R, c, d_eps = (np.asarray(a, dtype=float).reshape(-1) for a in (R, c, d_eps))
    if not (len(R) == len(c) == len(d_eps) == I.shape[0]):
        raise ValueError(f"R, c and d_eps need one entry per curve ({I.shape[0]}), "
                         f"got {len(R)}, {len(c)}, {len(d_eps)}")
    if len(R) == 0:
        raise ValueError("need at least one I-V curve")
    return V, I, R, c, d_eps


@style.styled
def siox_iv_figure(path, V, I, R, c, d_eps, fits=None, *,
                   split_resistance=INVERSE_CONDUCTANCE_QUANTUM, nonlinearity_range=(1.0, 1.5)):
    """SiOx I-V curves coloured by mean nonlinearity, their PF fits, and ln c, ln dε against ln R.

    Args:
        path: output path (a ``.png`` and a ``.pdf`` are written).
        V, I: (n_curves, n_points) measured curves (V, A), from 0 V in equal steps.
        R: (n_curves,) resistance at the reference voltage (Ω).
        c, d_eps: (n_curves,) fitted PF parameters (A/V, F/m).
        fits: {"low"|"high": {"slopes": (s_c, s_d), "intercepts": (b_c, b_d)}} (or objects with
            those attributes); regression lines are drawn for the regimes present.
        split_resistance: regime boundary (Ω).
        nonlinearity_range: (min, max) of the colour scale.
    Returns:
        [png_path, pdf_path].
    """
    from ..data.devices.siox import pf_current

    V, I, R, c, d_eps = _check_curves(V, I, R, c, d_eps)
    nonlinearity = mean_nonlinearity(V, I)
    norm = Normalize(*nonlinearity_range)
    cmap = colormaps[_CMAP]
    masks = _regime_masks(R, split_resistance)

    fig = style.new_figure("column", height=4.6)
    grid = fig.add_gridspec(3, 2, height_ratios=[1.1, 0.8, 0.8])
    iv_axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])]
    ln_c_axis = fig.add_subplot(grid[1, :])
    ln_d_axis = fig.add_subplot(grid[2, :], sharex=ln_c_axis)

    measured_handle = Line2D([], [], ls="none", marker="o", ms=2.5, mfc=cmap(0.5), mec="none",
                             label="measured")
    fit_handle = Line2D([], [], color=_FIT_COLOR, lw=0.6, label="PF fit")
    for axis, regime in zip(iv_axes, REGIMES):
        idx = np.flatnonzero(masks[regime])
        factor, unit = _si_scale(I[idx], "A") if idx.size else (1.0, "A")
        every = max(1, (V.shape[1] - 1) // (_MEASURED_POINTS - 1))
        for k in idx:
            axis.plot(V[k], factor * pf_current(V[k], c[k], d_eps[k]), color=_FIT_COLOR, lw=0.6, zorder=3)
            axis.plot(V[k, ::every], factor * I[k, ::every], ls="none", marker="o", ms=2.0,
                      mfc=cmap(norm(nonlinearity[k])), mec="none", zorder=2)
        axis.set_title(f"{REGIME_TITLES[regime]} ({idx.size})", fontsize=7.5)
        axis.set_xlabel("Voltage (V)")
        axis.set_ylabel(f"Current ({unit})")
        axis.set_xlim(0, float(np.nanmax(V)))
        axis.set_ylim(bottom=0)
        axis.legend(handles=[measured_handle, fit_handle], loc="upper left", handlelength=1.4,
                    handletextpad=0.5, borderaxespad=0.2)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=iv_axes, aspect=15, pad=0.02)
    bar.set_label("Mean nonlinearity")

    x = np.log(R)
    for axis, parameter, values in ((ln_c_axis, "c", c), (ln_d_axis, "d_eps", d_eps)):
        axis.scatter(x, np.log(values), c=nonlinearity, cmap=cmap, norm=norm, s=10,
                     edgecolors="black", linewidths=0.3, zorder=3)
        for regime in REGIMES:
            line = _fit_line(fits, regime, parameter)
            if line is None or not masks[regime].any():
                continue
            xs = np.array([x[masks[regime]].min(), x[masks[regime]].max()])
            axis.plot(xs, line[0] * xs + line[1], color=REGIME_COLORS[regime], ls="--", lw=1.0,
                      label=f"{regime}-R regression")
        axis.axvline(np.log(split_resistance), color="grey", ls=":", lw=0.8)
        axis.set_ylabel(PARAMETER_LABELS[parameter])
        if axis.get_legend_handles_labels()[0]:
            # Both parameters fall with ln R: the upper right of each panel is empty.
            axis.legend(loc="upper right", handlelength=1.8, borderaxespad=0.2, fontsize=6.5)
    # Left of the boundary line: the legend fills the upper right.
    ln_c_axis.text(np.log(split_resistance), 1.0, r"$1/G_0$ ", transform=ln_c_axis.get_xaxis_transform(),
                   va="top", ha="right", fontsize=6.5, color="grey")
    ln_c_axis.tick_params(labelbottom=False)
    ln_d_axis.set_xlabel(r"$\ln\,(R\ /\ \Omega)$, $R$ read at 0.1 V")
    fig.align_ylabels([ln_c_axis, ln_d_axis])
    return style.save(fig, path)


def _residuals(R, values, fits, regime, parameter, mask):
    line = _fit_line(fits, regime, parameter)
    x = np.log(R[mask])
    y = np.log(values[mask])
    if line is None:  # fit the line here when no regime fit was given
        result = stats.linregress(x, y)
        line = (result.slope, result.intercept)
    return x, y - (line[0] * x + line[1])


@style.styled
def pf_residuals_figure(path, R, c, d_eps, fits=None, *, parameter="c",
                        split_resistance=INVERSE_CONDUCTANCE_QUANTUM):
    """Residuals of the ln c (or ln dε) regression against ln R per regime, with normal Q-Q plots.

    Args:
        path: output path.
        R, c, d_eps: (n_curves,) resistance (Ω) and fitted PF parameters (A/V, F/m).
        fits: regime fits as for :func:`siox_iv_figure`; a regime without one is fitted here.
        parameter: "c" or "d_eps".
    Returns:
        [png_path, pdf_path].
    """
    if parameter not in PARAMETER_LABELS:
        raise ValueError(f"parameter must be 'c' or 'd_eps', got {parameter!r}")
    R, c, d_eps = (np.asarray(a, dtype=float).reshape(-1) for a in (R, c, d_eps))
    if not len(R) == len(c) == len(d_eps):
        raise ValueError(f"R, c and d_eps must have equal lengths, got {len(R)}, {len(c)}, {len(d_eps)}")
    values = c if parameter == "c" else d_eps
    masks = _regime_masks(R, split_resistance)
    regimes = [r for r in REGIMES if masks[r].sum() >= 3]
    if not regimes:
        raise ValueError("need at least 3 curves in one regime to show residuals")

    symbol = PARAMETER_SYMBOLS[parameter]
    fig = style.new_figure("column", height=3.3)
    axes = fig.subplots(2, len(regimes), squeeze=False)
    for j, regime in enumerate(regimes):
        color = REGIME_COLORS[regime]
        x, res = _residuals(R, values, fits, regime, parameter, masks[regime])
        limit = 1.15 * float(np.max(np.abs(res))) or 1.0
        top, bottom = axes[0, j], axes[1, j]
        top.axhline(0, color="grey", lw=0.6)
        top.scatter(x, res, s=9, color=color, edgecolors="none")
        top.set_ylim(-limit, limit)
        top.set_xlabel(r"$\ln\,(R\ /\ \Omega)$")
        top.set_title(f"{REGIME_TITLES[regime]} ({x.size})", fontsize=7.5)
        (osm, osr), (slope, intercept, r) = stats.probplot(res, dist="norm")
        q = np.array([osm.min(), osm.max()])
        bottom.plot(q, slope * q + intercept, color="grey", lw=0.8)
        bottom.scatter(osm, osr, s=9, color=color, edgecolors="none", zorder=3)
        bottom.set_ylim(-limit, limit)
        bottom.set_xlabel("Normal quantile")
        text = f"$r$ = {r:.3f}"
        if x.size >= 3:
            text += f"\nShapiro $p$ = {stats.shapiro(res).pvalue:.2g}"
        bottom.text(0.04, 0.96, text, transform=bottom.transAxes, va="top", fontsize=6.5)
    axes[0, 0].set_ylabel(f"Residual of {symbol}")
    axes[1, 0].set_ylabel("Ordered residual")
    return style.save(fig, path)


def stuck_density(G, means, bandwidth):
    """Density (1/S) at conductances G (S) of the stuck-value KDE of docs/model.md §2 (see
    :func:`memnp.crossbar.nonidealities.stuck.kde_pdf`); means (N,) and bandwidth h in S."""
    return kde_pdf(np.asarray(G, dtype=float), means, bandwidth)


@style.styled
def ta_hfo2_figure(path, G_reads, G_off, G_on, stuck_values, *, stuck_mask=None, bandwidth=None,
                   p=None, synthetic=False, n_devices=60, seed=0):
    """Ta/HfO2 conductance over pulses for a sample of devices, and the KDE of stuck conductances.

    Args:
        path: output path.
        G_reads: (cycles, pulses, bit lines, word lines) read conductances (S).
        G_off, G_on: conductance range (S), drawn as dashed lines.
        stuck_values: (N,) conductances of the stuck devices (S), the KDE's centres.
        stuck_mask: (bit lines, word lines) bool, the stuck devices; default: range (max - min
            over all reads) under (G_on - G_off) / 2, the extraction rule of docs/model.md §6.
        bandwidth: KDE bandwidth (S); default Scott's rule as StuckDistribution uses.
        p: stuck probability, shown in the legend when given.
        synthetic: label the figure "synthetic data" (the measured data are not public).
        n_devices: how many devices' traces to draw (chosen with ``seed``; stuck ones included).
    Returns:
        [png_path, pdf_path].
    """
    G_reads = np.asarray(G_reads, dtype=float)
    if G_reads.ndim != 4:
        raise ValueError(f"G_reads must be 4-D (cycles, pulses, bit lines, word lines), got shape {G_reads.shape}")
    stuck_values = np.asarray(stuck_values, dtype=float).reshape(-1)
    if bandwidth is None:
        from ..crossbar.nonidealities.stuck import scott_bandwidth
        bandwidth = scott_bandwidth(stuck_values) if stuck_values.size >= 2 else 0.0
    traces = G_reads.reshape(G_reads.shape[0] * G_reads.shape[1], -1)  # (pulses, devices)
    if stuck_mask is None:
        stuck = (traces.max(axis=0) - traces.min(axis=0)) < 0.5 * (G_on - G_off)
    else:
        stuck = np.asarray(stuck_mask, dtype=bool).reshape(-1)
        if stuck.size != traces.shape[1]:
            raise ValueError(f"stuck_mask must have one entry per device ({traces.shape[1]}), got {stuck.size}")
    rng = np.random.default_rng(seed)
    n_show = min(int(n_devices), traces.shape[1])
    # Every stuck device (up to half the traces) and a random sample of the others.
    stuck_idx, other_idx = np.flatnonzero(stuck), np.flatnonzero(~stuck)
    n_stuck = min(stuck_idx.size, max(n_show // 2, n_show - other_idx.size))
    shown = np.concatenate([rng.choice(stuck_idx, size=n_stuck, replace=False),
                            rng.choice(other_idx, size=min(other_idx.size, n_show - n_stuck), replace=False)])
    pulses = np.arange(1, traces.shape[0] + 1)
    step = max(1, traces.shape[0] // 400)

    fig = style.new_figure("column", height=2.2)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[2.0, 1.0])
    colors = {True: style.COLORS["vermilion"], False: style.COLORS["bluish-green"]}
    for k in shown[np.argsort(stuck[shown])]:  # stuck devices on top
        left.plot(pulses[::step], 1e3 * traces[::step, k], color=colors[bool(stuck[k])], lw=0.4, alpha=0.6)
    for axis in (left, right):
        for G in (G_off, G_on):
            axis.axhline(1e3 * G, color=style.COLORS["blue"], ls="--", lw=0.8, zorder=5)
    left.set_xlim(1, pulses[-1])
    left.set_xlabel("Pulse number")
    left.set_ylabel("Conductance (mS)")
    stuck_label = "stuck devices" + (f" (p = {p:.3g})" if p is not None else "")
    handles = [Line2D([], [], color=colors[True], label=stuck_label),
               Line2D([], [], color=colors[False], label="other devices"),
               Line2D([], [], color=style.COLORS["blue"], ls="--", label=r"$G_\mathrm{off}$, $G_\mathrm{on}$")]
    fig.legend(handles=handles, loc="outside upper center", ncols=3, handlelength=1.5, columnspacing=1.0)

    # The axis reaches 5 % above the traces and G_on, 15 % with the "synthetic data" label (above them).
    top = max(float(np.nanmax(traces)), float(G_on)) * (1.15 if synthetic else 1.05)
    left.set_ylim(0, 1e3 * top)
    if stuck_values.size >= 2 and bandwidth > 0:
        grid = np.linspace(0.0, top, 600)
        density = stuck_density(grid, stuck_values, bandwidth)
        right.plot(density / 1e3, 1e3 * grid, color=colors[True], lw=0.9)
        right.fill_betweenx(1e3 * grid, 0, density / 1e3, color=colors[True], alpha=0.15)
    right.plot(np.zeros_like(stuck_values), 1e3 * stuck_values, ls="none", marker="_", ms=6,
               color=colors[True], alpha=0.3)
    right.set_xlim(left=0)
    # The right panel is the kernel density estimate of the stuck devices' conductances (their
    # values as ticks at zero density), on the left panel's conductance axis.
    right.set_title("Stuck devices' $G$", fontsize=7.5)
    right.set_xlabel("Density of $G$\n" + r"(mS$^{-1}$)")
    left.set_title("Conductance over pulses", fontsize=7.5)
    right.tick_params(labelleft=False)
    if synthetic:
        left.text(0.98, 0.98, "synthetic data", transform=left.transAxes, ha="right", va="top",
                  fontsize=7, fontstyle="italic", color="black",
                  bbox={"facecolor": "white", "edgecolor": "grey", "lw": 0.5, "pad": 1.5})
    return style.save(fig, path)
