"""The wire operator A of the device-voltage formulation (cpu, Numba): A t for one example.

(A t)[i, j] = r_word sum_j' (min(j, j') + 1) t[i, j'] + r_bit sum_i' (m - max(i, i')) t[i', j]:
the voltage drop along word line i up to node j plus the bit-line potential at row i, when the
devices draw the currents t (m, n) in A (see :mod:`memnp.circuit.solve`). Running sums along each
line, O(m n); A is never formed.
"""
from numba import njit

from ..kernels.fastexp import wide_vectors

#: Reassociation lets LLVM vectorize the sums; no 'nnan' / 'ninf' (the solver's NON_FINITE checks).
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def apply_A(t, r_w, r_b, out, buf_p, buf_q):
    """out = A t for one example, t and out (m, n); buf_p, buf_q (n,) work vectors.

    Bit lines first (vectorized across the n columns): out[i] = the currents of rows 0..i (what
    bit segment i carries), then, walking up from the amplifier, out[i] = r_bit times the sum of
    segments i..m-1. Word lines then add theirs: with T the row total, walking j = 0..n-1, segment
    j carries T minus the devices before j, and the drop at node j is r_word times the sum of
    segments 0..j (four rows at a time, so that four independent recurrences overlap)."""
    wide_vectors()
    m, n = t.shape
    if r_b > 0.0:
        for j in range(n):
            buf_p[j] = 0.0
            buf_q[j] = 0.0
        for i in range(m):
            ti = t[i]
            oi = out[i]
            for j in range(n):
                buf_p[j] += ti[j]
                oi[j] = buf_p[j]
        for k in range(m):
            oi = out[m - 1 - k]
            for j in range(n):
                buf_q[j] += oi[j]
                oi[j] = r_b * buf_q[j]
    else:
        for i in range(m):
            oi = out[i]
            for j in range(n):
                oi[j] = 0.0
    if r_w > 0.0:
        i = 0
        while i + 4 <= m:
            t0, t1, t2, t3 = t[i], t[i + 1], t[i + 2], t[i + 3]
            o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
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
            i += 4
        while i < m:
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
            i += 1
