"""A PF layer of K ensemble members in one Numba call per pass (issue 15): the fused stairs.

The stacked PF read of :class:`memnp.nn.ensemble_read.StackedCrossbar` takes, per layer and
step, about a dozen K-axis calls (mapping, draws, device parameters, currents, outputs and their
VJPs), each a parallel region whose sleeping threads must be woken, and each with its own Python
checks. Here the forward pass is two calls (:func:`scan`: the weights' maximum, the input scan and
the rows read; then the read) and the backward pass one call:

- :func:`layer_forward`: per member (in parallel): G of the rows read (with NumPy's rounding when
  every row is read, as the single read maps then), the voltages, the PF
  residuals from the member's PCG64 words (or residuals given), c and d_eps, the zero count that
  picks the dense or zero-skipping kernel, and that kernel's preparation; then the currents'
  tasks of all members; then, per member, the currents cast to the layer's dtype and the outputs.
- :func:`layer_backward`: per member: dL/dI and dL/d(max_weight) from dL/dy, the VJP's
  preparation; the VJP's tasks; per member dL/dG, dL/dD and (when asked) dL/dx.

With at least as many members as threads (:func:`by_member`), each thread runs whole members, all
of a member's stairs one after the other: one parallel region per call, and a member's arrays stay
in the cache of the core that made them. With fewer members, each stair is split over the threads
as above.

Every stair calls the function the single-network kernels call on the member's block, with the
member's scalars computed as the single-network wrappers compute them, so every number equals
the single network's read bit for bit (``fused_forward_reference`` and ``fused_backward_reference``
in :mod:`memnp.kernels.ensemble_reference` run the unfused K-axis calls of
:mod:`memnp.kernels.ensemble_steps`, :mod:`memnp.kernels.ensemble_devices` and
:mod:`memnp.kernels.ensemble`, whose own references are loops over members; the tests compare
them). How the work is split over threads changes no sum.

Layout and units as in :mod:`memnp.kernels.ensemble_layout`: inputs X (K, p, n_in) in [0, 1];
double weights D (K, m, n), m = n_in + 1; rows and offsets of a
:class:`~memnp.kernels.ensemble_layout.MemberRows`; G, c (A/V), d_eps (F/m) and residuals (2, R,
n) row-packed; V voltage-packed (p R,) in volts; currents I (K, p, n) in A; outputs y (K, p,
n / 2). Per-member scalars are (K,) float64; slopes and intercepts (K, 2), factors (K, 2, 2).
"""
import types
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from . import pcg64, sparse
from .cpu import _PRANGE_ONLY, EXAMPLE_BLOCK
from .cpu_auto import serial_below
from .ensemble_pf import (_backward_buffers, _backward_prep, _backward_task, _cast_member, _forward_prep,
                          _forward_task, _member_currents, _member_vjp)
from .fastexp import wide_vectors
from .ensemble_layout import MemberRows
from .mapping import (_INF_BITS, _UNIT_BITS, _G_rows, _bit_extremes, _gather, _outputs, _outputs_vjp, _scan,
                      _vjp_rows)
from .pf_devices import _parameters, _parameters_vjp, _residuals
from .sparse import _count_zeros, _padded_width

__all__ = ["Scan", "FusedRead", "FusedGradients", "scan", "layer_forward", "layer_backward", "parallel", "by_member"]


@dataclass(frozen=True)
class FusedRead:
    """What :func:`layer_forward` gives and :func:`layer_backward` needs: V (p R,), G, c, d_eps
    (R, n), I (K, p, n), is_sparse (K,) bool (the kernel each member's read ran), y (K, p, n / 2)
    and ``after`` (K, 2) uint64: the PCG64 states (high, low) after the drawn members' words."""

    V: np.ndarray
    G: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    I: np.ndarray
    is_sparse: np.ndarray
    y: np.ndarray
    after: np.ndarray


@dataclass(frozen=True)
class FusedGradients:
    """dL/dD (K, m, n), dL/dx (K, p, n_in) or None, and dL/d(max_weight) (K,) float64 (a member
    whose value is not finite had a non-finite dL/dy)."""

    grad_D: np.ndarray
    grad_x: object
    grad_max_weight: np.ndarray


# --- the kernels ----------------------------------------------------------------------------------

@njit(error_model="numpy", cache=True)
def _G_numpy_order(D, k_G, G_off, G):
    """G = k_G D + G_off (m, n) as :func:`memnp.crossbar.mapping._double_G` computes it with NumPy:
    the product rounded to D's dtype, then the sum (no fused multiply-add)."""
    t = D.dtype.type
    k, off = t(k_G), t(G_off)
    for i in range(D.shape[0]):
        for j in range(D.shape[1]):
            g = D[i, j] * k
            G[i, j] = g + off

@njit(error_model="numpy", cache=True)
def _setup_member(k, X, D, rows, offsets, k_V, k_G, G_off, states, drawn, factors, slopes, intercepts,
                  min_fraction, min_devices, e_c, e_d, G, V, c, d_eps, is_sparse, after, X_terms, W, cw, kt):
    """Member k's stairs up to its currents: G of its rows, V, its residuals (drawn from its
    PCG64 state when drawn[k]), c and d_eps, the kernel its read runs (is_sparse[k], as
    cpu_auto.plan picks it) and that kernel's preparation."""
    p = X.shape[1]
    n = D.shape[2]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    if r == D.shape[1]:     # every row read: the single read maps with NumPy
        _G_numpy_order(D[k], k_G[k], G_off[k], G[o0:o1])
    else:
        _G_rows(D[k], rows[o0:o1], k_G[k], G_off[k], G[o0:o1])
    Vk = V[p * o0:p * o1].reshape((p, r))
    _gather(X[k], k_V[k], rows[o0:o1], Vk)
    a = o0 * n
    b = o1 * n
    if drawn[k]:
        words = np.empty(b - a, np.uint64)
        after[k, 0], after[k, 1] = pcg64.fill(states[k, 0], states[k, 1], states[k, 2], states[k, 3], words)
        _residuals(words, factors[k, 0, 0], factors[k, 0, 1], factors[k, 1, 0], factors[k, 1, 1],
                   e_c[a:b], e_d[a:b])
    _parameters(G.reshape(-1)[a:b], e_c[a:b], e_d[a:b], slopes[k, 0], intercepts[k, 0], slopes[k, 1],
                intercepts[k, 1], c.reshape(-1)[a:b], d_eps.reshape(-1)[a:b])
    size = p * r
    # cpu_auto.plan: the zero-skipping kernels from min_devices devices and min_fraction of V's
    # entries exactly 0.
    is_sparse[k] = r * n >= min_devices and size > 0 and _count_zeros(Vk) >= min_fraction * size
    _forward_prep(k, V, c, d_eps, offsets, p, is_sparse, False, X_terms, W, cw, kt)


@njit(error_model="numpy", cache=True)
def _read_member(k, V, c, d_eps, offsets, is_sparse, nn, divisor, X_terms, W, cw, kt, I, y):
    """Member k's currents in one task (ensemble_pf._member_currents) into I[k], and its outputs y[k]."""
    _member_currents(k, V, c, d_eps, offsets, I.shape[1], is_sparse, nn, X_terms, W, cw, kt, I[k:k + 1])
    _outputs(I[k], divisor[k], y[k])


# Each body is compiled twice: parallel and serial (the same loops on the calling thread, for
# calls too small to wake the other threads). Two schedules: ``by_member`` gives each thread whole
# members (one parallel region; a member's arrays stay in its core's cache), else every member's
# rows or examples are split over the threads (three regions; for fewer members than threads).

def _forward_body(X, D, rows, offsets, k_V, k_G, G_off, states, drawn, factors, slopes, intercepts,
                  divisor, min_fraction, min_devices, threads, by_member, nn, residuals, G, V, c, d_eps,
                  is_sparse, after, I, y):
    wide_vectors()
    K, p, _ = X.shape
    n = D.shape[2]
    R = offsets[K]
    X_terms = np.empty(V.size, dtype=V.dtype)      # the work arrays of ensemble_pf's forward kernels
    W = np.empty(0, dtype=V.dtype)
    cw = np.empty((R, nn), dtype=V.dtype)
    kt = np.empty((R, nn), dtype=V.dtype)
    e_c = residuals[0].reshape(-1)
    e_d = residuals[1].reshape(-1)
    if by_member:
        for k in prange(K):
            wide_vectors()
            _setup_member(k, X, D, rows, offsets, k_V, k_G, G_off, states, drawn, factors, slopes, intercepts,
                          min_fraction, min_devices, e_c, e_d, G, V, c, d_eps, is_sparse, after, X_terms, W, cw, kt)
            _read_member(k, V, c, d_eps, offsets, is_sparse, nn, divisor, X_terms, W, cw, kt, I, y)
        return
    for k in prange(K):
        _setup_member(k, X, D, rows, offsets, k_V, k_G, G_off, states, drawn, factors, slopes, intercepts,
                      min_fraction, min_devices, e_c, e_d, G, V, c, d_eps, is_sparse, after, X_terms, W, cw, kt)
    out_offsets = np.zeros(K + 1, np.int64)
    task_offsets = np.zeros(K + 1, np.int64)
    blocks = (p + EXAMPLE_BLOCK - 1) // EXAMPLE_BLOCK
    for k in range(K):
        out_offsets[k + 1] = out_offsets[k] + p * (nn if is_sparse[k] else n)
        units = max(p, 1) if is_sparse[k] else blocks * n
        task_offsets[k + 1] = task_offsets[k] + min(threads, units)
    out = np.zeros(out_offsets[K], dtype=np.float64)
    for task in prange(task_offsets[K]):
        wide_vectors()
        _forward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, nn, False, out_offsets,
                      task_offsets, X_terms, W, cw, kt, out)
    for k in prange(K):
        _cast_member(k, out, out_offsets, is_sparse, p, nn, I)
        _outputs(I[k], divisor[k], y[k])


@njit(error_model="numpy", cache=True)
def _start_member(k, I, grad_y, scale, kv_span, grad_I, grad_max_weight):
    """Member k's dL/dI and dL/d(max_weight)."""
    total = _outputs_vjp(I[k], grad_y[k], scale[k], grad_I[k])
    grad_max_weight[k] = total / kv_span[k]


@njit(error_model="numpy", cache=True)
def _finish_member(k, G, c, d_eps, D, rows, offsets, grad_c, grad_d_eps, slopes, k_G, max_weight, need_x,
                   grad_V, grad_max_weight, grad_G, grad_D, grad_x):
    """Member k's dL/dG, dL/dD and (need_x) dL/dx from its dL/dc, dL/d(d_eps) and dL/dV."""
    p = grad_x.shape[1]
    n = G.shape[1]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    a = o0 * n
    b = o1 * n
    _parameters_vjp(G.reshape(-1)[a:b], c.reshape(-1)[a:b], d_eps.reshape(-1)[a:b], grad_c.reshape(-1)[a:b],
                    grad_d_eps.reshape(-1)[a:b], slopes[k, 0], slopes[k, 1], grad_G.reshape(-1)[a:b])
    _vjp_rows(D[k], grad_G[o0:o1], rows[o0:o1], k_G[k], max_weight[k], grad_max_weight[k], grad_D[k])
    if need_x:
        r = o1 - o0
        block = grad_V[p * o0:p * o1]
        for ex in range(p):
            for s in range(r):
                grad_x[k, ex, rows[o0 + s]] = block[ex * r + s]


def _backward_body(I, grad_y, scale, kv_span, V, c, d_eps, G, D, rows, offsets, is_sparse, nn, need_x,
                   slopes, k_G, max_weight, threads, by_member, grad_max_weight, grad_D, grad_x):
    wide_vectors()
    K, p, n = I.shape
    grad_I = np.empty(I.shape, dtype=I.dtype)
    gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps = _backward_buffers(V, c, offsets, p, nn, need_x)
    grad_G = np.empty(G.shape, dtype=G.dtype)
    if by_member:
        for k in prange(K):
            wide_vectors()
            _start_member(k, I, grad_y, scale, kv_span, grad_I, grad_max_weight)
            _member_vjp(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_x, gsize, gbuf[k * gsize:(k + 1) * gsize],
                        VT, cw, kt, grad_V, grad_c, grad_d_eps)
            _finish_member(k, G, c, d_eps, D, rows, offsets, grad_c, grad_d_eps, slopes, k_G, max_weight, need_x,
                           grad_V, grad_max_weight, grad_G, grad_D, grad_x)
        return
    for k in prange(K):
        _start_member(k, I, grad_y, scale, kv_span, grad_I, grad_max_weight)
        _backward_prep(0, V, c, d_eps, grad_I[k:k + 1], offsets[k:k + 2], p, is_sparse[k:k + 1], need_x, gsize,
                       gbuf[k * gsize:(k + 1) * gsize], VT, cw, kt, grad_V)
    task_offsets = np.zeros(K + 1, np.int64)
    for k in range(K):
        task_offsets[k + 1] = task_offsets[k] + min(threads, offsets[k + 1] - offsets[k])
    for task in prange(task_offsets[K]):
        wide_vectors()
        _backward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, need_x, task_offsets, gsize,
                       gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps)
    for k in prange(K):
        _finish_member(k, G, c, d_eps, D, rows, offsets, grad_c, grad_d_eps, slopes, k_G, max_weight, need_x,
                       grad_V, grad_max_weight, grad_G, grad_D, grad_x)


def _compiled(body, parallel):
    """``body`` compiled parallel or serial. Each compilation gets its own copy of the Python
    function, with its own qualified name: Numba's disk cache is keyed by that name and the
    argument types, not by the compile options, so one function compiled both ways would load
    one version's machine code for the other."""
    suffix = "_parallel" if parallel else "_serial"
    twin = types.FunctionType(body.__code__, body.__globals__, body.__name__ + suffix, body.__defaults__,
                              body.__closure__)
    twin.__qualname__ = body.__qualname__ + suffix
    twin.__doc__ = body.__doc__
    options = {"parallel": _PRANGE_ONLY} if parallel else {}
    return njit(error_model="numpy", cache=True, **options)(twin)


def _scan_body(D_bits, x_bits, magnitude, one, lo, hi, valid, active, offsets):
    """Per member: the extremes of D's bits (mapping._bit_extremes), the input scan
    (mapping._scan: the rows driven and whether every input is in [0, 1]); then the row offsets
    and the rows read, increasing per member."""
    K = D_bits.shape[0]
    for k in prange(K):
        lo[k], hi[k] = _bit_extremes(D_bits[k])
        valid[k] = _scan(x_bits[k], active[k], magnitude, one)
    for k in range(K):
        offsets[k + 1] = offsets[k] + np.count_nonzero(active[k])
    rows = np.empty(offsets[K], np.int64)
    m = active.shape[1]
    for k in prange(K):
        q = offsets[k]
        for i in range(m):
            if active[k, i]:
                rows[q] = i
                q += 1
    return rows


_scan_parallel = _compiled(_scan_body, parallel=True)
_scan_serial = _compiled(_scan_body, parallel=False)
_forward_parallel = _compiled(_forward_body, parallel=True)
_forward_serial = _compiled(_forward_body, parallel=False)
_backward_parallel = _compiled(_backward_body, parallel=True)
_backward_serial = _compiled(_backward_body, parallel=False)


# --- Python entry points --------------------------------------------------------------------------

def parallel(evaluations, members):
    """Whether a fused call of at most that many device evaluations (examples times devices
    read, zeros included) for ``members`` members runs on Numba's threads. With whole members per
    thread (:func:`by_member`) the call wakes the threads once, so from a third of
    :func:`memnp.kernels.cpu_auto.serial_below`; split over the threads, it wakes them three times
    and the count includes the zeros the sparse kernels skip, so from twice that threshold. The
    numbers do not depend on it."""
    threads = numba.get_num_threads()
    if threads == 1:
        return False
    if by_member(members, threads):
        return 3 * evaluations >= serial_below()
    return evaluations >= 2 * serial_below()


@dataclass(frozen=True)
class Scan:
    """What :func:`scan` finds: ``layout`` the MemberRows of the rows each member's batch drives
    (the bias row always), ``max_weight`` (K,) float64 max D[k] (nan for a member whose weights
    are not all finite and >= 0 with one > 0), ``valid`` (K,) bool whether every input of the
    member is in [0, 1] (False may also mean a -0.0: the caller settles it with NumPy)."""

    layout: MemberRows
    max_weight: np.ndarray
    valid: np.ndarray


def scan(X, D):
    """:class:`Scan` of inputs X (K, p, n_in) and double weights D (K, n_in + 1, n), C-contiguous
    and of one float dtype: ensemble_steps.max_weights, scan_inputs and MemberRows.from_active
    in one call."""
    K = D.shape[0]
    unsigned, magnitude, one = _UNIT_BITS[X.dtype]
    int_type, inf_bits = _INF_BITS[D.dtype]
    lo = np.empty(K, int_type)
    hi = np.empty(K, int_type)
    valid = np.zeros(K, np.bool_)
    active = np.zeros((K, X.shape[2] + 1), np.bool_)
    offsets = np.zeros(K + 1, np.int64)
    kernel = _scan_parallel if parallel(X.size + D.size, K) else _scan_serial
    rows = kernel(D.reshape(K, -1).view(int_type), X.view(unsigned), unsigned(magnitude), unsigned(one), lo, hi,
                  valid, active, offsets)
    max_weight = hi.view(D.dtype).astype(np.float64)
    max_weight[(lo < 0) | (hi >= inf_bits) | (hi == 0)] = np.nan
    return Scan(MemberRows.unchecked(rows, offsets, active.shape[1]), max_weight, valid)


def by_member(members, threads):
    """Whether a fused call gives each thread whole members (at least as many members as
    threads, or one thread) rather than splitting every member's work over the threads."""
    return members >= threads


def layer_forward(X, D, layout, k_V, G_off, G_on, max_weight, states, drawn, factors, slopes, intercepts,
                  residuals):
    """One forward pass of K members' PF layers: a :class:`FusedRead`.

    X (K, p, n_in) and D (K, m, n) C-contiguous, one float dtype; layout the MemberRows of the
    rows each member reads; k_V (V), G_off, G_on (S) and max_weight (= max D[k], > 0) (K,)
    float64; states (K, 4) uint64, each drawn member's PCG64 state (s_hi, s_lo, inc_hi, inc_lo);
    drawn (K,) bool; factors (K, 2, 2), slopes and intercepts (K, 2) float64 (the PF stage's
    covariance factor, s_c and s_d, b_c and b_d); residuals (2, R, n) in D's dtype, written with
    the drawn members' residuals (the others' must be there already). The caller checks the
    arguments (this is the hot path of :class:`memnp.nn.ensemble_read.StackedCrossbar`)."""
    K, p, _ = X.shape
    n = D.shape[2]
    R = layout.total
    dtype = D.dtype
    k_G = (G_on - G_off) / max_weight
    divisor = (k_V * (G_on - G_off) / max_weight).astype(dtype)
    G = np.empty((R, n), dtype)
    c = np.empty((R, n), dtype)
    d_eps = np.empty((R, n), dtype)
    V = np.empty(p * R, dtype)
    is_sparse = np.zeros(K, np.bool_)
    after = np.zeros((K, 2), np.uint64)
    I = np.empty((K, p, n), dtype)
    y = np.empty((K, p, n // 2), dtype)
    threads = numba.get_num_threads() if parallel(p * R * n, K) else 1
    kernel = _forward_parallel if threads > 1 else _forward_serial
    kernel(X, D, layout.rows, layout.offsets, k_V, k_G, G_off, states, drawn, factors, slopes, intercepts, divisor,
           float(sparse.min_zeros(n)), sparse.MIN_DEVICES, threads, by_member(K, threads), _padded_width(n),
           residuals, G, V, c, d_eps, is_sparse, after, I, y)
    return FusedRead(V, G, c, d_eps, I, is_sparse, y, after)


def layer_backward(read, grad_y, D, layout, k_V, G_off, G_on, max_weight, slopes, need_x):
    """The backward pass of :func:`layer_forward`'s ``read``: :class:`FusedGradients` from dL/dy
    (K, p, n / 2) C-contiguous in the read's dtype; the other arguments as :func:`layer_forward`'s.
    dL/dx (K, p, n_in) only when ``need_x`` (the member's rows not read get 0)."""
    I = read.I
    K, p, n = I.shape
    span = G_on - G_off
    kv_span = k_V * span
    scale = (max_weight / kv_span).astype(I.dtype)
    k_G = span / max_weight
    grad_max_weight = np.empty(K, np.float64)
    grad_D = np.zeros(D.shape, D.dtype)
    grad_x = np.zeros((K, p, layout.n_rows) if need_x else (0, 0, 0), I.dtype)
    threads = numba.get_num_threads() if parallel(p * layout.total * n, K) else 1
    kernel = _backward_parallel if threads > 1 else _backward_serial
    kernel(I, grad_y, scale, kv_span, read.V, read.c, read.d_eps, read.G, D, layout.rows, layout.offsets,
           read.is_sparse, _padded_width(n), bool(need_x), slopes, k_G, max_weight, threads, by_member(K, threads),
           grad_max_weight, grad_D, grad_x)
    return FusedGradients(grad_D, grad_x[:, :, :-1] if need_x else None, grad_max_weight)
