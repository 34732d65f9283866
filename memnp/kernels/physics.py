"""Physical constants of the Poole-Frenkel (PF) device model (docs/model.md §2).

The PF device current is

    I_ind = sign(V) * c * |V| * exp( A * sqrt( B * |V| / d_eps + EPS ) ),

with A = q / (k_B T) (1/V), B = q / pi (C) and EPS = 1e-18, which keeps the derivative finite at
V = 0. The fast kernels use the equivalent form exp( sqrt( |V| * K + A**2 * EPS ) ) with
K = A**2 * B / d_eps (1/V), computed once per device.
"""
import math

from scipy import constants

#: Temperature of the measurements (K).
T = 293.15
#: q / (k_B T) (1/V).
A = constants.elementary_charge / (constants.Boltzmann * T)
#: q / pi (C).
B = constants.elementary_charge / math.pi
#: Offset inside the square root that keeps dI/dV finite at V = 0.
EPS = 1e-18
#: A**2 * EPS, the offset once A is moved inside the square root.
A2_EPS = A * A * EPS
#: A**2 * B, so that K = A2_B / d_eps.
A2_B = A * A * B
