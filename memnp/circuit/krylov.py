"""Preconditioned conjugate gradients on M = I + S^1/2 A S^1/2 (cpu, Numba), one example.

The inner solve of the Newton-CG step (:mod:`memnp.circuit.solve`) and of the adjoint
(:mod:`memnp.circuit.adjoint`). M p is applied by :func:`memnp.circuit.lines.apply_M` (running
sums along the lines), the preconditioner is the exact solve of one line direction
(:mod:`memnp.circuit.precond`).
"""
from numba import njit

from ..kernels.fastexp import wide_vectors
from . import precond
from .lines import apply_M

_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}


@njit(cache=True, error_model="numpy")
def _zero(z):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = 0.0


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def cg(sq, b, r_w, r_b, eta, max_cg, z, r, pv, q, t, buf_p, buf_q, pdir, g, winv, h,
       bb_given=-1.0):
    """Solve (I + S^1/2 A S^1/2) z = b by conjugate gradients, preconditioned by the exact line
    solve of direction pdir (:mod:`memnp.circuit.precond`; g = 1 / r of that direction, winv its
    factorisation at these slopes; pdir 0: none), to ||residual|| <= eta ||b||. z, r, pv, q, t, h
    (m, n) work arrays; sq = S^1/2. Returns (iterations, the largest Rayleigh quotient p.Mp / p.p
    of the search directions: a lower estimate of M's largest eigenvalue).
    bb_given >= 0: r already holds b (b is not read) and bb_given = ||b||^2."""
    wide_vectors()
    m, n = b.shape
    if bb_given >= 0.0:
        bb = bb_given
    else:
        bb = 0.0
        for i in range(m):
            for j in range(n):
                r[i, j] = b[i, j]
                bb += b[i, j] * b[i, j]
    target = eta * eta * bb
    rr = bb
    lam_max = 1.0
    if not rr > target:
        _zero(z)
        return 0, lam_max
    rh = precond.apply_dot(r, sq, g, pdir, winv, pv, t, True)   # p = P^-1 r, t = S^1/2 p
    k = 0
    while k < max_cg and rr > target:
        pq, pp = apply_M(t, pv, sq, r_w, r_b, q, buf_p, buf_q)  # q = M p
        if not pq > 0.0:
            if k == 0:
                _zero(z)
            break
        lam_max = max(lam_max, pq / pp)
        alpha = rh / pq
        rr = 0.0
        if k == 0:                      # z starts at 0: the first update writes it
            for i in range(m):
                for j in range(n):
                    z[i, j] = alpha * pv[i, j]
                    rv = r[i, j] - alpha * q[i, j]
                    r[i, j] = rv
                    rr += rv * rv
        else:
            for i in range(m):
                for j in range(n):
                    z[i, j] += alpha * pv[i, j]
                    rv = r[i, j] - alpha * q[i, j]
                    r[i, j] = rv
                    rr += rv * rv
        k += 1
        if not rr > target:
            break
        rh_new = precond.apply_dot(r, sq, g, pdir, winv, h, h, False)
        beta = rh_new / rh
        rh = rh_new
        for i in range(m):
            for j in range(n):
                p_new = h[i, j] + beta * pv[i, j]
                pv[i, j] = p_new
                t[i, j] = sq[i, j] * p_new
    return k, lam_max
