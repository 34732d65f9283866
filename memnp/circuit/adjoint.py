"""Vector-Jacobian product of the line-resistance solve at its converged state (cpu, Numba).

At the solution v + A f(v; theta) = V 1^T (see :mod:`memnp.circuit.solve`), with output
I = sum_i f(v)[i, :], the implicit function theorem gives, for dL/dI = g (p, n),

    (I + A S) lambda = g 1        (the transposed Newton matrix; S = diag(df/dv))
    dL/dV[i] = sum_j S[i, j] lambda[i, j],      dL/dtheta[i, j] = sum_p lambda df/dtheta,

theta = G (df/dG = v) for linear devices, (c, d_eps) for PF devices. (The matrix is the forward
Newton step's J = I + A S: with mu = S lambda the transposed system (I + S A) mu = S g 1 is
J lambda = g 1.) One solve per example, by the forward solver's two kinds of step
(:mod:`memnp.circuit.solve`): a line step (:mod:`memnp.circuit.linestep`: bit lines exact, word
lines by corrections) where the word-line coupling bound allows, else through the symmetric form
lambda = g - A S^1/2 z with (I + S^1/2 A S^1/2) z = S^1/2 g, by conjugate gradients. Nothing is
differentiated through the Newton iterations.
"""
import math

import numpy as np
from numba import njit, prange

from ..kernels.device_law import pf_partials
from ..kernels.physics import A2_B
from . import linestep, precond
from .krylov import cg
from .solve import _PRANGE_ONLY, MAX_CORRECTIONS, _law, apply_A, preconditioner, resolve_method

_A2_B = float(A2_B)
#: Chunks of examples in the VJP, each with its own partial sums of dL/dtheta (a constant, not
#: the thread count, so that the sums are added in the same order on every machine).
CHUNKS = 8


@njit(cache=True, error_model="numpy")
def _vjp_one(v, Vrow, c, K, pf, r_w, r_b, g, tol, max_cg, pdir, gl, winv_shared, line, need_V,
             grad_V, work, w1, w2, need_r, grad_r):
    """One example; work (7, m, n) reused across examples; adds its dL/dtheta terms to w1, w2."""
    m, n = v.shape
    F, s, lam, t, R, u = work[0], work[1], work[2], work[3], work[4], work[5]
    winv = work[6] if pf else winv_shared
    buf_p = np.empty(n)
    buf_q = np.empty(n)
    _law(Vrow, c, K, pf, v, F, s)
    iterations = -1
    if line:                            # lambda = J^-1 (g 1) by a line step: R = -g 1
        bb = 0.0
        for i in range(m):
            for j in range(n):
                R[i, j] = -g[j]
                a = s[i, j] * g[j]
                bb += a * a
        iterations = linestep.step(R, s, gl, winv, pf, r_w, tol * math.sqrt(bb), MAX_CORRECTIONS,
                                   lam, u, buf_p)
    if iterations < 0:                  # CG in the symmetric form
        sq = np.empty((m, n))
        b = np.empty((m, n))
        z = np.empty((m, n))
        r = np.empty((m, n))
        pv = np.empty((m, n))
        h = np.empty((m, n))
        for i in range(m):
            for j in range(n):
                sq[i, j] = math.sqrt(max(s[i, j], 0.0))
                b[i, j] = sq[i, j] * g[j]
        if pf and pdir != 0:
            precond.factor(s, gl, pdir, winv)
        iterations, _ = cg(sq, b, r_w, r_b, tol, max_cg, z, r, pv, lam, t, buf_p, buf_q, pdir, gl,
                           winv, h)
        for i in range(m):
            for j in range(n):
                t[i, j] = sq[i, j] * z[i, j]
        apply_A(t, r_w, r_b, lam, buf_p, buf_q)  # A S^1/2 z; lambda = g - A S^1/2 z
        for i in range(m):
            for j in range(n):
                lam[i, j] = g[j] - lam[i, j]
    for i in range(m):
        acc = 0.0
        for j in range(n):
            x = lam[i, j]
            acc += s[i, j] * x
            if pf:
                dc, dd = pf_partials(v[i, j], c[i, j], K[i, j], _d_eps(K[i, j]))
                w1[i, j] += x * dc
                w2[i, j] += x * dd
            else:
                w1[i, j] += x * v[i, j]
        if need_V:
            grad_V[i] = acc
    if need_r:
        # dL/dr = -(S lambda) . (dA/dr) f(v): A is linear in r_word and r_bit.
        z = np.empty((m, n))
        for i in range(m):
            for j in range(n):
                z[i, j] = s[i, j] * lam[i, j]
        for k in range(2):
            apply_A(F, 1.0 if k == 0 else 0.0, 1.0 if k == 1 else 0.0, t, buf_p, buf_q)
            acc = 0.0
            for i in range(m):
                for j in range(n):
                    acc -= z[i, j] * t[i, j]
            grad_r[k] = acc
    return iterations


@njit(cache=True, inline="always")
def _d_eps(K):
    """d_eps (F/m) from K = A**2 B / d_eps (1/V)."""
    return _A2_B / K


@njit(cache=True, parallel=_PRANGE_ONLY, error_model="numpy")
def _vjp_batch(v, V, c, K, pf, r_w, r_b, grad_I, tol, max_cg, pdir, gl, winv, line, need_V, grad_V,
               w1, w2, need_r, grad_r, iterations):
    """The examples in w1.shape[0] contiguous chunks, each with its own work arrays and its own
    partial sums w1[k], w2[k] of dL/dtheta (zeroed here; added in a fixed order, so the result does
    not depend on the thread count)."""
    p = v.shape[0]
    chunks, m, n = w1.shape
    for k in prange(chunks):
        work = np.empty((7, m, n))
        w1[k] = 0.0
        if pf:
            w2[k] = 0.0
        for e in range(k * p // chunks, (k + 1) * p // chunks):
            iterations[e] = _vjp_one(v[e], V[e], c, K, pf, r_w, r_b, grad_I[e], tol, max_cg, pdir,
                                     gl, winv, line, need_V, grad_V[e], work, w1[k], w2[k], need_r,
                                     grad_r[e])


@njit(cache=True, parallel=_PRANGE_ONLY, error_model="numpy")
def _sum_examples(w, out):
    """out = w.sum(axis=0) for w (k, m, n), added in the order 0, 1, ..., k - 1."""
    k, m, n = w.shape
    for i in prange(m):
        for j in range(n):
            out[i, j] = 0.0
        for e in range(k):
            for j in range(n):
                out[i, j] += w[e, i, j]


def vjp(v, V, c, K, pf, r_word, r_bit, grad_I, tol, need_V=True, max_cg=5000, need_r=False,
        method="auto"):
    """(dL/dV (p, m) float64 or None, dL/dtheta): dL/dG (m, n) for linear devices, or
    (dL/dc, dL/d(d_eps)) for PF, all float64; plus the inner iterations per example (p,) (CG
    iterations, or a line step's corrections), and with ``need_r`` a fourth item
    (dL/dr_word, dL/dr_bit) (2,) summed over the examples (two more passes of A per example).
    v (p, m, n): the converged device voltages; c, K, pf from solve.device_arrays. ``method``:
    as :func:`memnp.circuit.solve.solve_with_currents`. The transposed solve stops at a relative
    residual ``tol`` (of the CG system, or of J lambda = g 1 in the S-weighted norm)."""
    p, m, n = v.shape
    grad_I = np.ascontiguousarray(grad_I, dtype=np.float64)
    grad_V = np.zeros((p, m))
    chunks = max(1, min(p, CHUNKS))
    w1 = np.empty((chunks, m, n))
    w2 = np.empty((chunks, m, n)) if pf else np.empty((chunks, 1, 1))
    iterations = np.zeros(p, np.int64)
    grad_r = np.zeros((p, 2))
    pdir, gl, winv = preconditioner(m, n, r_word, r_bit, None if pf else c)
    V = np.ascontiguousarray(V, dtype=np.float64)
    line = resolve_method(method, V, c, K, pf, r_word, r_bit) == "line"
    _vjp_batch(v, V, c, K, pf, float(r_word), float(r_bit), grad_I, float(tol), int(max_cg), pdir,
               gl, winv, line, bool(need_V), grad_V, w1, w2, bool(need_r), grad_r, iterations)
    g1 = np.empty((m, n))
    _sum_examples(w1, g1)
    if pf:
        g2 = np.empty((m, n))
        _sum_examples(w2, g2)
        out = (grad_V if need_V else None), (g1, g2), iterations
    else:
        out = (grad_V if need_V else None), g1, iterations
    return out + (grad_r.sum(axis=0),) if need_r else out
