"""Numba loops for the mapping stairs of a memristive layer with standard weights (docs/model.md §1).

The plain NumPy forms :func:`memnp.crossbar.mapping.w_to_G` and
:func:`memnp.crossbar.mapping.w_to_G_vjp` are the reference. These loops give the same numbers,
bit for bit, in a few passes over W instead of about fifteen NumPy calls, and only for the rows a
batch reads:

- :func:`max_weight`: max |W| when every entry is finite (one pass over W's bits), else None;
- :func:`G_rows`: the conductances of some rows, ``w_to_G(W, ...)[0][rows]``;
- :func:`w_to_G_vjp_rows`: dL/dW from dL/dG of the rows read (zero elsewhere), with the path
  through max_weight = max |W| (the reference: :func:`memnp.crossbar.mapping.w_to_G_vjp_rows`,
  ``w_to_G_vjp`` of dL/dG scattered into a full array).

Equality with NumPy rests on doing each elementwise operation in the same precision as NumPy
does it (a Python float meets a float32 array as a float32; the tie share is added in float64,
then rounded) and on signed zeros: the loops are compiled without ``fastmath``. The one sum,
``sum(dL/dz * W)``, is NumPy's own ``np.sum`` over the same float32 array (its pairwise order).

Shapes: W (m, n) standard weights, bias row last (m = n_in + 1); G and dL/dG (r, 2 n) in siemens
and 1/S, even columns the positive devices; rows (r,) int64, increasing. Arrays C-contiguous,
float32 or float64, of one dtype.
"""
import numpy as np
from numba import njit


__all__ = ["max_weight", "G_rows", "w_to_G_vjp_rows"]

_ABS_BITS = {np.dtype(np.float32): (np.int32, 0x7FFFFFFF, 0x7F800000),
             np.dtype(np.float64): (np.int64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)}


@njit(cache=True)
def _abs_bits_max(bits, mask):
    top = bits[0] & mask
    for q in range(1, bits.size):
        b = bits[q] & mask
        if b > top:
            top = b
    return top


def max_weight(W):
    """max |W| (a float) of a C-contiguous float32/float64 W whose entries are all finite and
    one is nonzero, else None (the caller then runs the checked NumPy form, which says what is
    wrong). With the sign bit cleared, IEEE floats order as their magnitudes do, and +inf and
    NaN have the largest bits."""
    if W.size == 0 or W.dtype not in _ABS_BITS or not W.flags.c_contiguous:
        return None
    int_type, mask, inf_bits = _ABS_BITS[W.dtype]
    top = _abs_bits_max(W.reshape(-1).view(int_type), int_type(mask))
    if top >= inf_bits or top == 0:
        return None
    return float(np.array(top, dtype=int_type).view(W.dtype))


@njit(error_model="numpy", cache=True)
def _G_rows(W, rows, k_G, G_off, G_avg, avg, G):
    t = W.dtype.type
    k, off, mid, half, zero = t(k_G), t(G_off), t(G_avg), t(0.5), t(0.0)
    for s in range(rows.size):
        i = rows[s]
        for j in range(W.shape[1]):
            z = k * W[i, j]
            if avg:
                G[s, 2 * j] = mid + half * z
                G[s, 2 * j + 1] = mid - half * z
            else:
                G[s, 2 * j] = (z if z >= zero else zero) + off
                G[s, 2 * j + 1] = -(z if z <= zero else zero) + off


def G_rows(W, rows, max_weight, G_off, G_on, rule):
    """G (len(rows), 2 n) in W's dtype: the rows ``rows`` of ``w_to_G(W, G_off, G_on, rule)``'s
    conductances, max_weight = max |W| (a float)."""
    G = np.empty((rows.size, 2 * W.shape[1]), dtype=W.dtype)
    _G_rows(W, rows, (G_on - G_off) / max_weight, G_off, 0.5 * (G_off + G_on), rule == "avg", G)
    return G


@njit(error_model="numpy", cache=True)
def _grad_z(W, grad_G, rows, k_G, avg, grad_z, product):
    """dL/dz (m, n) and dL/dz * W, from dL/dG of the rows read (0 in the others)."""
    t = W.dtype.type
    k, half, zero = t(k_G), t(0.5), t(0.0)
    grad_z[:] = zero
    for s in range(rows.size):
        i = rows[s]
        for j in range(W.shape[1]):
            g_pos, g_neg = grad_G[s, 2 * j], grad_G[s, 2 * j + 1]
            if avg:
                grad_z[i, j] = half * (g_pos - g_neg)
            else:
                z = k * W[i, j]
                grad_z[i, j] = (g_pos if z >= zero else zero) - (g_neg if z <= zero else zero)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            product[i, j] = grad_z[i, j] * W[i, j]


@njit(error_model="numpy", cache=True)
def _finish(W, grad_z, k_G, top, grad_max, grad):
    """dL/dW = k_G dL/dz plus grad_max shared among the entries with |W| = max |W|, times
    sign(W), added in float64 (NumPy's where(...) * sign(W) term: +-0.0 off the ties)."""
    t = W.dtype.type
    k, zero = t(k_G), t(0.0)
    ties = 0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            ties += abs(W[i, j]) == top
    share = grad_max / ties
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            sign = 1.0 if w > zero else (-1.0 if w < zero else 0.0)
            term = (share if abs(w) == top else 0.0) * sign
            grad[i, j] = t(np.float64(k * grad_z[i, j]) + term)


def w_to_G_vjp_rows(W, grad_G, rows, grad_max_weight, G_off, G_on, rule, max_weight):
    """dL/dW (m, n) in W's dtype from dL/dG (len(rows), 2 n) of the rows read (the other rows'
    dL/dG is 0) and the upstream dL/d(max_weight); max_weight = max |W| (a float)."""
    k_G = (G_on - G_off) / max_weight
    grad_z = np.empty(W.shape, dtype=W.dtype)
    product = np.empty(W.shape, dtype=W.dtype)
    _grad_z(W, grad_G, rows, k_G, rule == "avg", grad_z, product)
    # z = (G_on - G_off) W / max_weight, so dz/d(max_weight) = -z / max_weight.
    grad_max = grad_max_weight - float(np.sum(product)) * k_G / max_weight
    grad = np.empty(W.shape, dtype=W.dtype)
    _finish(W, grad_z, k_G, W.dtype.type(max_weight), grad_max, grad)
    return grad
