"""Stages shared by the pipeline tests (issue 10): the high-R SiOx PF model with every new phase."""
from memnp.crossbar import Stage
from memnp.nonidealities import (ADC, DAC, D2DLognormal, Drift, IVNonlinearityPF, Nonideality,
                                 ProgrammingNoise, ReadNoise, StuckAtGOff, Tiles)

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                      [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
#: Every differentiable phase (the quantisers have straight-through gradients, which finite
#: differences of a piecewise-constant function cannot check).
SMOOTH = (D2DLognormal(G_OFF, G_ON, 0.05, 0.5), Drift(0.05, 0.01, 3600.0), StuckAtGOff(G_OFF, 0.2),
          ReadNoise(0.05), PF, Tiles(3, 4))
COMBINED = SMOOTH + (DAC(6), ADC(6))
STAGES = {
    "smooth": Stage(G_OFF, G_ON, 0.5, SMOOTH),
    "smooth_ideal": Stage(G_OFF, G_ON, 0.5, (ProgrammingNoise(0.1, 2e-8), Drift(0.05, 0.01, 3600.0),
                                             StuckAtGOff(G_OFF, 0.2), ReadNoise(0.05), Tiles(3, 4))),
    "combined": Stage(G_OFF, G_ON, 0.5, COMBINED),
}


class LineResistance(Nonideality):
    """A stand-in for the circuit solver's LineResistance with r = 0: the plain currents, through
    the contract's methods (currents, currents_vjp, power, report). Counts its calls."""

    kind = "nonpreserving"
    phase = "wires"

    def __init__(self):
        self.calls = []

    @property
    def label(self):
        return "LineResistance(stand-in)"

    def to_dict(self):
        return {"type": "LineResistance"}

    def currents(self, V, G, devices=None, backend=None):
        from memnp.kernels import get_backend
        module = get_backend("numpy")
        self.calls.append(("currents", V.shape, G.shape, devices is not None))
        I = module.pf_currents(V, *devices) if devices is not None else module.ideal_currents(V, G)
        return I, (V, G, devices)

    def currents_vjp(self, state, grad_I, need_V=True):
        from memnp.kernels import get_backend
        module = get_backend("numpy")
        V, G, devices = state
        self.calls.append(("currents_vjp", V.shape))
        if devices is not None:
            grad_V, grad_c, grad_d = module.pf_currents_vjp(V, *devices, grad_I, need_V)
            return grad_V, (grad_c, grad_d)
        return (grad_I @ G.T if need_V else None), V.T @ grad_I

    def power(self, state):
        from memnp.kernels import get_backend
        module = get_backend("numpy")
        V, G, devices = state
        device = module.pf_power(V, *devices) if devices is not None else module.ideal_power(V, G)
        return {"device": device, "wires": 0.0, "total": device}

    def report(self, state):
        return None


def crossbar_inputs(rng, p=3, m=7, n=6):
    """V (p, m) in [0.01, 0.5] V and G (m, n) uniform in [G_off, G_on], float64."""
    return 0.5 * rng.uniform(0.02, 1, (p, m)), rng.uniform(G_OFF, G_ON, (m, n))
