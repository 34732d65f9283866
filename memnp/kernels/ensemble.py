"""Crossbar kernels with a K axis: the PF and ideal reads of K members in one call (issue 15).

Layout (see :mod:`memnp.kernels.ensemble_layout`): ``layout`` is a :class:`MemberRows` (member k
reads r_k rows); V is voltage-packed (p R,) in volts, member k's block V_k (p, r_k); c (A/V),
d_eps (F/m), G (S) are row-packed (R, n); currents and dL/dI are (K, p, n) in A and 1/A. float32 V
gives float32 results, anything else float64; the other arrays are converted to V's dtype.

The rule: for every member, each result equals bit for bit what the ``cpu`` backend
(:mod:`memnp.kernels.cpu_auto`) returns for that member alone, ``pf_currents(V_k, c_k, d_eps_k)``
and so on. So, per member, this module makes the choice cpu_auto makes (:func:`memnp.kernels.cpu_auto.plan`:
the dense kernels of :mod:`memnp.kernels.cpu` or the zero-skipping ones of :mod:`memnp.kernels.sparse`)
and runs the very task functions those kernels run (``_pf_forward_task``, ``_pf_backward_row``,
``_forward_examples``, ``_backward_rows``) on the member's blocks, with the same per-call
preparation (example terms, padded device terms, transposed gradients). Those tasks' sums do not
depend on how the work is split over threads, and neither do these kernels'.

One call = one Numba kernel: the preparation, parallel over members; then the tasks of all
members in one ``prange``, T per member (T = threads): task t of a member takes every T-th
example (sparse forward), (block of examples, column) pair (dense forward) or row (backward) of
it. So with 2 threads both cores get work for any K, and where one member alone would run on
one thread (below :func:`memnp.kernels.cpu_auto.serial_below` device evaluations) the K members
together may not. A call below that threshold, over all members, runs a serial twin of the
kernel (the same functions in plain loops, without the parallel region's start-up cost).

Caveat (Numba, measured 2026-12-04). The task functions are called, not inlined, and Numba's JIT
binds such a call to the callee's own compiled library when the process has loaded it (it does
whenever it compiles a caller afresh), else to the caller's private copy; the two can round
horizontal sums differently in the last bit (seen in the sparse dL/dV). The single kernels are
subject to the same binding. So a K-axis kernel compiled in this process and a single kernel
loaded from the on-disk cache can differ in the last bits (in the first process after one of
them was recompiled); two kernels in the same state (both cached, or both compiled in one
process) agree bit for bit, which tests/ensemble_cases.py checks in a fresh process. After
editing cpu.py or sparse.py, delete the cached K-axis kernels too
(``memnp/kernels/__pycache__/ensemble_pf.*.nbi`` and ``*.nbc``): Numba's cache only watches a
kernel's own source file, and these kernels hold copies of cpu.py's and sparse.py's task code.

``fused`` (:mod:`memnp.kernels.ensemble_fused`) holds a PF layer's whole forward pass (mapping,
draws, device parameters, currents, outputs) and backward pass in one call each, built from the
same task functions; the stacked ensemble layers use it where every stair runs these loops.
``chip`` (:mod:`memnp.kernels.ensemble_chip`) holds a combined stage's crossbar phases (draws,
conductance chain, DAC, tiled PF read with ADCs, and their VJPs) of every member in one call.

The ideal read (V_k @ G_k) is BLAS per member (as cpu_auto's ``ideal_currents``), so its K-axis
form is a loop of BLAS calls. :mod:`memnp.kernels.ensemble_reference` holds the plain loops over
members that these functions are tested against.
"""
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from . import cpu, cpu_auto, sparse
from .cpu import EXAMPLE_BLOCK
from .cpu_auto import serial_below
from .ensemble_layout import MemberRows
from . import ensemble_chip as chip  # noqa: F401  (the backend's K-axis combined-stage read)
from . import ensemble_fused as fused
from .ensemble_pf import _backward_parallel, _backward_serial, _forward_parallel, _forward_serial
from .sparse import _padded_width

__all__ = ["PFGradients", "IdealGradients", "pf_currents", "pf_currents_vjp", "pf_powers",
           "ideal_currents", "ideal_currents_vjp", "ideal_powers", "Plan", "plan", "plan_reference"]


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
    device evaluations of all members together (``evaluations``, as :func:`cpu_auto.plan` counts)."""

    is_sparse: np.ndarray
    evaluations: int


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
    """The :class:`Plan` of voltage-packed V (float32/float64) for a crossbar of n columns: per
    member the choice of :func:`memnp.kernels.cpu_auto.plan` (what cpu_auto runs for that member
    alone), with the zeros of every member counted in one pass. :func:`plan_reference` asks
    cpu_auto.plan member by member (the tests check that the two agree)."""
    p = layout.batch(V)
    counts = layout.counts()
    sizes = p * counts
    devices = counts * n
    zeros = np.zeros(layout.members, dtype=np.int64)
    _count_member_zeros(V, layout.offsets, p, zeros)
    # cpu_auto.plan: the dense kernels below MIN_DEVICES devices or for an empty V; the sparse ones
    # from min_zeros(n) of V's entries exactly 0.
    is_sparse = (devices >= sparse.MIN_DEVICES) & (sizes > 0) & (zeros >= sparse.min_zeros(n) * sizes)
    evaluations = np.where(is_sparse, (sizes - zeros) * n, sizes * n)
    return Plan(is_sparse, int(evaluations.sum()))


@njit(cache=True)
def _count_member_zeros(V, offsets, p, zeros):
    for k in range(offsets.size - 1):
        r = offsets[k + 1] - offsets[k]
        zeros[k] = sparse._count_zeros(V[p * offsets[k]:p * offsets[k + 1]].reshape((p, r)))


def plan_reference(V, layout, n):
    """:func:`plan` from :func:`memnp.kernels.cpu_auto.plan`, member by member."""
    p = layout.batch(V)
    is_sparse = np.zeros(layout.members, dtype=np.bool_)
    evaluations = 0
    for k in range(layout.members):
        module, count = cpu_auto.plan(layout.block(V, k, p), n)
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
    widths = np.where(chosen.is_sparse, nn, n)
    out_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(p * widths, out=out_offsets[1:])
    # Tasks per member: a sparse member's examples are split over as many tasks as threads (one
    # stride each), a dense member's (block of examples, column) pairs likewise.
    units = np.where(chosen.is_sparse, max(p, 1), (p + EXAMPLE_BLOCK - 1) // EXAMPLE_BLOCK * n)
    task_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(np.minimum(threads, units), out=task_offsets[1:])
    I = np.empty((layout.members, p, n) if not power else (0, 0, 0), dtype=V.dtype)
    kernel = _forward_serial if threads == 1 else _forward_parallel
    out = kernel(V, c, d_eps, layout.offsets, p, chosen.is_sparse, nn, bool(power), out_offsets,
                 task_offsets, I)
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
    # Tasks per member: its rows split over as many tasks as threads (every T-th row each).
    task_offsets = np.zeros(layout.members + 1, np.int64)
    np.cumsum(np.minimum(threads, layout.counts()), out=task_offsets[1:])
    kernel = _backward_serial if threads == 1 else _backward_parallel
    grad_V, grad_c, grad_d_eps = kernel(V, c, d_eps, grad_I, layout.offsets, p, chosen.is_sparse, nn,
                                        bool(need_V), task_offsets)
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
