"""The line-resistance solver and its adjoint in numba.cuda: the cpu method, one block per example.

Newton on the device voltages (:mod:`memnp.circuit.solve`) with the cpu solver's two kinds of
step and the same choice between them (:func:`memnp.circuit.solve.resolve_method`):

- line steps (:mod:`memnp.circuit.cuda_linestep`, as :mod:`memnp.circuit.linestep`): the bit
  lines exact, one tridiagonal solve per bit line (one thread per bit line, the pivots of
  L_bit + S factored in the same pass), then Richardson corrections for the word lines (one
  thread per word line), stopped by the step's exact linear residual; a step whose corrections
  contract by less than half gives way to CG steps for the rest of the example's solve;
- CG steps: conjugate gradients on I + S^1/2 A S^1/2, without the cpu solver's line
  preconditioner (plain CG: more iterations on strongly coupled arrays, the same answers to the
  tolerance).

The adjoint (:mod:`memnp.circuit.adjoint`) takes the same kind of step for its transposed solve.
All arithmetic is float64. A block of :data:`NT` threads owns one example (blocks stride over the
batch; :mod:`memnp.circuit.cuda_block`): A t runs one thread per word line (row) and then one
thread per bit line (column), each a running sum in registers; the elementwise passes split the
m n devices among the threads and the dot products are shared-memory block sums. Every thread of
a block sees the same sums, so the Newton, line-step and CG loops branch alike across the block.
The PF law is :func:`memnp.kernels.device_law.pf_current_slope_libm` compiled as a device
function. The block-wide pieces (A t, the law, the residual, CG) are in
:mod:`memnp.circuit.cuda_ops`; here are the solve and VJP kernels and their host side.

Host interface: :func:`solve` and :func:`vjp` take and return NumPy arrays (the state keeps the
device voltages v on the host, (p, m, n) float64, so power and currents use the cpu code).
Work arrays: 13 (solve) or 12 (vjp) of (p, m, n) float64 on the device. Tested under the CUDA
simulator (NUMBA_ENABLE_CUDASIM=1) on small shapes against the cpu solver and the dense reference.
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError: numba-cuda is not installed)
from numba import cuda

from ..kernels.backend import check_cuda_numpy
from ..kernels.device_law import pf_partials_libm
from ..kernels.physics import A2_B
from .cuda_block import NT, SIMULATOR, block_sum3 as _block_sum3
from .cuda_linestep import line_step as _line_step
from .cuda_ops import (apply_A as _apply_A, apply_A_scaled as _apply_A_scaled, cg as _cg,
                       evaluate as _evaluate, law as _law)
from .report import CONVERGED, IN_PROGRESS, MAX_ITER, SolveReport, newton_status

check_cuda_numpy()   # one clear line (BackendUnavailable) where numba-cuda breaks on this numpy

__all__ = ["NT", "SIMULATOR", "solve", "vjp"]
_A2_B = float(A2_B)

_partials_dev = cuda.jit(device=True)(pf_partials_libm)
_newton_status_dev = cuda.jit(device=True)(newton_status)


@cuda.jit
def _solve_kernel(V, c, K, pf, r_w, r_b, tol, max_newton, max_cg, line, max_corrections, v_all,
                  work, stats_i, stats_f):
    sh = cuda.shared.array((3, NT), dtype=np.float64)
    tid = cuda.threadIdx.x
    p, m = V.shape
    n = c.shape[1]
    g_bit = 1.0 / r_b if line else 0.0
    for e in range(cuda.blockIdx.x, p, cuda.gridDim.x):
        v, Vrow = v_all[e], V[e]
        F, s, R, sq, v_old, delta, b, z, r, pv, q, u, winv = (
            work[0, e], work[1, e], work[2, e], work[3, e], work[4, e], work[5, e], work[6, e],
            work[7, e], work[8, e], work[9, e], work[10, e], work[11, e], work[12, e])
        for k in range(tid, m * n, NT):
            v[k // n, k % n] = Vrow[k // n]
        cuda.syncthreads()
        rr, sr, ff = _evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, sh)
        status = IN_PROGRESS
        it = 0
        inner = 0
        cg_steps = 0
        lam_max = 1.0
        rel = 0.0
        line_ok = line                  # line steps (until they contract too slowly)
        factored = False                # linear devices: the pivots of L_bit + G, made once
        while True:
            status, rel = _newton_status_dev(rr, sr, ff, tol, it, max_newton)
            if status != IN_PROGRESS:
                break
            k_line = -1
            if line_ok:
                # Newton step with the bit lines exact, word lines by corrections (the cpu's eta).
                if pf:
                    eta = max(0.1 * min(0.1, rel), 0.25 * tol / rel)
                else:
                    eta = 0.25 * tol / rel
                k_line = _line_step(R, s, g_bit, winv, pf or not factored, r_w,
                                    eta * math.sqrt(sr), max_corrections, delta, u, sh)
                factored = True
                if k_line >= 0:
                    inner += k_line
                else:
                    line_ok = False     # contracts too slowly here: CG from now on
            if k_line < 0:
                for k in range(tid, m * n, NT):
                    i, j = k // n, k % n
                    sq[i, j] = math.sqrt(max(s[i, j], 0.0))
                    b[i, j] = sq[i, j] * R[i, j]
                cuda.syncthreads()
                if pf:
                    eta = max(0.1 * min(0.1, rel), 0.5 * tol / rel) / lam_max
                else:
                    eta = 0.1 * tol
                k_cg, lam_max = _cg(sq, b, r_w, r_b, eta, max_cg, z, r, pv, q, delta, sh)
                inner += k_cg
                cg_steps += 1
                _apply_A_scaled(sq, z, b, r_w, r_b, delta)
                for k in range(tid, m * n, NT):
                    i, j = k // n, k % n
                    delta[i, j] -= R[i, j]
                cuda.syncthreads()
            for k in range(tid, m * n, NT):
                i, j = k // n, k % n
                v_old[i, j] = v[i, j]
            cuda.syncthreads()
            lam = 1.0
            rr_new = rr
            for _ in range(40):
                for k in range(tid, m * n, NT):
                    i, j = k // n, k % n
                    v[i, j] = v_old[i, j] + lam * delta[i, j]
                cuda.syncthreads()
                rr_new, sr, ff = _evaluate(v, Vrow, c, K, pf, r_w, r_b, F, s, R, sh)
                if rr_new <= (1.0 - 1e-4 * lam) ** 2 * rr:
                    break
                lam *= 0.5
            rr = rr_new
            it += 1
        # The largest |s R| (A) and last voltage step (V), as the cpu's: not finite gives inf.
        smax = 0.0
        step = 0.0
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            x = abs(s[i, j] * R[i, j])
            if not x <= smax:
                smax = x if math.isfinite(x) else math.inf
            if it > 0:
                d = abs(v[i, j] - v_old[i, j])
                if not d <= step:
                    step = d if math.isfinite(d) else math.inf
        sh[0, tid] = smax
        sh[1, tid] = step
        cuda.syncthreads()
        if tid == 0:
            for k in range(1, NT):
                smax = max(smax, sh[0, k])
                step = max(step, sh[1, k])
            stats_i[e, 0] = status
            stats_i[e, 1] = it
            stats_i[e, 2] = inner
            stats_i[e, 3] = cg_steps
            stats_f[e, 0] = rel
            stats_f[e, 1] = smax
            stats_f[e, 2] = step
        cuda.syncthreads()


@cuda.jit
def _vjp_kernel(v_all, V, c, K, pf, r_w, r_b, grad_I, tol, max_cg, line, max_corrections, grad_V,
                w1, w2, work, stats):
    sh = cuda.shared.array((3, NT), dtype=np.float64)
    tid = cuda.threadIdx.x
    p, m = V.shape
    n = c.shape[1]
    g_bit = 1.0 / r_b if line else 0.0
    for e in range(cuda.blockIdx.x, p, cuda.gridDim.x):
        v, g = v_all[e], grad_I[e]
        F, s, sq, b, z, r, pv, q, t, R, u, winv = (
            work[0, e], work[1, e], work[2, e], work[3, e], work[4, e], work[5, e], work[6, e],
            work[7, e], work[8, e], work[9, e], work[10, e], work[11, e])
        _law(c, K, pf, v, F, s)
        # lambda = J^-1 (g 1) into r: a line step (R = -g 1), or CG (the iterations in inner).
        inner = -1
        if line:
            bb = 0.0
            for k in range(tid, m * n, NT):
                i, j = k // n, k % n
                R[i, j] = -g[j]
                a = s[i, j] * g[j]
                bb += a * a
            cuda.syncthreads()
            bb, _, _ = _block_sum3(bb, 0.0, 0.0, sh)
            inner = _line_step(R, s, g_bit, winv, True, r_w, tol * math.sqrt(bb),
                               max_corrections, r, u, sh)
        if inner < 0:                   # CG in the symmetric form: lambda = g - A S^1/2 z
            for k in range(tid, m * n, NT):
                i, j = k // n, k % n
                sq[i, j] = math.sqrt(max(s[i, j], 0.0))
                b[i, j] = sq[i, j] * g[j]
            cuda.syncthreads()
            inner, _ = _cg(sq, b, r_w, r_b, tol, max_cg, z, r, pv, q, t, sh)
            _apply_A_scaled(sq, z, t, r_w, r_b, q)
            for k in range(tid, m * n, NT):
                i, j = k // n, k % n
                r[i, j] = g[j] - q[i, j]
            cuda.syncthreads()
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            lam = r[i, j]
            t[i, j] = s[i, j] * lam
            if pf:
                dc, dd = _partials_dev(v[i, j], c[i, j], K[i, j], _A2_B / K[i, j])
                w1[e, i, j] = lam * dc
                w2[e, i, j] = lam * dd
            else:
                w1[e, i, j] = lam * v[i, j]
        cuda.syncthreads()
        for i in range(tid, m, NT):
            acc = 0.0
            for j in range(n):
                acc += t[i, j]
            grad_V[e, i] = acc
        cuda.syncthreads()
        # The residual check of the cpu adjoint: ||S (g 1 - J lambda)|| / ||S lambda||.
        _apply_A(t, r_w, r_b, q)
        sr = sl = 0.0
        for k in range(tid, m * n, NT):
            i, j = k // n, k % n
            a = s[i, j] * (g[j] - r[i, j] - q[i, j])
            sr += a * a
            sl += t[i, j] * t[i, j]
        cuda.syncthreads()
        sr, sl, _ = _block_sum3(sr, sl, 0.0, sh)
        if tid == 0:
            stats[e, 0] = sr
            stats[e, 1] = sl
            stats[e, 2] = inner
        cuda.syncthreads()


def _blocks(p):
    return max(1, min(p, 65535))


def _line(method, V, c, K, pf, r_word, r_bit):
    """True when ``method`` resolves to line steps (:func:`memnp.circuit.solve.resolve_method`;
    every other answer takes CG steps here)."""
    from .solve import resolve_method
    return resolve_method(method, V, c, K, pf, r_word, r_bit) == "line"


def _method_name(newton, cg_steps):
    """Which steps the batch took: line steps only, CG steps only, or both."""
    if not np.any(cg_steps):
        return "Newton, line steps (bit lines exact, word-line corrections) (cuda)"
    if np.all(cg_steps == newton):
        return "Newton-CG on the device voltages (cuda)"
    return "Newton, line steps and CG steps (cuda)"


def solve(V, G, devices, r_word, r_bit, tol, max_newton=None, max_cg=None, method="auto"):
    """(v (p, m, n) float64 host array, SolveReport, (c, K, pf) host arrays): see solve.solve
    (``max_newton``, ``max_cg``: the cpu solver's MAX_NEWTON, MAX_CG when None; ``method``:
    "auto", "cg" or "line", as :func:`memnp.circuit.solve.solve_with_currents`)."""
    from . import solve as cpu
    c, K, pf = cpu.device_arrays(G, devices)
    V = np.ascontiguousarray(V, dtype=np.float64)
    max_newton = cpu.MAX_NEWTON if max_newton is None else max_newton
    max_cg = cpu.MAX_CG if max_cg is None else max_cg
    line = _line(method, V, c, K, pf, r_word, r_bit)
    p, m = V.shape
    n = c.shape[1]
    d_v = cuda.device_array((p, m, n))
    work = cuda.device_array((13, p, m, n))
    stats_i = cuda.to_device(np.zeros((p, 4), np.int64))
    stats_f = cuda.to_device(np.zeros((p, 3)))
    _solve_kernel[_blocks(p), NT](cuda.to_device(V), cuda.to_device(c), cuda.to_device(K), pf,
                                  float(r_word), float(r_bit), float(tol), int(max_newton),
                                  int(max_cg), line, cpu.MAX_CORRECTIONS, d_v, work, stats_i,
                                  stats_f)
    si, sf = stats_i.copy_to_host(), stats_f.copy_to_host()
    report = SolveReport(si[:, 0].astype(np.int8), si[:, 1].copy(), si[:, 2].copy(), sf[:, 0].copy(),
                         sf[:, 1].copy(), sf[:, 2].copy(), float(tol),
                         _method_name(si[:, 1], si[:, 3]))
    return d_v.copy_to_host(), report, (c, K, pf)


def vjp(v, V, c, K, pf, r_word, r_bit, grad_I, tol, need_V=True, max_cg=5000, check_tol=None,
        method="auto"):
    """(dL/dV (p, m) or None, dL/dG or (dL/dc, dL/d(d_eps)), report), float64 host arrays and the
    :class:`SolveReport` of the transposed solves. Every example's residual is checked as the cpu
    adjoint's (:func:`memnp.circuit.adjoint.residual`, against ``check_tol``, default ``tol``);
    the examples that miss it are solved again by the cpu adjoint (refinement, then the sparse
    direct solve) on host arrays, and the report says so (MAX_ITER where even that failed). The
    transposed solve takes a line step or CG as the forward (``method`` as :func:`solve`)."""
    from . import adjoint
    from .solve import MAX_CORRECTIONS
    V = np.ascontiguousarray(V, dtype=np.float64)
    line = _line(method, V, c, K, pf, r_word, r_bit)
    check_tol = float(tol if check_tol is None else check_tol)
    p, m, n = v.shape
    grad_V = cuda.device_array((p, m))
    w1 = cuda.device_array((p, m, n))
    w2 = cuda.device_array((p, m, n) if pf else (1, 1, 1))
    work = cuda.device_array((12, p, m, n))
    stats = cuda.to_device(np.zeros((p, 3)))
    grad_I = np.ascontiguousarray(grad_I, dtype=np.float64)
    _vjp_kernel[_blocks(p), NT](cuda.to_device(np.ascontiguousarray(v)),
                                cuda.to_device(np.ascontiguousarray(V, dtype=np.float64)),
                                cuda.to_device(c), cuda.to_device(K), pf, float(r_word), float(r_bit),
                                cuda.to_device(grad_I), float(tol), int(max_cg), line, MAX_CORRECTIONS,
                                grad_V, w1, w2, work, stats)
    st = stats.copy_to_host()
    rel = np.array([adjoint.relative(a, b) for a, b in st[:, :2]])
    status = np.where(rel <= check_tol, CONVERGED, MAX_ITER).astype(np.int8)
    w1, grad_V = w1.copy_to_host(), grad_V.copy_to_host()
    w2 = w2.copy_to_host() if pf else None
    iterations = np.zeros(p, np.int64)
    steps = "line step, else CG" if line else "CG"
    name = f"transposed solve: {steps} (cuda)"
    bad = np.flatnonzero(status != CONVERGED)
    if bad.size:                        # again on the cpu: refinement, then sparse direct
        w1[bad] = 0.0
        if pf:
            w2[bad] = 0.0
        gV, theta, rep = adjoint.vjp(np.ascontiguousarray(v[bad]), np.asarray(V)[bad], c, K, pf,
                                     r_word, r_bit, grad_I[bad], tol, check_tol=check_tol)
        grad_V[bad] = gV
        status[bad], rel[bad], iterations[bad] = rep.status, rep.residual, rep.iterations
        w1[bad[0]] = theta[0] if pf else theta
        if pf:
            w2[bad[0]] = theta[1]
        name = f"{name}, {bad.size} of {p} examples again on the cpu"
    report = SolveReport(status, iterations, st[:, 2].astype(np.int64), rel, np.zeros(p),
                         np.zeros(p), check_tol, name)
    g1 = w1.sum(axis=0)
    grad_V = grad_V if need_V else None
    if pf:
        return grad_V, (g1, w2.sum(axis=0)), report
    return grad_V, g1, report
