"""One pass of a crossbar under a stage: disturb G, compute the currents, and back again.

:class:`CrossbarPass` is the stair between conductances and currents of the data path. Its
``forward`` draws the stage's randomness from the caller's Generator and keeps it, with what the
backward pass needs; ``backward`` returns the gradients with respect to V and G.
"""
import numpy as np

from ..kernels import get_backend
from ..kernels.backend import backend_name

#: Backend modules by resolved name (a pass is built for every layer read).
_BACKENDS = {}


def _backend(name):
    """get_backend(name), with the module looked up once per resolved name."""
    name = backend_name(name)
    module = _BACKENDS.get(name)
    if module is None:
        module = _BACKENDS[name] = get_backend(name)
    return module


class CrossbarPass:
    """Currents I (p, n) in A from voltages V (p, m) in V and conductances G (m, n) in S."""

    def __init__(self, stage, backend=None):
        self.stage = stage
        self.backend = _backend(backend)
        self._backend_arg = backend
        self._cache = None

    def forward(self, V, G, rng, draws=None):
        """Column currents I (p, n). ``draws`` replays the (preserving, nonpreserving) draws of an
        earlier pass instead of drawing from ``rng``."""
        preserving, nonpreserving = self.stage.preserving, self.stage.nonpreserving
        if draws is None:
            draws = (preserving.sample(G.shape, rng, G.dtype) if preserving else None,
                     nonpreserving.sample(G.shape, rng, G.dtype) if nonpreserving else None)
        G_disturbed = preserving.disturb(G, draws[0]) if preserving else G
        if self.stage.wires is not None:      # line resistance: the circuit solver (memnp.circuit)
            devices = nonpreserving.device_parameters(G_disturbed, draws[1]) if nonpreserving else None
            I, solved = self.stage.wires.currents(V, G_disturbed, devices, self._backend_arg)
            self._cache = (V, G, G_disturbed, draws, devices, solved)
            return I
        if nonpreserving is not None:
            c, d_eps = nonpreserving.device_parameters(G_disturbed, draws[1])
            I = self.backend.pf_currents(V, c, d_eps)
            devices = (c, d_eps)
        else:
            I = self.backend.ideal_currents(V, G_disturbed)
            devices = None
        self._cache = (V, G, G_disturbed, draws, devices, None)
        return I

    @property
    def draws(self):
        """The draws of the last forward pass (for replay)."""
        return self._cache[3]

    def backward(self, grad_I, need_V=True):
        """(dL/dV (p, m), dL/dG (m, n)) from dL/dI (p, n), with the draws of the last forward pass.
        dL/dV is None (and not computed) when ``need_V`` is false."""
        V, G, G_disturbed, draws, devices, solved = self._cache
        preserving, nonpreserving = self.stage.preserving, self.stage.nonpreserving
        if solved is not None:
            grad_V, grad_devices = self.stage.wires.currents_vjp(solved, grad_I, need_V)
            grad_G = (nonpreserving.device_parameters_vjp(G_disturbed, *devices, *grad_devices)
                      if nonpreserving is not None else grad_devices)
        elif nonpreserving is not None:
            c, d_eps = devices
            grad_V, grad_c, grad_d_eps = self.backend.pf_currents_vjp(V, c, d_eps, grad_I, need_V)
            grad_G = nonpreserving.device_parameters_vjp(G_disturbed, c, d_eps, grad_c, grad_d_eps)
        else:
            grad_V = grad_I @ G_disturbed.T if need_V else None
            grad_G = V.T @ grad_I
        if preserving is not None:
            grad_G = preserving.disturb_vjp(G, draws[0], grad_G)
        if grad_V is not None:
            grad_V = grad_V.astype(V.dtype, copy=False)
        return grad_V, np.asarray(grad_G, dtype=G.dtype)

    def power(self):
        """Average power (W) of the crossbar over the examples of the last forward pass (with line
        resistance: devices and wires; :meth:`power_parts` has both)."""
        V, _, G_disturbed, _, devices, solved = self._cache
        if solved is not None:
            return self.stage.wires.power(solved)["total"]
        if devices is not None:
            return self.backend.pf_power(V, *devices)
        return self.backend.ideal_power(V, G_disturbed)

    def power_parts(self):
        """dict(device=W, wires=W, total=W) of the last forward pass, averaged over its examples."""
        solved = self._cache[5]
        if solved is not None:
            return self.stage.wires.power(solved)
        total = self.power()
        return {"device": total, "wires": 0.0, "total": total}

    @property
    def solve_report(self):
        """The SolveReport of the last forward pass's line-resistance solve, or None without wires."""
        solved = self._cache[5]
        return None if solved is None else self.stage.wires.report(solved)
