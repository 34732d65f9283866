"""The line step of the cuda solver (:mod:`memnp.circuit.cuda`): device functions run by the
whole block of one example, as :mod:`memnp.circuit.linestep` on the cpu.

The Newton step J dv = -R, J = I + (A_bit + A_word) S, with the bit lines exact and the word lines
by Richardson corrections: dv_0 = J_bit^-1 (-R), dv_{k+1} = J_bit^-1 (-R - A_word S dv_k), with
J_bit^-1 x = x - (L_bit + S)^-1 (S x) (one tridiagonal solve per bit line: one thread per bit
line, its running values in registers) and A_word S dv one running sum along each word line (one
thread per word line). The linear residual of dv_k is exactly A_word S (dv_k - dv_{k-1}), a block
sum that every thread sees, so the block stops its corrections together. Arrays are (m, n) views
in float64; g = 1 / r_bit (S), r_w = r_word (ohm).
"""
import math

from numba import cuda

from .cuda_block import NT, block_sum3


@cuda.jit(device=True)
def line_solve(R, u, has_u, s, g, winv, factor, out):
    """out = J_bit^-1 x = x - (L_bit + S)^-1 (S x), x = -R - u (u only when has_u), as
    :func:`memnp.circuit.linestep.line_solve`: one thread per bit line, forward elimination down
    the line and back substitution up it. winv: the pivots 1 / w of L_bit + S (written here first
    when ``factor``); g = 1 / r_bit (S). All (m, n) views; out is not R, u, s or winv."""
    tid = cuda.threadIdx.x
    m, n = R.shape
    for j in range(tid, n, NT):
        y = 0.0
        w = 0.0
        for i in range(m):
            x = -R[i, j] - u[i, j] if has_u else -R[i, j]
            if i == 0:
                y = s[i, j] * x
            else:
                y = g * w * y + s[i, j] * x        # w: the pivot of row i - 1
            out[i, j] = y
            if factor:
                if i == 0:
                    w = 1.0 / (g + s[i, j])
                else:
                    w = 1.0 / (2.0 * g + s[i, j] - g * g * w)
                winv[i, j] = w
            else:
                w = winv[i, j]
        z = 0.0
        for k in range(m):
            i = m - 1 - k
            z = (out[i, j] + g * z) * winv[i, j]
            x = -R[i, j] - u[i, j] if has_u else -R[i, j]
            out[i, j] = x - z
    cuda.syncthreads()


@cuda.jit(device=True)
def word_drop(s, dv, r_w, u, first, sh):
    """u = A_word S dv (one thread per word line), as :func:`memnp.circuit.linestep.word_drop`.
    Returns ||S (u_new - u_old)||^2 over the block (u_old = 0 when ``first``; u not read then)."""
    tid = cuda.threadIdx.x
    m, n = s.shape
    acc = 0.0
    for i in range(tid, m, NT):
        t = 0.0
        for j in range(n):
            t += s[i, j] * dv[i, j]
        a = 0.0
        for j in range(n):
            a += t
            x = r_w * a
            e = x if first else x - u[i, j]
            e *= s[i, j]
            acc += e * e
            u[i, j] = x
            t -= s[i, j] * dv[i, j]
    cuda.syncthreads()
    total, _, _ = block_sum3(acc, 0.0, 0.0, sh)
    return total


@cuda.jit(device=True)
def line_step(R, s, g, winv, refactor, r_w, target, max_corrections, dv, u, sh):
    """The line step dv (m, n) for the voltage mismatch R at slopes s, corrected until the
    S-weighted linear residual is at most ``target`` (A), as :func:`memnp.circuit.linestep.step`:
    the corrections made, or -1 when they contract too slowly (the caller takes a CG step).
    winv: the pivots of L_bit + S, factored here when ``refactor``; u (m, n) work."""
    line_solve(R, u, False, s, g, winv, refactor, dv)
    if not r_w > 0.0:
        return 0
    k = 0
    prev = -1.0
    while True:
        res = math.sqrt(word_drop(s, dv, r_w, u, k == 0, sh))
        if not res > target:
            return k
        if k >= max_corrections or (prev >= 0.0 and not res <= 0.5 * prev):
            return -1
        prev = res
        line_solve(R, u, True, s, g, winv, False, dv)
        k += 1
