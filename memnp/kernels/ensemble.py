"""Crossbar kernels with a K axis: the PF and ideal reads of K members in one call (issue 15).

Layout (see :mod:`memnp.kernels.ensemble_layout`): ``layout`` is a :class:`MemberRows` (member k
reads r_k rows); V is voltage-packed (p R,) in volts, member k's block V_k (p, r_k); c (A/V),
d_eps (F/m), G (S) are row-packed (R, n); currents and dL/dI are (K, p, n) in A and 1/A. float32 V
gives float32 results, anything else float64; the other arrays are converted to V's dtype.

The rule: for every member, each result equals bit for bit what the ``cpu`` backend
(:mod:`memnp.kernels.cpu_auto`) returns for that member alone, ``pf_currents(V_k, c_k, d_eps_k)``
and so on. So, per member, this module makes the choice cpu_auto makes (:func:`memnp.kernels.sparse.plan`:
the dense kernels of :mod:`memnp.kernels.cpu` or the zero-skipping ones of :mod:`memnp.kernels.sparse`)
and runs the very task functions those kernels run (``_pf_forward_task``, ``_pf_backward_row``,
``_forward_examples``, ``_backward_rows``) on the member's blocks, with the same per-call
preparation (example terms, padded device terms, transposed gradients). Those tasks' sums do not
depend on how the work is split over threads, and neither do these kernels'.

One call = one Numba kernel: the preparation, parallel over members; then the tasks of all
members in one ``prange``: a dense member contributes (block of examples, column) tasks (forward)
or one task per row (backward), a sparse member one task per thread, each taking every T-th
example (forward) or row (backward) of the member. With 2 threads and K >= 2 both cores get work
even where one member alone would run on one thread. A call whose device evaluations, over all
members, are below :func:`memnp.kernels.cpu_auto.serial_below` runs a serial twin of the kernel
(the same task functions in plain loops, without the parallel region's start-up cost).

Caveat (Numba, measured 2026-12-04). The task functions are called, not inlined, and Numba's JIT
binds such a call to the callee's own compiled library when the process has loaded it (it does
whenever it compiles a caller afresh), else to the caller's private copy; the two can round
horizontal sums differently in the last bit (seen in the sparse dL/dV). The single kernels are
subject to the same binding. So a K-axis kernel compiled in this process and a single kernel
loaded from the on-disk cache can differ in the last bits, once; two kernels in the same state
(both cached, or both compiled in one process) agree bit for bit. tests/ensemble_cases.py checks
it in a fresh process. After editing cpu.py or sparse.py, delete this module's cached kernels
too (``memnp/kernels/__pycache__/ensemble.*.nbi`` and ``*.nbc``): Numba's cache only watches a
kernel's own source file, and these kernels hold copies of cpu.py's and sparse.py's task code.

The ideal read (V_k @ G_k) is BLAS per member (as cpu_auto's ``ideal_currents``), so its K-axis
form is a loop of BLAS calls. :mod:`memnp.kernels.ensemble_reference` holds the plain loops over
members that these functions are tested against.
"""
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from . import cpu, sparse
from .cpu import EXAMPLE_BLOCK, EXAMPLE_PAD, KERNEL_FASTMATH, _PRANGE_ONLY, _device_term, _example_term
from .cpu_auto import serial_below
from .ensemble_layout import MemberRows
from .fastexp import wide_vectors
from .sparse import _backward_rows, _forward_examples, _padded_width

__all__ = ["PFGradients", "IdealGradients", "pf_currents", "pf_currents_vjp", "pf_powers",
           "ideal_currents", "ideal_currents_vjp", "ideal_powers", "plan"]


@dataclass(frozen=True)
class PFGradients:
    """dL/dV (p R,) voltage-packed or None, dL/dc and dL/d(d_eps) (R, n) row-packed, V's dtype."""

    grad_V: object
    grad_c: np.ndarray
    grad_d_eps: np.ndarray


@dataclass(frozen=True)
class IdealGradients:
    """dL/dV (p R,) voltage-packed or None, dL/dG (R, n) row-packed, V's dtype."""

    grad_V: object
    grad_G: np.ndarray


@dataclass(frozen=True)
class Plan:
    """Per member, whether cpu_auto would run the sparse kernels (``is_sparse`` (K,) bool), and the
    device evaluations of all members together (``evaluations``, as :func:`sparse.plan` counts)."""

    is_sparse: np.ndarray
    evaluations: int


# --- kernels ---------------------------------------------------------------------------------

@njit(cache=True)
def _member_of(offsets, index):
    """k with offsets[k] <= index < offsets[k + 1] (offsets non-decreasing; binary search)."""
    lo = 0
    hi = offsets.size - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offsets[mid] <= index:
            lo = mid
        else:
            hi = mid
    return lo


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _device_terms_into(c, d_eps, cw, k, absolute):
    """sparse._device_terms written into cw, k (r, nn): |c| or c and the device term, zeros in
    the padding columns."""
    m, n = c.shape
    nn = cw.shape[1]
    zero = c.dtype.type(0.0)
    for i in range(m):
        for j in range(n):
            cw[i, j] = abs(c[i, j]) if absolute else c[i, j]
            k[i, j] = _device_term(d_eps[i, j])
        for j in range(n, nn):
            cw[i, j] = zero
            k[i, j] = zero


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_prep(k, V, c, d_eps, offsets, p, is_sparse, power, X, W, cw, kt):
    """Member k's per-call preparation, as cpu's or sparse's forward kernel makes it: example
    terms X (and V**2 in W for power) of a dense member, padded device terms of a sparse one."""
    o0 = offsets[k]
    o1 = offsets[k + 1]
    if is_sparse[k]:
        _device_terms_into(c[o0:o1], d_eps[o0:o1], cw[o0:o1], kt[o0:o1], power)
    else:
        for q in range(p * o0, p * o1):
            X[q] = _example_term(abs(V[q]))
        if power:
            for q in range(p * o0, p * o1):
                W[q] = V[q] * V[q]


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_task(task, V, c, d_eps, offsets, p, is_sparse, nn, power, strides, out_offsets,
                  task_offsets, X, W, cw, kt, out):
    """One task: a (block of examples, column) pair of a dense member (cpu._pf_forward_task) or
    every strides-th example of a sparse member (sparse._forward_examples)."""
    n = c.shape[1]
    k = _member_of(task_offsets, task)
    t = task - task_offsets[k]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    Vk = V[p * o0:p * o1].reshape((p, r))
    if is_sparse[k]:
        outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, nn))
        _forward_examples(t, strides, Vk, cw[o0:o1], kt[o0:o1], power, outk)
    else:
        outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, n))
        b = t // n
        j = t - b * n
        first = b * EXAMPLE_BLOCK
        Wk = W[p * o0:p * o1].reshape((p, r)) if power else Vk
        cpu._pf_forward_task(j, first, min(first + EXAMPLE_BLOCK, p), Wk,
                             X[p * o0:p * o1].reshape((p, r)), c[o0:o1], d_eps[o0:o1], power, outk)


@njit(error_model="numpy", cache=True)
def _cast_member(k, out, out_offsets, is_sparse, p, nn, I):
    """I[k] = member k's float64 sums (its first n columns) in I's dtype (as astype)."""
    n = I.shape[2]
    w = nn if is_sparse[k] else n
    outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, w))
    for q in range(p):
        for j in range(n):
            I[k, q, j] = outk[q, j]


@njit(cache=True)
def _forward_buffers(V, c, nn, power, out_offsets):
    """(X, W, cw, kt, out): the work arrays of the forward kernels."""
    R = c.shape[0]
    return (np.empty(V.size, dtype=V.dtype), np.empty(V.size if power else 0, dtype=V.dtype),
            np.empty((R, nn), dtype=V.dtype), np.empty((R, nn), dtype=V.dtype),
            np.zeros(out_offsets[out_offsets.size - 1], dtype=np.float64))


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_parallel(V, c, d_eps, offsets, p, is_sparse, nn, power, strides, out_offsets, task_offsets, I):
    """The forward pass of every member on Numba's threads: float64 sums ``out``, member k's
    (p, w_k) block at out_offsets[k] (w_k = nn sparse, n dense), as cpu's or sparse's forward
    kernel returns them; and, unless power, I (K, p, n) filled from them."""
    X, W, cw, kt, out = _forward_buffers(V, c, nn, power, out_offsets)
    K = offsets.size - 1
    for k in prange(K):
        _forward_prep(k, V, c, d_eps, offsets, p, is_sparse, power, X, W, cw, kt)
    for task in prange(task_offsets[K]):
        wide_vectors()
        # int64 task index (prange's is unsigned): the task functions then call the single
        # kernels' functions with exactly the single kernels' argument types.
        _forward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, nn, power, strides, out_offsets,
                      task_offsets, X, W, cw, kt, out)
    if not power:
        for k in prange(K):
            _cast_member(k, out, out_offsets, is_sparse, p, nn, I)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_serial(V, c, d_eps, offsets, p, is_sparse, nn, power, strides, out_offsets, task_offsets, I):
    """:func:`_forward_parallel` on the calling thread (no parallel-region overhead)."""
    wide_vectors()
    X, W, cw, kt, out = _forward_buffers(V, c, nn, power, out_offsets)
    K = offsets.size - 1
    for k in range(K):
        _forward_prep(k, V, c, d_eps, offsets, p, is_sparse, power, X, W, cw, kt)
    for task in range(task_offsets[K]):
        _forward_task(task, V, c, d_eps, offsets, p, is_sparse, nn, power, strides, out_offsets,
                      task_offsets, X, W, cw, kt, out)
    if not power:
        for k in range(K):
            _cast_member(k, out, out_offsets, is_sparse, p, nn, I)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_prep(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V):
    """Member k's per-call preparation, as cpu's or sparse's backward kernel makes it: dL/dI
    transposed and zero-padded to pp examples (dense), or dL/dI padded to nn columns, V_k
    transposed, padded device terms and zeroed dL/dV (sparse)."""
    n = c.shape[1]
    nn = cw.shape[1]
    zero = V.dtype.type(0.0)
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    if is_sparse[k]:
        _device_terms_into(c[o0:o1], d_eps[o0:o1], cw[o0:o1], kt[o0:o1], False)
        g = gbuf[k * gsize:k * gsize + p * nn].reshape((p, nn))
        Vk = V[p * o0:p * o1].reshape((p, r))
        VTk = VT[p * o0:p * o1].reshape((r, p))
        for q in range(p):
            for j in range(n):
                g[q, j] = grad_I[k, q, j]
            for j in range(n, nn):
                g[q, j] = zero
            for i in range(r):
                VTk[i, q] = Vk[q, i]
        if need_V:
            for q in range(p * o0, p * o1):
                grad_V[q] = zero
    else:
        pp = (p + EXAMPLE_PAD - 1) // EXAMPLE_PAD * EXAMPLE_PAD
        gT = gbuf[k * gsize:k * gsize + n * pp].reshape((n, pp))
        for j in range(n):
            for q in range(p):
                gT[j, q] = grad_I[k, q, j]
            for q in range(p, pp):
                gT[j, q] = zero


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_task(task, V, c, d_eps, offsets, p, is_sparse, need_V, strides, task_offsets, gsize,
                   gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps):
    """One task: a row of a dense member (cpu._pf_backward_row) or every T-th row of a sparse
    member, T = min(strides, r_k) (sparse._backward_rows)."""
    n = c.shape[1]
    nn = cw.shape[1]
    pp = (p + EXAMPLE_PAD - 1) // EXAMPLE_PAD * EXAMPLE_PAD
    k = _member_of(task_offsets, task)
    t = task - task_offsets[k]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    gVk = grad_V[p * o0:p * o1].reshape((p, r)) if need_V else grad_V.reshape((0, 0))
    if is_sparse[k]:
        _backward_rows(t, min(strides, max(r, 1)), VT[p * o0:p * o1].reshape((r, p)),
                       c[o0:o1], d_eps[o0:o1], cw[o0:o1], kt[o0:o1],
                       gbuf[k * gsize:k * gsize + p * nn].reshape((p, nn)), need_V, gVk,
                       grad_c[o0:o1], grad_d_eps[o0:o1])
    else:
        cpu._pf_backward_row(t, V[p * o0:p * o1].reshape((p, r)), c[o0:o1], d_eps[o0:o1],
                             gbuf[k * gsize:k * gsize + n * pp].reshape((n, pp)), need_V, gVk,
                             grad_c[o0:o1], grad_d_eps[o0:o1])


@njit(cache=True)
def _backward_buffers(V, c, offsets, p, nn, need_V):
    """(gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps): the backward kernels' arrays."""
    R, n = c.shape
    K = offsets.size - 1
    pp = (p + EXAMPLE_PAD - 1) // EXAMPLE_PAD * EXAMPLE_PAD
    gsize = max(n * pp, p * nn)
    dtype = V.dtype
    return (gsize, np.empty(K * gsize, dtype=dtype), np.empty(V.size, dtype=dtype),
            np.empty((R, nn), dtype=dtype), np.empty((R, nn), dtype=dtype),
            np.empty(V.size if need_V else 0, dtype=dtype), np.empty((R, n), dtype=dtype),
            np.empty((R, n), dtype=dtype))


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_parallel(V, c, d_eps, grad_I, offsets, p, is_sparse, nn, need_V, strides, task_offsets):
    """grad_V (p R,) (or (0,)), grad_c, grad_d_eps (R, n) of every member, on Numba's threads."""
    gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps = _backward_buffers(V, c, offsets, p, nn, need_V)
    K = offsets.size - 1
    for k in prange(K):
        _backward_prep(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V)
    for task in prange(task_offsets[K]):
        wide_vectors()
        _backward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, need_V, strides, task_offsets, gsize,
                       gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps)
    return grad_V, grad_c, grad_d_eps


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_serial(V, c, d_eps, grad_I, offsets, p, is_sparse, nn, need_V, strides, task_offsets):
    """:func:`_backward_parallel` on the calling thread."""
    wide_vectors()
    gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps = _backward_buffers(V, c, offsets, p, nn, need_V)
    K = offsets.size - 1
    for k in range(K):
        _backward_prep(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V)
    for task in range(task_offsets[K]):
        _backward_task(task, V, c, d_eps, offsets, p, is_sparse, need_V, strides, task_offsets, gsize,
                       gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps)
    return grad_V, grad_c, grad_d_eps


# --- Python wrappers ----------------------------------------------------------------------------

def _dtype(V):
    return np.dtype(np.float32) if np.asarray(V).dtype == np.float32 else np.dtype(np.float64)


def _check(V, arrays, layout):
    """(V (p R,), row-packed arrays (R, n), p) in V's precision, C-contiguous; ValueError on
    shapes that do not fit the layout."""
    if not isinstance(layout, MemberRows):
        raise ValueError(f"layout must be a MemberRows; got {type(layout).__name__}")
    dtype = _dtype(V)
    V = np.ascontiguousarray(V, dtype=dtype)
    p = layout.batch(V)
    out = []
    for name, a in arrays:
        a = np.ascontiguousarray(a, dtype=dtype)
        if a.ndim != 2 or a.shape[0] != layout.total or (out and a.shape != out[0].shape):
            raise ValueError(f"{name} must be row-packed: shape (R, n) with R = {layout.total} rows "
                             f"read{'' if not out else f' and n = {out[0].shape[1]}'}; got {a.shape}")
        out.append(a)
    return V, out, p


def _grad_I(grad_I, layout, p, n, dtype):
    grad_I = np.ascontiguousarray(grad_I, dtype=dtype)
    if grad_I.shape != (layout.members, p, n):
        raise ValueError(f"grad_I must have shape (K, p, n) = {(layout.members, p, n)}; got {grad_I.shape}")
    return grad_I


def plan(V, layout, n):
    """The :class:`Plan` of voltage-packed V for a crossbar of n columns: per member the choice
    of :func:`memnp.kernels.sparse.plan` (what cpu_auto runs for that member alone)."""
    p = layout.batch(V)
    is_sparse = np.zeros(layout.members, dtype=np.bool_)
    evaluations = 0
    for k in range(layout.members):
        module, count = sparse.plan(layout.block(V, k, p), n)
        is_sparse[k] = module is sparse
        evaluations += count
    return Plan(is_sparse, int(evaluations))


def _threads(evaluations):
    """Threads for a call of that many device evaluations (cpu_auto's rule, over all members)."""
    return 1 if evaluations < serial_below() else numba.get_num_threads()


def _forward(V, c, d_eps, layout, power):
    """(float64 sums, out_offsets, Plan, I (K, p, n) or None, p, n, nn) of the forward pass."""
    V, (c, d_eps), p = _check(V, (("c", c), ("d_eps", d_eps)), layout)
    n = c.shape[1]
    nn = _padded_width(n)
    chosen = plan(V, layout, n)
    threads = _threads(chosen.evaluations)
    strides = min(threads, max(p, 1))
    widths = np.where(chosen.is_sparse, nn, n)
    out_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(p * widths, out=out_offsets[1:])
    blocks = (p + EXAMPLE_BLOCK - 1) // EXAMPLE_BLOCK
    tasks = np.where(chosen.is_sparse, strides, blocks * n)
    task_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(tasks, out=task_offsets[1:])
    I = np.empty((layout.members, p, n) if not power else (0, 0, 0), dtype=V.dtype)
    kernel = _forward_serial if threads == 1 else _forward_parallel
    out = kernel(V, c, d_eps, layout.offsets, p, chosen.is_sparse, nn, bool(power), strides,
                 out_offsets, task_offsets, I)
    return out, out_offsets, chosen, I, p, n, nn


def pf_currents(V, c, d_eps, layout):
    """Column currents I (K, p, n) in A of every member's PF crossbar; I[k] equals cpu_auto's
    ``pf_currents(V_k, c_k, d_eps_k)`` bit for bit."""
    return _forward(V, c, d_eps, layout, False)[3]


def pf_powers(V, c, d_eps, layout):
    """(K,) float64: each member's average PF crossbar power (W) over its batch, cpu_auto's
    ``pf_power(V_k, c_k, d_eps_k)`` (nan when p = 0)."""
    out, out_offsets, chosen, _, p, n, nn = _forward(V, c, d_eps, layout, True)
    powers = np.full(layout.members, np.nan)
    if p:
        for k in range(layout.members):
            w = nn if chosen.is_sparse[k] else n
            # The same NumPy sum over the same (p, w) array as the single kernel's.
            powers[k] = float(out[out_offsets[k]:out_offsets[k + 1]].reshape(p, w).sum() / p)
    return powers


def pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V=True):
    """:class:`PFGradients` of :func:`pf_currents` from dL/dI (K, p, n); member k's blocks equal
    cpu_auto's ``pf_currents_vjp(V_k, c_k, d_eps_k, grad_I[k], need_V)``. dL/dV is None unless
    ``need_V``; it is 0 where V is exactly 0."""
    V, (c, d_eps), p = _check(V, (("c", c), ("d_eps", d_eps)), layout)
    n = c.shape[1]
    grad_I = _grad_I(grad_I, layout, p, n, V.dtype)
    nn = _padded_width(n)
    chosen = plan(V, layout, n)
    threads = _threads(chosen.evaluations)
    counts = layout.counts()
    tasks = np.where(chosen.is_sparse, np.minimum(threads, np.maximum(counts, 1)), counts)
    task_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(tasks, out=task_offsets[1:])
    kernel = _backward_serial if threads == 1 else _backward_parallel
    grad_V, grad_c, grad_d_eps = kernel(V, c, d_eps, grad_I, layout.offsets, p, chosen.is_sparse, nn,
                                        bool(need_V), threads, task_offsets)
    return PFGradients(grad_V if need_V else None, grad_c, grad_d_eps)


def _check_ideal(V, G, layout):
    V, (G,), p = _check(V, (("G", G),), layout)
    return V, G, p


def ideal_currents(V, G, layout):
    """Column currents I (K, p, n) in A of every member's ideal crossbar: I[k] = V_k @ G_k (BLAS,
    as cpu_auto's ``ideal_currents``)."""
    V, G, p = _check_ideal(V, G, layout)
    I = np.empty((layout.members, p, G.shape[1]), dtype=V.dtype)
    for k in range(layout.members):
        I[k] = layout.block(V, k, p) @ layout.row_block(G, k)
    return I


def ideal_currents_vjp(V, G, layout, grad_I, need_V=True):
    """:class:`IdealGradients` of :func:`ideal_currents`: per member dL/dV_k = dL/dI_k G_k^T and
    dL/dG_k = V_k^T dL/dI_k (what the crossbar pass computes for one network)."""
    V, G, p = _check_ideal(V, G, layout)
    grad_I = _grad_I(grad_I, layout, p, G.shape[1], V.dtype)
    grad_V = np.empty(V.size, dtype=V.dtype) if need_V else None
    grad_G = np.empty(G.shape, dtype=V.dtype)
    for k in range(layout.members):
        Gk = layout.row_block(G, k)
        Vk = layout.block(V, k, p)
        if need_V:
            layout.block(grad_V, k, p)[...] = grad_I[k] @ Gk.T
        grad_G[layout.offsets[k]:layout.offsets[k + 1]] = Vk.T @ grad_I[k]
    return IdealGradients(grad_V, grad_G)


def ideal_powers(V, G, layout):
    """(K,) float64: each member's average ideal crossbar power (W), cpu's ``ideal_power(V_k, G_k)``."""
    V, G, p = _check_ideal(V, G, layout)
    return np.array([cpu.ideal_power(layout.block(V, k, p), layout.row_block(G, k))
                     for k in range(layout.members)], dtype=np.float64)
