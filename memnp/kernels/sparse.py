"""CPU crossbar kernels that skip zero voltages element by element (Numba, parallel, vectorized).

Same functions, shapes, units and dtype rules as :mod:`memnp.kernels.cpu`: V (p, m) in volts,
c (m, n) in A/V, d_eps (m, n) in F/m (> 0), grad_I (p, n) in A; float32 inputs are computed and
returned in float32, anything else in float64.

Why. At V = 0 a PF device carries no current, its current has no gradient with respect to c or
d_eps, and dI/dV is 0 by the reference's rule. In MNIST training V = k_V [x, 1] with most pixels
exactly 0, so only the nonzero (example p, row i) pairs need any work. The dense kernels of
:mod:`memnp.kernels.cpu` only drop rows that are zero for the whole batch (the caller does that).

Loop layout (the PF algebra and the float32 factoring E = sqrt(u) sqrt(K) are cpu.py's; see its
docstring). Columns are padded to a multiple of :data:`COLUMN_PAD` with c = 0 and K = 0 so that
the inner loop over columns runs entirely in LLVM's vectorized body.

- Forward: parallel over examples (each thread takes every T-th example, T = threads, so that
  examples of different density spread evenly). For example p the kernel lists its nonzero rows
  and, for each, runs the contiguous vectorized loop over the columns of c[i, :] and of the
  per-device term k[i, :] (sqrt(K) in float32, K in float64; computed once per call), adding
  into a row of float accumulators that join a float64 total every :data:`BLOCK` rows.
- Backward: parallel over rows (every T-th row per thread). Row i lists the examples with
  V[p, i] != 0; for each, the vectorized loop over columns accumulates the row's dL/dc and
  dL/d(d_eps) terms and the sum over columns that is dL/dV[p, i]. A row task owns row i of
  dL/dc, dL/d(d_eps) and column i of dL/dV, so the threads never write the same element.
- Power: the forward kernel with weights V**2 and |c| (|V| |I_ind| = V**2 |c| e), summed.

:func:`choose` picks this module or the dense one from the fraction of exact zeros in V
(:data:`SPARSE_MIN_ZEROS`, measured with bench/sparse.py); ``pf_currents_auto`` and friends
dispatch with it.
"""
import numpy as np
from numba import get_num_threads, njit, prange

from . import cpu
from .cpu import (KERNEL_FASTMATH, _check_pf, _device_term, _example_term, _exponent,
                  _half_uK_over_E, _PRANGE_ONLY, _as_matrix)
from .fastexp import fast_exp_nonneg, wide_vectors

#: Rows (forward) or examples (backward) whose terms are summed in V's precision before they
#: join the float64 totals.
BLOCK = 256
#: The column axis is padded to a multiple of this (SIMD width times LLVM's unroll factor), so
#: the inner loops have no scalar remainder.
COLUMN_PAD = 32
#: Fraction of exact zeros in V at or above which :func:`choose` picks the sparse kernels.
SPARSE_MIN_ZEROS = 0.3


# --- kernels ---------------------------------------------------------------------------------

@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _device_terms(c, d_eps, nn, absolute):
    """Padded copies (m, nn) of c (|c| if absolute) and of the device term k of d_eps, with
    zeros in the padding columns (there c = 0 adds nothing and k = 0 keeps E finite)."""
    m, n = c.shape
    cw = np.empty((m, nn), dtype=c.dtype)
    k = np.empty((m, nn), dtype=c.dtype)
    for i in prange(m):
        for j in range(n):
            cw[i, j] = abs(c[i, j]) if absolute else c[i, j]
            k[i, j] = _device_term(d_eps[i, j])
        for j in range(n, nn):
            cw[i, j] = 0.0
            k[i, j] = 0.0
    return cw, k


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _nonzero(V, ex, rows):
    """Write the indices i with V[ex, i] != 0 to rows[:count] (branch-free); return count."""
    count = 0
    for i in range(V.shape[1]):
        rows[count] = i
        count += V[ex, i] != 0.0
    return count


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _sparse_forward_kernel(V, c, d_eps, nn, power, threads):
    """out[p, j] = sum over i with V[p, i] != 0 of w c'[i, j] exp(E[p, i, j]).

    V (p, m); c, d_eps (m, n). For currents w = V[p, i] and c' = c; for power (power=True)
    w = V[p, i]**2 and c' = |c| (|V| |I_ind| = V**2 |c| e). Returns out (p, nn) float64
    (columns past n are 0). Threads take every T-th example (T = threads).
    """
    p, m = V.shape
    dtype = V.dtype
    zero = dtype.type(0.0)
    cw, k = _device_terms(c, d_eps, nn, power)
    out = np.zeros((p, nn), dtype=np.float64)
    threads = min(threads, max(p, 1))
    for t in prange(threads):
        wide_vectors()
        rows = np.empty(m + 1, dtype=np.int64)
        block = np.zeros(nn, dtype=dtype)
        for ex in range(t, p, threads):
            count = _nonzero(V, ex, rows)
            for s in range(count):
                i = rows[s]
                v = V[ex, i]
                w = v * v if power else v
                x = _example_term(abs(v))
                for j in range(np.uint64(nn)):
                    block[j] += w * cw[i, j] * fast_exp_nonneg(_exponent(x, k[i, j]))
                if (s + 1) % BLOCK == 0 or s + 1 == count:
                    for j in range(nn):
                        out[ex, j] += block[j]
                        block[j] = zero
    return out


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _sparse_backward_kernel(V, c, d_eps, grad_I, nn, threads):
    """The PF vector-Jacobian product over the nonzero (p, i) pairs, parallel over rows.

    V (p, m); c, d_eps (m, n); grad_I (p, n). Returns (grad_V (p, m), grad_c (m, n),
    grad_d_eps (m, n)) in V's dtype. Threads take every T-th row (T = threads); the column axis
    is padded to nn with c = 0, k = 0 and dL/dI = 0, which add nothing.
    """
    p, m = V.shape
    n = c.shape[1]
    dtype = V.dtype
    zero = dtype.type(0.0)
    one = dtype.type(1.0)
    cw, k = _device_terms(c, d_eps, nn, False)
    g = np.zeros((p, nn), dtype=dtype)
    g[:, :n] = grad_I
    VT = np.empty((m, p), dtype=dtype)          # V transposed: row i's examples contiguous
    for q in range(p):
        for i in range(m):
            VT[i, q] = V[q, i]
    grad_V = np.zeros((p, m), dtype=dtype)
    grad_c = np.empty((m, n), dtype=dtype)
    grad_d_eps = np.empty((m, n), dtype=dtype)
    threads = min(threads, max(m, 1))
    for t in prange(threads):
        wide_vectors()
        examples = np.empty(p + 1, dtype=np.int64)
        block_c = np.zeros(nn, dtype=dtype)
        block_d = np.zeros(nn, dtype=dtype)
        total_c = np.empty(nn, dtype=np.float64)
        total_d = np.empty(nn, dtype=np.float64)
        for i in range(t, m, threads):
            count = _nonzero(VT, i, examples)
            for j in range(nn):
                total_c[j] = 0.0
                total_d[j] = 0.0
            for s in range(count):
                q = examples[s]
                v = VT[i, q]
                x = _example_term(abs(v))
                sum_V = zero
                for j in range(np.uint64(nn)):
                    E = _exponent(x, k[i, j])
                    ge = g[q, j] * fast_exp_nonneg(E)        # dL/dI * e
                    h = _half_uK_over_E(x, k[i, j], E)       # uK / (2E)
                    tv = ge * v
                    block_c[j] += tv
                    block_d[j] += tv * h
                    sum_V += cw[i, j] * ge * (one + h)
                grad_V[q, i] = sum_V
                if (s + 1) % BLOCK == 0 or s + 1 == count:
                    for j in range(nn):
                        total_c[j] += block_c[j]
                        total_d[j] += block_d[j]
                        block_c[j] = zero
                        block_d[j] = zero
            for j in range(n):
                grad_c[i, j] = total_c[j]
                grad_d_eps[i, j] = -total_d[j] * (np.float64(c[i, j]) / np.float64(d_eps[i, j]))
    return grad_V, grad_c, grad_d_eps


# --- Python wrappers ----------------------------------------------------------------------------

def _padded_width(n):
    """n rounded up to a multiple of COLUMN_PAD."""
    return max(COLUMN_PAD, -(-n // COLUMN_PAD) * COLUMN_PAD)


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in amperes of a PF crossbar: I[p, j] = sum_i I_ind[p, i, j]."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    n = c.shape[1]
    out = _sparse_forward_kernel(V, c, d_eps, _padded_width(n), False, get_num_threads())
    return out[:, :n].astype(V.dtype)


def pf_currents_vjp(V, c, d_eps, grad_I):
    """Vector-Jacobian product of :func:`pf_currents`.

    grad_I (p, n) is dL/dI. Returns (dL/dV (p, m), dL/dc (m, n), dL/d(d_eps) (m, n)) in V's
    precision. dL/dV is 0 where V == 0 exactly (the reference's rule).
    """
    V, c, d_eps = _check_pf(V, c, d_eps)
    n = c.shape[1]
    grad_I = _as_matrix("grad_I", grad_I, V.dtype, (V.shape[0], n))
    return _sparse_backward_kernel(V, c, d_eps, grad_I, _padded_width(n), get_num_threads())


def pf_power(V, c, d_eps):
    """Average power (W) of a PF crossbar over the batch: sum of |V| |I_ind| / p (nan if p = 0)."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    if V.shape[0] == 0:
        return float("nan")
    out = _sparse_forward_kernel(V, c, d_eps, _padded_width(c.shape[1]), True, get_num_threads())
    return float(out.sum() / V.shape[0])


# --- choosing between the sparse and the dense kernels ------------------------------------------

def zero_fraction(V):
    """Fraction of the entries of V (p, m) that are exactly 0 (0.0 for an empty V)."""
    V = np.asarray(V)
    return 1.0 - np.count_nonzero(V) / V.size if V.size else 0.0


def choose(V):
    """The kernel module for V (p, m): this one when at least :data:`SPARSE_MIN_ZEROS` of its
    entries are exactly 0, else :mod:`memnp.kernels.cpu`."""
    import sys
    return sys.modules[__name__] if zero_fraction(V) >= SPARSE_MIN_ZEROS else cpu


def pf_currents_auto(V, c, d_eps):
    """:func:`pf_currents` of the module :func:`choose` picks for V."""
    return choose(V).pf_currents(V, c, d_eps)


def pf_currents_vjp_auto(V, c, d_eps, grad_I):
    """:func:`pf_currents_vjp` of the module :func:`choose` picks for V."""
    return choose(V).pf_currents_vjp(V, c, d_eps, grad_I)


def pf_power_auto(V, c, d_eps):
    """:func:`pf_power` of the module :func:`choose` picks for V."""
    return choose(V).pf_power(V, c, d_eps)
