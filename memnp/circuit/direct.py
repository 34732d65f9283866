"""Sparse direct solves of the Newton matrix J = I + A S (cpu, scipy's SuperLU): the fallback of the
line-resistance solver and its adjoint where conjugate gradients crawl.

J (m n x m n, the device-voltage form of :mod:`memnp.circuit.solve`) is dense, but its inverse
comes from the sparse nodal matrix: A = P L^-1 P^T, with L the wire matrix of the
2 m n node voltages (:func:`memnp.circuit.assemble.wire_matrix`), P^T x the device currents x
added at word nodes and taken from bit nodes (:func:`memnp.circuit.assemble.device_term`) and P y
the device voltages U - W of the node voltages y. Then (Woodbury)

    J^-1 y = y - P (L + P^T S P)^-1 P^T S y,

and L + P^T S P is the nodal Jacobian (:func:`memnp.circuit.assemble.jacobian`, symmetric
positive definite when every slope s >= 0): one sparse LU and one sparse solve per right-hand
side, no division by a slope. The unknowns are ordered by nested dissection of the m x n grid of
devices (each device's word and bit node together), which keeps the factor near O(N log N).

:func:`solve_with_currents` is Newton on the device voltages with these steps (the same residual,
norm, line search and report as the iterative solver); :class:`NewtonMatrix` also serves the
adjoint (:mod:`memnp.circuit.adjoint`). A linear array is factored once for the whole batch, a PF
array once per example and Newton step.
"""
import math

import numpy as np
import scipy.sparse.linalg as spla

from . import assemble
from .network import Network
from .report import IN_PROGRESS, SolveReport, newton_status

#: Estimated conjugate-gradient iterations per solve above which CG is taken to crawl and the
#: "auto" method solves directly (the solvers' own cap on CG iterations per solve).
CRAWL_ITERATIONS = 5000


def _grid_order(m, n, leaf=8):
    """Nested-dissection order of the m x n grid (cells i n + j, 4-neighbour): each half before
    the line that separates it; blocks of at most leaf x leaf cells (or two lines) in row order."""
    out = []
    stack = [(0, m, 0, n, False)]
    while stack:                         # iterative, so that no recursion limit is reached
        i0, i1, j0, j1, emit = stack.pop()
        if emit:                         # a separator, emitted after both halves
            out.append((np.arange(i0, i1)[:, None] * n + np.arange(j0, j1)[None, :]).ravel())
            continue
        h, w = i1 - i0, j1 - j0
        if h <= 0 or w <= 0:
            continue
        if h * w <= leaf * leaf or min(h, w) <= 2:
            out.append((np.arange(i0, i1)[:, None] * n + np.arange(j0, j1)[None, :]).ravel())
        elif h >= w:
            c = (i0 + i1) // 2
            stack += [(c, c + 1, j0, j1, True), (c + 1, i1, j0, j1, False), (i0, c, j0, j1, False)]
        else:
            c = (j0 + j1) // 2
            stack += [(i0, i1, c, c + 1, True), (i0, i1, c + 1, j1, False), (i0, i1, j0, c, False)]
    return np.concatenate(out)


class NewtonMatrix:
    """J = I + A S at slopes s (m, n) in S, factored through the nodal matrix: :meth:`solve`
    applies J^-1 to a batch of (m, n) arrays."""

    def __init__(self, net: Network, s):
        self.net = net
        self.s = np.ascontiguousarray(s, dtype=np.float64)
        cells = _grid_order(net.m, net.n)
        sides = int(net.word_unknown) + int(net.bit_unknown)
        self.perm = (cells[:, None] + net.size * np.arange(sides)[None, :]).ravel()
        J = assemble.jacobian(net, self.s).tocsc()[self.perm][:, self.perm].tocsc()
        # Symmetric positive definite: no pivoting, the order kept.
        self.lu = spla.splu(J, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                            options={"SymmetricMode": True})

    def solve(self, y):
        """x = J^-1 y for y (k, m, n) (any units; x in the same), float64."""
        y = np.asarray(y, dtype=np.float64)
        k = y.shape[0]
        net = self.net
        rhs = assemble.device_term(net, self.s[None] * y)       # P^T S y (k, N)
        sol = np.empty_like(rhs)
        sol[:, self.perm] = self.lu.solve(np.ascontiguousarray(rhs[:, self.perm].T)).T
        U, W = assemble.node_voltages(net, sol, np.zeros((k, net.m)))
        return y - (U - W)


def predicted_iterations(m, n, r_word, r_bit, s_max, tol):
    """An estimate (from above) of the preconditioned CG iterations of one solve to ``tol``:
    sqrt(1 + rho) ln(2 / tol) / 2, rho = (4 / pi^2) r m'^2 s_max the coupling of the line
    direction the preconditioner leaves to CG (:mod:`memnp.circuit.precond`), s_max (S) the
    largest device slope."""
    bit, word = r_bit * m * m, r_word * n * n
    rho = 0.405 * min(bit, word) * s_max if bit > 0 and word > 0 else 0.0
    return 0.5 * math.sqrt(1.0 + rho) * math.log(2.0 / max(tol, 1e-300))


def crawls(V, c, K, pf, r_word, r_bit, tol):
    """True when CG is expected to need more than :data:`CRAWL_ITERATIONS` iterations per solve
    (the slopes bounded by :func:`memnp.circuit.linestep.slope_bound`)."""
    from .linestep import slope_bound
    if not (r_word > 0 and r_bit > 0):
        return False
    return crawls_at(*c.shape, r_word, r_bit, slope_bound(V, c, K, pf), tol)


def crawls_at(m, n, r_word, r_bit, s_max, tol):
    """:func:`crawls` for an m x n array whose slopes are at most s_max (S)."""
    if not (r_word > 0 and r_bit > 0):
        return False
    return predicted_iterations(m, n, r_word, r_bit, s_max, tol) > CRAWL_ITERATIONS


def solve_with_currents(V, c, K, pf, r_word, r_bit, tol, max_newton):
    """(v (p, m, n), SolveReport, I (p, n)): Newton on the device voltages with direct steps, for
    V (p, m) in V and (c, K, pf) from :func:`memnp.circuit.solve.device_arrays`; the residual, its
    norm, the line search and the statuses of :mod:`memnp.circuit.solve`."""
    from .solve import _evaluate
    V = np.ascontiguousarray(V, dtype=np.float64)
    p, m = V.shape
    n = c.shape[1]
    net = Network(m, n, r_word, r_bit)
    v = np.ascontiguousarray(np.repeat(V[:, :, None], n, axis=2))
    I = np.zeros((p, n))
    status = np.zeros(p, np.int8)
    iterations = np.zeros(p, np.int64)
    rel_all = np.zeros(p)
    res_A = np.zeros(p)
    step = np.zeros(p)
    F, s, R = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    buf_p, buf_q = np.empty(n), np.empty(n)
    shared = None if pf else NewtonMatrix(net, c)
    for e in range(p):
        rr, sr, ff = _evaluate(v[e], V[e], c, K, pf, r_word, r_bit, F, s, R, buf_p, buf_q)
        it = 0
        delta, lam = np.zeros((m, n)), 0.0
        while True:
            st, rel = newton_status(rr, sr, ff, tol, it, max_newton)
            if st != IN_PROGRESS:
                break
            J = shared if shared is not None else NewtonMatrix(net, s)
            delta = -J.solve(R[None])[0]
            lam, moved = 1.0, 0.0
            for _ in range(40):          # the full step, then backtracking on ||R||
                rr_new, sr, ff = _evaluate(v[e], V[e], c, K, pf, r_word, r_bit, F, s, R, buf_p,
                                           buf_q, delta, lam - moved)
                moved = lam
                if rr_new <= (1.0 - 1e-4 * lam) ** 2 * rr:
                    break
                lam *= 0.5
            rr = rr_new
            it += 1
        status[e], iterations[e], rel_all[e] = st, it, rel
        res_A[e] = float(np.max(np.abs(s * R))) if np.all(np.isfinite(R)) else np.inf
        step[e] = float(np.max(np.abs(lam * delta)))
        I[e] = F.sum(axis=0)
    report = SolveReport(status, iterations, np.zeros(p, np.int64), rel_all, res_A, step,
                         float(tol), "Newton, sparse direct steps (cpu, SuperLU)")
    return v, report, I

