"""Device nonidealities (docs/model.md §2): I-V nonlinearity, stuck devices, device-to-device variability."""
from .base import (LinearityNonpreserving, LinearityPreserving, Nonideality, nonideality_from_dict,
                   nonideality_from_json)
from .d2d import D2DLognormal
from .iv import IVNonlinearityPF
from .stuck import StuckAt, StuckAtGOff, StuckAtGOn, StuckDistribution, scott_bandwidth

__all__ = ["Nonideality", "LinearityPreserving", "LinearityNonpreserving", "IVNonlinearityPF",
           "StuckAt", "StuckAtGOff", "StuckAtGOn", "StuckDistribution", "D2DLognormal",
           "nonideality_from_dict", "nonideality_from_json", "scott_bandwidth"]
