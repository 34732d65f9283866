"""A whole training step of K combined-stage MLP members in one Numba call (issue 15).

The network of :mod:`memnp.kernels.ensemble_mlp_step` (double-weight layer 1, sigmoid,
double-weight layer 2, softmax, plain SGD with L1; float32) under a combined stage whose reads
take the one-call path of :mod:`memnp.kernels.ensemble_chip`: D2D, drift, stuck devices and read
noise drawn with the PF residuals from the member's PCG64 words, the DAC, the tiled PF read with
its ADCs (bench/epoch.py case e). Each thread takes whole members, from their inputs to their new
weights, in one parallel region per step, as there.

Every stair is a function the layered path calls (:class:`memnp.nn.ensemble_member_read.MemberCrossbar`
with :mod:`memnp.nn.ensemble_chip_read`): the mapping loops of :mod:`memnp.kernels.mapping`, the
serial bodies of :mod:`memnp.kernels.ensemble_chip` on the member's own arrays, with the
arguments that path's Python computes (the words each member draws, NumPy's half-word buffer, its
rows of arrays and their ADC constants) computed here the same way, so the numbers are the
members' own bit for bit; as in ensemble_mlp_step those stairs are called through their
addresses (:mod:`memnp.kernels.native_call`), the machine code the layered path's Python calls run. A member whose ADC clipped gets the status CLIPPED (its
backward pass is its own CrossbarPass's in the layered path), and the caller runs the layered path.

Per-member constants (per layer where they depend on the crossbar's rows): params (K, 24) float64
(memnp.kernels.stage_draws.plan), held_flags (5,) bool (D2D, drift, stuck, read noise, PF),
dac_consts (K, 3) float32 (1 / k_V, levels, k_V / levels), levels (K,) float32 (the ADCs'),
starts1 and starts2 (T + 1,) int64 the first row of each row of arrays of the full crossbar (and
its row count), scale, step, top (K, T) float32 each row of arrays' ADC constants
(memnp.kernels.tiling.adc_constants). hw (K, 2) uint64: each member's NumPy half-word buffer
(has_uint32, uinteger), updated with the states. callees (6,) int64: the stairs' addresses in
this process (``addresses(_CALLEES)``).
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from .ensemble_chip import _backward_serial as _chip_backward, _forward_serial as _chip_forward
from .ensemble_fused import _G_numpy_order, _compiled
from .ensemble_mlp_step import (BAD_GRADIENT, OK, _first_inputs, _keep_and_update, _put_back,
                                _second_inputs, _sigmoid_vjp)
from .fastexp import wide_vectors
from .mapping import _G_rows, _gather, _outputs, _outputs_vjp, _vjp_rows
from .native_call import Callee, addresses, call
from .softmax import _softmax_cross_entropy

__all__ = ["train_step", "CLIPPED"]

CLIPPED = 6

#: What one member's read of a layer keeps for its backward pass (Numba builds and reads it by
#: name): outputs y (1, p, n / 2), whether an ADC clipped, G of the rows read (r, n), the DAC's
#: voltages Vq (p r,), c and d_eps (r, n), G'' (r n,), which PF kernel ran (1,), the draws (flat;
#: empty for a phase not held), the currents I (1, p, n) and the row offsets (2,).
LayerRead = namedtuple("LayerRead", ["y", "clipped", "G", "Vq", "c", "d_eps", "G_read", "is_sparse", "eps",
                                     "f_drift", "mask", "f_read", "I", "offsets"])


# --- the layered path's stairs, called through their addresses ---------------------------------

@njit(error_model="numpy", cache=True)
def _mapping_call(D, rows, k_G, G_off, full, x, k_V, G, V):
    """G of the rows read (with NumPy's rounding when every row is read) and the voltages."""
    if full:
        _G_numpy_order(D, k_G, G_off, G)
    else:
        _G_rows(D, rows, k_G, G_off, G)
    _gather(x, k_V, rows, V)


#: The stairs called through their addresses (see :mod:`memnp.kernels.native_call`), with the
#: types Python calls them with; their order in the ``callees`` argument.
_CALLEES = (
    Callee(_mapping_call, "void(f4[:, ::1], i8[::1], f8, f8, b1, f4[:, ::1], f8, f4[:, ::1], f4[:, ::1])"),
    Callee(_chip_forward,
           "void(f4[:, ::1], f4[::1], i8[::1], i8, u8[:, ::1], i8[::1], i8[::1], u8[::1], u8[::1], i8[::1], "
           "f8[:, ::1], b1[::1], b1, f4[:, ::1], i8[::1], i8[::1], i8[::1], f4[::1], f4[::1], f4[::1], f4[::1], f8, "
           "i8, i8, f4[::1], f4[::1], f4[::1], b1[::1], f4[::1], f4[:, ::1], f4[::1], f4[:, ::1], f4[:, ::1], "
           "f4[::1], f4[:, :, ::1], b1[::1], b1[::1], u8[:, ::1])"),
    Callee(_outputs, "void(f4[:, ::1], f4, f4[:, ::1])"),
    Callee(_chip_backward,
           "void(f4[:, :, ::1], f4[:, ::1], f4[::1], f4[:, ::1], f4[:, ::1], f4[::1], i8[::1], b1[::1], b1[::1], b1, "
           "f8[:, ::1], b1[::1], f4[::1], f4[::1], b1[::1], f4[::1], i8, i8, b1, f4[::1], f4[:, ::1])"),
    Callee(_outputs_vjp, "f8(f4[:, ::1], f4[:, ::1], f4, f4[:, ::1])"),
    Callee(_vjp_rows, "void(f4[:, ::1], f4[:, ::1], i8[::1], f8, f8, f8, f4[:, ::1])"),
)
_MAPPING, _CHIP_FORWARD, _OUTPUTS, _CHIP_BACKWARD, _OUTPUTS_VJP, _VJP_ROWS = range(6)


# --- one member's layer --------------------------------------------------------------------------

@njit(error_model="numpy", cache=True)
def _tiles(rows, starts, scale_all, step_all, top_all):
    """(tile_of_row (r,), tiles, scale, step, top) of the rows read: the rows of arrays that hold
    one of them (tiling.row_blocks), in order, with their ADC constants."""
    edges = np.searchsorted(rows, starts)
    T_all = starts.size - 1
    T = 0
    for t in range(T_all):
        if edges[t + 1] > edges[t]:
            T += 1
    tile_of_row = np.zeros(rows.size, np.int64)
    scale = np.empty(T, scale_all.dtype)
    step = np.empty(T, scale_all.dtype)
    top = np.empty(T, scale_all.dtype)
    q = 0
    for t in range(T_all):
        if edges[t + 1] > edges[t]:
            if T > 1:
                for i in range(edges[t], edges[t + 1]):
                    tile_of_row[i] = q
            scale[q] = scale_all[t]
            step[q] = step_all[t]
            top[q] = top_all[t]
            q += 1
    return tile_of_row, T, scale, step, top


@njit(error_model="numpy", cache=True)
def _layer_forward(k, x, D, max_weight, rows, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts,
                   scale_all, step_all, top_all, state, hw, min_fraction, min_devices, nn, flags, callees):
    """Member k's read of one layer (MemberCrossbar.forward through ensemble_chip_read.forward with
    K = 1): inputs x (1, p, n_in), D (K, m, n) the layer's stacked weights; ``state`` (1, 4) and
    ``hw`` (2,) its PCG64 state and half-word buffer, advanced in place. Returns a
    :data:`LayerRead`."""
    wide_vectors()
    p = x.shape[1]
    m, n = D.shape[1], D.shape[2]
    r = rows.size
    dtype = D.dtype
    span = G_on[k] - G_off[k]
    k_G = span / max_weight
    G = np.empty((r, n), dtype)
    V = np.empty(p * r, dtype)
    call(_mapping_call, callees[_MAPPING], (D[k], rows, k_G, G_off[k], r == m, x[0], k_V[k], G, V.reshape((p, r))))
    d2d, drift, stuck, read, pf = held_flags[0], held_flags[1], held_flags[2], held_flags[3], held_flags[4]
    size = r * n
    half = (size + 1) // 2
    b = np.int64(hw[0]) if stuck else np.int64(0)
    counts = np.empty(1, np.int64)
    counts[0] = half * (np.int64(d2d) + np.int64(drift) + np.int64(read)) + size * np.int64(pf) \
        + ((size - b + 1) // 2 if stuck else 0)
    buffered = np.zeros(1, np.int64)
    buffered[0] = b
    held = np.zeros(1, np.uint64)
    if stuck:
        held[0] = hw[1]
    offsets = np.zeros(2, np.int64)
    offsets[1] = r
    read_words = np.empty(0, np.uint64)
    read_offsets = np.zeros(2, np.int64)
    tile_of_row, T, scale, step, top = _tiles(rows, starts, scale_all[k], step_all[k], top_all[k])
    tiles = np.empty(1, np.int64)
    tiles[0] = T
    tile_offsets = np.zeros(2, np.int64)
    tile_offsets[1] = T
    eps = np.empty(size if d2d else 0, dtype)
    f_drift = np.empty(size if drift else 0, dtype)
    mask = np.empty(size if stuck else 0, np.bool_)
    values = np.empty(size if stuck else 0, dtype)
    f_read = np.empty(size if read else 0, dtype)
    residuals = np.empty((2, size), dtype)
    G_read = np.empty(size, dtype)
    c = np.empty((r, n), dtype)
    d_eps = np.empty((r, n), dtype)
    Vq = np.empty(p * r, dtype)
    I = np.empty((1, p, n), dtype)
    clipped = np.zeros(1, np.bool_)
    is_sparse = np.zeros(1, np.bool_)
    after = np.zeros((1, 3), np.uint64)
    call(_chip_forward, callees[_CHIP_FORWARD],
         (G, V, offsets, p, state, counts, buffered, held, read_words, read_offsets, params[k:k + 1], held_flags,
          flags[0] != 0, dac_consts[k:k + 1], tile_of_row, tiles, tile_offsets, scale, step, top, levels[k:k + 1],
          min_fraction, min_devices, nn, eps, f_drift, f_read, mask, values, residuals, G_read, c, d_eps, Vq, I,
          clipped, is_sparse, after))
    state[0, 0] = after[0, 0]
    state[0, 1] = after[0, 1]
    if stuck:
        hw[0] = np.uint64((size - b) % 2)
        hw[1] = after[0, 2]
    divisor = np.empty(1, dtype)
    divisor[0] = k_V[k] * span / max_weight
    y = np.empty((1, p, n // 2), dtype)
    call(_outputs, callees[_OUTPUTS], (I[0], divisor[0], y[0]))
    return LayerRead(y, clipped[0], G, Vq, c, d_eps, G_read, is_sparse, eps, f_drift, mask, f_read, I, offsets)


@njit(error_model="numpy", cache=True)
def _layer_backward(k, grad_y, D, max_weight, rows, read, k_V, G_off, G_on, params, held_flags, nn, need_x, grad_D,
                    schedule, callees):
    """Member k's backward pass of one layer's ``read`` (a :data:`LayerRead`;
    MemberCrossbar.backward with K = 1) into grad_D (m, n); returns (dL/dx (p, m) scaled by k_V
    (the bias column last) or empty, whether dL/d(max_weight) is finite)."""
    wide_vectors()
    p = read.I.shape[1]
    m = D.shape[1]
    r = rows.size
    dtype = read.I.dtype
    span = G_on[k] - G_off[k]
    kv_span = k_V[k] * span
    scale = np.empty(1, dtype)
    scale[0] = max_weight / kv_span
    grad_I = np.empty(read.I.shape, dtype)
    total = call(_outputs_vjp, callees[_OUTPUTS_VJP], (read.I[0], grad_y[0], scale[0], grad_I[0]))
    grad_max_weight = total / kv_span
    if not np.isfinite(grad_max_weight):
        return np.zeros((0, 0), dtype), False
    grad_V = np.zeros(read.Vq.size if need_x else 0, dtype)
    grad_G = np.empty(read.G.shape, dtype)
    skip = np.zeros(1, np.bool_)
    call(_chip_backward, callees[_CHIP_BACKWARD],
         (grad_I, read.G, read.Vq, read.c, read.d_eps, read.G_read, read.offsets, read.is_sparse, skip, need_x,
          params[k:k + 1], held_flags, read.eps, read.f_drift, read.mask, read.f_read, nn, schedule[0],
          schedule[1] != 0, grad_V, grad_G))
    call(_vjp_rows, callees[_VJP_ROWS], (D[k], grad_G, rows, span / max_weight, max_weight, grad_max_weight, grad_D))
    if not need_x:
        return np.zeros((0, 0), dtype), True
    grad_x = np.zeros((p, m), dtype)
    block = grad_V.reshape((p, r))
    for q in range(p):
        for s in range(r):
            grad_x[q, rows[s]] = block[q, s]
    kv = dtype.type(k_V[k])
    for q in range(p):
        for i in range(m - 1):
            grad_x[q, i] *= kv
    return grad_x, True


# --- the step --------------------------------------------------------------------------------------

@njit(error_model="numpy", cache=True)
def _member_step(k, X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2,
                 adc1, adc2, states, hw, min_fraction, min_devices, nn, schedule, callees, grad_D1, grad_D2, hidden,
                 loss, hits, status):
    """Member k's forward and backward passes (ensemble_mlp_step._member_step under the chip)."""
    wide_vectors()
    mw1, rows1 = _first_inputs(k, X, D1, status)
    if np.isnan(mw1):
        return
    state = states[k:k + 1]
    read1 = _layer_forward(k, X[k:k + 1], D1, mw1, rows1, k_V, G_off, G_on, params, held_flags, dac_consts, levels,
                           starts1, adc1[0], adc1[1], adc1[2], state, hw[k], min_fraction[0], min_devices, nn[0],
                           schedule[4:], callees)
    if read1.clipped:
        status[k] = CLIPPED
        return
    mw2, rows2 = _second_inputs(k, read1.y, D2, hidden, status)
    if np.isnan(mw2):
        return
    a = hidden[k:k + 1]
    read2 = _layer_forward(k, a, D2, mw2, rows2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts2,
                           adc2[0], adc2[1], adc2[2], state, hw[k], min_fraction[1], min_devices, nn[1], schedule[4:],
                           callees)
    if read2.clipped:
        status[k] = CLIPPED
        return
    grad_z = np.empty_like(read2.y)
    loss[k], hits[k] = _softmax_cross_entropy(read2.y[0], labels[k], grad_z[0])
    grad_a, finite = _layer_backward(k, grad_z, D2, mw2, rows2, read2, k_V, G_off, G_on, params, held_flags, nn[1],
                                     schedule[3] != 0, grad_D2[k], schedule, callees)
    if not finite:
        status[k] = BAD_GRADIENT
        return
    grad_y = _sigmoid_vjp(grad_a, a)
    _, finite = _layer_backward(k, grad_y, D1, mw1, rows1, read1, k_V, G_off, G_on, params, held_flags, nn[0],
                                schedule[2] != 0, grad_D1[k], schedule, callees)
    status[k] = OK if finite else BAD_GRADIENT


@njit(error_model="numpy", cache=True)
def _member_task(k, X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2,
                 adc1, adc2, states, hw, gamma, lr, min_fraction, min_devices, nn, schedule, callees, grad_D1, grad_D2,
                 saved_D1, saved_D2, hidden, loss, hits, status):
    """ensemble_mlp_step._member_task under the chip."""
    wide_vectors()
    grad_D1[k] = 0
    grad_D2[k] = 0
    _member_step(k, X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2,
                 adc1, adc2, states, hw, min_fraction, min_devices, nn, schedule, callees, grad_D1, grad_D2, hidden,
                 loss, hits, status)
    if status[k] == OK:
        _keep_and_update(k, D1, D2, grad_D1, grad_D2, saved_D1, saved_D2, gamma, lr)


def _step_body(X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2, adc1,
               adc2, states, hw, gamma, lr, min_fraction, min_devices, nn, schedule, callees, hidden, loss, hits,
               status):
    K = X.shape[0]
    grad_D1 = np.empty(D1.shape, D1.dtype)
    grad_D2 = np.empty(D2.shape, D2.dtype)
    saved_D1 = np.empty(D1.shape, D1.dtype)
    saved_D2 = np.empty(D2.shape, D2.dtype)
    for k in prange(K):
        _member_task(k, X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2,
                     adc1, adc2, states, hw, gamma, lr, min_fraction, min_devices, nn, schedule, callees, grad_D1,
                     grad_D2, saved_D1, saved_D2, hidden, loss, hits, status)
    _put_back(D1, D2, saved_D1, saved_D2, status)


_step_parallel = _compiled(_step_body, parallel=True)
_step_serial = _compiled(_step_body, parallel=False)

#: ensemble_mlp_step._SCHEDULE, then whether the stage holds a DAC.
_SCHEDULE = np.array([1, 1, 0, 1, 0], np.int64)


def train_step(X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac, dac_consts, levels, starts1, starts2,
               adc1, adc2, states, hw, gamma, lr, min_fraction, min_devices, nn, parallel):
    """One training step of every member (see the module docstring): (loss (K,), hits (K,),
    status (K,), hidden (K, p, h)). adc1 and adc2 (3, K, T) float32: each layer's scale, step and
    top per member and row of arrays. D1, D2, states and hw are updated in place only when every
    status is OK."""
    K, p = X.shape[:2]
    hidden = np.empty((K, p, D1.shape[2] // 2), D1.dtype)
    loss = np.zeros(K, np.float64)
    hits = np.zeros(K, np.int64)
    status = np.zeros(K, np.int64)
    work, work_hw = states.copy(), hw.copy()
    schedule = _SCHEDULE.copy()
    schedule[4] = int(bool(dac))
    kernel = _step_parallel if parallel else _step_serial
    kernel(X, labels, D1, D2, k_V, G_off, G_on, params, held_flags, dac_consts, levels, starts1, starts2, adc1, adc2,
           work, work_hw, gamma, lr, np.asarray(min_fraction, np.float64), int(min_devices), np.asarray(nn, np.int64),
           schedule, addresses(_CALLEES), hidden, loss, hits, status)
    if not status.any():
        states[:] = work
        hw[:] = work_hw
    return loss, hits, status, hidden
