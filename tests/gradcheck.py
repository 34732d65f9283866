"""Central finite differences for the gradient checks (float64)."""
import numpy as np


def numerical_gradient(loss, x, step=1e-6, lower=None):
    """dloss/dx by central differences; ``loss`` takes no arguments and reads x (modified in place).

    The step is relative to each entry (``step`` times its magnitude), or ``step`` where it is 0.
    Entries equal to ``lower`` (a bound of x's domain, e.g. 0 for a memristive layer's inputs) get
    a forward difference instead, so that x never leaves the domain.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        h = step * abs(saved) if saved != 0 else step
        flat[i] = saved + h
        up = loss()
        if lower is not None and saved == lower:
            flat[i] = saved
            gflat[i] = (up - loss()) / h
            continue
        flat[i] = saved - h
        down = loss()
        flat[i] = saved
        gflat[i] = (up - down) / (2 * h)
    return grad


def relative_error(a, b):
    """Normwise relative error ||a - b|| / max(||b||, tiny)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
