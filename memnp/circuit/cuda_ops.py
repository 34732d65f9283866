"""Block-wide device functions of the cuda circuit solver (:mod:`memnp.circuit.cuda`): the wire
operator A t (as :mod:`memnp.circuit.lines`), the device law over the block, the Newton residual
and conjugate gradients on I + S^1/2 A S^1/2 (as :mod:`memnp.circuit.krylov`, without the line
preconditioner).

A block of :data:`~memnp.circuit.cuda_block.NT` threads owns one example. Arrays are that
example's (m, n) views in float64; r_w = r_word, r_b = r_bit (ohm). A t runs one thread per word
line (row), then one thread per bit line (column), each a running sum in registers; elementwise
passes split the m n devices among the threads; dot products are block sums that every thread
sees, so the CG loop branches alike across the block.
"""
import numba_cuda  # noqa: F401  (ImportError: numba-cuda is not installed)
from numba import cuda

from ..kernels.device_law import pf_current_slope_libm
from .cuda_block import NT, block_sum3

_law_dev = cuda.jit(device=True)(pf_current_slope_libm)


@cuda.jit(device=True)
def apply_A(t, r_w, r_b, out):
    """out = A t for one example (t, out (m, n) views), by the whole block."""
    tid = cuda.threadIdx.x
    m, n = t.shape
    for i in range(tid, m, NT):
        if r_w > 0.0:
            total = 0.0
            for j in range(n):
                total += t[i, j]
            acc = 0.0
            for j in range(n):
                acc += total
                out[i, j] = r_w * acc
                total -= t[i, j]
        else:
            for j in range(n):
                out[i, j] = 0.0
    cuda.syncthreads()
    if r_b > 0.0:
        for j in range(tid, n, NT):
            P = 0.0
            for i in range(m):
                P += t[i, j]
            Q = 0.0
            for k in range(m):
                i = m - 1 - k
                Q += P
                out[i, j] += r_b * Q
                P -= t[i, j]
    cuda.syncthreads()


@cuda.jit(device=True)
def apply_A_scaled(sq, z, t, r_w, r_b, out):
    """out = A t with t = sq z (all (m, n) views; t written here), by the whole block."""
    tid = cuda.threadIdx.x
    m, n = z.shape
    for k in range(tid, m * n, NT):
        i, j = k // n, k % n
        t[i, j] = sq[i, j] * z[i, j]
    cuda.syncthreads()
    apply_A(t, r_w, r_b, out)


@cuda.jit(device=True)
def law(c, K, pf, v, F, s):
    """F = the devices' currents and s = their slopes dI/dv at v (PF when ``pf``, else F = c v,
    s = c), by the whole block."""
    tid = cuda.threadIdx.x
    m, n = v.shape
    for k in range(tid, m * n, NT):
        i, j = k // n, k % n
        if pf:
            F[i, j], s[i, j] = _law_dev(v[i, j], c[i, j], K[i, j])
        else:
            F[i, j] = c[i, j] * v[i, j]
            s[i, j] = c[i, j]
    cuda.syncthreads()


@cuda.jit(device=True)
def evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, sh):
    """The Newton residual R = v + A F(v) - V (V the row voltages Vrow (m,)), with F and s from
    :func:`law`; returns (||R||^2, ||s R||^2, ||F||^2), block sums every thread sees."""
    law(c, K, pf, v, F, s)
    apply_A(F, r_w, r_b, R)
    tid = cuda.threadIdx.x
    m, n = v.shape
    rr = sr = ff = 0.0
    for k in range(tid, m * n, NT):
        i, j = k // n, k % n
        res = v[i, j] + R[i, j] - Vrow[i]
        R[i, j] = res
        rr += res * res
        a = s[i, j] * res
        sr += a * a
        ff += F[i, j] * F[i, j]
    cuda.syncthreads()
    return block_sum3(rr, sr, ff, sh)


@cuda.jit(device=True)
def cg(sq, b, r_w, r_b, eta, max_cg, z, r, pv, q, t, sh):
    """z = (I + S^1/2 A S^1/2)^-1 b by conjugate gradients (sq = S^1/2), stopped at
    ||r|| <= eta ||b|| or after ``max_cg`` iterations; r, pv, q, t: work. Returns (iterations,
    the largest Rayleigh quotient seen: an estimate of the largest eigenvalue, >= 1)."""
    tid = cuda.threadIdx.x
    m, n = b.shape
    rr = 0.0
    for k in range(tid, m * n, NT):
        i, j = k // n, k % n
        z[i, j] = 0.0
        r[i, j] = b[i, j]
        pv[i, j] = b[i, j]
        t[i, j] = sq[i, j] * b[i, j]
        rr += b[i, j] * b[i, j]
    cuda.syncthreads()
    rr, _, _ = block_sum3(rr, 0.0, 0.0, sh)
    target = eta * eta * rr
    it = 0
    lam_max = 1.0
    while it < max_cg and rr > target:
        apply_A(t, r_w, r_b, q)
        pq = pp = 0.0
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            qq = pv[i, j] + sq[i, j] * q[i, j]
            q[i, j] = qq
            pq += pv[i, j] * qq
            pp += pv[i, j] * pv[i, j]
        cuda.syncthreads()
        pq, pp, _ = block_sum3(pq, pp, 0.0, sh)
        if not pq > 0.0:
            break
        lam_max = max(lam_max, pq / pp)
        alpha = rr / pq
        rr_new = 0.0
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            z[i, j] += alpha * pv[i, j]
            rv = r[i, j] - alpha * q[i, j]
            r[i, j] = rv
            rr_new += rv * rv
        cuda.syncthreads()
        rr_new, _, _ = block_sum3(rr_new, 0.0, 0.0, sh)
        beta = rr_new / rr
        rr = rr_new
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            p_new = r[i, j] + beta * pv[i, j]
            pv[i, j] = p_new
            t[i, j] = sq[i, j] * p_new
        cuda.syncthreads()
        it += 1
    return it, lam_max
