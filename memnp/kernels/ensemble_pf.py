"""The Numba kernels behind :mod:`memnp.kernels.ensemble` (PF reads of K members in one call).

Shapes and layout as there: V voltage-packed (p R,), c and d_eps row-packed (R, n), dL/dI
(K, p, n); ``offsets`` (K + 1,) the members' row offsets; ``is_sparse`` (K,) which members run the
zero-skipping kernels; ``task_offsets`` (K + 1,) the members' first task. Each driver exists
twice, parallel (``prange``) and serial (plain loops, for calls below the one-thread threshold),
running the same preparation and task functions, which call the single kernels' task functions
(cpu._pf_forward_task, cpu._pf_backward_row, sparse._forward_examples, sparse._backward_rows).
"""
import numpy as np
from numba import njit, prange

from . import cpu
from .cpu import EXAMPLE_BLOCK, EXAMPLE_PAD, KERNEL_FASTMATH, _PRANGE_ONLY, _device_term, _example_term
from .fastexp import wide_vectors
from .sparse import _backward_rows, _forward_examples


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
def _forward_task(task, V, c, d_eps, offsets, p, is_sparse, nn, power, out_offsets, task_offsets,
                  X, W, cw, kt, out):
    """Task t of the S tasks of a member (S = its share of task_offsets): every S-th example of a
    sparse member (sparse._forward_examples), or every S-th (block of examples, column) pair of a
    dense one (cpu._pf_forward_task for each)."""
    n = c.shape[1]
    k = _member_of(task_offsets, task)
    t = task - task_offsets[k]
    S = task_offsets[k + 1] - task_offsets[k]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    Vk = V[p * o0:p * o1].reshape((p, r))
    if is_sparse[k]:
        outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, nn))
        _forward_examples(t, S, Vk, cw[o0:o1], kt[o0:o1], power, outk)
    else:
        outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, n))
        Wk = W[p * o0:p * o1].reshape((p, r)) if power else Vk
        Xk = X[p * o0:p * o1].reshape((p, r))
        ck = c[o0:o1]
        dk = d_eps[o0:o1]
        blocks = (p + EXAMPLE_BLOCK - 1) // EXAMPLE_BLOCK
        for unit in range(t, blocks * n, S):
            b = unit // n
            j = unit - b * n
            first = b * EXAMPLE_BLOCK
            cpu._pf_forward_task(j, first, min(first + EXAMPLE_BLOCK, p), Wk, Xk, ck, dk, power, outk)


@njit(error_model="numpy", cache=True)
def _cast_member(k, out, out_offsets, is_sparse, p, nn, I):
    """I[k] = member k's float64 sums (its first n columns) in I's dtype (as astype)."""
    n = I.shape[2]
    w = nn if is_sparse[k] else n
    outk = out[out_offsets[k]:out_offsets[k + 1]].reshape((p, w))
    for q in range(p):
        for j in range(n):
            I[k, q, j] = outk[q, j]


@njit(error_model="numpy", cache=True)
def _member_currents(k, V, c, d_eps, offsets, p, is_sparse, nn, X, W, cw, kt, I_k):
    """Member k's currents in one task (whole members per thread), after its
    :func:`_forward_prep`: the task function with the member's own offsets, its float64 sums cast
    into I_k (1, p, n) in I_k's dtype."""
    w = nn if is_sparse[k] else I_k.shape[2]
    out = np.zeros(p * w, dtype=np.float64)
    out_offsets = np.array([0, p * w], dtype=np.int64)
    one_task = np.array([0, 1], dtype=np.int64)
    _forward_task(np.int64(0), V, c, d_eps, offsets[k:k + 2], p, is_sparse[k:k + 1], nn, False, out_offsets,
                  one_task, X, W, cw, kt, out)
    _cast_member(0, out, out_offsets, is_sparse[k:k + 1], p, nn, I_k)


@njit(cache=True)
def _forward_buffers(V, c, nn, power, out_offsets):
    """(X, W, cw, kt, out): the work arrays of the forward kernels."""
    R = c.shape[0]
    return (np.empty(V.size, dtype=V.dtype), np.empty(V.size if power else 0, dtype=V.dtype),
            np.empty((R, nn), dtype=V.dtype), np.empty((R, nn), dtype=V.dtype),
            np.zeros(out_offsets[out_offsets.size - 1], dtype=np.float64))


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_parallel(V, c, d_eps, offsets, p, is_sparse, nn, power, out_offsets, task_offsets, I):
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
        _forward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, nn, power, out_offsets,
                      task_offsets, X, W, cw, kt, out)
    if not power:
        for k in prange(K):
            _cast_member(k, out, out_offsets, is_sparse, p, nn, I)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_serial(V, c, d_eps, offsets, p, is_sparse, nn, power, out_offsets, task_offsets, I):
    """:func:`_forward_parallel` on the calling thread (no parallel-region overhead)."""
    wide_vectors()
    X, W, cw, kt, out = _forward_buffers(V, c, nn, power, out_offsets)
    K = offsets.size - 1
    for k in range(K):
        _forward_prep(k, V, c, d_eps, offsets, p, is_sparse, power, X, W, cw, kt)
    for task in range(task_offsets[K]):
        _forward_task(task, V, c, d_eps, offsets, p, is_sparse, nn, power, out_offsets,
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
def _backward_task(task, V, c, d_eps, offsets, p, is_sparse, need_V, task_offsets, gsize,
                   gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps):
    """Task t of the S tasks of a member (S = its share of task_offsets): rows t, t + S, ... of
    the member, by sparse._backward_rows (sparse member) or cpu._pf_backward_row (dense)."""
    n = c.shape[1]
    nn = cw.shape[1]
    pp = (p + EXAMPLE_PAD - 1) // EXAMPLE_PAD * EXAMPLE_PAD
    k = _member_of(task_offsets, task)
    t = task - task_offsets[k]
    S = task_offsets[k + 1] - task_offsets[k]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    gVk = grad_V[p * o0:p * o1].reshape((p, r)) if need_V else grad_V.reshape((0, 0))
    if is_sparse[k]:
        _backward_rows(t, S, VT[p * o0:p * o1].reshape((r, p)), c[o0:o1], d_eps[o0:o1], cw[o0:o1],
                       kt[o0:o1], gbuf[k * gsize:k * gsize + p * nn].reshape((p, nn)), need_V, gVk,
                       grad_c[o0:o1], grad_d_eps[o0:o1])
    else:
        Vk = V[p * o0:p * o1].reshape((p, r))
        ck = c[o0:o1]
        dk = d_eps[o0:o1]
        gT = gbuf[k * gsize:k * gsize + n * pp].reshape((n, pp))
        gck = grad_c[o0:o1]
        gdk = grad_d_eps[o0:o1]
        for i in range(t, r, S):
            cpu._pf_backward_row(i, Vk, ck, dk, gT, need_V, gVk, gck, gdk)


@njit(error_model="numpy", cache=True)
def _member_vjp(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, g, VT, cw, kt, grad_V, grad_c,
                grad_d_eps):
    """Member k's VJP in one task (whole members per thread): :func:`_backward_prep` and the task
    function with the member's own offsets; g (gsize,) its part of the gradient buffer."""
    one_task = np.array([0, 1], dtype=np.int64)
    _backward_prep(0, V, c, d_eps, grad_I[k:k + 1], offsets[k:k + 2], p, is_sparse[k:k + 1], need_V, gsize, g, VT,
                   cw, kt, grad_V)
    _backward_task(np.int64(0), V, c, d_eps, offsets[k:k + 2], p, is_sparse[k:k + 1], need_V, one_task, gsize, g,
                   VT, cw, kt, grad_V, grad_c, grad_d_eps)


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
def _backward_parallel(V, c, d_eps, grad_I, offsets, p, is_sparse, nn, need_V, task_offsets):
    """grad_V (p R,) (or (0,)), grad_c, grad_d_eps (R, n) of every member, on Numba's threads."""
    gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps = _backward_buffers(V, c, offsets, p, nn, need_V)
    K = offsets.size - 1
    for k in prange(K):
        _backward_prep(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V)
    for task in prange(task_offsets[K]):
        wide_vectors()
        _backward_task(np.int64(task), V, c, d_eps, offsets, p, is_sparse, need_V, task_offsets, gsize,
                       gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps)
    return grad_V, grad_c, grad_d_eps


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_serial(V, c, d_eps, grad_I, offsets, p, is_sparse, nn, need_V, task_offsets):
    """:func:`_backward_parallel` on the calling thread."""
    wide_vectors()
    gsize, gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps = _backward_buffers(V, c, offsets, p, nn, need_V)
    K = offsets.size - 1
    for k in range(K):
        _backward_prep(k, V, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V)
    for task in range(task_offsets[K]):
        _backward_task(task, V, c, d_eps, offsets, p, is_sparse, need_V, task_offsets, gsize,
                       gbuf, VT, cw, kt, grad_V, grad_c, grad_d_eps)
    return grad_V, grad_c, grad_d_eps
