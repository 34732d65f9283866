"""Optimiser, the NonNeg constraint and the L1 regulariser (docs/model.md §4).

Parameters are addressed as (key, array) pairs; the model passes every trainable parameter with
its gradient. Updates happen in place so layers keep their arrays.
"""

import numpy as np

from ..crossbar.validation import positive
from ..kernels import sgd as sgd_loop

#: The paper's L1 coefficient for regularised stages.
L1_GAMMA = 1e-4


class SGD:
    """Stochastic gradient descent: v = momentum v - lr g; theta += v (plain SGD when momentum = 0,
    the paper's setting, with lr = 0.01)."""

    def __init__(self, lr=0.01, momentum=0.0):
        lr = positive("lr", lr)
        if isinstance(momentum, (bool, np.bool_)):
            raise ValueError(f"momentum must be a number in [0, 1), not a boolean; got {momentum!r}")
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.lr, self.momentum = lr, momentum
        self._velocity = {}

    def step(self, items):
        """Update in place; ``items`` yields (key, parameter array, gradient array) or (key,
        parameter, gradient, non_negative): with non_negative true the parameter is projected
        onto >= 0 after its update (Keras's NonNeg constraint)."""
        for key, theta, grad, *constraint in items:
            non_negative = bool(constraint and constraint[0])
            if not self.momentum and sgd_loop.supported(theta, grad):
                sgd_loop.step(theta, grad, self.lr, non_negative)   # the same values, one pass
                continue
            if self.momentum:
                v = self._velocity.get(key)
                if v is None or v.shape != theta.shape:
                    v = self._velocity[key] = np.zeros_like(theta)
                v *= self.momentum
                v -= self.lr * grad
                theta += v
            else:
                theta -= self.lr * grad
            if non_negative:
                non_negative_(theta)

    def config(self):
        return {"type": "SGD", "lr": self.lr, "momentum": self.momentum}


def non_negative_(theta):
    """Keras's NonNeg constraint, in place: theta * (theta >= 0)."""
    np.maximum(theta, 0, out=theta)
    return theta


def l1_penalty(arrays, gamma):
    """gamma * sum |theta| over the arrays (float)."""
    return float(gamma * sum(float(np.abs(a).sum(dtype=np.float64)) for a in arrays))


def l1_gradient_(theta, grad, gamma):
    """Add gamma * sign(theta) (sign(0) = 0) to ``grad`` in place."""
    grad += gamma * np.sign(theta)
    return grad
