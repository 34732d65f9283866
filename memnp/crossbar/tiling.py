"""Reading a crossbar as arrays (the "tiles" phase of memnp.crossbar.pipeline).

:class:`~memnp.crossbar.nonidealities.periphery.Tiles` cuts an m x n crossbar into arrays of at
most rows x cols devices. :func:`read` runs the currents (Ohm's law, PF, or the stage's
LineResistance), and the ADC, array by array with the existing kernels, and adds the arrays'
partial column currents digitally; each ADC sees only its own array's current, and each
LineResistance solve only its own array's wires. A stage with an ADC or LineResistance but no
Tiles is read as one array. Without ADC and wires the result equals the untiled read up to the
rounding of the digital additions.

The layers may hand over only the crossbar rows some input drives (``rows``: their indices in the
full crossbar of ``n_rows`` rows; the others carry no current); the arrays are cut in the full
crossbar's row numbering, so the cut and every ADC's full scale do not depend on the inputs.
"""
import dataclasses
import functools

import numpy as np

from ..kernels import periphery as periphery_loops
from ..kernels import reference
from ..kernels import tiling as tiled_kernels
from ..kernels.backend import stack_rows
from .nonidealities.periphery import WORST_CASE, Tiles

__all__ = ["Tiles", "worst_case_current", "blocks", "read", "read_vjp", "power_parts", "ArrayRead",
           "ArraysRead", "StackedRead"]


@dataclasses.dataclass(eq=False)
class ArrayRead:
    """One array's read: its rows r0:r1 and columns c0:c1 of the matrices handed over, its V
    (p, r1 - r0), G and devices ((c, d_eps) or None) slices, its currents before the ADC I_raw
    (p, c1 - c0; None without ADC) and the ADC's full scale (A), and its LineResistance solve
    state (memnp.circuit.state.SolveState; None without wires)."""

    r0: int
    r1: int
    c0: int
    c1: int
    V: np.ndarray
    G: np.ndarray
    devices: object
    I_raw: object
    full_scale: object
    wires: object


@dataclasses.dataclass(eq=False)
class ArraysRead:
    """The arrays read one by one: the crossbar's m rows and n columns, and every array's read."""

    m: int
    n: int
    parts: list


@dataclasses.dataclass(eq=False)
class StackedRead:
    """PF arrays read in one call: V (p, m), the row blocks [(r0, r1, array_rows)], devices
    (c, d_eps), the partial currents I_raw (T, p, n) (None after the one-pass ADC loop, which
    keeps none), the ADCs' full scales (T, 1, 1) or None, and whether any ADC clipped."""

    V: np.ndarray
    bounds: list
    devices: tuple
    I_raw: object
    full_scale: object
    clipped: bool


@functools.lru_cache(maxsize=256)
def worst_case_current(n_rows, k_V, G_on, pf=None):
    """The largest column current (A) of an array of ``n_rows`` rows: every row at k_V (V) and
    every device at G_on (S), under Ohm's law or, given ``pf`` (IVNonlinearityPF), the PF device
    of conductance G_on with zero residuals (the median device). Wire resistance only lowers it."""
    if pf is None:
        return float(n_rows * k_V * G_on)
    G = np.array([[G_on]], dtype=np.float64)
    c, d_eps = pf.device_parameters_numpy(G, np.zeros((2, 1, 1)))
    return float(n_rows * reference.pf_device_currents(np.array([[k_V]]), c, d_eps)[0, 0, 0])


def row_blocks(stage, m, rows=None, n_rows=None):
    """[(r0, r1, array_rows)]: the row slices r0:r1 of the (m, ...) matrices handed over that each
    row of arrays covers, and the arrays' own row count in the full crossbar. Rows of arrays with
    no row handed over are left out (they carry no current)."""
    tiles = stage.phases.get("tiles")
    n_rows = m if n_rows is None else int(n_rows)
    bounds, starts = _row_bounds(tiles, n_rows)
    if rows is None:
        return [(a, b, b - a) for a, b in bounds]
    edges = np.searchsorted(rows, starts).tolist()
    return [(edges[k], edges[k + 1], b - a) for k, (a, b) in enumerate(bounds) if edges[k + 1] > edges[k]]


@functools.lru_cache(maxsize=256)
def _row_bounds(tiles, n_rows):
    """(the row blocks [(a, b)] of a crossbar of n_rows rows, their starts and n_rows (K + 1,)):
    the same for every batch."""
    bounds = tiles.row_bounds(n_rows) if tiles is not None else [(0, n_rows)]
    starts = np.array([a for a, _ in bounds] + [n_rows], dtype=np.int64)
    starts.setflags(write=False)
    return bounds, starts


def blocks(stage, m, n, rows=None, n_rows=None):
    """[(r0, r1, c0, c1, array_rows)]: every array's slice of the (m, n) matrices handed over
    (rows r0:r1, columns c0:c1) and its own row count in the full crossbar (see :func:`row_blocks`)."""
    tiles = stage.phases.get("tiles")
    col_bounds = tiles.col_bounds(n) if tiles is not None else [(0, n)]
    return [(r0, r1, c0, c1, array_rows) for r0, r1, array_rows in row_blocks(stage, m, rows, n_rows)
            for c0, c1 in col_bounds]


def _full_scale(stage, adc, array_rows):
    """The full scale (A) of the ADCs of an array of ``array_rows`` rows."""
    if not isinstance(adc.full_scale, str):
        adc.check_full_scale(worst_case_current(array_rows, stage.k_V, stage.G_on, stage.phases.get("currents")),
                             array_rows)
        return adc.full_scale
    if adc.full_scale != WORST_CASE:  # pragma: no cover - ADC validates it
        raise ValueError(f"unknown full_scale {adc.full_scale!r}")
    return worst_case_current(array_rows, stage.k_V, stage.G_on, stage.phases.get("currents"))


#: Full scales (T, 1, 1) by (stage, ADC, the arrays' row counts): the same for every batch.
_FULL_SCALES = {}


def _full_scales(stage, adc, array_rows):
    # The stage (checked by identity) fixes its ADC: no need to hash the ADC into the key.
    key = (id(stage), array_rows)
    hit = _FULL_SCALES.get(key)
    if hit is None or hit[0] is not stage:
        if len(_FULL_SCALES) > 1024:
            _FULL_SCALES.clear()
        fs = np.array([_full_scale(stage, adc, rows) for rows in array_rows]).reshape(-1, 1, 1)
        hit = _FULL_SCALES[key] = (stage, fs)
    return hit[1]


def _adc_constants(stage, adc, array_rows, dtype):
    """The one-pass tiled loop's ADC constants (memnp.kernels.tiling.adc_constants), kept with
    the full scales."""
    key = (id(stage), array_rows, dtype)
    hit = _FULL_SCALES.get(key)
    if hit is None or hit[0] is not stage:
        fs = _full_scales(stage, adc, array_rows)
        hit = _FULL_SCALES[key] = (stage, tiled_kernels.adc_constants(fs, adc.levels, dtype))
    return hit[1]


def _slice(a, r0, r1, c0, c1):
    return np.ascontiguousarray(a[r0:r1, c0:c1])


def read(backend, stage, V, G, devices, rows=None, n_rows=None):
    """(I (p, n) in A, state for :func:`read_vjp` and :func:`power_parts`) from the read voltages V
    (p, m) in V and the read conductances G (m, n) in S on ``backend`` (a
    memnp.kernels.backend.Backend); ``devices``: (c, d_eps) (m, n) each under PF, else None.

    PF devices without wires take one kernel call for every array at once (:func:`_read_stacked`);
    otherwise the arrays are read one by one."""
    adc, wires = stage.phases.get("adc"), stage.phases.get("wires")
    if wires is None and devices is not None:
        return _read_stacked(backend, stage, V, devices, row_blocks(stage, G.shape[0], rows, n_rows))
    p, (m, n) = V.shape[0], G.shape
    I = np.zeros((p, n), dtype=np.result_type(V, G))
    parts = []
    for r0, r1, c0, c1, array_rows in blocks(stage, m, n, rows, n_rows):
        V_t = np.ascontiguousarray(V[:, r0:r1])
        G_t = _slice(G, r0, r1, c0, c1)
        dev_t = None if devices is None else tuple(_slice(a, r0, r1, c0, c1) for a in devices)
        wire_state = None
        if wires is not None:
            I_t, wire_state = wires.currents(V_t, G_t, devices=dev_t, backend=backend)
        elif dev_t is not None:
            I_t = backend.pf_currents(V_t, *dev_t)
        else:
            I_t = backend.ideal_currents(V_t, G_t)
        I_raw = fs = None
        if adc is not None:
            fs = _full_scale(stage, adc, array_rows)
            I_raw, I_t = I_t, adc.apply(I_t, fs)
        I[:, c0:c1] += I_t
        parts.append(ArrayRead(r0, r1, c0, c1, V_t, G_t, dev_t, I_raw, fs, wire_state))
    return I, ArraysRead(m, n, parts)


def _read_stacked(backend, stage, V, devices, bounds):
    """PF arrays in one call: the partial column currents (T, p, n) of the T rows of arrays
    (``backend.pf_partial_currents``: on the cpu the one-pass tiled loop, elsewhere one kernel call
    on a stack of copies of the batch, copy k zero outside row of arrays k), or with the ADCs the
    backend's one-pass loop of currents, ADCs and digital sum where it has one. Column cuts need
    nothing: every column has its own ADC, and the ADCs of one row of arrays share a full scale."""
    adc = stage.phases.get("adc")
    p, m = V.shape
    T = len(bounds)
    tile_of_row = _tile_of_row(bounds, m) if T > 1 else None
    fs = array_rows = None
    if adc is not None:
        array_rows = tuple(rows for _, _, rows in bounds)
        fs = _full_scales(stage, adc, array_rows)
        if T > 1:
            # The arrays' currents, their ADCs and the digital sum in one pass where the backend
            # has the loop (the same numbers as quantising the partial currents). No partial
            # currents are kept: the backward pass needs them only where an ADC clipped, and
            # recomputes them then.
            constants = _adc_constants(stage, adc, array_rows, V.dtype) if V.dtype in _FLOATS else None
            one_pass = backend.pf_tiled_adc(V, *devices, tile_of_row, T, fs.reshape(-1), adc.levels,
                                            constants)
            if one_pass is not None:
                I, clipped = one_pass
                return I, StackedRead(V, bounds, devices, None, fs, clipped)
    I_raw = backend.pf_partial_currents(V, *devices, tile_of_row, T)
    clipped = False
    if adc is not None:
        if I_raw.dtype in _FLOATS:
            # Quantise every array's part and add them in one pass (memnp.kernels.periphery), with
            # the constants kept for the stage.
            I, clipped = periphery_loops.adc_sum_with(I_raw, _adc_constants(stage, adc, array_rows, I_raw.dtype))
        else:  # pragma: no cover - the backends return float32 or float64
            I = adc.apply(I_raw, fs).sum(axis=0)
            clipped = bool(I_raw.min() < 0) or bool(np.any(I_raw > fs))
    else:
        I = I_raw[0] if T == 1 else I_raw.sum(axis=0)
    return I, StackedRead(V, bounds, devices, I_raw, fs, clipped)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _tile_of_row(bounds, m):
    """(m,) int64: the row of arrays of every row handed over (non-decreasing)."""
    if sum(r1 - r0 for r0, r1, _ in bounds) == m:
        return np.repeat(np.arange(len(bounds), dtype=np.int64), [r1 - r0 for r0, r1, _ in bounds])
    tile_of_row = np.empty(m, np.int64)
    for k, (r0, r1, _) in enumerate(bounds):
        tile_of_row[r0:r1] = k
    return tile_of_row


def _read_stacked_vjp(backend, stage, state, grad_I, need_V):
    """When no ADC clips (the usual case under a worst-case full scale), every array passes the
    same dL/dI, and the arrays' VJPs add up to the VJP of the whole crossbar: one call on V."""
    V, bounds, devices, I_raw, fs = state.V, state.bounds, state.devices, state.I_raw, state.full_scale
    adc = stage.phases.get("adc")
    if not state.clipped:
        return _pf_vjp(backend, V, devices, grad_I, need_V)
    tile_of_row = _tile_of_row(bounds, V.shape[1])
    if I_raw is None:   # the one-pass read with its ADCs kept no partial currents
        I_raw = backend.pf_partial_currents(V, *devices, tile_of_row, len(bounds))
    T, p, n = I_raw.shape
    g = adc.apply_vjp(I_raw, fs, np.broadcast_to(grad_I, I_raw.shape)).reshape(T * p, n)
    grad_V, grad_c, grad_d_eps = backend.pf_currents_vjp(stack_rows(V, tile_of_row, T), *devices, g, need_V)
    if need_V:
        grad_V = grad_V.reshape(T, p, -1)
        grad_V = grad_V[0] if T == 1 else grad_V.sum(axis=0)
    return grad_V, (grad_c, grad_d_eps)


def _pf_vjp(backend, V, devices, grad_I, need_V):
    grad_V, grad_c, grad_d_eps = backend.pf_currents_vjp(V, *devices, grad_I, need_V)
    return grad_V, (grad_c, grad_d_eps)


def read_vjp(backend, stage, state, grad_I, need_V=True):
    """(dL/dV (p, m) or None, dL/dG (m, n)) for Ohmic devices, or (dL/dV or None,
    (dL/dc, dL/d(d_eps))) under PF, from dL/dI (p, n). ADCs pass the gradient straight through
    inside [0, full_scale] and stop it outside."""
    if isinstance(state, StackedRead):
        return _read_stacked_vjp(backend, stage, state, grad_I, need_V)
    adc, wires = stage.phases.get("adc"), stage.phases.get("wires")
    m, n, parts = state.m, state.n, state.parts
    p = grad_I.shape[0]
    dtype = grad_I.dtype
    grad_V = np.zeros((p, m), dtype) if need_V else None
    pf = bool(parts) and parts[0].devices is not None
    grad_G = (np.zeros((m, n), dtype), np.zeros((m, n), dtype)) if pf else np.zeros((m, n), dtype)
    for part in parts:
        r0, r1, c0, c1, V_t, G_t, dev_t = part.r0, part.r1, part.c0, part.c1, part.V, part.G, part.devices
        g = np.ascontiguousarray(grad_I[:, c0:c1])
        if adc is not None:
            g = adc.apply_vjp(part.I_raw, part.full_scale, g)
        if wires is not None:
            gV, gG = wires.currents_vjp(part.wires, g, need_V=need_V)
        elif pf:
            gV, gc, gd = backend.pf_currents_vjp(V_t, *dev_t, g, need_V)
            gG = (gc, gd)
        else:
            gV = g @ G_t.T if need_V else None
            gG = V_t.T @ g
        if need_V:
            grad_V[:, r0:r1] += gV
        if pf:
            grad_G[0][r0:r1, c0:c1] = gG[0]
            grad_G[1][r0:r1, c0:c1] = gG[1]
        else:
            grad_G[r0:r1, c0:c1] = gG
    return grad_V, grad_G


def power_parts(stage, state):
    """dict(device=W, wires=W, total=W) under LineResistance: each averaged over the examples and
    summed over the arrays."""
    wires = stage.phases["wires"]
    out = {"device": 0.0, "wires": 0.0, "total": 0.0}
    for part in state.parts:
        for key, value in wires.power(part.wires).items():
            out[key] += float(value)
    return out

