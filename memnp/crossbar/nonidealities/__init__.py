"""Device nonidealities (docs/model.md §2) and the periphery, one module per phase of the physical pipeline
(memnp.crossbar.pipeline): programming (D2D variability, programming noise), drift, stuck devices,
read noise, I-V nonlinearity (currents), line resistance (wires), and the periphery (DAC, ADC,
Tiles)."""
from .base import (LinearityNonpreserving, LinearityPreserving, Nonideality, Periphery, nonideality_from_dict,
                   nonideality_from_json, register)
from .d2d import D2DLognormal
from .drift import Drift
from .iv import IVNonlinearityPF
from .periphery import ADC, DAC, Tiles
from .programming import ProgrammingNoise
from .read_noise import ReadNoise
from .stuck import StuckAt, StuckAtGOff, StuckAtGOn, StuckDistribution, scott_bandwidth
from .wires import LineResistance

__all__ = ["Nonideality", "LinearityPreserving", "LinearityNonpreserving", "Periphery", "IVNonlinearityPF",
           "StuckAt", "StuckAtGOff", "StuckAtGOn", "StuckDistribution", "D2DLognormal",
           "ProgrammingNoise", "Drift", "ReadNoise", "DAC", "ADC", "Tiles", "LineResistance",
           "nonideality_from_dict", "nonideality_from_json", "register", "scott_bandwidth"]
