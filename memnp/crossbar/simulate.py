"""One pass of a crossbar under a stage: disturb G, compute the currents, and back again.

:class:`CrossbarPass` is the stair between conductances and currents of the data path. Its
``forward`` draws the stage's randomness from the caller's Generator and keeps it, with what the
backward pass needs; ``backward`` returns the gradients with respect to V and G.
"""
import numpy as np

from ..kernels import get_backend
from ..kernels.backend import backend_name
from . import validation

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
        self._cache = None

    def forward(self, V, G, rng, draws=None):
        """Column currents I (p, n). ``draws`` replays the (preserving, nonpreserving) draws of an
        earlier pass instead of drawing from ``rng``."""
        validation.crossbar_inputs(self, V, G, rng, draws)
        preserving, nonpreserving = self.stage.preserving, self.stage.nonpreserving
        if draws is None:
            draws = (preserving.sample(G.shape, rng, G.dtype) if preserving else None,
                     nonpreserving.sample(G.shape, rng, G.dtype) if nonpreserving else None)
        G_disturbed = preserving.disturb(G, draws[0]) if preserving else G
        if nonpreserving is not None:
            c, d_eps = nonpreserving.device_parameters(G_disturbed, draws[1])
            I = self.backend.pf_currents(V, c, d_eps)
            devices = (c, d_eps)
        else:
            I = self.backend.ideal_currents(V, G_disturbed)
            devices = None
        self._cache = (V, G, G_disturbed, draws, devices)
        return I

    @property
    def draws(self):
        """The draws of the last forward pass (for replay)."""
        return self._cache[3]

    def backward(self, grad_I, need_V=True):
        """(dL/dV (p, m), dL/dG (m, n)) from dL/dI (p, n), with the draws of the last forward pass.
        dL/dV is None (and not computed) when ``need_V`` is false."""
        validation.crossbar_gradient(self, grad_I)
        V, G, G_disturbed, draws, devices = self._cache
        preserving, nonpreserving = self.stage.preserving, self.stage.nonpreserving
        if nonpreserving is not None:
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
        """Average power (W) of the crossbar over the examples of the last forward pass."""
        V, _, G_disturbed, _, devices = self._cache
        if devices is not None:
            return self.backend.pf_power(V, *devices)
        return self.backend.ideal_power(V, G_disturbed)
