"""The wire operator A of the device-voltage formulation (cpu, Numba): A t for one example.

(A t)[i, j] = r_word sum_j' (min(j, j') + 1) t[i, j'] + r_bit sum_i' (m - max(i, i')) t[i', j]:
the voltage drop along word line i up to node j plus the bit-line potential at row i, when the
devices draw the currents t (m, n) in A (see :mod:`memnp.circuit.solve`). Running sums along each
line, O(m n); A is never formed.

Two passes over the array: down the rows, the bit-line prefix sums (what each bit segment
carries); then up the rows, four at a time, the bit-line suffix sums (the bit-line potential)
followed at once by those rows' word-line sums, while the rows are still in L1. The solver's
residual evaluation reuses the second pass (:func:`suffix_word_block`) so that it also finishes
the residual of the rows it has just completed.
"""
from numba import njit

from ..kernels.fastexp import wide_vectors

#: Reassociation lets LLVM vectorize the sums; no 'nnan' / 'ninf' (the solver's NON_FINITE checks).
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def prefix_row(ti, oi, buf_p):
    """Bit-line prefix of one row: buf_p += t[i]; out[i] = buf_p (the bit segments' currents)."""
    for j in range(ti.shape[0]):
        buf_p[j] += ti[j]
        oi[j] = buf_p[j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def suffix_word_block(t, r_w, r_b, out, buf_q, lo, hi):
    """Rows hi-1 down to lo (hi - lo <= 4): out[i] = r_bit times the bit segments i..m-1 (buf_q
    carries the suffix sum from below; out[i] holds the prefix on entry), then out[i] += the
    word-line drop of row i (four independent recurrences interleaved)."""
    n = t.shape[1]
    for k in range(hi - lo):
        oi = out[hi - 1 - k]
        if r_b > 0.0:
            for j in range(n):
                buf_q[j] += oi[j]
                oi[j] = r_b * buf_q[j]
        else:
            for j in range(n):
                oi[j] = 0.0
    if not r_w > 0.0:
        return
    if hi - lo == 4:
        t0, t1, t2, t3 = t[lo], t[lo + 1], t[lo + 2], t[lo + 3]
        o0, o1, o2, o3 = out[lo], out[lo + 1], out[lo + 2], out[lo + 3]
        s0 = s1 = s2 = s3 = 0.0
        for j in range(n):
            s0 += t0[j]
            s1 += t1[j]
            s2 += t2[j]
            s3 += t3[j]
        a0 = a1 = a2 = a3 = 0.0
        for j in range(n):
            a0 += s0
            a1 += s1
            a2 += s2
            a3 += s3
            o0[j] += r_w * a0
            o1[j] += r_w * a1
            o2[j] += r_w * a2
            o3[j] += r_w * a3
            s0 -= t0[j]
            s1 -= t1[j]
            s2 -= t2[j]
            s3 -= t3[j]
    else:
        for i in range(lo, hi):
            ti = t[i]
            oi = out[i]
            s0 = 0.0
            for j in range(n):
                s0 += ti[j]
            a0 = 0.0
            for j in range(n):
                a0 += s0
                oi[j] += r_w * a0
                s0 -= ti[j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply_A(t, r_w, r_b, out, buf_p, buf_q):
    """out = A t for one example, t and out (m, n); buf_p, buf_q (n,) work vectors.

    Down the rows: out[i] = the currents of rows 0..i (what bit segment i carries). Up the rows
    in blocks of four (:func:`suffix_word_block`): out[i] = r_bit times the sum of segments
    i..m-1, plus the word-line drop r_word sum_{k <= j} (T - devices before k), T the row total."""
    wide_vectors()
    m, n = t.shape
    for j in range(n):
        buf_p[j] = 0.0
        buf_q[j] = 0.0
    if r_b > 0.0:
        for i in range(m):
            prefix_row(t[i], out[i], buf_p)
    hi = m
    while hi > 0:
        lo = max(hi - 4, 0)
        suffix_word_block(t, r_w, r_b, out, buf_q, lo, hi)
        hi = lo


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply_M(t, pv, sq, r_w, r_b, q, buf_p, buf_q):
    """q = M p = p + S^1/2 A t with t = S^1/2 p (p = pv; all (m, n)), finished row block by row
    block in the second pass of :func:`apply_A`. Returns (p . q, p . p)."""
    wide_vectors()
    m, n = t.shape
    for j in range(n):
        buf_p[j] = 0.0
        buf_q[j] = 0.0
    if r_b > 0.0:
        for i in range(m):
            prefix_row(t[i], q[i], buf_p)
    pq = pp = 0.0
    hi = m
    while hi > 0:
        lo = max(hi - 4, 0)
        suffix_word_block(t, r_w, r_b, q, buf_q, lo, hi)
        for i in range(lo, hi):
            qi, pi, si = q[i], pv[i], sq[i]
            for j in range(n):
                x = pi[j] + si[j] * qi[j]
                qi[j] = x
                pq += pi[j] * x
                pp += pi[j] * pi[j]
        hi = lo
    return pq, pp


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply_A_scaled(sq, z, b, r_w, r_b, out, buf_p, buf_q):
    """out = A b with b = sq z (all (m, n)), b written row by row in the first pass."""
    wide_vectors()
    m, n = z.shape
    for j in range(n):
        buf_p[j] = 0.0
        buf_q[j] = 0.0
    for i in range(m):
        si, zi, bi = sq[i], z[i], b[i]
        for j in range(n):
            bi[j] = si[j] * zi[j]
        if r_b > 0.0:
            prefix_row(bi, out[i], buf_p)
    hi = m
    while hi > 0:
        lo = max(hi - 4, 0)
        suffix_word_block(b, r_w, r_b, out, buf_q, lo, hi)
        hi = lo
