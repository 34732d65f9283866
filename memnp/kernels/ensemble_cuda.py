"""PF column currents and their VJP with a K axis on a CUDA GPU (numba.cuda; issue 15).

The layout of :mod:`memnp.kernels.ensemble_layout`: ``layout`` a :class:`MemberRows`; V
voltage-packed (p R,) in volts (member k's block V_k (p, r_k) at p offsets[k]); c (A/V) and d_eps
(F/m) row-packed (R, n); I and dL/dI (K, p, n) in A and 1/A; dL/dV voltage-packed, dL/dc and
dL/d(d_eps) row-packed. Host NumPy arrays in, host NumPy arrays out; float32 or float64 (V's dtype).

The kernels are those of :mod:`memnp.kernels.cuda` with a member index in front (same PF algebra,
float64 sums, fast-math float32 per-device terms):

- forward: a block of TX x TY threads handles TX columns of one (member, example) pair; the TY
  threads of a column split the member's rows, a shared-memory reduction adds their sums;
- dL/dV: a block handles TY packed rows (member k's row s) of one example, TX lanes split the
  columns, then reduce;
- dL/dc, dL/d(d_eps): one thread per packed device (row s of R, column j), looping over the
  member's examples.

They agree with the CPU kernels (:mod:`memnp.kernels.ensemble`) to rounding, not bit for bit (the
GPU's exp and the summation order differ). Tested under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) on small shapes; importing raises ImportError without numba-cuda.
"""
import math

import numpy as np
from numba import cuda

from .cuda import _MAX_GRID_Y, TX, TY, _compute_K, _pair, _require_device
from .ensemble import PFGradients, _check, _grad_I
from .physics import A2_EPS

__all__ = ["pf_currents", "pf_currents_vjp"]


def _forward_body(V, offsets, c, K, eps, I):
    """I[k, q, j] = sum over member k's rows of c V e. Block (TX, TY): TX columns of one
    (member, example) pair z = k p + q, TY row groups."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * TX + tx
    members, p, n = I.shape
    sm = cuda.shared.array((TY, TX), dtype=np.float64)
    for z in range(cuda.blockIdx.y, members * p, cuda.gridDim.y):
        k = z // p
        q = z - k * p
        o0 = offsets[k]
        r = offsets[k + 1] - o0
        base = p * o0 + q * r
        acc = 0.0
        if j < n:
            for i in range(ty, r, TY):
                v = V[base + i]
                s = o0 + i
                E = math.sqrt(abs(v) * K[s, j] + eps)
                acc += c[s, j] * v * math.exp(E)
        sm[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and j < n:
            total = sm[0, tx]
            for t in range(1, TY):
                total += sm[t, tx]
            I[k, q, j] = total
        cuda.syncthreads()


def _grad_v_body(V, offsets, member, c, K, eps, gI, gV):
    """gV at (member k, example q, row s) = sum_j gI[k, q, j] dI/dV. Block (TX, TY): TY packed
    rows of one example, TX column lanes."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    s = cuda.blockIdx.x * TY + ty
    R, n = c.shape
    p = gI.shape[1]
    sm = cuda.shared.array((TY, TX), dtype=np.float64)
    for q in range(cuda.blockIdx.y, p, cuda.gridDim.y):
        acc = 0.0
        at = 0
        if s < R:
            k = member[s]
            o0 = offsets[k]
            r = offsets[k + 1] - o0
            at = p * o0 + q * r + (s - o0)
            v = V[at]
            if v != 0:
                u = abs(v)
                for j in range(tx, n, TX):
                    t = u * K[s, j]
                    E = math.sqrt(t + eps)
                    E2 = E + E
                    acc += gI[k, q, j] * (c[s, j] * math.exp(E) * (E2 + t) / E2)
        sm[ty, tx] = acc
        cuda.syncthreads()
        h = TX // 2
        while h > 0:
            if tx < h:
                sm[ty, tx] += sm[ty, tx + h]
            cuda.syncthreads()
            h //= 2
        if tx == 0 and s < R:
            gV[at] = sm[ty, 0]
        cuda.syncthreads()


def _grad_cd_body(V, offsets, member, c, d_eps, K, eps, gI, gc, gd):
    """gc[s, j], gd[s, j]: sums over member k's examples of gI dI/dc and gI dI/d(d_eps); one
    thread per packed device."""
    j, s = cuda.grid(2)
    R, n = c.shape
    p = gI.shape[1]
    if s < R and j < n:
        k = member[s]
        o0 = offsets[k]
        r = offsets[k + 1] - o0
        base = p * o0 + (s - o0)
        csj = c[s, j]
        ksj = K[s, j]
        dsj = d_eps[s, j]
        acc_c = 0.0
        acc_d = 0.0
        for q in range(p):
            v = V[base + q * r]
            t = abs(v) * ksj
            E = math.sqrt(t + eps)
            g_ve = gI[k, q, j] * (v * math.exp(E))
            acc_c += g_ve
            acc_d += g_ve * (t / ((E + E) * dsj))
        gc[s, j] = acc_c
        gd[s, j] = -csj * acc_d


_forward_kernel = _pair(_forward_body)
_grad_v_kernel = _pair(_grad_v_body)
_grad_cd_kernel = _pair(_grad_cd_body)


def _prepare(V, c, d_eps, layout):
    _require_device()
    V, (c, d_eps), p = _check(V, (("c", c), ("d_eps", d_eps)), layout)
    return V, c, d_eps, p, V.dtype


def pf_currents(V, c, d_eps, layout):
    """Column currents I (K, p, n) in A of every member's PF crossbar (host arrays)."""
    V, c, d_eps, p, dtype = _prepare(V, c, d_eps, layout)
    R, n = c.shape
    members = layout.members
    if not (p and n):
        return np.zeros((members, p, n), dtype=dtype)
    I = cuda.device_array((members, p, n), dtype=dtype)
    K = _compute_K(dtype, cuda.to_device(d_eps), R, n)
    grid = ((n + TX - 1) // TX, min(members * p, _MAX_GRID_Y))
    _forward_kernel[dtype][grid, (TX, TY)](cuda.to_device(V), cuda.to_device(layout.offsets),
                                            cuda.to_device(c), K, dtype.type(A2_EPS), I)
    return I.copy_to_host()


def pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V=True):
    """:class:`memnp.kernels.ensemble.PFGradients` of :func:`pf_currents` from dL/dI (K, p, n)
    (host arrays); dL/dV is None unless ``need_V`` and 0 where V is exactly 0."""
    V, c, d_eps, p, dtype = _prepare(V, c, d_eps, layout)
    R, n = c.shape
    grad_I = _grad_I(grad_I, layout, p, n, dtype)
    if not (p and n):
        return PFGradients(np.zeros(V.size, dtype) if need_V else None, np.zeros((R, n), dtype),
                           np.zeros((R, n), dtype))
    member = np.repeat(np.arange(layout.members, dtype=np.int64), layout.counts())
    dV, dc, dd = cuda.to_device(V), cuda.to_device(c), cuda.to_device(d_eps)
    doffsets, dmember, dg = cuda.to_device(layout.offsets), cuda.to_device(member), cuda.to_device(grad_I)
    eps = dtype.type(A2_EPS)
    K = _compute_K(dtype, dd, R, n)
    grad_V = None
    if need_V:
        gV = cuda.device_array(V.size, dtype=dtype)
        grid_v = ((R + TY - 1) // TY, min(p, _MAX_GRID_Y))
        _grad_v_kernel[dtype][grid_v, (TX, TY)](dV, doffsets, dmember, dc, K, eps, dg, gV)
        grad_V = gV.copy_to_host()
    gc = cuda.device_array((R, n), dtype=dtype)
    gd = cuda.device_array((R, n), dtype=dtype)
    grid_cd = ((n + TX - 1) // TX, (R + TY - 1) // TY)
    _grad_cd_kernel[dtype][grid_cd, (TX, TY)](dV, doffsets, dmember, dc, dd, K, eps, dg, gc, gd)
    return PFGradients(grad_V, gc.copy_to_host(), gd.copy_to_host())
