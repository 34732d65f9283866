"""The read of a layer's crossbar on the GPU, PF or linear, with DAC, tiles and ADCs, and its VJPs
(issue 17).

For memnp.kernels.cuda_step (the arrays and columns it describes; P's stage columns are those of
:mod:`memnp.kernels.cuda_phases`). Per member k the read is the CPU's (memnp.crossbar.simulate and
memnp.crossbar.tiling) for the rows its batch drives:

- DAC (P[k, DAC_L] = 2**bits - 1 levels, 0: none): V = clip(rint(L (k_V x) / k_V), 0, L) k_V / L
  in the float dtype T (memnp.kernels.periphery's quantise; the bias row's k_V too);
- rows of arrays of R = P[k, TILE_ROWS] rows (the crossbar's m rows without Tiles): each row of
  arrays' partial column currents (float64 sums of the PF device currents, or on a linear stage,
  P[k, IS_PF] = 0, of V G'' with G'' (S) where PF's c is: memnp.kernels.cuda_phases), rounded to T;
- ADC (P[k, ADC_L] levels, 0: none): each part quantised, clip(rint(I a), 0, L) b with a = L / fs,
  b = fs / L (``adc`` (K, blocks, 3) float64: a, b, fs, each rounded to T), and the parts added
  in order; without an ADC the parts are added as they are. Column cuts change nothing (every
  column has its own ADC; the ADCs of a row of arrays share a full scale).

``inside`` (K, blocks, B, c) T: 1 where a part lies in [0, fs] (T comparisons), 0 where the ADC
clipped it. The VJPs are the CPU's straight-through estimators: dL/dI passes to a row of arrays'
devices and inputs times its ``inside``, and the DAC passes dL/dV unchanged (the PF VJP taken at
the quantised V; the linear one is dL/dV = sum_j dL/dI G'', dL/dG'' = sum_q dL/dI V, as
memnp.crossbar.tiling's ``g @ G.T`` and ``V.T @ g``). Rounding is half to even, computed exactly
(``_rint``).

Ties are real here: quantised currents are multiples of fs / L, so a pair's I+ and I- are often
equal, y is exactly 0, the sigmoid gives exactly 1/2, and the next layer's DAC meets a tie
(31.5 levels). The CPU's loops add each quantised part with a fused multiply-add (``out += q b``
under LLVM's contraction, on CPUs with FMA), so the device does too (``_fma``: libdevice's on the
GPU, an exactly rounded Python twin in the simulator); a last-bit difference there would flip
such a tie and move a voltage by a whole level. The CPU's linear read adds its quantised parts
with NumPy (``I += q b``: a product rounded, then a sum), so the linear branch does that
(``_mul``: libdevice's correctly rounded product, which is never contracted into an FMA).
"""
import math
from fractions import Fraction

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda
from numba.cuda import libdevice

from .cuda import SIMULATOR
from .cuda_phases import (ADC_L, DAC_INV, DAC_L, DAC_STEP, DOUBLE, G_OFF, G_ON, IS_PF, K_G, K_V, MAPPING, MAXW, S_C,
                          S_D, TILE_ROWS)
from .physics import A2_EPS

#: Threads of an elementwise block, and threads that share one output's rows in the forward kernel
#: (a power of two dividing TT); memnp.kernels.cuda_step re-exports them.
TT = 8 if SIMULATOR else 128
RS = 2 if SIMULATOR else 8


_VOLTAGE_FUNCTIONS = {}


def voltage_functions(T):
    """(``_rint``, ``_dac``, ``_voltage``) device functions for float dtype T (built once per T;
    memnp.kernels.cuda_eval's power reads the DAC's V with them too)."""
    T = np.dtype(T).type
    if T in _VOLTAGE_FUNCTIONS:
        return _VOLTAGE_FUNCTIONS[T]
    zero, half = T(0.0), T(0.5)

    @cuda.jit(device=True)
    def _rint(x):
        """x rounded to the nearest integer, ties to even (np.rint), for 0 <= x <= 2**16 (the
        truncation is the floor there; the remainder is exact); NaN (a diverged member) stays NaN."""
        if x != x:
            return x
        whole = int(x)
        rest = x - T(whole)
        if rest > half or (rest == half and whole % 2 == 1):
            whole += 1
        return T(whole)

    @cuda.jit(device=True)
    def _dac(k, P):
        """Member k's (k_V, DAC levels (0: no DAC), 1 / k_V, k_V / levels) in T, read once per
        item for :func:`_voltage`."""
        return T(P[k, K_V]), T(P[k, DAC_L]), T(P[k, DAC_INV]), T(P[k, DAC_STEP])

    @cuda.jit(device=True)
    def _voltage(x, k, q, i, kv, levels, inv, step):
        """V (T, volts) of row i for example q of member k after the DAC: k_V x, or k_V on the bias
        row (``_dac``'s constants)."""
        v = kv * x[k, q, i] if i < x.shape[2] else kv
        if levels != zero:
            v = _rint(min(max(v * inv * levels, zero), levels)) * step
        return v

    _VOLTAGE_FUNCTIONS[T] = (_rint, _dac, _voltage)
    return _VOLTAGE_FUNCTIONS[T]


def _build(T, chain_vjp):
    """{"forward", "inputs_vjp", "devices_vjp"} kernels for float dtype T; ``chain_vjp``: the
    conductance phases' VJP device function of :mod:`memnp.kernels.cuda_phases` for T."""
    F = np.float64
    eps, zero, one = T(A2_EPS), T(0.0), T(1.0)

    if SIMULATOR:
        @cuda.jit(device=True)
        def _fma(a, b, c):
            """a b + c rounded once (exact rationals; float32: through float64; NaN and inf as
            the plain expression)."""
            if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
                return T(a * b + c)
            return T(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))))

        @cuda.jit(device=True)
        def _mul(a, b):
            """a b rounded to T (the simulator does not contract)."""
            return T(a * b)
    else:
        _fma = libdevice.fmaf if T == np.float32 else libdevice.fma
        _mul = libdevice.fmul_rn if T == np.float32 else libdevice.dmul_rn

    _rint, _dac, _voltage = voltage_functions(T)

    @cuda.jit
    def forward(x, p, rank, cc, KK, st, P, adc, I, y, hidden, inside):
        """Per (member, example, output): the pair's column currents, row of arrays by row of
        arrays (PF, or V G'' on a linear stage, over the driven rows, float64 sums; then the ADCs),
        y = (I+ - I-) / (k_V k_G), then the sigmoid when ``hidden``. RS threads of a block share a
        row of arrays' rows."""
        members, m, c = cc.shape
        n_out = c // 2
        blocks = adc.shape[1]
        tid = cuda.threadIdx.x
        lane = tid % RS
        sa = cuda.shared.array(TT, np.float64)
        sb = cuda.shared.array(TT, np.float64)
        total = members * p * n_out
        for base in range(cuda.blockIdx.x * (TT // RS), total, cuda.gridDim.x * (TT // RS)):
            t = base + tid // RS
            valid = t < total
            k = q = j = 0
            if valid:
                k = t // (p * n_out)
                r = t - k * (p * n_out)
                q = r // n_out
                j = 2 * (r - q * n_out)
            rows = int(P[k, TILE_ROWS])
            levels = P[k, ADC_L]
            pf = P[k, IS_PF] != 0.0
            kv, dac_l, inv, dac_step = _dac(k, P)
            ip = zero
            im = zero
            for b in range(blocks):
                a = 0.0
                d = 0.0
                r0 = b * rows
                if valid:
                    for i in range(r0 + lane, min(r0 + rows, m), RS):
                        if rank[k, i] >= 0 and not pf:
                            vl = F(_voltage(x, k, q, i, kv, dac_l, inv, dac_step))
                            a += vl * F(cc[k, i, j])
                            d += vl * F(cc[k, i, j + 1])
                        elif rank[k, i] >= 0:
                            v = _voltage(x, k, q, i, kv, dac_l, inv, dac_step)
                            u = abs(v)
                            E = math.sqrt(u * KK[k, i, j] + eps)
                            a += cc[k, i, j] * v * math.exp(E)
                            E = math.sqrt(u * KK[k, i, j + 1] + eps)
                            d += cc[k, i, j + 1] * v * math.exp(E)
                sa[tid] = a
                sb[tid] = d
                cuda.syncthreads()
                if lane == 0 and valid and r0 < m:
                    for h in range(1, RS):
                        a += sa[tid + h]
                        d += sb[tid + h]
                    up, um = T(a), T(d)
                    if levels != 0.0:
                        L, scale, step, top = T(levels), T(adc[k, b, 0]), T(adc[k, b, 1]), T(adc[k, b, 2])
                        inside[k, b, q, j] = zero if (up < zero or up > top) else one
                        inside[k, b, q, j + 1] = zero if (um < zero or um > top) else one
                        qp, qm = _rint(min(max(up * scale, zero), L)), _rint(min(max(um * scale, zero), L))
                        if pf:
                            ip = _fma(qp, step, ip)
                            im = _fma(qm, step, im)
                        else:
                            ip = ip + _mul(qp, step)
                            im = im + _mul(qm, step)
                    else:
                        ip += up
                        im += um
                cuda.syncthreads()
            if lane == 0 and valid:
                I[k, q, j] = ip
                I[k, q, j + 1] = im
                value = (ip - im) / T(P[k, K_V] * (P[k, G_ON] - P[k, G_OFF]) / st[k, MAXW])
                if hidden:
                    value = one / (one + T(math.exp(-value)))
                y[k, q, j // 2] = value

    @cuda.jit
    def inputs_vjp(x, p, rank, cc, KK, gI, P, gx, inside):
        """Per (member, example, input): dL/dx = k_V sum_j dL/dI (ADC-masked) dI/dV at the DAC's V
        (PF's slope, or G'' on a linear stage), through the sigmoid that made x: gx = dL/dx x (1 - x)
        (the previous layer's dL/dy)."""
        members, m, c = cc.shape
        n_in = m - 1
        for t in range(cuda.grid(1), members * p * n_in, cuda.gridsize(1)):
            k = t // (p * n_in)
            r = t - k * (p * n_in)
            q = r // n_in
            i = r - q * n_in
            kv, dac_l, inv, dac_step = _dac(k, P)
            xv = x[k, q, i]
            v = _voltage(x, k, q, i, kv, dac_l, inv, dac_step)
            masked = P[k, ADC_L] != 0.0
            b = i // int(P[k, TILE_ROWS])
            acc = 0.0
            pf = P[k, IS_PF] != 0.0
            if rank[k, i] >= 0 and not pf:
                for j in range(c):
                    g = gI[k, q, j] * inside[k, b, q, j] if masked else gI[k, q, j]
                    acc += F(g) * F(cc[k, i, j])
            elif rank[k, i] >= 0 and v != zero:
                u = abs(v)
                for j in range(c):
                    s = u * KK[k, i, j]
                    E = math.sqrt(s + eps)
                    E2 = E + E
                    g = gI[k, q, j] * inside[k, b, q, j] if masked else gI[k, q, j]
                    acc += g * (cc[k, i, j] * math.exp(E) * (E2 + s) / E2)
            g = T(acc) * kv
            gx[k, q, i] = g * xv * (one - xv)

    @cuda.jit
    def devices_vjp(x, p, rank, G, cc, dd, KK, D, gI, st, P, gD, prod, eps_d, fdr, frd, stk, inside):
        """Per device: dL/dc, dL/d(d_eps) over the examples (ADC-masked dL/dI, the DAC's V), dL/dG''
        (pf_devices; on a linear stage dL/dG'' = sum_q dL/dI V), dL/dG through the conductance
        phases (``chain_vjp``), dL/dD = k_G dL/dG and prod = dL/dG D (for the max-weight path); for
        standard weights D (K, m, c / 2) gD gets dL/dG of the programmed conductances
        (memnp.kernels.cuda_standard makes dL/dW of them) and prod is not used. Rows not driven: 0."""
        members, m, c = G.shape
        for t in range(cuda.grid(1), members * m * c, cuda.gridsize(1)):
            k = t // (m * c)
            r = t - k * (m * c)
            i = r // c
            j = r - i * c
            if rank[k, i] < 0:
                gD[k, i, j] = zero
                prod[k, i, j] = 0.0
                continue
            masked = P[k, ADC_L] != 0.0
            b = i // int(P[k, TILE_ROWS])
            ks = KK[k, i, j]
            cs = cc[k, i, j]
            ds = dd[k, i, j]
            kv, dac_l, inv, dac_step = _dac(k, P)
            acc_c = 0.0
            acc_d = 0.0
            pf = P[k, IS_PF] != 0.0
            for q in range(p):
                v = _voltage(x, k, q, i, kv, dac_l, inv, dac_step)
                g = gI[k, q, j] * inside[k, b, q, j] if masked else gI[k, q, j]
                if not pf:
                    acc_c += F(g) * F(v)
                    continue
                s = abs(v) * ks
                E = math.sqrt(s + eps)
                g_ve = g * (v * math.exp(E))
                acc_c += g_ve
                acc_d += g_ve * (s / ((E + E) * ds))
            if pf:
                g_c = T(acc_c)
                g_d = T(-F(cs) * acc_d)
                g_G = (T(-P[k, S_C]) * g_c * cs + T(-P[k, S_D]) * g_d * ds) / G[k, i, j]
            else:
                g_G = T(acc_c)
            g_G = chain_vjp(g_G, k, i, j, D, st, P, eps_d, fdr, frd, stk)
            if P[k, MAPPING] == DOUBLE:
                gD[k, i, j] = T(st[k, K_G]) * g_G
                prod[k, i, j] = F(g_G * D[k, i, j])
            else:
                gD[k, i, j] = g_G

    return {"forward": forward, "inputs_vjp": inputs_vjp, "devices_vjp": devices_vjp}
