"""SiOx I-V curves: loading the multistate measurements and fitting the Poole-Frenkel model (docs/model.md §6).

Pipeline (:func:`fit_siox`), for curves measured from 0 V in equal voltage steps:

1. keep 0 .. ``max_voltage`` (0.5 V, the first 101 points at 5 mV steps);
2. drop curves with current spikes: the second difference ``np.gradient(np.gradient(I))``
   (unit spacing) divided by the curve's mean current; any value >= ``spike_threshold`` (0.1) drops it;
3. R = V / I at ``ref_voltage`` (0.1 V);
4. fit (c, dε) of I = c V exp(A sqrt(B V / dε + EPS)) to every curve with
   ``scipy.optimize.curve_fit`` from p0 = (1e-5, 1e-16);
5. sort by R; low-resistance regime R < ``split_resistance`` (1/G_0 = 12,906.4 Ω), high regime R >= it;
6. high regime: G_off = 1 / max R, G_on = ``ratio`` G_off; low regime: G_on = 1 / min R,
   G_off = G_on / ``ratio`` (ratio 5);
7. per regime, least-squares lines ln c = s_c ln R + b_c and ln dε = s_d ln R + b_d and the 2 x 2
   covariance of their residuals (e_c, e_d), divided by N (biased).

Fitting the published data gives the table of docs/model.md §6 (see docs/devices.md).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import constants, stats
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from scipy.optimize import OptimizeWarning, curve_fit

from ...crossbar.validation import conductance_range
from ...kernels.physics import A, B, EPS

#: 1 / G_0, the inverse conductance quantum (Ω): the boundary between the two regimes.
INVERSE_CONDUCTANCE_QUANTUM = 1.0 / constants.physical_constants["conductance quantum"][0]
#: curve_fit's starting point (c in A/V, dε in F/m).
P0 = (1e-5, 1e-16)


def pf_current(V, c, d_eps):
    """Poole-Frenkel device current (A): sign(V) c |V| exp(A sqrt(B |V| / dε + EPS)).

    V (V), c (A/V) and d_eps (F/m) broadcast against each other.
    """
    V = np.asarray(V, dtype=float)
    absV = np.abs(V)
    return np.sign(V) * c * absV * np.exp(A * np.sqrt(B * absV / d_eps + EPS))


def load_siox_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the multistate SiOx ``.mat`` file (MATLAB variable ``data``, (point, channel, state)).

    The state axis is flipped (so that states run from low to high resistance, as the published
    analysis does); channel 0 is current (A), channel 1 voltage (V); curves are NaN-padded.

    Returns:
        V: (n_states, n_points) voltages (V), NaN-padded.
        I: (n_states, n_points) currents (A), NaN-padded.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (the SiOx multistate .mat file)")
    try:
        data = loadmat(path, variable_names=["data"])
    except (MatReadError, ValueError, TypeError, OSError, IndexError, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable MATLAB v5 file ({exc})") from None
    if "data" not in data:
        raise ValueError(f"{path}: has no variable 'data' (expected the SiOx multistate layout)")
    arr = np.asarray(data["data"], dtype=float)
    if arr.ndim != 3 or arr.shape[1] < 2:
        raise ValueError(f"{path}: variable 'data' has shape {arr.shape}, "
                         "expected (points, >=2 channels, states)")
    arr = np.flip(arr, axis=2)
    return np.ascontiguousarray(arr[:, 1, :].T), np.ascontiguousarray(arr[:, 0, :].T)


@dataclass(frozen=True)
class RegimeFit:
    """The PF parameters of one resistance regime.

    Attributes:
        G_off, G_on: conductance range (S).
        slopes: (s_c, s_d); intercepts: (b_c, b_d) of ln c and ln dε against ln R.
        covariance: 2 x 2 residual covariance (biased, / N), as nested tuples.
        n_curves: number of curves in the regime.
    """
    G_off: float
    G_on: float
    slopes: tuple[float, float]
    intercepts: tuple[float, float]
    covariance: tuple[tuple[float, float], tuple[float, float]]
    n_curves: int

    def stage_dict(self, k_V: float = 0.5) -> dict:
        """This regime as a memnp.crossbar Stage dict with one IVNonlinearityPF nonideality."""
        return {
            "G_off": float(self.G_off), "G_on": float(self.G_on), "k_V": float(k_V),
            "mapping_rule": "default",
            "nonidealities": [{
                "type": "IVNonlinearityPF", "k_V": float(k_V),
                "slopes": [float(v) for v in self.slopes],
                "intercepts": [float(v) for v in self.intercepts],
                "covariance": [[float(v) for v in row] for row in self.covariance],
            }],
        }


@dataclass(frozen=True)
class SiOxFit:
    """Result of :func:`fit_siox`.

    Attributes:
        R: (n_kept,) resistance at the reference voltage (Ω), ascending.
        c: (n_kept,) fitted c (A/V); d_eps: (n_kept,) fitted dε (F/m), in the order of ``R``.
        kept: (n_kept,) indices of the kept curves in the input, in the order of ``R``.
        dropped: {input index: reason} for curves not used.
        low, high: the regimes' fits (None when a regime has fewer than 3 curves).
    """
    R: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    kept: np.ndarray
    dropped: dict = field(default_factory=dict)
    low: RegimeFit | None = None
    high: RegimeFit | None = None

    def regime(self, name: str) -> RegimeFit:
        """The fit of regime ``name`` ("low" or "high"); ValueError if absent."""
        if name not in ("low", "high"):
            raise ValueError(f"regime must be 'low' or 'high', got {name!r}")
        fit = getattr(self, name)
        if fit is None:
            raise ValueError(f"the {name}-resistance regime has fewer than 3 curves; no fit")
        return fit

    def stage_dict(self, regime: str, k_V: float = 0.5) -> dict:
        """Regime ``regime`` as a Stage dict (see :meth:`RegimeFit.stage_dict`)."""
        return self.regime(regime).stage_dict(k_V)


def spike_free(I: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Which curves pass the spike filter.

    Args:
        I: (n_curves, n_points) currents (A).
    Returns:
        (n_curves,) bool: max(np.gradient(np.gradient(I)) / mean(I)) < threshold.
    """
    I = np.asarray(I, dtype=float)
    if I.ndim != 2 or I.shape[1] < 3:
        raise ValueError(f"I must have shape (n_curves, n_points) with n_points >= 3; got {I.shape}")
    d2 = np.gradient(np.gradient(I, axis=1), axis=1)
    return (d2 / I.mean(axis=1, keepdims=True)).max(axis=1) < threshold


def fit_curve(V: np.ndarray, I: np.ndarray, p0=P0) -> tuple[float, float]:
    """Least-squares (c, dε) of the PF model for one curve (V, I: (n_points,), V > 0 somewhere)."""
    V, I = np.asarray(V, dtype=float), np.asarray(I, dtype=float)
    if V.ndim != 1 or V.shape != I.shape or V.size < 3:
        raise ValueError(f"V and I must be 1-D of equal length >= 3 (one curve's points); got shapes "
                         f"{V.shape} and {I.shape}")
    if not (np.all(np.isfinite(V)) and np.all(np.isfinite(I))):
        raise ValueError("V and I must contain only finite values (no NaN or inf)")
    model = lambda v, c, d: pf_current(v, c, d)  # noqa: E731
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, _ = curve_fit(model, V, I, p0=p0)
    return float(popt[0]), float(popt[1])


def fit_regime(R, c, d_eps, G_off: float, G_on: float) -> RegimeFit:
    """Regressions of ln c and ln dε on ln R and their residual covariance (biased).

    Args:
        R, c, d_eps: (N,) resistances (Ω), c (A/V), dε (F/m), finite and > 0, N >= 3.
        G_off, G_on: the regime's conductance range (S), 0 < G_off < G_on.
    """
    R, c, d_eps = (np.asarray(a, dtype=float) for a in (R, c, d_eps))
    if not (R.shape == c.shape == d_eps.shape and R.ndim == 1):
        raise ValueError(f"R, c and d_eps must be 1-D of equal length, "
                         f"got {R.shape}, {c.shape}, {d_eps.shape}")
    if len(R) < 3:
        raise ValueError(f"a regime needs at least 3 curves, got {len(R)}")
    if not all(np.all(np.isfinite(a) & (a > 0)) for a in (R, c, d_eps)):
        raise ValueError("R, c and d_eps must be finite and > 0 (their logarithms are regressed)")
    G_off, G_on = conductance_range(G_off, G_on)
    x = np.log(R)
    lines = [stats.linregress(x, np.log(y)) for y in (c, d_eps)]
    residuals = np.stack([np.log(y) - (ln.slope * x + ln.intercept) for y, ln in zip((c, d_eps), lines)])
    cov = np.cov(residuals, bias=True)
    return RegimeFit(G_off=float(G_off), G_on=float(G_on),
                     slopes=(float(lines[0].slope), float(lines[1].slope)),
                     intercepts=(float(lines[0].intercept), float(lines[1].intercept)),
                     covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
                     n_curves=len(R))


def fit_siox(V, I, *, max_voltage: float = 0.5, voltage_step: float = 0.005, ref_voltage: float = 0.1,
             spike_threshold: float = 0.1, ratio: float = 5.0,
             split_resistance: float = INVERSE_CONDUCTANCE_QUANTUM) -> SiOxFit:
    """Fit the PF model to I-V curves and derive the two regimes' parameters (module docstring).

    Args:
        V: (n_curves, n_points) or (n_points,) voltages (V), starting at 0 in steps of
            ``voltage_step``; NaN padding beyond ``max_voltage`` is allowed.
        I: (n_curves, n_points) currents (A).
    Returns:
        SiOxFit.
    """
    for name, value in (("max_voltage", max_voltage), ("voltage_step", voltage_step),
                        ("ref_voltage", ref_voltage), ("ratio", ratio),
                        ("split_resistance", split_resistance)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    if ref_voltage > max_voltage:
        raise ValueError(f"ref_voltage must be in (0, max_voltage={max_voltage}], got {ref_voltage}")
    if ratio <= 1:
        raise ValueError(f"ratio (G_on / G_off) must be > 1, got {ratio}")
    I = np.atleast_2d(np.asarray(I, dtype=float))
    V = np.asarray(V, dtype=float)
    if V.ndim == 1:
        V = np.broadcast_to(V, I.shape)
    if V.shape != I.shape:
        raise ValueError(f"V and I must have the same shape (n_curves, n_points), "
                         f"got {V.shape} and {I.shape}")
    n_points = int(round(max_voltage / voltage_step)) + 1
    ref = int(round(ref_voltage / voltage_step))
    if I.shape[1] < n_points:
        raise ValueError(f"curves have {I.shape[1]} points, fewer than the {n_points} from 0 to "
                         f"max_voltage={max_voltage} V in steps of {voltage_step} V")
    V, I = V[:, :n_points], I[:, :n_points]
    expected = np.arange(n_points) * voltage_step
    if not np.all(np.isfinite(V)) or not np.all(np.isfinite(I)):
        raise ValueError(f"V and I must be finite (no NaN) for the first {n_points} points of every curve")
    if np.max(np.abs(V - expected)) > voltage_step / 2:
        raise ValueError(f"V must run from 0 in steps of voltage_step={voltage_step} V up to max_voltage")

    dropped: dict[int, str] = {}
    ok = spike_free(I, spike_threshold)
    for k in np.flatnonzero(~ok):
        dropped[int(k)] = "spike filter"
    R_all = V[:, ref] / I[:, ref]
    rows = []
    for k in np.flatnonzero(ok):
        if not R_all[k] > 0:
            dropped[int(k)] = f"non-positive resistance at {ref_voltage} V"
            continue
        try:
            c, d = fit_curve(V[k], I[k])
        except (RuntimeError, ValueError) as exc:
            dropped[int(k)] = f"curve_fit failed: {exc}"
            continue
        if not (c > 0 and d > 0):
            dropped[int(k)] = f"non-physical fit c={c:g}, d_eps={d:g}"
            continue
        rows.append((R_all[k], c, d, k))
    if not rows:
        raise ValueError("no curve survived the spike filter and the PF fit")
    table = np.array(sorted(rows, key=lambda r: r[0]))
    R, c, d, kept = table[:, 0], table[:, 1], table[:, 2], table[:, 3].astype(np.int64)

    low_mask = R < split_resistance
    low = high = None
    if low_mask.sum() >= 3:
        G_on = 1.0 / R[low_mask].min()
        low = fit_regime(R[low_mask], c[low_mask], d[low_mask], G_on / ratio, G_on)
    if (~low_mask).sum() >= 3:
        G_off = 1.0 / R[~low_mask].max()
        high = fit_regime(R[~low_mask], c[~low_mask], d[~low_mask], G_off, ratio * G_off)
    return SiOxFit(R=R, c=c, d_eps=d, kept=kept, dropped=dict(sorted(dropped.items())), low=low, high=high)


def fit_siox_file(path: str | os.PathLike | None = None, *, data_dir=None, download: bool = True,
                  **kwargs) -> SiOxFit:
    """:func:`load_siox_mat` then :func:`fit_siox` (other keyword arguments passed on).

    With ``path`` None, the published file is taken from the data directory (see
    :func:`siox_multistate_path`).
    """
    if path is None:
        path = siox_multistate_path(data_dir, download=download)
    V, I = load_siox_mat(path)
    return fit_siox(V, I, **kwargs)


#: Names under which the published multistate file is recognised in the data directory.
SIOX_FILE_NAMES = ("SiO_x-multistate-data.mat", "excelDataCombined.mat")


def siox_multistate_path(data_dir=None, *, download: bool = True) -> Path:
    """Path of the published SiOx multistate file in the data directory, downloading it if absent.

    Looks for ``SiO_x-multistate-data.mat`` (or Zenodo's name ``excelDataCombined.mat``); if
    neither is there and ``download`` is true, fetches it from Zenodo record 5762184 (SHA-256
    verified). Raises DataUnavailableError saying where to put the file otherwise.
    """
    from .. import download as dl
    from ..paths import data_dir as resolve
    from ..sources import SIOX_MULTISTATE

    def present(directory, remote):
        return next((directory / n for n in SIOX_FILE_NAMES if (directory / n).is_file()), None)

    (path,) = dl.ensure([SIOX_MULTISTATE], resolve(data_dir), what="The SiOx multistate I-V data",
                        download_missing=download, present=present)
    return path
