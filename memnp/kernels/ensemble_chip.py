"""The crossbar phases of a combined stage for K ensemble members in one Numba call per pass (issue 15).

Under a combined stage (D2D, drift, stuck devices, read noise, DAC, PF, ADC, tiles; the
``siox-high-chip`` preset) each member's read runs, in its own
:class:`memnp.crossbar.CrossbarPass`: the draws, the conductance chain and the PF device
parameters in one serial kernel (:func:`memnp.kernels.stage_draws._all_apply`), the DAC
(:func:`memnp.kernels.periphery._quantise`), and the tiled read with its ADCs (the one-pass loop
of :mod:`memnp.kernels.tiling` for several rows of arrays; for one row of arrays the PF currents
of :mod:`memnp.kernels.cpu` or :mod:`memnp.kernels.sparse`, as memnp.kernels.cpu_auto.plan picks
them, then :func:`memnp.kernels.periphery._adc_sum`). Backward: the PF VJP (dense or
zero-skipping, as plan picks), the PF device parameters' VJP (:mod:`memnp.kernels.pf_devices`),
the conductance chain's VJP (:mod:`memnp.kernels.conductance_chain`); the DAC and the ADCs pass
the gradient straight through (a member whose ADC clipped is left to the caller).

:func:`forward` and :func:`backward` run those very serial functions, member by member, in one
``prange`` over the members (whole members per thread), with each member's PCG64 state and
arguments as its own read computes them: every number equals the member's own read bit for bit,
and the order of the threads changes none. (:mod:`memnp.nn.ensemble_chip_read` prepares the
arguments and falls back to the members' own passes where this path does not apply.)

Layout as in :mod:`memnp.kernels.ensemble_layout`: member k reads rows offsets[k]:offsets[k+1] of
the row-packed arrays (R, n) (G, G'', c, d_eps, the draws flat (R n,)), and its voltages are the
block V[p offsets[k]:p offsets[k+1]] (p, r_k) of the voltage-packed V (p R,) in volts; currents I
(K, p, n) in A; conductances in S; c in A/V, d_eps in F/m.
"""
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from . import conductance_chain, periphery, stage_draws
from .cpu_auto import serial_below
from .ensemble_fused import _compiled
from .ensemble_pf import _backward_buffers, _backward_prep, _backward_task, _forward_prep, _member_currents, _member_vjp
from .fastexp import wide_vectors
from .pf_devices import _parameters_vjp
from .sparse import _count_zeros, _device_terms, _padded_width
from .tiling import _tiled_adc_examples

__all__ = ["ChipRead", "forward", "backward", "parallel"]


@dataclass(frozen=True)
class ChipRead:
    """What :func:`forward` gives: the draws flat (R n,) (eps, f_drift, f_read, the stuck mask and
    values; empty for a phase not held), residuals (2, R n), G'' (R n,), c and d_eps (R, n), the
    quantised voltages Vq (p R,), I (K, p n), clipped (K,) bool (whether an ADC of the member
    clipped), is_sparse (K,) bool (the PF kernel plan picks for the member's Vq), and after (K, 3)
    uint64: each member's PCG64 state (high, low) and the half word NumPy holds afterwards."""

    eps: np.ndarray
    f_drift: np.ndarray
    f_read: np.ndarray
    mask: np.ndarray
    values: np.ndarray
    residuals: np.ndarray
    G_read: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    Vq: np.ndarray
    I: np.ndarray
    clipped: np.ndarray
    is_sparse: np.ndarray
    after: np.ndarray


@njit(error_model="numpy", cache=True)
def _copy(src, dst):
    for i in range(src.size):
        dst[i] = src[i]


@njit(error_model="numpy", cache=True)
def _member_forward(k, G, V, offsets, p, states, counts, buffered, held, read_words, read_offsets, params,
                    held_flags, dac, dac_consts, tile_of_row, tiles, tile_offsets, scale, step, top, levels,
                    min_fraction, min_devices, nn, eps, f_drift, f_read, mask, values, residuals, G_read, c,
                    d_eps, Vq, I, clipped, is_sparse, after):
    """Member k's read, as its CrossbarPass.forward runs it (see the module docstring)."""
    n = G.shape[1]
    o0 = offsets[k]
    o1 = offsets[k + 1]
    r = o1 - o0
    a = o0 * n
    b = o1 * n
    # The draws, the conductance chain and the PF device parameters (stage_draws._one_call).
    Gk = G.reshape(-1)[a:b]
    out = stage_draws._all_apply(states[k], counts[k], read_words[read_offsets[k]:read_offsets[k + 1]], Gk,
                                 buffered[k], held[k], params[k], True)
    e, fd, mk, vs, fr, res, held_after, s_hi, s_lo, Gr, ck, dk = out
    after[k, 0] = s_hi
    after[k, 1] = s_lo
    after[k, 2] = held_after
    if held_flags[0]:
        _copy(e, eps[a:b])
    if held_flags[1]:
        _copy(fd, f_drift[a:b])
    if held_flags[2]:
        _copy(mk, mask[a:b])
        _copy(vs, values[a:b])
    if held_flags[3]:
        _copy(fr, f_read[a:b])
    _copy(res[0], residuals[0, a:b])
    _copy(res[1], residuals[1, a:b])
    _copy(Gr, G_read[a:b])
    _copy(ck, c.reshape(-1)[a:b])
    _copy(dk, d_eps.reshape(-1)[a:b])
    # The DAC (periphery.quantise, its inputs checked by the layer's scan).
    Vk = V[p * o0:p * o1].reshape((p, r))
    Vqk = Vq[p * o0:p * o1].reshape((p, r))
    if dac:
        periphery._quantise(Vk, dac_consts[k, 0], dac_consts[k, 1], dac_consts[k, 2], Vqk)
    else:
        _copy(V[p * o0:p * o1], Vq[p * o0:p * o1])
    size = p * r
    # cpu_auto.plan on the read voltages (the one-row-of-arrays read and the backward pass).
    is_sparse[k] = r * n >= min_devices and size > 0 and _count_zeros(Vqk) >= min_fraction * size
    t0 = tile_offsets[k]
    t1 = tile_offsets[k + 1]
    Ik = I[k]
    for q in range(p):
        for j in range(n):
            Ik[q, j] = 0
    if tiles[k] > 1:
        # tiling.tiled_adc on one thread: currents, ADCs and the digital sum in one pass.
        cw, kt = _device_terms(c[o0:o1], d_eps[o0:o1], nn, False)
        outside = np.zeros(1, np.int64)
        _tiled_adc_examples(0, 1, Vqk, cw, kt, tile_of_row[o0:o1], scale[t0:t1], step[t0:t1], top[t0:t1],
                            levels[k], Ik, outside)
        clipped[k] = outside[0] > 0
    else:
        # backend.pf_currents (cpu_auto: dense or zero-skipping, one task), then periphery.adc_sum.
        X_terms = np.empty(Vq.size, dtype=Vq.dtype)
        W = np.empty(0, dtype=Vq.dtype)
        cw = np.empty((c.shape[0], nn), dtype=Vq.dtype)
        kt = np.empty((c.shape[0], nn), dtype=Vq.dtype)
        _forward_prep(k, Vq, c, d_eps, offsets, p, is_sparse, False, X_terms, W, cw, kt)
        I_raw = np.empty((1, p, n), dtype=Vq.dtype)
        _member_currents(k, Vq, c, d_eps, offsets, p, is_sparse, nn, X_terms, W, cw, kt, I_raw)
        clipped[k] = periphery._adc_sum(I_raw, scale[t0:t1], step[t0:t1], top[t0:t1], levels[k], Ik)


def _forward_body(G, V, offsets, p, states, counts, buffered, held, read_words, read_offsets, params, held_flags,
                  dac, dac_consts, tile_of_row, tiles, tile_offsets, scale, step, top, levels, min_fraction,
                  min_devices, nn, eps, f_drift, f_read, mask, values, residuals, G_read, c, d_eps, Vq, I, clipped,
                  is_sparse, after):
    K = offsets.size - 1
    for k in prange(K):
        wide_vectors()
        _member_forward(k, G, V, offsets, p, states, counts, buffered, held, read_words, read_offsets, params,
                        held_flags, dac, dac_consts, tile_of_row, tiles, tile_offsets, scale, step, top, levels,
                        min_fraction, min_devices, nn, eps, f_drift, f_read, mask, values, residuals, G_read, c,
                        d_eps, Vq, I, clipped, is_sparse, after)


@njit(error_model="numpy", cache=True)
def _member_finish(k, G, c, d_eps, G_read, offsets, params, held_flags, eps, f_drift, mask, f_read, grad_c,
                   grad_d_eps, grad_Gr, grad_G):
    """Member k's dL/dG from its dL/dc and dL/d(d_eps): IVNonlinearityPF.device_parameters_vjp
    (pf_devices' loop), then conductance_chain.apply_vjp_with."""
    n = G.shape[1]
    a = offsets[k] * n
    b = offsets[k + 1] * n
    _parameters_vjp(G_read[a:b], c.reshape(-1)[a:b], d_eps.reshape(-1)[a:b], grad_c.reshape(-1)[a:b],
                    grad_d_eps.reshape(-1)[a:b], params[k, 20], params[k, 22], grad_Gr[a:b])
    d2d, drift, stuck, read = held_flags[0], held_flags[1], held_flags[2], held_flags[3]
    conductance_chain._apply_vjp(G.reshape(-1)[a:b], eps[a:b] if d2d else eps[:0], params[k, 16], params[k, 17],
                                 params[k, 18], params[k, 19], d2d, f_drift[a:b] if drift else f_drift[:0], drift,
                                 mask[a:b] if stuck else mask[:0], stuck, f_read[a:b] if read else f_read[:0], read,
                                 grad_Gr[a:b], grad_G.reshape(-1)[a:b])


def _backward_body(grad_I, G, Vq, c, d_eps, G_read, offsets, is_sparse, skip, need_V, params, held_flags, eps,
                   f_drift, mask, f_read, nn, threads, by_member, grad_V, grad_G):
    """Every member not skipped: tiling.read_vjp without a clipped ADC (backend.pf_currents_vjp on
    the read voltages: ensemble_pf's preparation and task functions), then :func:`_member_finish`.
    ``by_member``: each thread runs whole members (one parallel region); else every member's rows
    are split over the threads (three regions; for a member count the threads do not divide)."""
    wide_vectors()
    K, p, _ = grad_I.shape
    gsize, gbuf, VT, cw, kt, _, grad_c, grad_d_eps = _backward_buffers(Vq, c, offsets, p, nn, False)
    grad_Gr = np.empty(G.size, dtype=G.dtype)
    if by_member:
        for k in prange(K):
            wide_vectors()
            if skip[k]:
                continue
            _member_vjp(k, Vq, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf[k * gsize:(k + 1) * gsize],
                        VT, cw, kt, grad_V, grad_c, grad_d_eps)
            _member_finish(k, G, c, d_eps, G_read, offsets, params, held_flags, eps, f_drift, mask, f_read, grad_c,
                           grad_d_eps, grad_Gr, grad_G)
        return
    for k in prange(K):
        if not skip[k]:
            _backward_prep(k, Vq, c, d_eps, grad_I, offsets, p, is_sparse, need_V, gsize, gbuf, VT, cw, kt, grad_V)
    task_offsets = np.zeros(K + 1, np.int64)
    for k in range(K):
        task_offsets[k + 1] = task_offsets[k] + (0 if skip[k] else min(threads, offsets[k + 1] - offsets[k]))
    for task in prange(task_offsets[K]):
        wide_vectors()
        _backward_task(np.int64(task), Vq, c, d_eps, offsets, p, is_sparse, need_V, task_offsets, gsize, gbuf, VT,
                       cw, kt, grad_V, grad_c, grad_d_eps)
    for k in prange(K):
        if not skip[k]:
            _member_finish(k, G, c, d_eps, G_read, offsets, params, held_flags, eps, f_drift, mask, f_read, grad_c,
                           grad_d_eps, grad_Gr, grad_G)


# Compiled parallel and serial, each under its own name (see ensemble_fused._compiled).
_forward_parallel = _compiled(_forward_body, parallel=True)
_forward_serial = _compiled(_forward_body, parallel=False)
_backward_parallel = _compiled(_backward_body, parallel=True)
_backward_serial = _compiled(_backward_body, parallel=False)


def parallel(evaluations, members):
    """Whether a call of ``members`` members and that many device evaluations (examples plus one,
    times devices read) runs on Numba's threads: from two members (each thread runs whole
    members) and a third of :func:`memnp.kernels.cpu_auto.serial_below` (one parallel region per
    call, as memnp.kernels.ensemble_fused.parallel). The numbers do not depend on it."""
    return members > 1 and numba.get_num_threads() > 1 and 3 * evaluations >= serial_below()


def forward(G, V, offsets, p, states, counts, buffered, held, read_words, read_offsets, params, held_flags, dac,
            dac_consts, tile_of_row, tiles, tile_offsets, scale, step, top, levels, min_fraction, min_devices,
            parallel):
    """A :class:`ChipRead` of K members' reads (unchecked: the hot path of
    :class:`memnp.nn.ensemble_chip_read.ChipCrossbar`).

    G (R, n) float32 conductances of the rows read (S), V (p R,) voltages; offsets (K + 1,) int64;
    p examples; states (K, 4) uint64 each member's PCG64 state (s_hi, s_lo, inc_hi, inc_lo),
    counts (K,) int64 the words each member draws, buffered (K,) int64 and held (K,) uint64 NumPy's
    half-word buffer (stage_draws._one_call); read_words (flat uint64, member k's at
    read_offsets[k]:read_offsets[k + 1]: its read noise's words from its read stream, or none);
    params (K, 24) float64 (stage_draws.plan); held_flags (5,) bool (D2D, drift, stuck, read
    noise, PF held: the same for every member); dac (bool) and dac_consts (K, 3) in G's dtype
    (1 / k_V, levels, k_V / levels); tile_of_row (R,) int64 each row's row of arrays in its
    member's read, tiles (K,) int64 the member's rows of arrays, their ADC constants scale, step,
    top (flat, G's dtype, member k's at tile_offsets[k]:tile_offsets[k + 1]) and levels (K,) in
    G's dtype (memnp.kernels.tiling.adc_constants); min_fraction and min_devices cpu_auto.plan's
    rule; ``parallel``: run on Numba's threads."""
    K = offsets.size - 1
    R, n = G.shape
    dtype = G.dtype
    size = R * n
    eps = np.empty(size if held_flags[0] else 0, dtype)
    f_drift = np.empty(size if held_flags[1] else 0, dtype)
    mask = np.empty(size if held_flags[2] else 0, np.bool_)
    values = np.empty(size if held_flags[2] else 0, dtype)
    f_read = np.empty(size if held_flags[3] else 0, dtype)
    residuals = np.empty((2, size), dtype)
    G_read = np.empty(size, dtype)
    c = np.empty((R, n), dtype)
    d_eps = np.empty((R, n), dtype)
    Vq = np.empty(V.size, dtype)
    I = np.empty((K, p, n), dtype)
    clipped = np.zeros(K, np.bool_)
    is_sparse = np.zeros(K, np.bool_)
    after = np.zeros((K, 3), np.uint64)
    kernel = _forward_parallel if parallel else _forward_serial
    kernel(G, V, offsets, p, states, counts, buffered, held, read_words, read_offsets, params, held_flags, dac,
           dac_consts, tile_of_row, tiles, tile_offsets, scale, step, top, levels, min_fraction, min_devices,
           _padded_width(n), eps, f_drift, f_read, mask, values, residuals, G_read, c, d_eps, Vq, I, clipped,
           is_sparse, after)
    return ChipRead(eps, f_drift, f_read, mask, values, residuals, G_read, c, d_eps, Vq, I, clipped, is_sparse, after)


def backward(read, grad_I, G, offsets, params, held_flags, need_V, parallel):
    """(dL/dV (p R,) of the read voltages or None, dL/dG (R, n)) from dL/dI (K, p, n)
    C-contiguous in G's dtype, for the members whose ADCs did not clip (read.clipped: their
    entries are left unset, for the caller). On Numba's threads (``parallel``) each thread runs
    whole members when their count is a multiple of the threads, else every member's rows are
    split over the threads (the rows are independent: the same numbers)."""
    K, p, n = grad_I.shape
    grad_V = np.zeros(read.Vq.size if need_V else 0, G.dtype)
    grad_G = np.empty(G.shape, G.dtype)
    kernel = _backward_parallel if parallel else _backward_serial
    threads = numba.get_num_threads() if parallel else 1
    kernel(grad_I, G, read.Vq, read.c, read.d_eps, read.G_read, offsets, read.is_sparse, read.clipped, bool(need_V),
           params, held_flags, read.eps, read.f_drift, read.mask, read.f_read, _padded_width(n), threads,
           K % threads == 0, grad_V, grad_G)
    return (grad_V if need_V else None), grad_G
