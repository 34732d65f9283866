"""The K-axis kernels as plain loops over members (slow and obvious: the tests' oracle).

Every function takes the arrays in the layout of :mod:`memnp.kernels.ensemble_layout` and calls,
for each member k, the existing single-network function on member k's blocks. ``single`` picks
the module: :mod:`memnp.kernels.reference` (NumPy, float64, materializing; the default for the
crossbar reads) or :mod:`memnp.kernels.cpu_auto` (what one network runs, which the K-axis
kernels must match bit for bit). The mapping, loss and optimiser loops call
:mod:`memnp.kernels.mapping`, :mod:`memnp.kernels.softmax` and :mod:`memnp.kernels.sgd`; the
tests compare those against the NumPy forms in memnp.crossbar and memnp.nn. The fused PF layer
of :mod:`memnp.kernels.ensemble_fused` is compared against the unfused K-axis calls
(``fused_forward_reference``, ``fused_backward_reference``), which are compared against these loops.
"""
import numpy as np

from . import mapping, reference, sgd, softmax


def _blocks(V, layout):
    V = np.asarray(V)
    p = layout.batch(V)
    return p, [layout.block(V, k, p) for k in range(layout.members)]


def _rows(a, layout):
    return [layout.row_block(np.asarray(a), k) for k in range(layout.members)]


# --- crossbar reads (shapes and units: memnp.kernels.ensemble) -----------------------------------

def pf_currents(V, c, d_eps, layout, single=reference):
    """(K, p, n): single.pf_currents of every member."""
    _, Vs = _blocks(V, layout)
    return np.stack([single.pf_currents(Vk, ck, dk) for Vk, ck, dk in zip(Vs, _rows(c, layout), _rows(d_eps, layout))])


def pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V=True, single=reference):
    """(grad_V packed or None, grad_c (R, n), grad_d_eps (R, n)) from single.pf_currents_vjp."""
    _, Vs = _blocks(V, layout)
    parts = [single.pf_currents_vjp(Vk, ck, dk, gk, need_V)
             for Vk, ck, dk, gk in zip(Vs, _rows(c, layout), _rows(d_eps, layout), grad_I)]
    grad_V = layout.pack([part[0] for part in parts]) if need_V else None
    return grad_V, np.concatenate([part[1] for part in parts]), np.concatenate([part[2] for part in parts])


def pf_powers(V, c, d_eps, layout, single=reference):
    """(K,) float64: single.pf_power of every member."""
    _, Vs = _blocks(V, layout)
    return np.array([single.pf_power(Vk, ck, dk) for Vk, ck, dk in zip(Vs, _rows(c, layout), _rows(d_eps, layout))])


def ideal_currents(V, G, layout, single=reference):
    """(K, p, n): single.ideal_currents of every member."""
    _, Vs = _blocks(V, layout)
    return np.stack([single.ideal_currents(Vk, Gk) for Vk, Gk in zip(Vs, _rows(G, layout))])


def ideal_currents_vjp(V, G, layout, grad_I, need_V=True):
    """(grad_V packed or None, grad_G (R, n)): dL/dI G^T and V^T dL/dI per member."""
    _, Vs = _blocks(V, layout)
    Gs = _rows(G, layout)
    grad_V = layout.pack([g @ Gk.T for g, Gk in zip(grad_I, Gs)]) if need_V else None
    return grad_V, np.concatenate([Vk.T @ g for Vk, g in zip(Vs, grad_I)])


def ideal_powers(V, G, layout, single=reference):
    """(K,) float64: single.ideal_power of every member."""
    _, Vs = _blocks(V, layout)
    return np.array([single.ideal_power(Vk, Gk) for Vk, Gk in zip(Vs, _rows(G, layout))])


# --- mapping loops (shapes: memnp.kernels.ensemble_steps) ----------------------------------------

def scan_inputs(x):
    """(active (K, n_in + 1), valid (K,)): mapping.scan_inputs of every member's x[k]."""
    parts = [mapping.scan_inputs(np.ascontiguousarray(xk)) for xk in x]
    return np.stack([a for a, _ in parts]), np.array([v for _, v in parts])


def voltages(x, k_V, layout):
    """Voltage-packed V: mapping.voltages(x[k], k_V[k], rows_k) of every member."""
    return layout.pack([mapping.voltages(np.ascontiguousarray(x[k]), float(k_V[k]), layout.member_rows(k))
                        for k in range(layout.members)])


def double_G_rows(D, layout, max_weight, G_off, G_on):
    """Row-packed G: mapping.double_G_rows of every member's D[k] (K, m, n)."""
    return np.concatenate([mapping.double_G_rows(D[k], layout.member_rows(k), float(max_weight[k]),
                                                 float(G_off[k]), float(G_on[k]))
                           for k in range(layout.members)])


def double_w_to_G_vjp_rows(D, grad_G, layout, grad_max_weight, G_off, G_on, max_weight):
    """dL/dD (K, m, n): mapping.double_w_to_G_vjp_rows of every member."""
    return np.stack([mapping.double_w_to_G_vjp_rows(D[k], layout.row_block(grad_G, k), layout.member_rows(k),
                                                    float(grad_max_weight[k]), float(G_off[k]),
                                                    float(G_on[k]), float(max_weight[k]))
                     for k in range(layout.members)])


def max_weights(D):
    """(K,) float64: mapping.double_max_weight of every member (nan where it gives None)."""
    out = [mapping.double_max_weight(np.ascontiguousarray(Dk)) for Dk in D]
    return np.array([np.nan if w is None else w for w in out])


def outputs(I, k_V, max_weight, G_off, G_on):
    """(K, p, n_out): mapping.outputs of every member."""
    return np.stack([mapping.outputs(I[k], float(k_V[k]), float(max_weight[k]), float(G_off[k]), float(G_on[k]))
                     for k in range(len(I))])


def outputs_vjp(I, grad_y, k_V, max_weight, G_off, G_on):
    """(grad_I (K, p, 2 n_out), grad_max_weight (K,)): mapping.outputs_vjp of every member."""
    parts = [mapping.outputs_vjp(I[k], grad_y[k], float(k_V[k]), float(max_weight[k]), float(G_off[k]),
                                 float(G_on[k])) for k in range(len(I))]
    return np.stack([g for g, _ in parts]), np.array([w for _, w in parts])


# --- loss and optimiser --------------------------------------------------------------------------

def softmax_cross_entropy(logits, labels):
    """(loss (K,), grad (K, p, classes), hits (K,)): softmax.softmax_cross_entropy of every member."""
    parts = [softmax.softmax_cross_entropy(np.ascontiguousarray(z), np.asarray(y)) for z, y in zip(logits, labels)]
    return (np.array([loss for loss, _, _ in parts]), np.stack([g for _, g, _ in parts]),
            np.array([hits for _, _, hits in parts], dtype=np.int64))


def sgd_step(theta, grad, lr, non_negative=False):
    """In place: sgd.step(theta[k], grad[k], lr[k], non_negative) for every member."""
    for k in range(len(theta)):
        sgd.step(theta[k], grad[k], float(lr[k]), non_negative)
    return theta


def l1_gradient(theta, grad, gamma):
    """In place: grad[k] += gamma[k] sign(theta[k]) (memnp.nn.optim.l1_gradient_'s arithmetic)
    for every member with gamma[k] != 0 (a model with l1 = 0 does not call it)."""
    for k in range(len(theta)):
        if gamma[k]:
            grad[k] += float(gamma[k]) * np.sign(theta[k])
    return grad


# --- memnp.kernels.ensemble_fused: the unfused K-axis calls ------------------------------------


def fused_forward_reference(X, D, layout, k_V, G_off, G_on, max_weight, generators, factors, slopes, intercepts):
    """(G, V, c, d_eps, I, y) of the stairs one K-axis call at a time, each member's residuals
    from ``generators[k].bit_generator.random_raw`` (pf_devices.residuals), and G of a member
    that reads every row by NumPy (as the single read's mapping)."""
    from . import ensemble, ensemble_devices, ensemble_steps
    G = ensemble_steps.double_G_rows(D, layout, max_weight, G_off, G_on)
    for k in np.flatnonzero(layout.counts() == layout.n_rows):   # NumPy's k_G D + G_off
        full = np.multiply(D[k], float((G_on[k] - G_off[k]) / max_weight[k]))
        full += float(G_off[k])
        G[layout.offsets[k]:layout.offsets[k + 1]] = full
    V = ensemble_steps.voltages(X, k_V, layout)
    residuals = np.empty((2,) + G.shape, G.dtype)
    c, d_eps = ensemble_devices.draw_device_parameters_reference(G, residuals, layout, generators, factors,
                                                                 slopes, intercepts)
    I = ensemble.pf_currents(V, c, d_eps, layout)
    y = ensemble_steps.outputs(I, k_V, max_weight, G_off, G_on)
    return G, V, c, d_eps, I, y


def fused_backward_reference(G, V, c, d_eps, I, grad_y, D, layout, k_V, G_off, G_on, max_weight, slopes, need_x):
    """(dL/dD, dL/dx or None, dL/d(max_weight)) of the stairs one K-axis call at a time."""
    from . import ensemble, ensemble_devices, ensemble_steps
    out = ensemble_steps.outputs_vjp(I, grad_y, k_V, max_weight, G_off, G_on)
    grads = ensemble.pf_currents_vjp(V, c, d_eps, layout, out.grad_I, need_x)
    grad_G = ensemble_devices.device_parameters_vjp_members(G, c, d_eps, grads.grad_c, grads.grad_d_eps,
                                                            layout, slopes)
    grad_D = ensemble_steps.double_w_to_G_vjp_rows(D, grad_G, layout, out.grad_max_weight, G_off, G_on,
                                                   max_weight)
    grad_x = ensemble_devices.scatter_rows(grads.grad_V, layout, I.shape[1])[:, :, :-1] if need_x else None
    return grad_D, grad_x, out.grad_max_weight

