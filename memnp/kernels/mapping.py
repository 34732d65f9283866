"""Numba loops for the mapping stairs of a memristive layer's read (docs/model.md §1), one pass each.

The plain NumPy forms in :mod:`memnp.crossbar.mapping` are the reference; these loops compute
the same values with fewer passes over the arrays, for the layers' hot path:

- :func:`scan_inputs`: which crossbar rows a batch drives (an input that is nonzero for some
  example; the bias row always) and whether every input is in [0, 1] (hence finite), in one pass
  over x (the reference: :func:`scan_inputs_reference`); :func:`in_unit_interval` the range part
  alone (for the digital shortcut);
- :func:`voltages`: V = k_V [x, 1] restricted to given rows, C-contiguous, in one gather
  (the reference: ``x_to_V(x, k_V)[:, rows]``);
- :func:`double_G_rows`: G = k_G D[rows] + G_off (the reference: ``_double_G(D[rows], ...)``);
- :func:`double_w_to_G_vjp_rows`: dL/dD (m, n) from dL/dG of the rows read, zero elsewhere, with
  the path through max_weight = max D (the reference: scatter, then ``_double_w_to_G_vjp``);
- :func:`outputs` and :func:`outputs_vjp`: y from the column currents and back (the reference:
  ``I_to_y`` and ``I_to_y_vjp``).

Shapes: x (p, n_in) dimensionless; V (p, r) in volts; D (m, n) double weights, m = n_in + 1 (bias
row last); rows (r,) int64, increasing; G and dL/dG (r, n) in siemens and 1/S.
"""
import numpy as np
from numba import njit

from .arrays import contiguous_floats
from .checks import _top

#: 'reassoc' lets LLVM vectorize the sums (their order does not matter here); no 'nnan' or 'ninf'.
_FASTMATH = {"reassoc", "nsz", "contract"}


def supported(*arrays):
    """True for C-contiguous 2-D NumPy float32/float64 arrays of one dtype (what the loops take)."""
    return contiguous_floats(*arrays, ndim=2)


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _scan(bits, active, magnitude, one):
    p, n_in = bits.shape
    zero = bits.dtype.type(0)
    top = zero
    for ex in range(p):
        for i in range(n_in):
            b = bits[ex, i]
            active[i] |= (b & magnitude) != zero     # x != 0 (-0.0 is 0)
            top = max(top, b)
    active[n_in] = True
    return top <= one


#: Unsigned view type, the bits of the magnitude and the bits of 1.0, per float dtype. Read as
#: unsigned integers, the bits of +0.0 ... 1.0 are 0 ... ONE; every negative float (sign bit set,
#: -0.0 included), +inf and NaN have larger bits. Integer loads, masks and max vectorize, and no
#: float comparison has to respect NaN; -0.0, which is in [0, 1], fails the bit test and is
#: settled by the NumPy comparison (inputs rarely hold it).
_UNIT_BITS = {np.dtype(np.float32): (np.uint32, 0x7FFFFFFF, 0x3F800000),
              np.dtype(np.float64): (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x3FF0000000000000)}


def scan_inputs(x):
    """(active (n_in + 1,) bool, valid bool) for x (p, n_in), float32 or float64, C-contiguous:
    active[i] when x[:, i] has a nonzero entry (active[n_in], the bias row, always); valid when
    every entry is in [0, 1] (so finite), from the max of x's bits in the same pass."""
    unsigned, magnitude, one = _UNIT_BITS[x.dtype]
    active = np.zeros(x.shape[1] + 1, dtype=np.bool_)
    valid = _scan(x.view(unsigned), active, unsigned(magnitude), unsigned(one))
    return active, bool(valid) or _unit_numpy(x)


def in_unit_interval(x):
    """True when every entry of x (C-contiguous float32/float64, at least one) is in [0, 1], from
    one max over its bits (the reference: ``np.all((x >= 0) & (x <= 1))``)."""
    unsigned, _, one = _UNIT_BITS[x.dtype]
    return bool(_top(x.reshape(-1).view(unsigned)) <= one) or _unit_numpy(x)


def _unit_numpy(x):
    return bool(np.all((x >= 0) & (x <= 1)))


def scan_inputs_reference(x):
    """The NumPy form of :func:`scan_inputs`: (x.any(axis=0) with the bias row True, valid)."""
    active = np.append(np.any(x != 0, axis=0), True)
    return active, _unit_numpy(x)


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _gather(x, k_V, rows, V):
    p, n_in = x.shape
    kv = x.dtype.type(k_V)
    r = rows.size
    bias = r > 0 and rows[r - 1] == n_in       # rows increase, so the bias row can only be last
    inputs = r - 1 if bias else r
    for ex in range(p):
        for s in range(inputs):
            V[ex, s] = kv * x[ex, rows[s]]
        if bias:
            V[ex, inputs] = kv


def voltages(x, k_V, rows):
    """V (p, len(rows)) in volts, in x's dtype: column s is k_V x[:, rows[s]], or k_V for the bias
    row (rows[s] == n_in). x (p, n_in) C-contiguous float32/float64."""
    V = np.empty((x.shape[0], rows.size), dtype=x.dtype)
    _gather(x, float(k_V), rows, V)
    return V


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _G_rows(D, rows, k_G, G_off, G):
    t = D.dtype.type
    k, off = t(k_G), t(G_off)
    for s in range(rows.size):
        i = rows[s]
        for j in range(D.shape[1]):
            G[s, j] = D[i, j] * k + off


def double_G_rows(D, rows, max_weight, G_off, G_on):
    """G (len(rows), n) = k_G D[rows] + G_off in D's dtype, k_G = (G_on - G_off) / max_weight."""
    G = np.empty((rows.size, D.shape[1]), dtype=D.dtype)
    _G_rows(D, rows, (G_on - G_off) / max_weight, G_off, G)
    return G


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _vjp_rows(D, grad_G, rows, k_G, max_weight, grad_max_weight, grad):
    n = D.shape[1]
    t = D.dtype.type
    k = t(k_G)
    total = 0.0
    for s in range(rows.size):
        i = rows[s]
        row = t(0.0)
        for j in range(n):
            g = grad_G[s, j]
            row += g * D[i, j]
            grad[i, j] = k * g
        total += row
    grad_max = grad_max_weight - total * k_G / max_weight
    flat_D = D.reshape(-1)
    flat = grad.reshape(-1)
    top = t(max_weight)
    ties = 0
    for q in range(flat_D.size):
        ties += flat_D[q] == top
    share = grad_max / ties
    found = 0
    for q in range(flat_D.size):          # stops at the last tie (usually one entry)
        if flat_D[q] == top:
            flat[q] = np.float64(flat[q]) + share
            found += 1
            if found == ties:
                break


def double_w_to_G_vjp_rows(D, grad_G, rows, grad_max_weight, G_off, G_on, max_weight):
    """dL/dD (m, n) in D's dtype from dL/dG (len(rows), n) of the rows read (the other rows'
    dL/dG is 0) and the upstream dL/d(max_weight); max_weight = max D (a float)."""
    grad = np.zeros(D.shape, dtype=D.dtype)
    _vjp_rows(D, grad_G, rows, (G_on - G_off) / max_weight, float(max_weight), float(grad_max_weight), grad)
    return grad


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _outputs(I, divisor, y):
    for ex in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[ex, j] = (I[ex, 2 * j] - I[ex, 2 * j + 1]) / divisor


def outputs(I, k_V, max_weight, G_off, G_on):
    """y = (I[:, 0::2] - I[:, 1::2]) / (k_V k_G) (p, n_out) from column currents I (p, 2 n_out)
    in A, C-contiguous float32/float64 (the reference: :func:`memnp.crossbar.mapping.I_to_y`)."""
    y = np.empty((I.shape[0], I.shape[1] // 2), dtype=I.dtype)
    _outputs(I, I.dtype.type(k_V * (G_on - G_off) / max_weight), y)
    return y


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _outputs_vjp(I, grad_y, scale, grad_I):
    total = 0.0
    for ex in range(grad_y.shape[0]):
        row = grad_y.dtype.type(0.0)
        for j in range(grad_y.shape[1]):
            g = grad_y[ex, j]
            grad_I[ex, 2 * j] = scale * g
            grad_I[ex, 2 * j + 1] = -scale * g
            row += g * (I[ex, 2 * j] - I[ex, 2 * j + 1])
        total += row
    return total


def outputs_vjp(I, grad_y, k_V, max_weight, G_off, G_on):
    """(dL/dI (p, 2 n_out), dL/d(max_weight)) from dL/dy (p, n_out), for C-contiguous I and dL/dy
    of one float dtype (the reference: :func:`memnp.crossbar.mapping.I_to_y_vjp`)."""
    grad_I = np.empty(I.shape, dtype=I.dtype)
    scale = max_weight / (k_V * (G_on - G_off))
    total = _outputs_vjp(I, grad_y, I.dtype.type(scale), grad_I)
    return grad_I, float(total) / (k_V * (G_on - G_off))


@njit(cache=True)
def _bit_extremes(bits):
    lo = bits[0]
    hi = bits[0]
    for q in range(1, bits.size):
        b = bits[q]
        lo = min(lo, b)
        hi = max(hi, b)
    return lo, hi


_INF_BITS = {np.dtype(np.float32): (np.int32, 0x7F800000), np.dtype(np.float64): (np.int64, 0x7FF0000000000000)}


def double_max_weight(D):
    """max D (a float) of a C-contiguous float32/float64 D when every entry is finite and >= 0
    and one is > 0, else None (the caller then runs the checked NumPy form, which says what is
    wrong). One pass of integer min/max over D's bits: for IEEE floats with the sign bit clear
    (which includes +0, excludes -0 and negative NaN) the bits order as the values do, and
    +inf or NaN have bits >= those of +inf."""
    if D.size == 0 or D.dtype not in _INF_BITS or not D.flags.c_contiguous:
        return None
    int_type, inf_bits = _INF_BITS[D.dtype]
    lo, hi = _bit_extremes(D.reshape(-1).view(int_type))
    if lo < 0 or hi >= inf_bits or hi == 0:
        return None
    return float(np.array(hi, dtype=int_type).view(D.dtype))
