"""A whole training step of K PF-aware MLP members in one Numba call (issue 15).

The network: double-weight PF layer 1, sigmoid, double-weight PF layer 2, softmax with
cross-entropy, plain SGD (with L1) on both layers' weights; float32. That is the paper's
PF-aware MNIST network (``mnist_mlp`` under a PF-only stage, bench/epoch.py case c), whose step
otherwise takes about a dozen calls (two fused calls per layer and pass, the scan, loss, L1 and
SGD), each a parallel region whose sleeping threads must be woken, with Python in between. Here
each thread takes whole members and runs a member's step from its inputs to its new weights; one
parallel region does every member's forward and backward pass and its update (put back if another
member's step turns out invalid).

Every stair is the function the layer-by-layer path calls (:mod:`memnp.kernels.ensemble_fused`'s
serial bodies on the member's own slices, :func:`memnp.kernels.softmax._softmax_cross_entropy`,
:func:`memnp.kernels.sgd._step`), with the member's scalars computed as there, so member k's
weights, loss, hits and Generator state equal, bit for bit, what the layered path (and the member
alone) gives; the layered path is this kernel's reference, and the tests compare them. The sigmoid
is SciPy's ``expit`` for float32, 1 / (1 + exp(-y)) in float32 (the tests check every step's
numbers against the layered path, which calls SciPy).

A member whose step the layered path would not run as computed here gets a nonzero status and
nothing is written (no weights, no Generator state): the caller then runs the layered path, which
raises the error that names the member (or settles an input of -0.0). Statuses: 1 (layer 1's
weights not all finite and >= 0 with one > 0), 2 (layer 1's inputs not all in [+0, 1] by their
bits), 3 and 4 (the same for layer 2), 5 (a non-finite dL/dy reached a layer's backward pass).

The equality rests on how LLVM compiles the fused bodies: they sum with reassociation allowed,
so a body inlined where its schedule or ``need_x`` is a known constant gets its sums vectorized in
another order (that happened: layer 1's dL/dD differed in the last bit). They are therefore called
through their addresses (:mod:`memnp.kernels.native_call`): the machine code the layered path's
Python calls run, with every array C-contiguous and the schedule passed in from Python. That also
keeps them out of this module's compilation (22 s instead of 31 on one thread, with an empty
cache; the tests would show it if a compiler broke the equality).

Shapes and units: X (K, p, n_in) inputs in [0, 1]; D1 (K, n_in + 1, 2 h) and D2 (K, h + 1, 2 c)
double weights (h hidden units, c classes); labels (K, p) int64; per-member scalars (K,) float64
(k_V in V, G_off and G_on in S, lr, gamma); slopes and intercepts (2, K, 2) (per layer and
member: s_c and s_d, or b_c and b_d); factors (2, K, 2, 2) (per layer and member: the covariance
factor); min_fraction (2,) and nn (2,) per layer (sparse.min_zeros and sparse._padded_width of its
columns); states (K, 4) uint64 PCG64 states (s_hi, s_lo, inc_hi, inc_lo); callees (2,) int64 the
fused bodies' addresses in this process (``addresses(_CALLEES)``).
"""
import numpy as np
from numba import njit, prange

from .ensemble_fused import _backward_serial, _compiled, _forward_serial
from .fastexp import wide_vectors
from .mapping import _bit_extremes, _scan
from .native_call import Callee, addresses, call
from .sgd import _step
from .softmax import _softmax_cross_entropy

__all__ = ["train_step", "OK", "BAD_WEIGHTS_1", "BAD_INPUTS_1", "BAD_WEIGHTS_2", "BAD_INPUTS_2", "BAD_GRADIENT"]

OK, BAD_WEIGHTS_1, BAD_INPUTS_1, BAD_WEIGHTS_2, BAD_INPUTS_2, BAD_GRADIENT = range(6)

_MAGNITUDE = np.uint32(0x7FFFFFFF)      # mapping._UNIT_BITS for float32
_ONE_BITS = np.uint32(0x3F800000)
_INF_BITS = np.int32(0x7F800000)        # mapping._INF_BITS for float32
#: What each member's fused bodies run with: one thread, whole members; then need_x of layer 1
#: (False) and layer 2 (True). Passed as an argument, not as constants, as when Python calls the
#: bodies.
_SCHEDULE = np.array([1, 1, 0, 1], np.int64)


#: The fused bodies, called through their addresses (see :mod:`memnp.kernels.native_call`) with
#: the types Python calls them with: their machine code is the layered path's, and the step's
#: module does not compile them again.
_FORWARD = Callee(_forward_serial, "void(f4[:, :, ::1], f4[:, :, ::1], i8[::1], i8[::1], f8[::1], f8[::1], f8[::1], "
                  "u8[:, ::1], b1[::1], f8[:, :, ::1], f8[:, ::1], f8[:, ::1], f4[::1], f8, i8, i8, b1, i8, "
                  "f4[:, :, ::1], f4[:, ::1], f4[::1], f4[:, ::1], f4[:, ::1], b1[::1], u8[:, ::1], f4[:, :, ::1], "
                  "f4[:, :, ::1])")
_BACKWARD = Callee(_backward_serial, "void(f4[:, :, ::1], f4[:, :, ::1], f4[::1], f8[::1], f4[::1], f4[:, ::1], "
                   "f4[:, ::1], f4[:, ::1], f4[:, :, ::1], i8[::1], i8[::1], b1[::1], i8, b1, f8[:, ::1], f8[::1], "
                   "f8[::1], i8, b1, f8[::1], f4[:, :, ::1], f4[:, :, ::1])")
_CALLEES = (_FORWARD, _BACKWARD)


@njit(error_model="numpy", cache=True)
def _sigmoid(y, a):
    """a = 1 / (1 + exp(-y)) elementwise in y's dtype (scipy.special.expit for float32)."""
    one = y.dtype.type(1.0)
    flat_y = y.reshape(-1)
    flat_a = a.reshape(-1)
    for q in range(flat_y.size):
        flat_a[q] = one / (one + np.exp(-flat_y[q]))


@njit(error_model="numpy", cache=True)
def _max_weight(D):
    """max D (float64) of D (m, n) float32 when every entry is finite and >= +0 and one is > 0
    (mapping.double_max_weight), else nan."""
    lo, hi = _bit_extremes(D.reshape(-1).view(np.int32))
    if lo < 0 or hi >= _INF_BITS or hi == 0:
        return np.nan
    bits = np.empty(1, np.int32)
    bits[0] = hi
    return np.float64(bits.view(np.float32)[0])


@njit(error_model="numpy", cache=True)
def _rows(x):
    """(rows read (r,) int64 increasing, the bias row last; valid): mapping._scan of x (p, n_in)."""
    active = np.zeros(x.shape[1] + 1, np.bool_)
    valid = _scan(x.reshape(-1).view(np.uint32).reshape(x.shape), active, _MAGNITUDE, _ONE_BITS)
    return np.flatnonzero(active).astype(np.int64), valid


@njit(error_model="numpy", cache=True)
def _layer_forward(k, x, D, max_weight, rows, k_V, G_off, G_on, factors, slopes, intercepts, state, min_fraction,
                   min_devices, nn, schedule, callees):
    """Member k's read of one layer (ensemble_fused.layer_forward with K = 1): inputs x (1, p,
    n_in), D (K, m, n) the layer's stacked weights; ``state`` (1, 4) its PCG64 state, advanced in
    place past the words drawn. Returns (y (1, p, n / 2), V, G, c, d_eps, I, is_sparse)."""
    wide_vectors()
    p = x.shape[1]
    n = D.shape[2]
    r = rows.size
    dtype = D.dtype
    mw = np.array([max_weight])
    span = G_on[k:k + 1] - G_off[k:k + 1]
    k_G = span / mw
    divisor = (k_V[k:k + 1] * span / mw).astype(dtype)
    offsets = np.array([0, r], np.int64)
    residuals = np.empty((2, r, n), dtype)
    G = np.empty((r, n), dtype)
    c = np.empty((r, n), dtype)
    d_eps = np.empty((r, n), dtype)
    V = np.empty(p * r, dtype)
    is_sparse = np.zeros(1, np.bool_)
    after = np.zeros((1, 2), np.uint64)
    I = np.empty((1, p, n), dtype)
    y = np.empty((1, p, n // 2), dtype)
    drawn = np.ones(1, np.bool_)
    call(_forward_serial, callees[0],
         (x, D[k:k + 1], rows, offsets, k_V[k:k + 1], k_G, G_off[k:k + 1], state, drawn, factors, slopes, intercepts,
          divisor, min_fraction, min_devices, schedule[0], schedule[1] != 0, nn, residuals, G, V, c, d_eps, is_sparse,
          after, I, y))
    state[0, 0] = after[0, 0]
    state[0, 1] = after[0, 1]
    return y, V, G, c, d_eps, I, is_sparse


@njit(error_model="numpy", cache=True)
def _layer_backward(k, grad_y, D, max_weight, rows, V, G, c, d_eps, I, is_sparse, k_V, G_off, G_on, slopes, nn,
                    need_x, grad_D, schedule, callees):
    """Member k's backward pass of one layer (ensemble_fused.layer_backward with K = 1) into
    grad_D (1, m, n); returns (dL/dx (1, p, n_in + 1) scaled by k_V (the bias column last), or
    empty; whether dL/d(max_weight) is finite)."""
    wide_vectors()
    p = I.shape[1]
    dtype = I.dtype
    mw = np.array([max_weight])
    span = G_on[k:k + 1] - G_off[k:k + 1]
    kv_span = k_V[k:k + 1] * span
    scale = (mw / kv_span).astype(dtype)
    k_G = span / mw
    offsets = np.array([0, rows.size], np.int64)
    grad_max_weight = np.empty(1, np.float64)
    grad_x = np.zeros((1, p, D.shape[1]) if need_x else (0, 0, 0), dtype)
    call(_backward_serial, callees[1],
         (I, grad_y, scale, kv_span, V, c, d_eps, G, D[k:k + 1], rows, offsets, is_sparse, nn, need_x, slopes, k_G, mw,
          schedule[0], schedule[1] != 0, grad_max_weight, grad_D, grad_x))
    if need_x:
        kv = dtype.type(k_V[k])
        for q in range(p):
            for i in range(D.shape[1]):
                grad_x[0, q, i] *= kv
    return grad_x, np.isfinite(grad_max_weight[0])


@njit(error_model="numpy", cache=True)
def _layer_inputs(k, x, D, bad_weights, bad_inputs, status):
    """(max D, the rows x drives) of member k's layer with weights D (m, n) and inputs x (p,
    n_in); status[k] set to ``bad_weights`` or ``bad_inputs`` (and the maximum nan) when the
    weights or inputs are not the kernel's."""
    max_weight = _max_weight(D)
    rows, valid = _rows(x)
    if np.isnan(max_weight):
        status[k] = bad_weights
    elif not valid:
        status[k] = bad_inputs
        max_weight = np.nan
    return max_weight, rows


@njit(error_model="numpy", cache=True)
def _first_inputs(k, X, D1, status):
    """:func:`_layer_inputs` of member k's first layer."""
    return _layer_inputs(k, X[k], D1[k], BAD_WEIGHTS_1, BAD_INPUTS_1, status)


@njit(error_model="numpy", cache=True)
def _second_inputs(k, y1, D2, hidden, status):
    """The sigmoid of member k's first-layer outputs y1 (1, p, h) into hidden[k], then
    :func:`_layer_inputs` of its second layer."""
    _sigmoid(y1, hidden[k:k + 1])
    return _layer_inputs(k, hidden[k], D2[k], BAD_WEIGHTS_2, BAD_INPUTS_2, status)


@njit(error_model="numpy", cache=True)
def _sigmoid_vjp(grad_a, a):
    """dL/dy = dL/da a (1 - a) (Sigmoid's backward pass, in that order) for a (1, p, h) and dL/da
    (p, h + 1) (the bias column last, not used)."""
    one = a.dtype.type(1.0)
    grad_y = np.empty_like(a)
    for q in range(a.shape[1]):
        for j in range(a.shape[2]):
            y = a[0, q, j]
            grad_y[0, q, j] = grad_a[q, j] * y * (one - y)
    return grad_y


@njit(error_model="numpy", cache=True)
def _member_step(k, X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, min_fraction,
                 min_devices, nn, schedule, callees, grad_D1, grad_D2, hidden, loss, hits, status):
    """Member k's forward and backward passes: its gradients into grad_D1[k], grad_D2[k], its
    sigmoid outputs into hidden[k], loss[k], hits[k], status[k], its PCG64 state advanced in
    states[k] (the caller keeps it only if every status is OK)."""
    wide_vectors()
    mw1, rows1 = _first_inputs(k, X, D1, status)
    if np.isnan(mw1):
        return
    state = states[k:k + 1]
    y1, V1, G1, c1, e1, I1, s1 = _layer_forward(k, X[k:k + 1], D1, mw1, rows1, k_V, G_off, G_on, factors[0, k:k + 1],
                                                slopes[0, k:k + 1], intercepts[0, k:k + 1], state, min_fraction[0],
                                                min_devices, nn[0], schedule, callees)
    mw2, rows2 = _second_inputs(k, y1, D2, hidden, status)
    if np.isnan(mw2):
        return
    a = hidden[k:k + 1]
    z, V2, G2, c2, e2, I2, s2 = _layer_forward(k, a, D2, mw2, rows2, k_V, G_off, G_on, factors[1, k:k + 1],
                                               slopes[1, k:k + 1], intercepts[1, k:k + 1], state, min_fraction[1],
                                               min_devices, nn[1], schedule, callees)
    grad_z = np.empty_like(z)
    loss[k], hits[k] = _softmax_cross_entropy(z[0], labels[k], grad_z[0])
    grad_a, finite = _layer_backward(k, grad_z, D2, mw2, rows2, V2, G2, c2, e2, I2, s2, k_V, G_off, G_on,
                                     slopes[1, k:k + 1], nn[1], schedule[3] != 0, grad_D2[k:k + 1], schedule, callees)
    if not finite:
        status[k] = BAD_GRADIENT
        return
    grad_y = _sigmoid_vjp(grad_a[0], a)
    _, finite = _layer_backward(k, grad_y, D1, mw1, rows1, V1, G1, c1, e1, I1, s1, k_V, G_off, G_on,
                                slopes[0, k:k + 1], nn[0], schedule[2] != 0, grad_D1[k:k + 1], schedule, callees)
    status[k] = OK if finite else BAD_GRADIENT


@njit(error_model="numpy", cache=True)
def _update(theta, grad, gamma, lr):
    """One member's L1 gradient (ensemble_steps.l1_gradient's loop, when gamma != 0) and
    projected SGD step on one layer's flat weights."""
    wide_vectors()
    if gamma != 0.0:
        g = theta.dtype.type(gamma)
        zero = theta.dtype.type(0.0)
        one = theta.dtype.type(1.0)
        for q in range(theta.size):
            t = theta[q]
            s = one if t > zero else (-one if t < zero else (zero if t == zero else t))   # np.sign
            grad[q] += g * s
    _step(theta, grad, lr, True)


@njit(error_model="numpy", cache=True)
def _keep_and_update(k, D1, D2, grad_D1, grad_D2, saved_D1, saved_D2, gamma, lr):
    """Member k's weights kept in saved_D1[k], saved_D2[k], then updated (its step is valid)."""
    saved_D1[k] = D1[k]
    saved_D2[k] = D2[k]
    _update(D1[k].reshape(-1), grad_D1[k].reshape(-1), gamma[k], lr[k])
    _update(D2[k].reshape(-1), grad_D2[k].reshape(-1), gamma[k], lr[k])


@njit(error_model="numpy", cache=True)
def _put_back(D1, D2, saved_D1, saved_D2, status):
    """After every member's task: if a member's step was not valid, the members that updated get
    their kept weights back (so no weights change)."""
    failed = False
    for k in range(status.size):
        failed = failed or status[k] != OK
    if failed:
        for k in range(status.size):
            if status[k] == OK:
                D1[k] = saved_D1[k]
                D2[k] = saved_D2[k]


@njit(error_model="numpy", cache=True)
def _member_task(k, X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, gamma, lr, min_fraction,
                 min_devices, nn, schedule, callees, grad_D1, grad_D2, saved_D1, saved_D2, hidden, loss, hits, status):
    """Member k's whole step: its gradients (zeroed first: rows not read get 0), then, when its
    status is OK, its weights kept in saved_D1[k], saved_D2[k] and updated."""
    wide_vectors()
    grad_D1[k] = 0
    grad_D2[k] = 0
    _member_step(k, X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, min_fraction,
                 min_devices, nn, schedule, callees, grad_D1, grad_D2, hidden, loss, hits, status)
    if status[k] == OK:
        _keep_and_update(k, D1, D2, grad_D1, grad_D2, saved_D1, saved_D2, gamma, lr)


def _step_body(X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, gamma, lr, min_fraction,
               min_devices, nn, schedule, callees, hidden, loss, hits, status):
    # One parallel region: each member updates its weights as soon as its step is known valid,
    # keeping the old ones; if another member's step was not, they are put back afterwards.
    K = X.shape[0]
    grad_D1 = np.empty(D1.shape, D1.dtype)
    grad_D2 = np.empty(D2.shape, D2.dtype)
    saved_D1 = np.empty(D1.shape, D1.dtype)
    saved_D2 = np.empty(D2.shape, D2.dtype)
    for k in prange(K):
        _member_task(k, X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, gamma, lr,
                     min_fraction, min_devices, nn, schedule, callees, grad_D1, grad_D2, saved_D1, saved_D2, hidden,
                     loss, hits, status)
    _put_back(D1, D2, saved_D1, saved_D2, status)


_step_parallel = _compiled(_step_body, parallel=True)
_step_serial = _compiled(_step_body, parallel=False)


def train_step(X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, states, gamma, lr, min_fraction,
               min_devices, nn, parallel):
    """One training step of every member (see the module docstring for the arguments):
    (loss (K,) float64, hits (K,) int64, status (K,) int64, hidden (K, p, h) the sigmoid
    outputs). D1, D2 and states are updated in place only when every status is OK. ``parallel``:
    whole members on Numba's threads, else on the calling thread. The caller checks the arrays
    (C-contiguous, float32 weights and inputs)."""
    K, p = X.shape[:2]
    hidden = np.empty((K, p, D1.shape[2] // 2), D1.dtype)
    loss = np.zeros(K, np.float64)
    hits = np.zeros(K, np.int64)
    status = np.zeros(K, np.int64)
    work = states.copy()
    kernel = _step_parallel if parallel else _step_serial
    kernel(X, labels, D1, D2, k_V, G_off, G_on, factors, slopes, intercepts, work, gamma, lr,
           np.asarray(min_fraction, np.float64), int(min_devices), np.asarray(nn, np.int64), _SCHEDULE,
           addresses(_CALLEES), hidden, loss, hits, status)
    if not status.any():
        states[:] = work
    return loss, hits, status, hidden
