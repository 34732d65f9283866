"""PF column currents of a crossbar cut into rows of arrays, in one zero-skipping pass (Numba).

The tiles phase of the pipeline (memnp.crossbar.tiling) needs every row of arrays' own partial
column currents, so that each array's ADC quantises only its own current. :func:`pf_currents_tiled`
computes them in one call, I_parts (T, p, n), with I_parts[t] the sum over the rows i with
tile_of_row[i] == t of the PF device currents: the loop of :mod:`memnp.kernels.sparse` (parallel
over examples, nonzero voltages only, vectorized over columns padded to COLUMN_PAD), whose float
accumulators are flushed into the row of arrays they belong to whenever the next nonzero row lies in
another one. :func:`pf_currents_tiled_numpy` is the plain NumPy reference (float64, p x m x n).

Shapes and units as in :mod:`memnp.kernels.sparse`: V (p, m) in volts, c (m, n) in A/V, d_eps (m, n)
in F/m (> 0), tile_of_row (m,) integers in [0, T) (in any order); float32 inputs are
computed and returned in float32, anything else in float64.
"""
import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from . import reference
from .cpu_auto import serial_below
from .cpu import KERNEL_FASTMATH, _PRANGE_ONLY, _check_pf, _example_term, _exponent
from .fastexp import fast_exp_nonneg, wide_vectors
from .sparse import BLOCK, _count_zeros, _device_terms, _nonzero, _padded_width

__all__ = ["pf_currents_tiled", "pf_currents_tiled_adc", "pf_currents_tiled_numpy"]


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _tiled_examples(t, threads, V, cw, k, tile_of_row, out):
    """The work of thread t: examples t, t + threads, ..."""
    wide_vectors()
    p, m = V.shape
    nn = cw.shape[1]
    zero = V.dtype.type(0.0)
    rows = np.empty(m + 1, dtype=np.int64)
    block = np.zeros(nn, dtype=V.dtype)
    for ex in range(t, p, threads):
        count = _nonzero(V, ex, rows)
        held = 0
        for s in range(count):
            i = rows[s]
            v = V[ex, i]
            x = _example_term(abs(v))
            for j in range(np.uint64(nn)):
                block[j] += v * cw[i, j] * fast_exp_nonneg(_exponent(x, k[i, j]))
            held += 1
            tile = tile_of_row[i]
            if held == BLOCK or s + 1 == count or tile_of_row[rows[s + 1]] != tile:
                for j in range(nn):
                    out[tile, ex, j] += block[j]
                    block[j] = zero
                held = 0


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _tiled_kernel(V, c, d_eps, tile_of_row, tiles, nn, threads):
    p = V.shape[0]
    cw, k = _device_terms(c, d_eps, nn, False)
    out = np.zeros((tiles, p, nn), dtype=np.float64)
    threads = min(threads, max(p, 1))
    for t in prange(threads):
        _tiled_examples(t, threads, V, cw, k, tile_of_row, out)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _tiled_adc_examples(t, threads, V, cw, k, tile_of_row, scale, step, top, levels, out, outside):
    """The work of thread t for :func:`pf_currents_tiled_adc`: examples t, t + threads, ..."""
    wide_vectors()
    p, m = V.shape
    n = out.shape[1]
    nn = cw.shape[1]
    zero = V.dtype.type(0.0)
    rows = np.empty(m + 1, dtype=np.int64)
    block = np.zeros(nn, dtype=V.dtype)
    part = np.zeros(nn, dtype=np.float64)
    clipped = 0
    for ex in range(t, p, threads):
        count = _nonzero(V, ex, rows)
        held = 0
        for s in range(count):
            i = rows[s]
            v = V[ex, i]
            x = _example_term(abs(v))
            for j in range(np.uint64(nn)):
                block[j] += v * cw[i, j] * fast_exp_nonneg(_exponent(x, k[i, j]))
            held += 1
            tile = tile_of_row[i]
            last = s + 1 == count or tile_of_row[rows[s + 1]] != tile
            if held == BLOCK or last:
                for j in range(nn):
                    part[j] += block[j]
                    block[j] = zero
                held = 0
            if last:
                # The array's partial current is complete: its ADCs quantise it (in V's dtype,
                # as ADC.apply), and the digital sum adds it.
                a, b, c = scale[tile], step[tile], top[tile]
                for j in range(n):
                    u = V.dtype.type(part[j])
                    clipped += (u < zero) | (u > c)
                    out[ex, j] += min(max(np.rint(u * a), zero), levels) * b
                for j in range(nn):
                    part[j] = 0.0
    outside[t] = clipped


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _tiled_adc_kernel(V, c, d_eps, tile_of_row, nn, scale, step, top, levels, threads):
    p = V.shape[0]
    n = c.shape[1]
    cw, k = _device_terms(c, d_eps, nn, False)
    out = np.zeros((p, n), dtype=V.dtype)
    threads = min(threads, max(p, 1))
    outside = np.zeros(max(threads, 1), dtype=np.int64)
    for t in prange(threads):
        _tiled_adc_examples(t, threads, V, cw, k, tile_of_row, scale, step, top, levels, out, outside)
    return out, outside.sum() > 0


def pf_currents_tiled_adc(V, c, d_eps, tile_of_row, tiles, full_scale, levels):
    """(I (p, n), clipped): :func:`pf_currents_tiled` with every part quantised by its ADC and the
    parts added, in one pass, without the (tiles, p, n) partial currents. The same numbers as
    :func:`memnp.kernels.periphery.adc_sum` of :func:`pf_currents_tiled` (each part rounded to V's
    dtype, quantised by ADC.apply's rule, added in order of the arrays), which is its reference.

    full_scale (tiles,) in A: the ADCs' full scale of each row of arrays; levels: 2^bits - 1.
    tile_of_row must be non-decreasing (rows of arrays are blocks of consecutive rows), so that
    each example meets its arrays in order. ``clipped``: whether a part lies outside
    [0, full_scale] (compared in V's dtype)."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    p, m = V.shape
    tile_of_row = _tile_index(tile_of_row, m, tiles)
    if m > 1 and np.any(tile_of_row[1:] < tile_of_row[:-1]):
        raise ValueError("tile_of_row must be non-decreasing (rows of arrays are blocks of consecutive rows)")
    fs = np.asarray(full_scale, np.float64).reshape(-1)
    if fs.shape != (int(tiles),):
        raise ValueError(f"full_scale must hold one current per row of arrays ({tiles}); got shape {fs.shape}")
    return tiled_adc(V, c, d_eps, tile_of_row, adc_constants(fs, levels, V.dtype))


def adc_constants(full_scale, levels, dtype):
    """(levels / fs, fs / levels, fs, levels) in ``dtype``, as :func:`tiled_adc` takes them."""
    fs = np.asarray(full_scale, np.float64).reshape(-1)
    dtype = np.dtype(dtype)
    return (levels / fs).astype(dtype), (fs / levels).astype(dtype), fs.astype(dtype), dtype.type(levels)


def tiled_adc(V, c, d_eps, tile_of_row, constants):
    """:func:`pf_currents_tiled_adc` without its checks: V, c, d_eps C-contiguous of one float
    dtype, tile_of_row (m,) int64 non-decreasing in [0, tiles), ``constants`` from
    :func:`adc_constants` in V's dtype."""
    n = c.shape[1]
    threads = get_num_threads()
    serial = threads > 1 and (V.size - _count_zeros(V)) * n < serial_below()
    if serial:
        set_num_threads(1)
    try:
        out, clipped = _tiled_adc_kernel(V, c, d_eps, tile_of_row, _padded_width(n), *constants,
                                         1 if serial else threads)
    finally:
        if serial:
            set_num_threads(threads)
    return out, bool(clipped)


def _tile_index(tile_of_row, m, tiles):
    tile_of_row = np.ascontiguousarray(tile_of_row, dtype=np.int64)
    if tile_of_row.shape != (m,):
        raise ValueError(f"tile_of_row must have one entry per row ({m}); got shape {tile_of_row.shape}")
    if m and (tile_of_row.min() < 0 or tile_of_row.max() >= tiles):
        raise ValueError(f"tile_of_row must hold tile indices in [0, {tiles}); got {tile_of_row.min()} "
                         f"to {tile_of_row.max()}")
    return tile_of_row


def pf_currents_tiled(V, c, d_eps, tile_of_row, tiles):
    """Partial column currents I_parts (tiles, p, n) in A: I_parts[t, q, j] = sum over rows i with
    tile_of_row[i] == t and V[q, i] != 0 of the PF device current."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    p, m = V.shape
    n = c.shape[1]
    tile_of_row = _tile_index(tile_of_row, m, tiles)
    threads = get_num_threads()
    # One thread below the cpu backend's threshold (it depends on how OpenMP threads wait).
    serial = threads > 1 and (V.size - _count_zeros(V)) * n < serial_below()
    if serial:
        set_num_threads(1)
    try:
        out = _tiled_kernel(V, c, d_eps, tile_of_row, int(tiles), _padded_width(n), 1 if serial else threads)
    finally:
        if serial:
            set_num_threads(threads)
    return out[:, :, :n].astype(V.dtype)


def pf_currents_tiled_numpy(V, c, d_eps, tile_of_row, tiles):
    """:func:`pf_currents_tiled` from the reference's device currents (p, m, n), in float64."""
    I_ind = reference.pf_device_currents(np.asarray(V), np.asarray(c), np.asarray(d_eps))
    tile_of_row = np.asarray(tile_of_row)
    return np.stack([I_ind[:, tile_of_row == t, :].sum(axis=1) for t in range(int(tiles))])
