"""Fast batched forward solver (cpu: Numba, parallel over examples).

Formulation. Instead of the 2 m n node voltages, the solver takes the m n device voltages v
(p, m, n; word node minus bit node) as unknowns. Given the device currents x = f(v), KCL fixes
every line current (word-line segment k of row i carries the devices k..n-1 of that row, bit-line
segment k of column j the rows 0..k), and the wires then fix every node voltage:

    V 1^T - v = A x,     (A x)[i, j] = r_word sum_j' (min(j, j') + 1) x[i, j']
                                     + r_bit  sum_i' (m - max(i, i')) x[i', j],

A symmetric positive semidefinite (the wire resistance any two devices' current paths share, in
ohms; applied by running sums along each line, O(m n), never formed). The nodal equations become
the m n equations

    R(v) = v + A f(v) - V 1^T = 0,

f the device law of :mod:`memnp.kernels.device_law`. Convergence is measured in currents: the
relative residual ||S R||_2 / ||f(v)||_2 (S = diag(df/dv)), the linearised mismatch between the
device currents and the currents the node voltages they set up would drive, i.e. the nodal KCL
residual relative to the device currents. The output current of column j (through its last
bit-line segment) is sum_i f(v)[i, j].

Method: Newton on R with a backtracking line search on ||R||. Each step dv = -(I + A S)^-1 R is
solved inexactly in one of two ways. M's coupling is rho = lambda_max(S^1/2 A S^1/2) ~
(4 / pi^2) r G (m^2 + n^2), the wires against the devices; the bit lines carry most of it on tall
arrays (r_bit m^2 > r_word n^2), and the line direction with the larger r m^2 is solved exactly
(:mod:`memnp.circuit.precond`: a tridiagonal solve per bit line, or per word line).

- Line steps (:mod:`memnp.circuit.linestep`), when the bit lines are that direction and a bound on
  the word-line coupling, r_word lambda_max(W) max S (W the n x n word-line kernel), is at most
  :data:`memnp.circuit.linestep.RHO_LINE`: dv = (I + A_bit S)^-1 (-R), one tridiagonal solve per
  bit line with no square roots, then Richardson corrections for the word lines, each contracting
  by at most rho_word, until the step's linear residual (measured exactly) meets the inexact-Newton
  target. On the MNIST first layer (785 x 50, r = 1 ohm, high-resistance devices: rho_word ~
  1e-2) that is 0-1 corrections per step, and about a third of a CG step's memory traffic.
- CG steps otherwise (and when a line step's corrections contract by less than half): conjugate
  gradients (:mod:`memnp.circuit.krylov`) in the symmetric positive definite form
  M = I + S^1/2 A S^1/2 (dv = -R + A S^1/2 z with M z = S^1/2 R: no division by a slope, so
  insulating devices, s = 0, are fine), preconditioned by the exact solve of the line direction,
  which leaves only the other direction's coupling to CG: 1-2 iterations per step on MNIST-sized
  arrays of high-resistance devices; strongly coupled arrays (low-resistance devices, long lines,
  square arrays) take O(sqrt(rho_other)) CG iterations per step, still exact.

- Sparse direct steps (:mod:`memnp.circuit.direct`: J^-1 through a sparse LU of the nodal
  matrix) where the coupling bound predicts more than
  :data:`memnp.circuit.direct.CRAWL_ITERATIONS` CG iterations per step (method "auto"), or
  always with method "direct": the same Newton iteration, residual and report, in Python.

Newton takes 1 (linear) to 3 (PF) steps on MNIST-sized arrays. Newton on v rather than on the
currents: for exponential devices a Newton step in the currents overshoots into voltages where f
explodes, in the voltages it does not (tested: the current form stalled on low-resistance PF arrays
that this one solves in a few steps).
The inner tolerance follows the outer residual (inexact Newton, eta = 0.1 min(0.1, rel); for CG
also divided by lambda_max(M), estimated by the previous CG, without which a strongly coupled array
stalls; never below what the last step needs, tol / (2 rel) or, in line steps, tol / (4 rel));
linear devices are solved in one Newton step to the tolerance (then checked).
Linear devices: M and the preconditioner depend only on G and r, so the line factorisation is
made once per call and shared by the batch; PF devices refactor (one O(m n) pass) per step.

All arithmetic runs in float64 (float32 inputs are widened and the currents rounded at the end),
so the float32 tolerance 1e-6 is met by a float64 residual; the state keeps v in float64.
"""
import math

import numpy as np
from numba import get_num_threads, njit, prange

from ..kernels.device_law import pf_current_slope
from ..kernels.fastexp import wide_vectors
from ..kernels.physics import A2_B
from . import direct, linestep, precond
from .krylov import cg
from .lines import apply_A, apply_A_scaled, prefix_row, suffix_word_block
from .report import IN_PROGRESS, SolveReport, newton_status

_newton_status = njit(cache=True, inline="always")(newton_status)

#: Default relative-residual tolerances by dtype.
TOLERANCE = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-10}
MAX_NEWTON = 60
MAX_CG = 5000
#: Word-line corrections per line step before it gives way to a CG step.
MAX_CORRECTIONS = 30
#: Step methods: automatic (line steps where the word-line coupling bound allows, sparse direct
#: steps where CG would crawl, else CG), Newton-CG only, line steps wherever the bit lines are the
#: preconditioned direction, sparse direct steps only (:mod:`memnp.circuit.direct`).
METHODS = ("auto", "cg", "line", "direct")
#: Reassociation lets LLVM vectorize the sums; no 'nnan' / 'ninf' (the NON_FINITE checks).
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}
_PRANGE_ONLY = {"prange": True, "comprehension": False, "setitem": False, "reduction": False,
                "numpy": False, "stencil": False, "fusion": False, "inplace_binop": False}


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _law(V, c, K, pf, v, F, s):
    """F = f(v), s = df/dv for one example (v, F, s (m, n)); V only for its shape."""
    wide_vectors()
    m, n = v.shape
    if pf:
        for i in range(m):
            for j in range(n):
                F[i, j], s[i, j] = pf_current_slope(v[i, j], c[i, j], K[i, j])
    else:
        for i in range(m):
            for j in range(n):
                F[i, j] = c[i, j] * v[i, j]
                s[i, j] = c[i, j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, buf_p, buf_q, dv=None, dlam=0.0):
    """F, s = f(v), f'(v); R = v + A F - V (the voltage mismatch). Returns (||R||^2,
    ||S R||^2, ||F||^2) (S R: the linearised device-current residual, A). With dv (m, n), v
    first moves by dlam dv, in the same pass (a Newton step and its backtracking).

    Two passes (as :func:`memnp.circuit.lines.apply_A`): down the rows, the device law and the
    bit-line prefix sums; up the rows in blocks of four, the rest of A F and the residual."""
    wide_vectors()
    m, n = v.shape
    for j in range(n):
        buf_p[j] = 0.0
        buf_q[j] = 0.0
    step = dv is not None
    for i in range(m):
        vi, ci, Ki, Fi, si, Ri = v[i], c[i], K[i], F[i], s[i], R[i]
        if step:
            di = dv[i]
            for j in range(n):
                vi[j] += dlam * di[j]
        if pf:
            for j in range(n):
                Fi[j], si[j] = pf_current_slope(vi[j], ci[j], Ki[j])
        else:
            for j in range(n):
                Fi[j] = ci[j] * vi[j]
                si[j] = ci[j]
        if r_b > 0.0:
            prefix_row(Fi, Ri, buf_p)
    rr = sr = ff = 0.0
    hi = m
    while hi > 0:
        lo = max(hi - 4, 0)
        suffix_word_block(F, r_w, r_b, R, buf_q, lo, hi)
        for i in range(lo, hi):
            Vi = Vrow[i]
            vi, Fi, si, Ri = v[i], F[i], s[i], R[i]
            for j in range(n):
                res = vi[j] + Ri[j] - Vi
                Ri[j] = res
                rr += res * res
                a = si[j] * res
                sr += a * a
                ff += Fi[j] * Fi[j]
        hi = lo
    return rr, sr, ff


@njit(cache=True, error_model="numpy")
def _solve_one(Vrow, c, K, pf, r_w, r_b, tol, max_newton, max_cg, pdir, g, winv_shared, line,
               work, cg_work, v, stats_i, stats_f, I):
    """One example. work (6, m, n) and cg_work (8, m, n), or (0, m, n) to allocate the CG arrays
    only if a CG step is taken: work arrays the caller reuses across its examples."""
    m, n = v.shape
    F, s, R, delta = work[0], work[1], work[2], work[3]
    u = work[4]                         # the line step's word-line drop
    # Linear devices: the batch's factorisation; PF: this example's, at every Newton step.
    winv = work[5] if pf else winv_shared
    buf_p = np.empty(n)
    buf_q = np.empty(n)
    sq = b = z = r = pv = q = h = t = np.empty((0, 0))
    if cg_work.shape[0] == 8:
        sq, b, z, r, pv, q, h, t = (cg_work[0], cg_work[1], cg_work[2], cg_work[3], cg_work[4],
                                    cg_work[5], cg_work[6], cg_work[7])
    line_ok = line                      # line steps (until they contract too slowly)
    for i in range(m):                  # start from the voltages without wires
        for j in range(n):
            v[i, j] = Vrow[i]
    rr, sr, ff = _evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, buf_p, buf_q)
    status = IN_PROGRESS
    it = 0
    inner = 0
    cg_steps = 0
    lam_max = 1.0
    lam = 0.0
    rel = 0.0
    while True:
        status, rel = _newton_status(rr, sr, ff, tol, it, max_newton)
        if status != IN_PROGRESS:
            break
        # Inexact Newton: ask of the step's linear solve a residual eta times this one, eta =
        # 0.1 min(0.1, rel) (quadratic convergence), never below what the tolerance needs.
        k_line = -1
        if line_ok:
            # Newton step with the bit lines exact, word lines by corrections (linestep).
            eta = 0.25 * tol / rel if not pf else max(0.1 * min(0.1, rel), 0.25 * tol / rel)
            k_line = linestep.step(R, s, g, winv, pf, r_w, eta * math.sqrt(sr), MAX_CORRECTIONS,
                                   delta, u, buf_p)
            if k_line >= 0:
                inner += k_line
            else:
                line_ok = False         # contracts too slowly here: CG from now on
        if k_line < 0:
            if sq.size == 0:
                sq, b, z, r, pv, q, h, t = (np.empty((m, n)), np.empty((m, n)), np.empty((m, n)),
                                            np.empty((m, n)), np.empty((m, n)), np.empty((m, n)),
                                            np.empty((m, n)), np.empty((m, n)))
            # Newton step dv = -(I + A S)^-1 R = -R + A S^1/2 z, (I + S^1/2 A S^1/2) z = S^1/2 R.
            bb = precond.factor_rhs(s, R, pf, g, pdir, winv, sq, r)  # r = S^1/2 R; PF: factorise
            # The linear part of the next residual is about (lambda_max(M) - 1) eta times this
            # one: eta / lambda_max (estimated by the previous step's CG; linear devices: solved
            # to tol at once). Never more accurate than the tolerance needs.
            eta = 0.1 * tol if not pf else max(0.1 * min(0.1, rel), 0.5 * tol / rel) / lam_max
            k_cg, lam_max = cg(sq, r, r_w, r_b, eta, max_cg, z, r, pv, q, t, buf_p, buf_q, pdir,
                               g, winv, h, bb)
            inner += k_cg
            cg_steps += 1
            apply_A_scaled(sq, z, b, r_w, r_b, delta, buf_p, buf_q)     # A S^1/2 z
            for i in range(m):
                for j in range(n):
                    delta[i, j] -= R[i, j]
        lam = 1.0
        moved = 0.0                     # v = v_start + moved delta
        for _ in range(40):             # the full step, then backtracking on ||R||
            rr_new, sr, ff = _evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, buf_p, buf_q, delta,
                                       lam - moved)
            moved = lam
            if rr_new <= (1.0 - 1e-4 * lam) ** 2 * rr:
                break
            lam *= 0.5
        rr = rr_new
        it += 1
    stats_i[0] = status
    stats_i[1] = it
    stats_i[2] = inner
    stats_i[3] = cg_steps
    stats_f[0] = rel
    stats_f[1], stats_f[2] = _finish(s, R, delta, lam if it > 0 else 0.0, F, I)


@njit(cache=True, error_model="numpy")
def _finish(s, R, delta, lam, F, I):
    """(max |s R|, max |lam delta| (the last voltage step; lam = 0 without one)) and the column
    currents I = sum_i F[i] (F is f(v) at the last v), in one pass; a product that is not finite
    gives inf."""
    m, n = s.shape
    for j in range(n):
        I[j] = 0.0
    res = step = 0.0
    for i in range(m):
        si, Ri, di, Fi = s[i], R[i], delta[i], F[i]
        for j in range(n):
            I[j] += Fi[j]
            x = abs(si[j] * Ri[j])
            if not x <= res:
                res = x if math.isfinite(x) else np.inf
            if lam > 0.0:
                d = abs(lam * di[j])
                if not d <= step:
                    step = d if math.isfinite(d) else np.inf
    return res, step


@njit(cache=True, parallel=_PRANGE_ONLY, error_model="numpy")
def _solve_batch(V, c, K, pf, r_w, r_b, tol, max_newton, max_cg, pdir, g, winv, line, threads, v,
                 stats_i, stats_f, I):
    """The examples in one contiguous chunk per thread (``threads``: Numba's thread count), each
    chunk reusing its work arrays (no allocation per example, and the arrays stay in cache from
    one example to the next)."""
    p = V.shape[0]
    m, n = c.shape
    chunks = max(1, min(p, threads))
    for k in prange(chunks):
        work = np.empty((6, m, n))
        cg_work = np.empty((0 if line else 8, m, n))
        for e in range(k * p // chunks, (k + 1) * p // chunks):
            _solve_one(V[e], c, K, pf, r_w, r_b, tol, max_newton, max_cg, pdir, g, winv, line,
                       work, cg_work, v[e], stats_i[e], stats_f[e], I[e])


def device_arrays(G, devices):
    """(c, K, pf) float64 arrays for the kernels: linear devices use c = G."""
    if devices is None:
        G = np.ascontiguousarray(G, dtype=np.float64)
        return G, G, False
    c = np.ascontiguousarray(devices[0], dtype=np.float64)
    K = np.ascontiguousarray(A2_B / np.asarray(devices[1], dtype=np.float64))
    return c, K, True


def preconditioner(m, n, r_word, r_bit, G=None):
    """(direction, g = 1 / r of it (S), winv): the line preconditioner of the CG solves; winv is
    the factorisation at slopes G (linear devices: one for the whole batch), else an empty
    placeholder (PF devices factor per example and Newton step)."""
    pdir = precond.direction(m, n, r_word, r_bit)
    g = 1.0 / (r_bit if pdir == precond.BIT else r_word) if pdir != precond.NONE else 0.0
    winv = np.empty((m, n) if G is not None else (1, 1))
    if G is not None and pdir != precond.NONE:
        precond.factor(np.ascontiguousarray(G, dtype=np.float64), g, pdir, winv)
    return pdir, g, winv


def solve(V, G, devices, r_word, r_bit, tol, max_newton=MAX_NEWTON, max_cg=MAX_CG, method="auto"):
    """Device voltages v (p, m, n) float64 in V and the SolveReport, for V (p, m) in V and G (m, n)
    in S (linear devices, ``devices`` None) or devices = (c, d_eps) (PF). The device currents
    are f(v) (:func:`currents`)."""
    v, report, _ = solve_with_currents(V, G, devices, r_word, r_bit, tol, max_newton, max_cg,
                                       method=method)
    return v, report


def solve_with_currents(V, G, devices, r_word, r_bit, tol, max_newton=MAX_NEWTON, max_cg=MAX_CG,
                        arrays=None, method="auto"):
    """(v, report, I): :func:`solve` and the column currents I (p, n) float64 in A at v (the sums
    of the device currents the last residual evaluation computed; :func:`currents` recomputes
    them). ``arrays``: :func:`device_arrays` (G, devices) when the caller already has them.
    ``method``: "auto" (line steps where the word-line coupling bound is below
    :data:`memnp.circuit.linestep.RHO_LINE`, sparse direct steps where CG would crawl, else CG
    steps), "cg", "line" (line steps wherever the bit lines are the preconditioned direction, CG
    where they contract too slowly) or "direct" (:mod:`memnp.circuit.direct`)."""
    V = np.ascontiguousarray(V, dtype=np.float64)
    c, K, pf = device_arrays(G, devices) if arrays is None else arrays
    resolved = resolve_method(method, V, c, K, pf, r_word, r_bit)
    if resolved == "direct":
        return direct.solve_with_currents(V, c, K, pf, r_word, r_bit, tol, max_newton)
    p, m = V.shape
    n = c.shape[1]
    v = np.empty((p, m, n))
    stats_i = np.zeros((p, 4), np.int64)
    stats_f = np.zeros((p, 3))
    pdir, g, winv = preconditioner(m, n, r_word, r_bit, None if pf else c)
    line = resolved == "line"
    I = np.empty((p, n))
    _solve_batch(V, c, K, pf, float(r_word), float(r_bit), float(tol), int(max_newton), int(max_cg),
                 pdir, g, winv, bool(line), get_num_threads(), v, stats_i, stats_f, I)
    report = SolveReport(stats_i[:, 0].astype(np.int8), stats_i[:, 1].copy(), stats_i[:, 2].copy(),
                         stats_f[:, 0].copy(), stats_f[:, 1].copy(), stats_f[:, 2].copy(), float(tol),
                         _method_name(stats_i[:, 1], stats_i[:, 3]))
    return v, report, I


def resolve_method(method, V, c, K, pf, r_word, r_bit, tol=1e-10):
    """"line", "cg" or "direct": the steps a solve (or its adjoint) takes for ``method``. Line steps
    need the bit lines to be the preconditioned direction, and with "auto" the word-line coupling
    bound at most RHO_LINE; "auto" takes sparse direct steps where CG is expected to crawl
    (:func:`memnp.circuit.direct.crawls` at ``tol``). Resolving "auto" once and passing the answer
    on (as the LineResistance backends do from the forward to its VJP) spares the bounds a second
    evaluation."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}; got {method!r}")
    if method in ("direct", "cg"):
        return method
    m, n = c.shape
    bit = precond.direction(m, n, r_word, r_bit) == precond.BIT
    if method == "line":
        return "line" if bit else "cg"
    s_max = linestep.slope_bound(V, c, K, pf) if r_word > 0 else 0.0   # one pass for both bounds
    if direct.crawls_at(m, n, r_word, r_bit, s_max, tol):
        return "direct"
    if bit and float(r_word) * linestep.word_kernel_norm(n) * s_max <= linestep.RHO_LINE:
        return "line"
    return "cg"


def _method_name(newton, cg_steps):
    """Which steps the batch took: CG steps only, line steps only, or both."""
    if not np.any(cg_steps):
        return "Newton, line steps (bit lines exact, word-line corrections) (cpu)"
    if np.all(cg_steps == newton):
        return "Newton-CG on the device currents (cpu)"
    return "Newton, line steps and CG steps (cpu)"


@njit(cache=True, parallel=_PRANGE_ONLY, error_model="numpy")
def _currents_batch(v, c, K, pf, x, I):
    p, m, n = v.shape
    for e in prange(p):
        s = np.empty((m, n))
        _law(v[e, 0], c, K, pf, v[e], x[e], s)
        for j in range(n):
            I[e, j] = 0.0
        for i in range(m):
            for j in range(n):
                I[e, j] += x[e, i, j]


def currents(v, c, K, pf):
    """(x (p, m, n) device currents, I (p, n) column currents), float64 in A, at voltages v."""
    p, m, n = v.shape
    x = np.empty((p, m, n))
    I = np.empty((p, n))
    _currents_batch(v, c, K, pf, x, I)
    return x, I


__all__ = ["solve", "apply_A", "cg", "device_arrays", "TOLERANCE"]
