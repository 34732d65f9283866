"""A memristive layer's mapping loops, the loss and the optimiser step with a K axis (issue 15).

K members of one architecture, in the layout of :mod:`memnp.kernels.ensemble_layout`: inputs
x (K, p, n_in) dimensionless; double weights D (K, m, n), m = n_in + 1 (bias row last); ``layout``
a :class:`MemberRows` of the rows each member reads; V voltage-packed (p R,) in volts; G and
dL/dG row-packed (R, n) in S and 1/S; currents I (K, p, 2 n_out) in A; outputs y (K, p, n_out).
Per-member scalars (k_V in V, G_off and G_on in S, max_weight, learning rates, L1 gammas) are
numbers or (K,) arrays. Every array is C-contiguous float32 or float64, one dtype per call.

Each function is one Numba call, parallel over members (over (member, chunk) pairs for the
optimiser step), running for each member the loop of the single-network kernel
(:mod:`memnp.kernels.mapping`, :mod:`memnp.kernels.softmax`, :mod:`memnp.kernels.sgd`) on its
blocks with its scalars, computed as the single-network wrappers compute them; so member k's
result equals the single kernel's bit for bit. The L1 gradient has no single-network loop (the
model adds gamma sign(theta) with NumPy); :func:`l1_gradient` does that arithmetic in one pass.
:mod:`memnp.kernels.ensemble_reference` holds the loops over members these are tested against.
"""
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .arrays import contiguous_floats
from .cpu import _PRANGE_ONLY
from .ensemble_layout import MemberRows, member_scalars
from .mapping import (_UNIT_BITS, _G_rows, _bit_extremes, _gather, _outputs, _outputs_vjp, _scan,
                      _unit_numpy, _vjp_rows, _INF_BITS)
from .sgd import _step
from .softmax import _softmax_cross_entropy

__all__ = ["MemberLosses", "OutputGradients", "scan_inputs", "voltages", "max_weights", "double_G_rows",
           "double_w_to_G_vjp_rows", "outputs", "outputs_vjp", "softmax_cross_entropy", "sgd_step",
           "l1_gradient"]


@dataclass(frozen=True)
class OutputGradients:
    """dL/dI (K, p, 2 n_out) in the currents' dtype and dL/d(max_weight) (K,) float64."""

    grad_I: np.ndarray
    grad_max_weight: np.ndarray


@dataclass(frozen=True)
class MemberLosses:
    """Per member: mean cross-entropy ``loss`` (K,) float64, dL/dlogits ``grad`` (K, p, classes)
    in the logits' dtype, ``hits`` (K,) int64 (examples whose first argmax is the label)."""

    loss: np.ndarray
    grad: np.ndarray
    hits: np.ndarray


def _stack(name, a, ndim):
    """a as a C-contiguous float32/float64 array of ``ndim`` dimensions (K first), or ValueError."""
    if not contiguous_floats(a, ndim=ndim):
        a = np.asarray(a)
        raise ValueError(f"{name} must be a C-contiguous float32 or float64 array of {ndim} dimensions "
                         f"(members first); got {a.dtype} {a.shape}")
    return a


def _layout(layout, members):
    if not isinstance(layout, MemberRows) or layout.members != members:
        raise ValueError(f"layout must be a MemberRows of {members} members; got {layout!r}")
    return layout


# --- mapping --------------------------------------------------------------------------------------

@njit(parallel=_PRANGE_ONLY, cache=True)
def _scan_members(bits, active, magnitude, one, valid):
    for k in prange(bits.shape[0]):
        valid[k] = _scan(bits[k], active[k], magnitude, one)


def scan_inputs(x):
    """(active (K, n_in + 1) bool, valid (K,) bool): per member, the rows its batch drives (the
    bias row always) and whether all its inputs are in [0, 1] (mapping.scan_inputs per member)."""
    x = _stack("x", x, 3)
    unsigned, magnitude, one = _UNIT_BITS[x.dtype]
    active = np.zeros((x.shape[0], x.shape[2] + 1), dtype=np.bool_)
    valid = np.zeros(x.shape[0], dtype=np.bool_)
    _scan_members(x.view(unsigned), active, unsigned(magnitude), unsigned(one), valid)
    for k in np.flatnonzero(~valid):      # -0.0 fails the bit test; NumPy settles it
        valid[k] = _unit_numpy(x[k])
    return active, valid


@njit(parallel=_PRANGE_ONLY, cache=True)
def _gather_members(x, k_V, rows, offsets, V):
    p = x.shape[1]
    for k in prange(x.shape[0]):
        o0 = offsets[k]
        o1 = offsets[k + 1]
        _gather(x[k], k_V[k], rows[o0:o1], V[p * o0:p * o1].reshape((p, o1 - o0)))


def voltages(x, k_V, layout):
    """Voltage-packed V (p R,) in x's dtype: member k's block is k_V[k] x[k][:, rows_k] (k_V[k]
    for the bias row), mapping.voltages per member."""
    x = _stack("x", x, 3)
    layout = _layout(layout, x.shape[0])
    if layout.n_rows != x.shape[2] + 1:
        raise ValueError(f"layout must cover n_in + 1 = {x.shape[2] + 1} rows; got {layout.n_rows}")
    k_V = member_scalars("k_V", k_V, x.shape[0], positive=True)
    V = np.empty(x.shape[1] * layout.total, dtype=x.dtype)
    _gather_members(x, k_V, layout.rows, layout.offsets, V)
    return V


@njit(parallel=_PRANGE_ONLY, cache=True)
def _extremes_members(bits, lo, hi):
    for k in prange(bits.shape[0]):
        lo[k], hi[k] = _bit_extremes(bits[k])


def max_weights(D):
    """(K,) float64: max D[k] per member where every entry of D[k] is finite and >= 0 and one is
    > 0 (mapping.double_max_weight), nan for a member where that fails (the caller then runs the
    checked NumPy form for that member, for its error)."""
    D = _stack("D", D, 3)
    int_type, inf_bits = _INF_BITS[D.dtype]
    K = D.shape[0]
    lo = np.empty(K, dtype=int_type)
    hi = np.empty(K, dtype=int_type)
    _extremes_members(D.reshape(K, -1).view(int_type), lo, hi)
    out = hi.view(D.dtype).astype(np.float64)
    out[(lo < 0) | (hi >= inf_bits) | (hi == 0)] = np.nan
    return out


def _k_G(G_off, G_on, max_weight, K):
    """(K,) float64 k_G = (G_on - G_off) / max_weight, as the single wrappers compute it."""
    G_off = member_scalars("G_off", G_off, K, positive=True)
    G_on = member_scalars("G_on", G_on, K, positive=True)
    max_weight = member_scalars("max_weight", max_weight, K, positive=True)
    return G_off, G_on, max_weight, (G_on - G_off) / max_weight


@njit(parallel=_PRANGE_ONLY, cache=True)
def _G_rows_members(D, rows, offsets, k_G, G_off, G):
    for k in prange(D.shape[0]):
        o0 = offsets[k]
        o1 = offsets[k + 1]
        _G_rows(D[k], rows[o0:o1], k_G[k], G_off[k], G[o0:o1])


def double_G_rows(D, layout, max_weight, G_off, G_on):
    """Row-packed G (R, n) in S, D's dtype: member k's block is k_G D[k][rows_k] + G_off with
    k_G = (G_on - G_off) / max_weight (mapping.double_G_rows per member)."""
    D = _stack("D", D, 3)
    layout = _layout(layout, D.shape[0])
    G_off, G_on, max_weight, k_G = _k_G(G_off, G_on, max_weight, D.shape[0])
    G = np.empty((layout.total, D.shape[2]), dtype=D.dtype)
    _G_rows_members(D, layout.rows, layout.offsets, k_G, G_off, G)
    return G


@njit(parallel=_PRANGE_ONLY, cache=True)
def _vjp_rows_members(D, grad_G, rows, offsets, k_G, max_weight, grad_max_weight, grad):
    for k in prange(D.shape[0]):
        o0 = offsets[k]
        o1 = offsets[k + 1]
        _vjp_rows(D[k], grad_G[o0:o1], rows[o0:o1], k_G[k], max_weight[k], grad_max_weight[k], grad[k])


def double_w_to_G_vjp_rows(D, grad_G, layout, grad_max_weight, G_off, G_on, max_weight):
    """dL/dD (K, m, n) in D's dtype from row-packed dL/dG (R, n) (rows not read: 0) and the
    upstream dL/d(max_weight) (K,), with max_weight = max D[k] (mapping.double_w_to_G_vjp_rows
    per member)."""
    D = _stack("D", D, 3)
    K = D.shape[0]
    layout = _layout(layout, K)
    grad_G = _stack("grad_G", grad_G, 2)
    if grad_G.dtype != D.dtype or grad_G.shape != (layout.total, D.shape[2]):
        raise ValueError(f"grad_G must be row-packed {D.dtype} of shape {(layout.total, D.shape[2])}; "
                         f"got {grad_G.dtype} {grad_G.shape}")
    G_off, G_on, max_weight, k_G = _k_G(G_off, G_on, max_weight, K)
    grad_max_weight = member_scalars("grad_max_weight", grad_max_weight, K)
    grad = np.zeros(D.shape, dtype=D.dtype)
    _vjp_rows_members(D, grad_G, layout.rows, layout.offsets, k_G, max_weight, grad_max_weight, grad)
    return grad


@njit(parallel=_PRANGE_ONLY, cache=True)
def _outputs_members(I, divisor, y):
    for k in prange(I.shape[0]):
        _outputs(I[k], divisor[k], y[k])


def _conversion(k_V, max_weight, G_off, G_on, K):
    k_V = member_scalars("k_V", k_V, K, positive=True)
    G_off, G_on, max_weight, _ = _k_G(G_off, G_on, max_weight, K)
    return k_V, max_weight, G_on - G_off


def outputs(I, k_V, max_weight, G_off, G_on):
    """y (K, p, n_out) = (I[:, :, 0::2] - I[:, :, 1::2]) / (k_V k_G) per member, in I's dtype
    (mapping.outputs per member)."""
    I = _stack("I", I, 3)
    k_V, max_weight, span = _conversion(k_V, max_weight, G_off, G_on, I.shape[0])
    divisor = (k_V * span / max_weight).astype(I.dtype)
    y = np.empty((I.shape[0], I.shape[1], I.shape[2] // 2), dtype=I.dtype)
    _outputs_members(I, divisor, y)
    return y


@njit(parallel=_PRANGE_ONLY, cache=True)
def _outputs_vjp_members(I, grad_y, scale, grad_I, total):
    for k in prange(I.shape[0]):
        total[k] = _outputs_vjp(I[k], grad_y[k], scale[k], grad_I[k])


def outputs_vjp(I, grad_y, k_V, max_weight, G_off, G_on):
    """:class:`OutputGradients` from dL/dy (K, p, n_out) of I's dtype (mapping.outputs_vjp per
    member)."""
    I = _stack("I", I, 3)
    grad_y = _stack("grad_y", grad_y, 3)
    if grad_y.dtype != I.dtype or grad_y.shape != (I.shape[0], I.shape[1], I.shape[2] // 2):
        raise ValueError(f"grad_y must be {I.dtype} of shape {(I.shape[0], I.shape[1], I.shape[2] // 2)}; "
                         f"got {grad_y.dtype} {grad_y.shape}")
    k_V, max_weight, span = _conversion(k_V, max_weight, G_off, G_on, I.shape[0])
    scale = (max_weight / (k_V * span)).astype(I.dtype)
    grad_I = np.empty(I.shape, dtype=I.dtype)
    total = np.empty(I.shape[0], dtype=np.float64)
    _outputs_vjp_members(I, grad_y, scale, grad_I, total)
    return OutputGradients(grad_I, total / (k_V * span))


# --- loss -----------------------------------------------------------------------------------------

@njit(parallel=_PRANGE_ONLY, cache=True)
def _cross_entropy_members(z, labels, grad, loss, hits):
    for k in prange(z.shape[0]):
        loss[k], hits[k] = _softmax_cross_entropy(z[k], labels[k], grad[k])


def softmax_cross_entropy(logits, labels):
    """:class:`MemberLosses` of logits (K, p, classes) and integer labels (K, p) in [0, classes)
    (softmax.softmax_cross_entropy per member)."""
    logits = _stack("logits", logits, 3)
    labels = np.asarray(labels)
    K, p, classes = logits.shape
    if labels.shape != (K, p) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape {(K, p)}; got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be class indices in [0, {classes - 1}]; got values in "
                         f"[{labels.min()}, {labels.max()}]")
    grad = np.empty_like(logits)
    loss = np.empty(K, dtype=np.float64)
    hits = np.empty(K, dtype=np.int64)
    _cross_entropy_members(logits, np.ascontiguousarray(labels, dtype=np.int64), grad, loss, hits)
    return MemberLosses(loss, grad, hits)


# --- optimiser ------------------------------------------------------------------------------------

#: Elements per task of the optimiser loops (tasks are (member, chunk) pairs).
CHUNK = 1 << 14


@njit(parallel=_PRANGE_ONLY, cache=True)
def _step_members(theta, grad, lr, non_negative, chunk):
    K, size = theta.shape
    chunks = (size + chunk - 1) // chunk
    for task in prange(K * chunks):
        k = task // chunks
        a = (task - k * chunks) * chunk
        b = min(a + chunk, size)
        _step(theta[k, a:b], grad[k, a:b], lr[k], non_negative)


def _pair(theta, grad):
    """(theta, grad) viewed as (K, size), after checking they fit each other."""
    if not contiguous_floats(theta, grad) or theta.ndim < 1:
        raise ValueError("theta and grad must be C-contiguous float32 or float64 arrays of one dtype "
                         f"and shape (members first); got {np.asarray(theta).shape} and {np.asarray(grad).shape}")
    return theta.reshape(theta.shape[0], -1), grad.reshape(grad.shape[0], -1)


def sgd_step(theta, grad, lr, non_negative=False):
    """Update theta (K, ...) in place: theta[k] - lr[k] grad[k], projected onto >= 0 when
    ``non_negative`` (sgd.step per member). lr: a number or (K,) numbers > 0. Returns theta."""
    if not (isinstance(theta, np.ndarray) and theta.flags.writeable):
        raise ValueError("theta must be a writeable NumPy array")
    flat_theta, flat_grad = _pair(theta, grad)
    lr = member_scalars("lr", lr, flat_theta.shape[0], positive=True)
    _step_members(flat_theta, flat_grad, lr, bool(non_negative), CHUNK)
    return theta


@njit(parallel=_PRANGE_ONLY, cache=True)
def _l1_members(theta, grad, gamma, chunk):
    K, size = theta.shape
    chunks = (size + chunk - 1) // chunk
    for task in prange(K * chunks):
        k = task // chunks
        if gamma[k] == 0.0:
            continue
        g = theta.dtype.type(gamma[k])
        zero = theta.dtype.type(0.0)
        one = theta.dtype.type(1.0)
        a = (task - k * chunks) * chunk
        for q in range(a, min(a + chunk, size)):
            t = theta[k, q]
            s = one if t > zero else (-one if t < zero else (zero if t == zero else t))   # np.sign
            grad[k, q] += g * s


def l1_gradient(theta, grad, gamma):
    """Add gamma[k] sign(theta[k]) (sign(0) = 0, sign(NaN) = NaN) to grad[k] in place, in
    theta's dtype, as memnp.nn.optim.l1_gradient_ does; members with gamma[k] = 0 are left as
    they are (a model with l1 = 0 does not add anything). gamma: a number or (K,) numbers >= 0."""
    flat_theta, flat_grad = _pair(theta, grad)
    if not grad.flags.writeable:
        raise ValueError("grad must be a writeable NumPy array")
    gamma = member_scalars("gamma", gamma, flat_theta.shape[0])
    if np.any(gamma < 0):
        raise ValueError(f"gamma must hold numbers >= 0; got {gamma}")
    _l1_members(flat_theta, flat_grad, gamma, CHUNK)
    return grad
