"""Measured device data: SiOx I-V fitting, Ta/HfO2 stuck-device extraction, synthetic generators."""
from .siox import (INVERSE_CONDUCTANCE_QUANTUM, RegimeFit, SiOxFit, fit_curve, fit_regime, fit_siox,
                   fit_siox_file, load_siox_mat, pf_current, siox_multistate_path, spike_free)
from .synthetic import SyntheticIV, SyntheticPulses, synthetic_siox_curves, synthetic_tahfo2_reads
from .tahfo2 import TaHfO2Fit, extract_tahfo2, load_tahfo2, scott_bandwidth

__all__ = [
    "INVERSE_CONDUCTANCE_QUANTUM", "RegimeFit", "SiOxFit", "fit_curve", "fit_regime", "fit_siox",
    "fit_siox_file", "load_siox_mat", "pf_current", "siox_multistate_path", "spike_free",
    "SyntheticIV", "SyntheticPulses", "synthetic_siox_curves", "synthetic_tahfo2_reads",
    "TaHfO2Fit", "extract_tahfo2", "load_tahfo2", "scott_bandwidth",
]
