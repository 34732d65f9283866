"""The line step of the forward solve (cpu, Numba): Newton with the bit lines exact.

The Newton step of :mod:`memnp.circuit.solve` solves J dv = -R with J = I + (A_bit + A_word) S
(S = diag(df/dv), A the wire operator of :mod:`memnp.circuit.lines`). On tall arrays of
high-resistance devices nearly all the coupling is along the bit lines: the word-line part
rho_word = lambda_max(S^1/2 A_word S^1/2) is about 1e-2 on the MNIST first layer (785 x 50,
r = 1 ohm), against about 0.3 for the bit lines. The line step therefore solves with the bit-line
Jacobian J_bit = I + A_bit S exactly and treats the word lines as a correction:

    dv_0 = J_bit^-1 (-R),    dv_{k+1} = J_bit^-1 (-R - A_word S dv_k)       (Richardson)

A_bit is the inverse of the bit-line Laplacian L_bit (:mod:`memnp.circuit.precond`), so

    J_bit^-1 x = (L_bit + S)^-1 L_bit x = x - (L_bit + S)^-1 (S x),

one tridiagonal solve per bit line (Thomas algorithm on the pivots of :func:`precond.factor`,
vectorised across the bit lines), with no square roots and no division by a slope. A_word S dv is
one running sum along each word line. Convergence, in the S-weighted norm of the residual: J_bit
is I plus a matrix self-adjoint and positive semidefinite in the inner product <x, y>_S, so the
iteration contracts by at most rho_word per correction, and the linear residual of dv_k is
exactly J dv_k + R = A_word S (dv_k - dv_{k-1}) (the difference of two word-line drops the
iteration computes anyway), which is what the stopping test measures. rho_word <= lambda_max(W)
r_word max(S), W = (min(j, j') + 1) the word-line kernel, lambda_max(W) ~ 0.405 n^2: the solver
takes the line step only when that bound is small (:data:`RHO_LINE`), and Newton-CG otherwise.

Per correction this costs two passes of the tridiagonal solve and one word-line pass, against
about fifteen passes for one preconditioned CG iteration with its set-up; the working set is a
third of CG's (no S^1/2, no search directions).
"""
import math

import numpy as np
from numba import njit

from ..kernels.device_law import _current_slope_numpy as _pf_current_slope_numpy
from ..kernels.fastexp import wide_vectors

#: Largest bound on rho_word for which the solver takes line steps (Richardson contraction at most
#: this per correction; one CG iteration costs about two corrections and contracts by ~sqrt(rho)/2).
RHO_LINE = 0.25
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}


def word_kernel_norm(n):
    """lambda_max of W = (min(j, j') + 1), the n x n word-line kernel per unit r (the inverse of
    tridiag(-1, [2, ..., 2, 1], -1)): 1 / (4 sin^2(pi / (2 (2 n + 1))))."""
    return 1.0 / (4.0 * math.sin(math.pi / (2.0 * (2.0 * n + 1.0))) ** 2)


def word_coupling_bound(V, c, K, pf, r_word):
    """An upper bound on rho_word over a batch (before any solve): r_word lambda_max(W) times the
    largest slope a device can have (:func:`slope_bound`)."""
    if not r_word > 0:
        return 0.0
    return float(r_word) * word_kernel_norm(c.shape[1]) * slope_bound(V, c, K, pf)


def slope_bound(V, c, K, pf):
    """The largest slope (S) a device can have at the solution: every node voltage lies between
    the lowest and the highest of 0 and V (a passive network), so |v| <= span = max(V, 0) -
    min(V, 0), and the PF slope grows with |v|; linear devices: max G. V (p, m) in V; c, K, pf
    from :func:`memnp.circuit.solve.device_arrays`."""
    if pf:
        span = float(max(V.max(initial=0.0), 0.0) - min(V.min(initial=0.0), 0.0))
        _, slope = _pf_current_slope_numpy(span, c, K)
        return float(np.max(slope, initial=0.0))
    return float(np.max(c, initial=0.0))


def _line_solve_kernel(has_u, factor):
    """line_solve with has_u and factor fixed at compile time (a branch on them inside the row
    loop halves the speed of the vectorised loops)."""

    def kernel(R, u, s, g, winv, zbuf, out):
        wide_vectors()
        m, n = R.shape
        wbuf = np.empty(n if factor else 0)  # the pivots of row i - 1 (reading them back from
        for i in range(m):                  # winv[i - 1] would keep the loop from vectorizing)
            Ri, si, oi = R[i], s[i], out[i]
            if i == 0:
                if has_u:
                    ui = u[i]
                    for j in range(n):
                        y = -si[j] * (Ri[j] + ui[j])
                        zbuf[j] = y
                        oi[j] = y
                else:
                    for j in range(n):
                        y = -si[j] * Ri[j]
                        zbuf[j] = y
                        oi[j] = y
            elif factor:
                for j in range(n):
                    y = g * wbuf[j] * zbuf[j] - si[j] * Ri[j]
                    zbuf[j] = y
                    oi[j] = y
            else:
                wp = winv[i - 1]
                if has_u:
                    ui = u[i]
                    for j in range(n):
                        y = g * wp[j] * zbuf[j] - si[j] * (Ri[j] + ui[j])
                        zbuf[j] = y
                        oi[j] = y
                else:
                    for j in range(n):
                        y = g * wp[j] * zbuf[j] - si[j] * Ri[j]
                        zbuf[j] = y
                        oi[j] = y
            if factor:                      # pivots of row i, for the back substitution
                wi = winv[i]
                if i == 0:
                    for j in range(n):
                        x = 1.0 / (g + si[j])
                        wbuf[j] = x
                        wi[j] = x
                else:
                    for j in range(n):
                        x = 1.0 / (2.0 * g + si[j] - g * g * wbuf[j])
                        wbuf[j] = x
                        wi[j] = x
        for j in range(n):
            zbuf[j] = 0.0
        for k in range(m):                  # back substitution, x - z written as it goes
            i = m - 1 - k
            Ri, oi, wi = R[i], out[i], winv[i]
            if has_u:
                ui = u[i]
                for j in range(n):
                    z = (oi[j] + g * zbuf[j]) * wi[j]
                    zbuf[j] = z
                    oi[j] = -Ri[j] - ui[j] - z
            else:
                for j in range(n):
                    z = (oi[j] + g * zbuf[j]) * wi[j]
                    zbuf[j] = z
                    oi[j] = -Ri[j] - z

    return njit(cache=True, fastmath=_FASTMATH, error_model="numpy")(kernel)


_solve_first = _line_solve_kernel(False, False)
_solve_first_factor = _line_solve_kernel(False, True)
_solve_corrected = _line_solve_kernel(True, False)


def line_solve(R, u, has_u, s, g, winv, factor, zbuf, out):
    """out = J_bit^-1 x = x - (L_bit + S)^-1 (S x) with x = -R - u (u only when has_u).
    R, u, s, winv (pivots 1 / w of L_bit + S, :func:`memnp.circuit.precond.factor`; written
    first when ``factor``), out (m, n); zbuf (n,) work; g = 1 / r_bit (S). (Python entry point
    of the three compiled variants; :func:`step` calls them directly.)

    Forward elimination down every bit line (vectorised across lines) into out, then back
    substitution up the lines, writing x - z as it goes (z of the row below kept in zbuf)."""
    if has_u and factor:
        raise ValueError("line_solve factors only on the first solve of a step (has_u False)")
    kernel = _solve_corrected if has_u else (_solve_first_factor if factor else _solve_first)
    kernel(R, u, s, g, winv, zbuf, out)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def word_drop(s, dv, r_w, u, first):
    """u = A_word S dv in place (s, dv, u (m, n); r_w in ohm): the word-line drop the device
    currents S dv set up, by the running sums of :func:`memnp.circuit.lines.suffix_word_block`
    with S dv formed on the fly. Returns ||S (u_new - u_old)||^2 (u_old = 0 when ``first``; u is
    not read then): the S-weighted linear residual of the previous iterate (module docstring)."""
    wide_vectors()
    m, n = s.shape
    acc = 0.0
    lo = 0
    while lo < m:
        hi = min(lo + 4, m)
        if hi - lo == 4:
            s0, s1, s2, s3 = s[lo], s[lo + 1], s[lo + 2], s[lo + 3]
            d0, d1, d2, d3 = dv[lo], dv[lo + 1], dv[lo + 2], dv[lo + 3]
            u0, u1, u2, u3 = u[lo], u[lo + 1], u[lo + 2], u[lo + 3]
            t0 = t1 = t2 = t3 = 0.0
            for j in range(n):
                t0 += s0[j] * d0[j]
                t1 += s1[j] * d1[j]
                t2 += s2[j] * d2[j]
                t3 += s3[j] * d3[j]
            a0 = a1 = a2 = a3 = 0.0
            for j in range(n):
                a0 += t0
                a1 += t1
                a2 += t2
                a3 += t3
                x0, x1, x2, x3 = r_w * a0, r_w * a1, r_w * a2, r_w * a3
                if first:
                    e0, e1, e2, e3 = x0, x1, x2, x3
                else:
                    e0, e1, e2, e3 = x0 - u0[j], x1 - u1[j], x2 - u2[j], x3 - u3[j]
                e0 *= s0[j]
                e1 *= s1[j]
                e2 *= s2[j]
                e3 *= s3[j]
                acc += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
                u0[j], u1[j], u2[j], u3[j] = x0, x1, x2, x3
                t0 -= s0[j] * d0[j]
                t1 -= s1[j] * d1[j]
                t2 -= s2[j] * d2[j]
                t3 -= s3[j] * d3[j]
        else:
            for i in range(lo, hi):
                si, di, ui = s[i], dv[i], u[i]
                t0 = 0.0
                for j in range(n):
                    t0 += si[j] * di[j]
                a0 = 0.0
                for j in range(n):
                    a0 += t0
                    x0 = r_w * a0
                    e0 = x0 if first else x0 - ui[j]
                    e0 *= si[j]
                    acc += e0 * e0
                    ui[j] = x0
                    t0 -= si[j] * di[j]
        lo = hi
    return acc


@njit(cache=True, error_model="numpy")
def step(R, s, g, winv, refactor, r_w, target, max_corrections, dv, u, zbuf):
    """The line step dv (m, n) for the voltage mismatch R at slopes s, corrected until the
    S-weighted linear residual is at most ``target`` (A). winv (m, n): the pivots of L_bit + S,
    computed here first when ``refactor`` (PF devices; linear devices share the batch's). u (m, n),
    zbuf (n,) work. Returns the corrections made, or -1 when they contract too slowly (more than
    ``max_corrections``, or a correction shrinking the residual by less than half): the caller
    then takes a CG step instead."""
    if refactor:
        _solve_first_factor(R, u, s, g, winv, zbuf, dv)
    else:
        _solve_first(R, u, s, g, winv, zbuf, dv)
    if not r_w > 0.0:
        return 0
    k = 0
    prev = -1.0
    while True:
        res = math.sqrt(word_drop(s, dv, r_w, u, k == 0))
        if not res > target:
            return k
        if k >= max_corrections or (prev >= 0.0 and not res <= 0.5 * prev):
            return -1
        prev = res
        _solve_corrected(R, u, s, g, winv, zbuf, dv)
        k += 1
