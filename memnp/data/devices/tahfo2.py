"""Ta/HfO2 crossbar pulse measurements: loading and extracting stuck devices (docs/model.md §6).

The measured array ``G_reads`` has shape (cycles, pulses, bit lines, word lines): conductance
(S) read after every programming pulse (first half of the pulses potentiation, second half
depression) of every device. From it (:func:`extract_tahfo2`):

- per device, the minimum and maximum over all cycles and pulses;
- G_off = median of the per-device minima, G_on = median of the per-device maxima;
- a device is stuck when its range (max - min) is under half the median range, where the
  median range is G_on - G_off (the difference of the two medians, as the published analysis
  computes it);
- a stuck device's value is its mean over all reads; p = (number stuck) / (number of devices);
- the stuck values define a StuckDistribution whose kernel bandwidth follows Scott's rule
  (:func:`scott_bandwidth`). The published values are G_off = 4.36e-5 S, G_on = 9.78e-4 S,
  p = 0.101, bandwidth 1.77e-5 S.

The measurements are not public; :mod:`memnp.data.devices.synthetic` generates arrays of the same
layout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Denominator of the IQR in Scott's rule as KDEpy defines it (2 * the normal quantile at 0.75).
IQR_TO_SIGMA = 1.3489795


def scott_bandwidth(values) -> float:
    """Scott's rule: sigma = min(std(ddof=1), IQR / 1.3489795), h = sigma N^(-1/5).

    Args:
        values: (N,) samples, N >= 2.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2:
        raise ValueError(f"values must hold at least 2 samples, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must contain only finite numbers (no NaN or inf)")
    q75, q25 = np.percentile(values, [75, 25])
    sigma = min(np.std(values, ddof=1), (q75 - q25) / IQR_TO_SIGMA)
    return float(sigma * values.size ** (-0.2))


#: File name of the Ta/HfO2 measurements in the data directory.
TAHFO2_FILE_NAME = "Ta_HfO2-data.mat"


def load_tahfo2(path: str | os.PathLike | None = None, dataset: str = "G_reads", *,
                data_dir=None) -> np.ndarray:
    """Read ``G_reads`` (cycles, pulses, bit lines, word lines) (S) from an HDF5 / MATLAB v7.3 file.

    With ``path`` None, reads ``Ta_HfO2-data.mat`` from the data directory (the measurements are not
    public, so nothing is downloaded). Needs h5py (``pip install memnp[hdf5]``). The data set is
    returned as stored, without transposing.
    """
    if path is None:
        from ..download import DataUnavailableError
        from ..paths import data_dir as resolve
        path = resolve(data_dir) / TAHFO2_FILE_NAME
        if not path.is_file():
            raise DataUnavailableError(
                f"The Ta/HfO2 measurements are not available: put the HDF5 file with data set "
                f"{dataset!r} at {path} (they are not public), pass path=..., or use "
                "synthetic_tahfo2_reads / the 'tahfo2' preset")
    try:
        import h5py
    except ImportError:
        raise ImportError("reading Ta/HfO2 HDF5 files needs h5py: pip install 'memnp[hdf5]' "
                          "(or pass the G_reads array to extract_tahfo2 directly)") from None
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise ValueError(f"{path}: no data set {dataset!r} (has: {', '.join(f.keys())})")
            data = np.asarray(f[dataset][()], dtype=float)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    if data.ndim != 4:
        raise ValueError(f"{path}: {dataset} has shape {data.shape}, expected 4 axes "
                         "(cycles, pulses, bit lines, word lines)")
    return data


@dataclass(frozen=True)
class TaHfO2Fit:
    """Result of :func:`extract_tahfo2`.

    Attributes:
        G_off, G_on: medians of the per-device minima and maxima (S).
        p: fraction of stuck devices.
        stuck_values: (n_stuck,) mean conductance of each stuck device (S).
        stuck_mask: (bit lines, word lines) bool, True for stuck devices.
        bandwidth: Scott bandwidth of ``stuck_values`` (S); NaN with fewer than 2 stuck devices.
    """
    G_off: float
    G_on: float
    p: float
    stuck_values: np.ndarray
    stuck_mask: np.ndarray
    bandwidth: float

    def stage_dict(self, k_V: float = 0.5) -> dict:
        """A Stage dict: this G range with one StuckDistribution nonideality."""
        if self.stuck_values.size < 2:
            raise ValueError("a StuckDistribution needs at least 2 stuck values; found "
                             f"{self.stuck_values.size}")
        return {"G_off": float(self.G_off), "G_on": float(self.G_on), "k_V": float(k_V),
                "mapping_rule": "default",
                "nonidealities": [{"type": "StuckDistribution",
                                   "means": [float(v) for v in self.stuck_values], "p": float(self.p)}]}


def extract_tahfo2(G_reads) -> TaHfO2Fit:
    """Extract G_off, G_on, the stuck devices, their values and p (module docstring).

    Args:
        G_reads: (cycles, pulses, bit lines, word lines) conductances (S), finite and >= 0.
    """
    G = np.asarray(G_reads, dtype=float)
    if G.ndim != 4 or min(G.shape) < 1:
        raise ValueError(f"G_reads must have shape (cycles, pulses, bit lines, word lines), got {G.shape}")
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ValueError("G_reads must be finite and >= 0 (conductances in S)")
    reads = G.reshape(G.shape[0] * G.shape[1], G.shape[2] * G.shape[3])
    mins, maxs = reads.min(axis=0), reads.max(axis=0)
    G_off, G_on = float(np.median(mins)), float(np.median(maxs))
    if not G_on > G_off:
        raise ValueError(f"G_reads must show the devices switching: the median of the per-device maxima "
                         f"(G_on = {G_on!r} S) must exceed the median of the minima (G_off = {G_off!r} S)")
    stuck = (maxs - mins) < (G_on - G_off) / 2
    values = reads.mean(axis=0)[stuck]
    bandwidth = scott_bandwidth(values) if values.size >= 2 else float("nan")
    return TaHfO2Fit(G_off=G_off, G_on=G_on, p=float(stuck.mean()), stuck_values=values,
                     stuck_mask=stuck.reshape(G.shape[2], G.shape[3]), bandwidth=bandwidth)
