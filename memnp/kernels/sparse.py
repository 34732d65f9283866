"""CPU crossbar kernels that skip zero voltages element by element (Numba, parallel, vectorized).

Same functions, shapes, units and dtype rules as :mod:`memnp.kernels.cpu`: V (p, m) in volts,
c (m, n) in A/V, d_eps (m, n) in F/m (> 0), grad_I (p, n) in A; float32 inputs are computed and
returned in float32, anything else in float64.

Why. At V = 0 a PF device carries no current, its current has no gradient with respect to c or
d_eps, and dI/dV is 0 by the reference's rule. In MNIST training V = k_V [x, 1] with most pixels
exactly 0, so only the nonzero (example p, row i) pairs need any work. The dense kernels of
:mod:`memnp.kernels.cpu` only drop rows that are zero for the whole batch (the caller does that).

Loop layout (the PF algebra and the float32 factoring E = sqrt(u) sqrt(K) are cpu.py's; see its
docstring). Columns are padded to a multiple of :data:`COLUMN_PAD` with c = 0 and K = 0 (and dL/dI = 0)
so that the inner loops over columns run in whole SIMD vectors (no scalar tail for n = 16, 32,
64, ...; n = 50 runs as 64, n = 20 as 32).

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

:func:`min_zeros` gives the fraction of exact zeros in V from which this module beats the
dense one (measured with bench/sparse.py); the cpu backend's one dispatcher
(:func:`memnp.kernels.cpu_auto.plan`) picks between them with it.
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
#: The column axis is padded to a multiple of this (the float32 AVX-512 width): padding n = 20
#: to 32 or n = 50 to 64 was faster than a scalar tail, padding 48 to 64 was not (bench/sparse.py).
COLUMN_PAD = 16
#: Fraction of exact zeros in V at or above which the cpu backend
#: (:func:`memnp.kernels.cpu_auto.plan`) picks the sparse kernels, for crossbars of at least
#: WIDE_COLUMNS columns (measured on 64 x {26..1025} x 50 float32, 2
#: threads: sparse loses 7-15 % with no zeros and wins 20-28 % at 30 % zeros) ...
SPARSE_MIN_ZEROS = 0.3
WIDE_COLUMNS = 32
#: ... and for narrower ones (64 x {300..1025} x 20: sparse loses 10 % at 30 % zeros and wins
#: 25-40 % at 60 %; the per-pair overhead and the padding to COLUMN_PAD weigh more).
NARROW_MIN_ZEROS = 0.6
#: Crossbars with fewer devices (m n) always take the dense kernels (calls there cost tens of
#: microseconds either way, mostly overhead).
MIN_DEVICES = 1024


# --- kernels ---------------------------------------------------------------------------------

@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _device_terms(c, d_eps, nn, absolute):
    """Padded copies (m, nn) of c (|c| if absolute) and of the device term k of d_eps, with
    zeros in the padding columns (there c = 0 adds nothing and k = 0 keeps E finite)."""
    m, n = c.shape
    cw = np.zeros((m, nn), dtype=c.dtype)
    k = np.zeros((m, nn), dtype=c.dtype)
    for i in range(m):
        for j in range(n):
            cw[i, j] = abs(c[i, j]) if absolute else c[i, j]
            k[i, j] = _device_term(d_eps[i, j])
    return cw, k


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _nonzero(V, ex, rows):
    """Write the indices i with V[ex, i] != 0 to rows[:count] (branch-free); return count.
    rows needs V.shape[1] + 1 entries."""
    count = 0
    for i in range(V.shape[1]):
        rows[count] = i
        count += V[ex, i] != 0.0
    return count


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _forward_examples(t, threads, V, cw, k, power, out):
    """The forward work of thread t: examples t, t + threads, ... (see _sparse_forward_kernel)."""
    wide_vectors()
    p, m = V.shape
    nn = cw.shape[1]
    zero = V.dtype.type(0.0)
    rows = np.empty(m + 1, dtype=np.int64)
    block = np.zeros(nn, dtype=V.dtype)
    for ex in range(t, p, threads):
        count = _nonzero(V, ex, rows)
        for s in range(count):
            i = rows[s]
            v = V[ex, i]
            w = v * v if power else v
            x = _example_term(abs(v))
            # Unsigned index: LLVM then knows it is not negative and loads contiguously.
            for j in range(np.uint64(nn)):
                block[j] += w * cw[i, j] * fast_exp_nonneg(_exponent(x, k[i, j]))
            if (s + 1) % BLOCK == 0 or s + 1 == count:
                for j in range(nn):
                    out[ex, j] += block[j]
                    block[j] = zero


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _sparse_forward_kernel(V, c, d_eps, nn, power, threads):
    """out[p, j] = sum over i with V[p, i] != 0 of w c'[i, j] exp(E[p, i, j]).

    V (p, m); c, d_eps (m, n). For currents w = V[p, i] and c' = c; for power (power=True)
    w = V[p, i]**2 and c' = |c| (|V| |I_ind| = V**2 |c| e). Returns out (p, nn) float64
    (columns past n are 0). Thread t takes examples t, t + T, ... (T = threads).
    """
    p = V.shape[0]
    cw, k = _device_terms(c, d_eps, nn, power)
    out = np.zeros((p, nn), dtype=np.float64)
    threads = min(threads, max(p, 1))
    for t in prange(threads):
        _forward_examples(t, threads, V, cw, k, power, out)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _backward_rows(t, threads, VT, c, d_eps, cw, k, g, need_V, grad_V, grad_c, grad_d_eps):
    """The backward work of thread t: rows t, t + threads, ... (see _sparse_backward_kernel).
    VT (m, p) is V transposed; g (p, nn) is dL/dI padded with zeros."""
    wide_vectors()
    m, p = VT.shape
    n = c.shape[1]
    nn = cw.shape[1]
    dtype = VT.dtype
    zero = dtype.type(0.0)
    one = dtype.type(1.0)
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
                if need_V:
                    sum_V += cw[i, j] * ge * (one + h)
            if need_V:
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


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _sparse_backward_kernel(V, c, d_eps, grad_I, nn, need_V, threads):
    """The PF vector-Jacobian product over the nonzero (p, i) pairs, parallel over rows.

    V (p, m); c, d_eps (m, n); grad_I (p, n). Returns (grad_V (p, m), grad_c (m, n),
    grad_d_eps (m, n)) in V's dtype (grad_V (0, 0) unless need_V). Thread t takes rows t, t + T, ... (T = threads); the
    column axis is padded to nn with c = 0, k = 0 and dL/dI = 0, which add nothing.
    """
    p, m = V.shape
    n = c.shape[1]
    dtype = V.dtype
    cw, k = _device_terms(c, d_eps, nn, False)
    g = np.zeros((p, nn), dtype=dtype)
    VT = np.empty((m, p), dtype=dtype)          # V transposed: row i's examples contiguous
    for q in range(p):
        for j in range(n):
            g[q, j] = grad_I[q, j]
        for i in range(m):
            VT[i, q] = V[q, i]
    grad_V = np.zeros((p, m) if need_V else (0, 0), dtype=dtype)
    grad_c = np.empty((m, n), dtype=dtype)
    grad_d_eps = np.empty((m, n), dtype=dtype)
    threads = min(threads, max(m, 1))
    for t in prange(threads):
        _backward_rows(t, threads, VT, c, d_eps, cw, k, g, need_V, grad_V, grad_c, grad_d_eps)
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


def pf_currents_vjp(V, c, d_eps, grad_I, need_V=True):
    """Vector-Jacobian product of :func:`pf_currents`.

    grad_I (p, n) is dL/dI. Returns (dL/dV (p, m), dL/dc (m, n), dL/d(d_eps) (m, n)) in V's
    precision; dL/dV is None (not computed) when ``need_V`` is false. dL/dV is 0 where V == 0
    exactly (the reference's rule).
    """
    V, c, d_eps = _check_pf(V, c, d_eps)
    n = c.shape[1]
    grad_I = _as_matrix("grad_I", grad_I, V.dtype, (V.shape[0], n))
    grad_V, grad_c, grad_d_eps = _sparse_backward_kernel(V, c, d_eps, grad_I, _padded_width(n),
                                                         bool(need_V), get_num_threads())
    return (grad_V if need_V else None), grad_c, grad_d_eps


def pf_power(V, c, d_eps):
    """Average power (W) of a PF crossbar over the batch: sum of |V| |I_ind| / p (nan if p = 0)."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    if V.shape[0] == 0:
        return float("nan")
    out = _sparse_forward_kernel(V, c, d_eps, _padded_width(c.shape[1]), True, get_num_threads())
    return float(out.sum() / V.shape[0])


# --- choosing between the sparse and the dense kernels ------------------------------------------

@njit(fastmath=KERNEL_FASTMATH, cache=True)
def _count_zeros(V):
    """Number of entries of the 2-D array V that are exactly 0."""
    count = 0
    for q in range(V.shape[0]):
        for i in range(V.shape[1]):
            count += V[q, i] == 0.0
    return count


def zero_fraction(V):
    """Fraction of the entries of V (p, m) that are exactly 0 (0.0 for an empty V)."""
    V = np.asarray(V)
    if V.ndim != 2 or V.dtype not in (np.float32, np.float64):
        return 1.0 - np.count_nonzero(V) / V.size if V.size else 0.0
    return _count_zeros(V) / V.size if V.size else 0.0


def min_zeros(n):
    """Fraction of exact zeros in V from which the sparse kernels beat the dense ones on a
    crossbar with n columns (measured with bench/sparse.py, 2 threads, float32; see
    :data:`SPARSE_MIN_ZEROS` and :data:`NARROW_MIN_ZEROS`)."""
    return SPARSE_MIN_ZEROS if n >= WIDE_COLUMNS else NARROW_MIN_ZEROS
