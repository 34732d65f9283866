"""Line preconditioner of the conjugate-gradient solves (cpu): the wires of one direction exactly.

The CG matrix is M = I + S^1/2 (A_word + A_bit) S^1/2 (:mod:`memnp.circuit.solve`). Each part of
A is the inverse of a tridiagonal line Laplacian: A_bit acts on every column as L_bit^-1, where
L_bit = g_bit tridiag(-1, [1, 2, ..., 2], -1) (open top row, a segment to the amplifier below the
last), and A_word on every row as L_word^-1 = (g_word tridiag(-1, [2, ..., 2, 1], -1))^-1 (the
driver before column 0, the open end after column n-1). So P = I + S^1/2 A_line S^1/2 for one
direction has the exact inverse (Woodbury)

    P^-1 y = y - S^1/2 (L_line + S)^-1 S^1/2 y,

one tridiagonal solve per line (Thomas algorithm; L_line + S is symmetric positive definite and
diagonally dominant, no division by a slope). With P the CG sees only the other direction's
coupling: kappa(P^-1 M) <= 1 + rho_other instead of 1 + rho_word + rho_bit. The solver takes the
direction with the larger r m^2 (bit lines: r_bit m^2; word lines: r_word n^2), and, where one
side has no resistance, M = P and CG ends after one iteration. For linear devices S = G and the
factorisation is made once per pass for the whole batch.

Factor: winv (m, n) holds 1 / w, the pivots of the elimination along each line; the solve needs
nothing else (the off-diagonals are all -g).
"""
import math

from numba import njit

from ..kernels.fastexp import wide_vectors

NONE, BIT, WORD = 0, 1, 2
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}


def direction(m, n, r_word, r_bit):
    """BIT, WORD or NONE: the line direction the preconditioner solves exactly."""
    bit, word = r_bit * m * m, r_word * n * n
    if bit == 0 and word == 0:
        return NONE
    return BIT if bit >= word else WORD


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def factor(s, g, pdir, winv):
    """Pivots 1 / w of L_line + diag(s) for every line of direction pdir (g = 1 / r, S)."""
    wide_vectors()
    m, n = s.shape
    if pdir == 1:                           # bit lines: recurrences along i, vectorized over j
        for j in range(n):                  # row 0: only the segment below it
            winv[0, j] = 1.0 / (g + s[0, j])
        for i in range(1, m):
            wi = winv[i - 1]
            for j in range(n):
                winv[i, j] = 1.0 / (2.0 * g + s[i, j] - g * g * wi[j])
    elif pdir == 2:                         # word lines: along j, one row after another
        for i in range(m):
            si = s[i]
            wi = winv[i]
            d0 = 2.0 * g if n > 1 else g
            wi[0] = 1.0 / (d0 + si[0])
            for j in range(1, n):
                d = 2.0 * g if j < n - 1 else g
                wi[j] = 1.0 / (d + si[j] - g * g * wi[j - 1])


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply(y, sq, g, pdir, winv, out):
    """out = P^-1 y (y, sq = S^1/2, winv, out (m, n)); out may not be y."""
    apply_dot(y, sq, g, pdir, winv, out, out, False)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply_dot(y, sq, g, pdir, winv, out, t, write_t):
    """out = P^-1 y as :func:`apply`, and, in the same last pass, t = S^1/2 out when write_t
    (t (m, n), not y or out then). Returns y . out (the conjugate-gradient inner product)."""
    wide_vectors()
    m, n = y.shape
    dot = 0.0
    if pdir == 0:
        for i in range(m):
            oi, si, yi, ti = out[i], sq[i], y[i], t[i]
            for j in range(n):
                oi[j] = yi[j]
                dot += yi[j] * yi[j]
                if write_t:
                    ti[j] = si[j] * yi[j]
        return dot
    if pdir == 1:
        # forward: t_i = sq y_i + g winv_{i-1} t_{i-1}; back: x_i = (t_i + g x_{i+1}) winv_i
        for j in range(n):
            out[0, j] = sq[0, j] * y[0, j]
        for i in range(1, m):
            oi, op, wp, si, yi = out[i], out[i - 1], winv[i - 1], sq[i], y[i]
            for j in range(n):
                oi[j] = si[j] * yi[j] + g * wp[j] * op[j]
        wl = winv[m - 1]
        ol = out[m - 1]
        for j in range(n):
            ol[j] *= wl[j]
        for k in range(1, m):
            i = m - 1 - k
            oi, on, wi = out[i], out[i + 1], winv[i]
            for j in range(n):
                oi[j] = (oi[j] + g * on[j]) * wi[j]
    else:
        for i in range(m):
            oi, wi, si, yi = out[i], winv[i], sq[i], y[i]
            acc = si[0] * yi[0]
            oi[0] = acc
            for j in range(1, n):
                acc = si[j] * yi[j] + g * wi[j - 1] * acc
                oi[j] = acc
            x = oi[n - 1] * wi[n - 1]
            oi[n - 1] = x
            for k in range(1, n):
                j = n - 1 - k
                x = (oi[j] + g * x) * wi[j]
                oi[j] = x
    for i in range(m):                      # P^-1 y = y - S^1/2 (L + S)^-1 S^1/2 y
        oi, si, yi, ti = out[i], sq[i], y[i], t[i]
        if write_t:
            for j in range(n):
                x = yi[j] - si[j] * oi[j]
                oi[j] = x
                ti[j] = si[j] * x
                dot += yi[j] * x
        else:
            for j in range(n):
                x = yi[j] - si[j] * oi[j]
                oi[j] = x
                dot += yi[j] * x
    return dot


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def factor_rhs(s, R, pf, g, pdir, winv, sq, r):
    """The Newton step's right-hand side r = S^1/2 R (sq = S^1/2) and, for PF devices, the
    preconditioner's factorisation at s, in one pass along the rows (bit-line direction).
    Returns ||r||^2."""
    wide_vectors()
    m, n = s.shape
    fused = pf and pdir == BIT
    if pf and not fused and pdir != NONE:
        factor(s, g, pdir, winv)
    bb = 0.0
    for i in range(m):
        si, Ri, qi, ri = s[i], R[i], sq[i], r[i]
        for j in range(n):
            a = math.sqrt(max(si[j], 0.0))
            qi[j] = a
            x = a * Ri[j]
            ri[j] = x
            bb += x * x
        if fused:
            wi = winv[i]
            if i == 0:
                for j in range(n):
                    wi[j] = 1.0 / (g + si[j])
            else:
                wp = winv[i - 1]
                for j in range(n):
                    wi[j] = 1.0 / (2.0 * g + si[j] - g * g * wp[j])
    return bb
