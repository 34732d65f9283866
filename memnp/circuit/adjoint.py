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

Those solves stop on their own residual (of the CG system, or the line step's), which on strongly
coupled arrays (low-resistance devices, large r, long lines) can sit far below the residual of
J lambda = g 1 itself. So every example's lambda is checked, in the norm of the forward solve:
||S (g 1 - J lambda)||_2 / ||S lambda||_2 (the forward's is ||S R|| / ||f(v)||), and refined
(lambda += J^-1 (g 1 - J lambda), the same solve again) while it misses the tolerance and each
refinement at least halves it. An example it still misses is solved by the sparse direct solve of
:mod:`memnp.circuit.direct` (then checked the same way), as is every example where the method
resolves to "direct" (CG expected to crawl). The statuses come back as a
:class:`memnp.circuit.SolveReport`; an example that no solve brings under the tolerance is
MAX_ITER (or NON_FINITE) there, and the LineResistance backends raise ConvergenceError on it.
"""
import math

import numpy as np
from numba import njit, prange

from ..kernels.device_law import pf_partials
from ..kernels.physics import A2_B
from . import direct, linestep, precond
from .krylov import cg
from .network import Network
from .report import CONVERGED, MAX_ITER, NON_FINITE, SolveReport
from .solve import _PRANGE_ONLY, MAX_CORRECTIONS, _law, apply_A, preconditioner, resolve_method

_A2_B = float(A2_B)
#: Chunks of examples in the VJP, each with its own partial sums of dL/dtheta (a constant, not
#: the thread count, so that the sums are added in the same order on every machine).
CHUNKS = 8
#: Refinement solves (lambda += J^-1 (g 1 - J lambda)) at most, while each halves the residual.
MAX_REFINE = 4


@njit(cache=True, error_model="numpy")
def _solve_J(y, s, sq, pf, r_w, r_b, tol, max_cg, pdir, gl, winv, line, factored, out, R, u, t,
             buf_p, buf_q):
    """out = J^-1 y (J = I + A S; y, out (m, n)) by a line step where ``line`` allows, else by CG
    in the symmetric form out = y - A S^1/2 z, (I + S^1/2 A S^1/2) z = S^1/2 y, to the relative
    residual ``tol``. R, u, t (m, n) work. ``factored``: winv already holds the PF factorisation.
    Returns (inner iterations, whether winv now holds it)."""
    m, n = y.shape
    iterations = -1
    if line:                            # R = -y; the line step's target in the S-weighted norm
        bb = 0.0
        for i in range(m):
            for j in range(n):
                R[i, j] = -y[i, j]
                a = s[i, j] * y[i, j]
                bb += a * a
        iterations = linestep.step(R, s, gl, winv, pf, r_w, tol * math.sqrt(bb), MAX_CORRECTIONS,
                                   out, u, buf_p)
    if iterations < 0:                  # CG in the symmetric form
        b = np.empty((m, n))
        z = np.empty((m, n))
        r = np.empty((m, n))
        pv = np.empty((m, n))
        h = np.empty((m, n))
        for i in range(m):
            for j in range(n):
                b[i, j] = sq[i, j] * y[i, j]
        if pf and pdir != 0 and not factored:
            precond.factor(s, gl, pdir, winv)
            factored = True
        iterations, _ = cg(sq, b, r_w, r_b, tol, max_cg, z, r, pv, out, t, buf_p, buf_q, pdir, gl,
                           winv, h)
        for i in range(m):
            for j in range(n):
                t[i, j] = sq[i, j] * z[i, j]
        apply_A(t, r_w, r_b, out, buf_p, buf_q)  # A S^1/2 z; out = y - A S^1/2 z
        for i in range(m):
            for j in range(n):
                out[i, j] = y[i, j] - out[i, j]
    return iterations, factored


@njit(cache=True, error_model="numpy")
def residual(lam, y, s, r_w, r_b, res, t, buf_p, buf_q):
    """res = y - J lam (J = I + A S; all (m, n)); t (m, n) work. Returns (||S res||_2^2,
    ||S lam||_2^2, max |S res|): the adjoint's residual in the norm of the forward solve's
    (S-weighted, relative to S lam as the forward's to S v = f(v) for linear devices)."""
    m, n = lam.shape
    for i in range(m):
        for j in range(n):
            t[i, j] = s[i, j] * lam[i, j]
    apply_A(t, r_w, r_b, res, buf_p, buf_q)
    sr = sl = smax = 0.0
    for i in range(m):
        for j in range(n):
            x = y[i, j] - lam[i, j] - res[i, j]
            res[i, j] = x
            a = s[i, j] * x
            sr += a * a
            sl += t[i, j] * t[i, j]
            a = abs(a)
            if not a <= smax:
                smax = a if math.isfinite(a) else np.inf
    return sr, sl, smax


@njit(cache=True, inline="always")
def relative(sr, sl):
    """sqrt(sr / sl), 0 when both are 0, inf when not finite."""
    if not (math.isfinite(sr) and math.isfinite(sl)):
        return math.inf
    if sl > 0.0:
        return math.sqrt(sr / sl)
    return 0.0 if sr == 0.0 else math.inf


@njit(cache=True, error_model="numpy")
def _vjp_one(v, Vrow, c, K, pf, r_w, r_b, g, tol, check_tol, max_cg, pdir, gl, winv_shared, line,
             need_V, grad_V, work, w1, w2, need_r, grad_r, stats_i, stats_f):
    """One example; work (11, m, n) reused across examples. Solves J lambda = g 1, checks the
    residual (:func:`residual`) against ``check_tol`` and refines (lambda += J^-1 res) while it
    is not met and falls by at least half, at most MAX_REFINE times. Converged: adds its
    dL/dtheta terms to w1, w2 (and writes grad_V, grad_r); not: adds nothing (the caller solves it
    directly). stats_i: status, refinement solves, inner iterations; stats_f: relative residual,
    max |S res|, largest entry of the last correction."""
    m, n = v.shape
    F, s, lam, t, R, u = work[0], work[1], work[2], work[3], work[4], work[5]
    winv = work[6] if pf else winv_shared
    y, sq, res, delta = work[7], work[8], work[9], work[10]
    buf_p = np.empty(n)
    buf_q = np.empty(n)
    _law(Vrow, c, K, pf, v, F, s)
    for i in range(m):
        for j in range(n):
            y[i, j] = g[j]
            sq[i, j] = math.sqrt(max(s[i, j], 0.0))
    inner, factored = _solve_J(y, s, sq, pf, r_w, r_b, tol, max_cg, pdir, gl, winv, line, False,
                               lam, R, u, t, buf_p, buf_q)
    status = MAX_ITER
    passes = 0
    prev = math.inf
    last = rel = smax = 0.0
    while True:
        sr, sl, smax = residual(lam, y, s, r_w, r_b, res, t, buf_p, buf_q)
        rel = relative(sr, sl)
        if not math.isfinite(rel):
            status = NON_FINITE
            break
        if rel <= check_tol:
            status = CONVERGED
            break
        if passes >= MAX_REFINE or not rel <= 0.5 * prev:
            break
        prev = rel
        k, factored = _solve_J(res, s, sq, pf, r_w, r_b, tol, max_cg, pdir, gl, winv, line,
                               factored, delta, R, u, t, buf_p, buf_q)
        inner += k
        passes += 1
        last = 0.0
        for i in range(m):
            for j in range(n):
                lam[i, j] += delta[i, j]
                last = max(last, abs(delta[i, j]))
    stats_i[0] = status
    stats_i[1] = passes
    stats_i[2] = inner
    stats_f[0] = rel
    stats_f[1] = smax
    stats_f[2] = last
    if status == CONVERGED:
        _accumulate(v, c, K, pf, r_w, r_b, F, s, lam, need_V, grad_V, w1, w2, need_r, grad_r, t,
                    res, buf_p, buf_q)


@njit(cache=True, error_model="numpy")
def _accumulate(v, c, K, pf, r_w, r_b, F, s, lam, need_V, grad_V, w1, w2, need_r, grad_r, t, z,
                buf_p, buf_q):
    """Adds one example's dL/dtheta terms (at its lambda) to w1, w2; writes grad_V (m,) and, with
    need_r, grad_r (2,). t, z (m, n) work."""
    m, n = v.shape
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


@njit(cache=True, inline="always")
def _d_eps(K):
    """d_eps (F/m) from K = A**2 B / d_eps (1/V)."""
    return _A2_B / K


@njit(cache=True, parallel=_PRANGE_ONLY, error_model="numpy")
def _vjp_batch(v, V, c, K, pf, r_w, r_b, grad_I, tol, check_tol, max_cg, pdir, gl, winv, line,
               need_V, grad_V, w1, w2, need_r, grad_r, stats_i, stats_f):
    """The examples in w1.shape[0] contiguous chunks, each with its own work arrays and its own
    partial sums w1[k], w2[k] of dL/dtheta (zeroed here; added in a fixed order, so the result does
    not depend on the thread count)."""
    p = v.shape[0]
    chunks, m, n = w1.shape
    for k in prange(chunks):
        work = np.empty((11, m, n))
        w1[k] = 0.0
        if pf:
            w2[k] = 0.0
        for e in range(k * p // chunks, (k + 1) * p // chunks):
            _vjp_one(v[e], V[e], c, K, pf, r_w, r_b, grad_I[e], tol, check_tol, max_cg, pdir, gl,
                     winv, line, need_V, grad_V[e], work, w1[k], w2[k], need_r, grad_r[e],
                     stats_i[e], stats_f[e])


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
        method="auto", check_tol=None):
    """(dL/dV (p, m) float64 or None, dL/dtheta, report): dL/dtheta is dL/dG (m, n) for linear
    devices, or (dL/dc, dL/d(d_eps)) for PF, all float64; report the :class:`SolveReport` of the
    transposed solves (per example: status, refinement solves, inner iterations, relative
    residual); with ``need_r`` a fourth item (dL/dr_word, dL/dr_bit) (2,) summed over the
    examples (two more passes of A per example). v (p, m, n): the converged device voltages; c, K,
    pf from solve.device_arrays. ``method``: as :func:`memnp.circuit.solve.solve_with_currents`.
    The transposed solve stops at a relative residual ``tol`` (of the CG system, or of J lambda =
    g 1 in the S-weighted norm); then the residual ||S (g 1 - J lambda)|| / ||S lambda|| is
    checked against ``check_tol`` (default ``tol``), refined where it is not met, and an example
    whose refinement stalls is solved directly (:mod:`memnp.circuit.direct`), as every example is
    where the method resolves to "direct". The report says which; an example that even then
    misses ``check_tol`` is reported MAX_ITER (or NON_FINITE) and contributes nothing: the caller
    raises (:meth:`SolveReport.raise_unless_converged`)."""
    p, m, n = v.shape
    check_tol = float(tol if check_tol is None else check_tol)
    grad_I = np.ascontiguousarray(grad_I, dtype=np.float64)
    grad_V = np.zeros((p, m))
    chunks = max(1, min(p, CHUNKS))
    w1 = np.zeros((chunks, m, n))
    w2 = np.zeros((chunks, m, n)) if pf else np.zeros((chunks, 1, 1))
    stats_i = np.zeros((p, 3), np.int64)
    stats_f = np.zeros((p, 3))
    stats_i[:, 0] = MAX_ITER
    grad_r = np.zeros((p, 2))
    V = np.ascontiguousarray(V, dtype=np.float64)
    resolved = resolve_method(method, V, c, K, pf, r_word, r_bit)
    if resolved != "direct":
        pdir, gl, winv = preconditioner(m, n, r_word, r_bit, None if pf else c)
        _vjp_batch(v, V, c, K, pf, float(r_word), float(r_bit), grad_I, float(tol), check_tol,
                   int(max_cg), pdir, gl, winv, resolved == "line", bool(need_V), grad_V, w1, w2,
                   bool(need_r), grad_r, stats_i, stats_f)
    todo = np.flatnonzero(stats_i[:, 0] != CONVERGED)
    if todo.size:
        _direct(v, c, K, pf, r_word, r_bit, grad_I, check_tol, todo, need_V, grad_V, w1[0],
                w2[0], need_r, grad_r, stats_i, stats_f)
    g1 = np.empty((m, n))
    _sum_examples(w1, g1)
    if resolved == "direct":
        name = "transposed solve: sparse direct (cpu, SuperLU)"
    elif todo.size:
        name = (f"transposed solve: {'line steps' if resolved == 'line' else 'CG'}, "
                f"{todo.size} of {p} examples sparse direct (cpu)")
    else:
        name = f"transposed solve: {'line steps' if resolved == 'line' else 'CG'} (cpu)"
    report = SolveReport(stats_i[:, 0].astype(np.int8), stats_i[:, 1].copy(), stats_i[:, 2].copy(),
                         stats_f[:, 0].copy(), stats_f[:, 1].copy(), stats_f[:, 2].copy(),
                         check_tol, name)
    if pf:
        g2 = np.empty((m, n))
        _sum_examples(w2, g2)
        out = (grad_V if need_V else None), (g1, g2), report
    else:
        out = (grad_V if need_V else None), g1, report
    return out + (grad_r.sum(axis=0),) if need_r else out


def _direct(v, c, K, pf, r_word, r_bit, grad_I, check_tol, todo, need_V, grad_V, w1, w2, need_r,
            grad_r, stats_i, stats_f):
    """The examples ``todo`` by the sparse direct solve
    (:class:`memnp.circuit.direct.NewtonMatrix`), then checked (and refined) as the iterative
    ones; converged ones add their terms to w1, w2 (m, n) (one chunk's partial sums), grad_V and
    grad_r."""
    m, n = c.shape
    net = Network(m, n, r_word, r_bit)
    s = np.empty((todo.size, m, n))
    F = np.empty((todo.size, m, n))
    for a, e in enumerate(todo):
        _law(v[e, 0], c, K, pf, v[e], F[a], s[a])
    y = np.ascontiguousarray(np.broadcast_to(grad_I[todo][:, None, :], (todo.size, m, n)))
    matrices = [direct.NewtonMatrix(net, c)] if not pf else None
    lam = np.empty_like(y)
    res = np.empty((m, n))
    t = np.empty((m, n))
    buf_p, buf_q = np.empty(n), np.empty(n)
    for a, e in enumerate(todo):
        J = matrices[0] if matrices else direct.NewtonMatrix(net, s[a])
        lam[a] = J.solve(y[a:a + 1])[0]
        passes, prev, last = 0, math.inf, 0.0
        while True:
            sr, sl, smax = residual(lam[a], y[a], s[a], float(r_word), float(r_bit), res, t, buf_p,
                                    buf_q)
            rel = relative(sr, sl)
            status = (NON_FINITE if not math.isfinite(rel) else CONVERGED if rel <= check_tol
                      else MAX_ITER)
            if status != MAX_ITER or passes >= MAX_REFINE or not rel <= 0.5 * prev:
                break
            delta = J.solve(res[None])[0]
            lam[a] += delta
            prev, passes, last = rel, passes + 1, float(np.max(np.abs(delta)))
        stats_i[e] = (status, stats_i[e, 1] + passes, stats_i[e, 2])
        stats_f[e] = (rel, smax, last)
        if status == CONVERGED:
            _accumulate(v[e], c, K, pf, float(r_word), float(r_bit), F[a], s[a], lam[a],
                        bool(need_V), grad_V[e], w1, w2, bool(need_r), grad_r[e], t, res, buf_p,
                        buf_q)


#: What a transposed solve's report counts as its iterations.
STEPS = "refinement solves"


def raise_unless_converged(report, what):
    """ConvergenceError naming ``what`` (array size and r) unless every transposed solve of the
    report (:func:`vjp`) met its residual check."""
    report.raise_unless_converged(what, "adjoint (VJP) solve", STEPS)
