"""The plain SGD update with the optional NonNeg projection, in one Numba pass.

theta <- theta - lr grad, then, for constrained parameters, theta <- max(theta, 0) (Keras's
NonNeg applied after the step). The NumPy form in :class:`memnp.nn.SGD` (``theta -= lr * grad``
and :func:`memnp.nn.optim.non_negative_`) is the reference; this loop computes the same values
without the temporary lr * grad. theta and grad: C-contiguous arrays of one float dtype and shape.
"""
import numpy as np
from numba import njit

from .arrays import contiguous_floats


@njit(error_model="numpy", cache=True)
def _step(theta, grad, lr, non_negative):
    rate = theta.dtype.type(lr)
    zero = theta.dtype.type(0.0)
    if non_negative:
        for q in range(theta.size):
            value = theta[q] - rate * grad[q]
            theta[q] = zero if value < zero else value    # NaN stays NaN, as with np.maximum
    else:
        for q in range(theta.size):
            theta[q] -= rate * grad[q]


def supported(theta, grad):
    """True when :func:`step` takes these arrays (writeable theta, see the module docstring)."""
    return contiguous_floats(theta, grad) and theta.flags.writeable


def step(theta, grad, lr, non_negative=False):
    """Update theta in place: theta - lr grad, projected onto >= 0 when ``non_negative``."""
    _step(theta.reshape(-1), grad.reshape(-1), float(lr), bool(non_negative))
    return theta
