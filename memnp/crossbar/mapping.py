"""Mapping a synaptic layer onto a crossbar and back (docs/model.md §1), with vector-Jacobian products.

Shapes: x (p, n_in) dimensionless inputs in [0, 1]; V (p, n_in + 1) in volts; W (n_in + 1, n_out)
standard weights (bias row last); D (n_in + 1, 2 n_out) double weights, columns interleaved +, -;
G (n_in + 1, 2 n_out) in siemens, even columns the positive devices; I (p, 2 n_out) in amperes;
y (p, n_out) dimensionless outputs.

Every ``*_vjp`` takes dL/d(output) and returns dL/d(input). The path through max_weight is
explicit: the mapping VJPs take the upstream gradient with respect to max_weight (from
:func:`I_to_y_vjp`) and add their own dependence on it before distributing it to the weights
that attain the maximum (ties share it equally, as TensorFlow's reduce_max does).
"""
import math

import numpy as np

from .validation import conductance_range, finite_array, positive, unit_interval, weight_array

RULES = ("default", "avg")


def _check_rule(rule):
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")


def x_to_V(x, k_V):
    """Voltages V = k_V [x, 1] (p, n_in + 1) in volts from inputs x (p, n_in) in [0, 1]."""
    k_V = positive("k_V", k_V)
    x = finite_array("x", x, ndim=2)
    unit_interval("x", x)
    V = np.empty((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    V[:, :-1] = x
    V[:, -1] = 1.0
    V *= k_V
    return V


def x_to_V_vjp(grad_V, k_V):
    """dL/dx (p, n_in) from dL/dV (p, n_in + 1)."""
    return k_V * grad_V[:, :-1]


def _max_abs_grad(W, grad_max):
    """Gradient of grad_max * max |W| with respect to W: split among ties, times sign(W)."""
    absW = np.abs(W)
    at_max = absW == absW.max()
    return np.where(at_max, grad_max / np.count_nonzero(at_max), 0.0) * np.sign(W)


def _max_weight(values, name):
    max_weight = float(values.max()) if values.size else 0.0
    if not max_weight > 0:
        raise ValueError(f"{name} must have a nonzero entry (its maximum magnitude sets k_G)")
    return max_weight


def w_to_G(W, G_off, G_on, rule="default"):
    """Conductances G (n_in + 1, 2 n_out) in siemens and max_weight = max |W| from standard weights W.

    ``rule="default"``: G+ = max(k_G W, 0) + G_off, G- = -min(k_G W, 0) + G_off.
    ``rule="avg"``: G+- = (G_off + G_on) / 2 +- k_G W / 2.  k_G = (G_on - G_off) / max_weight.
    """
    G_off, G_on = conductance_range(G_off, G_on)
    _check_rule(rule)
    W = weight_array("W", W, ndim=2)
    max_weight = _max_weight(np.abs(W), "W")
    z = ((G_on - G_off) / max_weight) * W
    G = np.empty((W.shape[0], 2 * W.shape[1]), dtype=W.dtype)
    if rule == "default":
        G[:, 0::2] = np.maximum(z, 0) + G_off
        G[:, 1::2] = -np.minimum(z, 0) + G_off
    else:
        G_avg = 0.5 * (G_off + G_on)
        G[:, 0::2] = G_avg + 0.5 * z
        G[:, 1::2] = G_avg - 0.5 * z
    return G, max_weight


def w_to_G_vjp(W, grad_G, grad_max_weight, G_off, G_on, rule="default"):
    """dL/dW (n_in + 1, n_out) from dL/dG and the upstream dL/d(max_weight).

    Includes the dependence of G on max_weight through k_G; where k_G W is exactly 0 under the
    default rule both branches pass the full gradient (TensorFlow's >= and <= selections).
    """
    _check_rule(rule)
    max_weight = float(np.abs(W).max())
    k_G = (G_on - G_off) / max_weight
    g_pos, g_neg = grad_G[:, 0::2], grad_G[:, 1::2]
    if rule == "default":
        z = k_G * W
        grad_z = np.where(z >= 0, g_pos, 0.0) - np.where(z <= 0, g_neg, 0.0)
    else:
        grad_z = 0.5 * (g_pos - g_neg)
    # z = (G_on - G_off) W / max_weight, so dz/d(max_weight) = -z / max_weight.
    grad_max = grad_max_weight - float(np.sum(grad_z * W)) * k_G / max_weight
    return (k_G * grad_z + _max_abs_grad(W, grad_max)).astype(W.dtype, copy=False)


def w_to_G_vjp_rows(W, grad_G, rows, grad_max_weight, G_off, G_on, rule="default"):
    """:func:`w_to_G_vjp` from dL/dG (len(rows), 2 n_out) of the crossbar rows ``rows`` only (the
    other rows' dL/dG is 0): the reference of :func:`memnp.kernels.standard_mapping.w_to_G_vjp_rows`."""
    full = np.zeros((W.shape[0], grad_G.shape[1]), grad_G.dtype)
    full[rows] = grad_G
    return w_to_G_vjp(W, full, grad_max_weight, G_off, G_on, rule)


def double_w_to_G(D, G_off, G_on):
    """Conductances G = k_G D + G_off (same shape as D) and max_weight = max D, from double weights D >= 0."""
    G_off, G_on = conductance_range(G_off, G_on)
    D = weight_array("D", D, ndim=2)
    max_weight = _double_max_weight(D)
    return _double_G(D, max_weight, G_off, G_on), max_weight


def double_w_to_G_vjp(D, grad_G, grad_max_weight, G_off, G_on):
    """dL/dD from dL/dG and the upstream dL/d(max_weight), including the path through max D."""
    return _double_w_to_G_vjp(D, grad_G, grad_max_weight, G_off, G_on, float(D.max()))


# --- unchecked forms for callers that built their arrays themselves (the memristive layers) -------

def _double_max_weight(D):
    """max_weight = max D (float) of a float array D (m, n), with :func:`double_w_to_G`'s checks
    (finite, >= 0, a nonzero entry) done by two reductions: NaN reaches both min and max, and
    finite extremes mean every entry is finite."""
    if not D.size:
        raise ValueError("D must have a nonzero entry (its maximum magnitude sets k_G)")
    low, high = D.min(), D.max()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("D must contain only finite values (no NaN or inf)")
    if low < 0:
        raise ValueError(f"D (double weights) must be >= 0; its minimum is {low!r}")
    if not high > 0:
        raise ValueError("D must have a nonzero entry (its maximum magnitude sets k_G)")
    return float(high)


def _double_G(D, max_weight, G_off, G_on):
    """G = k_G D + G_off in D's dtype (what :func:`double_w_to_G` returns), unchecked; D may be
    any rows of the double-weight matrix whose maximum is ``max_weight``."""
    G = np.multiply(D, (G_on - G_off) / max_weight)
    G += G_off
    return G


def _double_w_to_G_vjp(D, grad_G, grad_max_weight, G_off, G_on, max_weight):
    """:func:`double_w_to_G_vjp` given max_weight = max D (float), in fewer passes: the share of
    the max_weight gradient is added only where D attains the maximum (the same float64 sum there,
    rounded to D's dtype; elsewhere k_G dL/dG unchanged)."""
    k_G = (G_on - G_off) / max_weight
    grad_max = grad_max_weight - float(np.sum(grad_G * D)) * k_G / max_weight
    grad = np.multiply(grad_G, k_G, order="C")
    at_max = np.flatnonzero(D == max_weight)  # C order, as grad.reshape(-1) (np.nonzero is slow in 2-D)
    flat = grad.reshape(-1)
    flat[at_max] = flat[at_max].astype(np.float64) + grad_max / at_max.size
    return grad.astype(D.dtype, copy=False)


def _check_outputs(I, k_V, max_weight):
    """I (p, 2 n_out): 2-D with an even number of columns (positive, negative device pairs);
    k_V and max_weight finite numbers > 0."""
    if np.ndim(I) != 2 or np.shape(I)[1] % 2:
        raise ValueError(f"I must be 2-D with an even number of columns (one positive and one "
                         f"negative device per output); got shape {np.shape(I)}")
    positive("k_V", k_V)
    positive("max_weight", max_weight)


def I_to_y(I, k_V, max_weight, G_off, G_on):
    """Outputs y = (I[:, 0::2] - I[:, 1::2]) / (k_V k_G) (p, n_out) from column currents I (p, 2 n_out) in A."""
    _check_outputs(I, k_V, max_weight)
    k_G = (G_on - G_off) / max_weight
    return (I[:, 0::2] - I[:, 1::2]) / (k_V * k_G)


def I_to_y_vjp(I, grad_y, k_V, max_weight, G_off, G_on):
    """(dL/dI (p, 2 n_out), dL/d(max_weight)) from dL/dy (p, n_out)."""
    _check_outputs(I, k_V, max_weight)
    if np.shape(grad_y) != (I.shape[0], I.shape[1] // 2):
        raise ValueError(f"grad_y must have shape {(I.shape[0], I.shape[1] // 2)} (one entry per "
                         f"differential pair); got {np.shape(grad_y)}")
    scale = max_weight / (k_V * (G_on - G_off))
    grad_I = np.empty(I.shape, dtype=np.result_type(I, grad_y))
    grad_I[:, 0::2] = scale * grad_y
    grad_I[:, 1::2] = -scale * grad_y
    grad_max_weight = float(np.sum(grad_y * (I[:, 0::2] - I[:, 1::2]))) / (k_V * (G_on - G_off))
    return grad_I, grad_max_weight


def double_weights_matrix(w_pos, w_neg, b_pos, b_neg):
    """Combined double-weight matrix D (n_in + 1, 2 n_out): rows [w; b], columns interleaving + and -.

    w_pos, w_neg: (n_in, n_out); b_pos, b_neg: (n_out,).
    """
    n_in, n_out = np.shape(w_pos)
    D = np.empty((n_in + 1, 2 * n_out), dtype=np.result_type(w_pos, w_neg, b_pos, b_neg))
    D[:-1, 0::2], D[:-1, 1::2] = w_pos, w_neg
    D[-1, 0::2], D[-1, 1::2] = b_pos, b_neg
    return D


def split_double_weights(D):
    """Inverse of :func:`double_weights_matrix`: (w_pos, w_neg, b_pos, b_neg) views of D (or of dL/dD)."""
    return D[:-1, 0::2], D[:-1, 1::2], D[-1, 0::2], D[-1, 1::2]


def standard_weights_matrix(W, b):
    """Standard weight matrix (n_in + 1, n_out) with the bias b (n_out,) as its last row."""
    return np.vstack([W, np.reshape(b, (1, -1))])
