"""Fused CUDA crossbar kernels (numba.cuda, from the optional package ``numba-cuda``).

Same functions, shapes and units as :mod:`memnp.kernels.reference`:

- ``pf_currents(V, c, d_eps) -> I``                (p, m), (m, n), (m, n) -> (p, n)
- ``pf_currents_vjp(V, c, d_eps, grad_I, need_V=True) -> (grad_V (p, m) or None, grad_c (m, n), grad_d_eps (m, n))``
- ``pf_power(V, c, d_eps) -> float``               average power over the batch (W)
- ``ideal_currents(V, G) -> I``                    V @ G (p, n)
- ``ideal_power(V, G) -> float``                   average power over the batch (W)

V in volts, c in A/V, d_eps in F/m, G in siemens, I in amperes. ``V`` must be float32 or float64;
the other host arrays are converted to its dtype and the outputs have it too.

Inputs may be host NumPy arrays (copied to the device; results copied back as NumPy arrays) or,
at no copying cost, numba CUDA device arrays (or objects with ``__cuda_array_interface__``) of the
same dtype as ``V``: when ``V`` is a device array, array results are device arrays (powers are
always Python floats). Mixing host and device arrays is allowed (host ones are copied over).

No kernel materializes the p x m x n tensor of device quantities:

- forward / power: a block of TX x TY threads handles TX columns of one example; the TY threads of
  a column split its rows and a shared-memory reduction adds their partial sums (power: one
  partial sum per block, added up on the host in float64);
- dL/dV: one thread per (example, row) sums over the columns in order; the lanes of a warp
  are neighbouring rows, reading transposed copies of c and K (n, m) made per call;
- dL/dc, dL/d(d_eps): two stages. The examples are cut into chunks (:func:`cd_chunks`, from
  p, m, n: enough chunks to fill the GPU even for a narrow layer); one thread per device (the
  m n devices in row-major order, so a narrow layer leaves no lane idle) and chunk sums its chunk
  in float64 into a partial array (chunks, m, n); then one thread per device adds the chunks'
  partial sums in order. No atomics: the same inputs give the same bits.

Per device the kernels use K = A**2 B / d_eps (computed once per call by a small kernel),
E = sqrt(|V| K + A**2 EPS), e = exp(E) and

    I_ind = c V e,  dI/dV = c e (2E + |V| K) / (2E) (0 at V == 0),  dI/dc = V e,
    dI/d(d_eps) = -c V e |V| K / (2 E d_eps).

Sums are accumulated in float64 for both dtypes. float64 kernels are compiled without fast-math;
float32 kernels compute the per-device terms in float32 with fast-math (approximate exp, sqrt and
division: relative error ~1e-6 per device, far below the 1e-5 normwise target).

Block shape (TX x TY threads, MEMNP_CUDA_BLOCK), the device check and the arrays' checks and
copies are in :mod:`memnp.kernels.cuda_common`.

Importing this module raises ImportError when numba-cuda is not installed. It imports under the
CUDA simulator (NUMBA_ENABLE_CUDASIM=1; very slow, for tests only). Without a GPU and without the
simulator, calling a function raises RuntimeError.
"""
import math

import numpy as np

from numba import cuda

from .cuda_common import (  # noqa: F401  (_pair, _require_device: imported from here too)
    _MAX_GRID_Y, SIMULATOR, TX, TXY, TY, _block_sum_to, _grid_cols, _out, _pair, _prepare,
    _require_device, _to_device, _zeros)
from .physics import A2_B, A2_EPS

#: dL/dc, dL/d(d_eps): the examples are split into chunks until this many threads run (one per
#: device and chunk; about four waves of an H200's 132 SMs x 2048 threads), so that a narrow layer
#: (n = 50 or 10 columns) still fills the GPU. The simulator's small values make small test
#: shapes use several chunks.
CD_TARGET_THREADS = 64 if SIMULATOR else 2 ** 20
#: Shortest chunk of examples (fewer examples per thread would cost more in partial sums).
CD_MIN_CHUNK = 2 if SIMULATOR else 32


# ---------------------------------------------------------------------------------------------
# Kernels (module level). Scalars eps = A**2 EPS are passed in the array dtype so that float32
# kernels stay in float32 arithmetic (Python float literals would promote them to float64).
# ---------------------------------------------------------------------------------------------

def _k_body(d_eps, a2b, K):
    """K[i, j] = a2b / d_eps[i, j]; one thread per device."""
    j, i = cuda.grid(2)
    if i < K.shape[0] and j < K.shape[1]:
        K[i, j] = a2b / d_eps[i, j]


def _pf_forward_body(V, c, K, eps, I):
    """I[k, j] = sum_i c V e. Block (TX, TY): TX columns of one example, TY row groups."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * TX + tx
    p, m = V.shape
    n = c.shape[1]
    sm = cuda.shared.array((TY, TX), dtype=np.float64)
    for k in range(cuda.blockIdx.y, p, cuda.gridDim.y):
        acc = 0.0
        if j < n:
            for i in range(ty, m, TY):
                v = V[k, i]
                E = math.sqrt(abs(v) * K[i, j] + eps)
                acc += c[i, j] * v * math.exp(E)
        sm[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and j < n:
            total = sm[0, tx]
            for r in range(1, TY):
                total += sm[r, tx]
            I[k, j] = total
        cuda.syncthreads()


def _pf_power_body(V, c, K, eps, partial):
    """partial[by, bx] = sum of |V| |I_ind| over this block's share (same layout as forward)."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * TX + tx
    p, m = V.shape
    n = c.shape[1]
    acc = 0.0
    if j < n:
        for k in range(cuda.blockIdx.y, p, cuda.gridDim.y):
            for i in range(ty, m, TY):
                u = abs(V[k, i])
                E = math.sqrt(u * K[i, j] + eps)
                acc += u * u * abs(c[i, j]) * math.exp(E)
    _block_sum_to(acc, partial)


def _transposed_body(d_eps, c, a2b, KT, cT):
    """KT[j, i] = a2b / d_eps[i, j] (= K[i, j]) and cT[j, i] = c[i, j]; one thread per device,
    x along the rows i (contiguous in KT and cT)."""
    i, j = cuda.grid(2)
    m, n = c.shape
    if i < m and j < n:
        KT[j, i] = a2b / d_eps[i, j]
        cT[j, i] = c[i, j]


def _pf_grad_v_body(V, cT, KT, eps, gI, gV):
    """gV[k, i] = sum_j gI[k, j] dI/dV: one thread per (example, row), the columns in order.

    Block (TX, TY): TX rows (the lanes: V, gV and the transposed cT, KT read coalesced; gI[k, j]
    one broadcast load) of TY examples; the grid strides over the examples. No reduction across
    threads, so no barrier.
    """
    i = cuda.blockIdx.x * TX + cuda.threadIdx.x
    p, m = V.shape
    n = cT.shape[0]
    if i < m:
        for k in range(cuda.blockIdx.y * TY + cuda.threadIdx.y, p, cuda.gridDim.y * TY):
            v = V[k, i]
            acc = 0.0
            if v != 0:
                u = abs(v)
                for j in range(n):
                    t = u * KT[j, i]
                    E = math.sqrt(t + eps)
                    E2 = E + E
                    acc += gI[k, j] * (cT[j, i] * math.exp(E) * (E2 + t) / E2)
            gV[k, i] = acc


def _pf_grad_cd_part_body(V, c, d_eps, K, eps, gI, chunk, part_c, part_d):
    """Stage 1 of dL/dc and dL/d(d_eps): partial sums over one chunk of examples.

    Grid (devices / TXY, chunks) of 1-D blocks of TXY threads, one thread per device d = i n + j
    (row-major, so a narrow layer leaves no lane idle) and chunk z: it sums over the examples k in
    [z chunk, min(p, (z + 1) chunk)), in order, in float64:
    part_c[z, i, j] = sum_k gI dI/dc, part_d[z, i, j] = sum_k gI V e t / (2 E d_eps) (times -c in
    stage 2). A warp's threads share one or two rows (V[k, i]: broadcast loads) and read gI[k, :]
    coalesced.
    """
    d = cuda.blockIdx.x * TXY + cuda.threadIdx.x
    z = cuda.blockIdx.y
    p, m = V.shape
    n = c.shape[1]
    if d < m * n:
        i = d // n
        j = d - i * n
        kij = K[i, j]
        dij = d_eps[i, j]
        acc_c = 0.0
        acc_d = 0.0
        for k in range(z * chunk, min(p, (z + 1) * chunk)):
            v = V[k, i]
            t = abs(v) * kij
            E = math.sqrt(t + eps)
            g_ve = gI[k, j] * (v * math.exp(E))
            acc_c += g_ve
            acc_d += g_ve * (t / ((E + E) * dij))
        part_c[z, i, j] = acc_c
        part_d[z, i, j] = acc_d


def _pf_grad_cd_sum_body(part_c, part_d, c, gc, gd):
    """Stage 2: gc[i, j] = sum_z part_c[z, i, j], gd[i, j] = -c[i, j] sum_z part_d[z, i, j].

    One thread per device (1-D, row-major), the chunks added in order 0, 1, ... (float64): the
    result does not depend on the order in which the blocks of stage 1 ran.
    """
    d = cuda.grid(1)
    chunks, m, n = part_c.shape
    if d < m * n:
        i = d // n
        j = d - i * n
        acc_c = 0.0
        acc_d = 0.0
        for z in range(chunks):
            acc_c += part_c[z, i, j]
            acc_d += part_d[z, i, j]
        gc[i, j] = acc_c
        gd[i, j] = -c[i, j] * acc_d


def _ideal_forward_body(V, G, I):
    """I[k, j] = sum_i V[k, i] G[i, j] (same layout as the PF forward kernel)."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * TX + tx
    p, m = V.shape
    n = G.shape[1]
    sm = cuda.shared.array((TY, TX), dtype=np.float64)
    for k in range(cuda.blockIdx.y, p, cuda.gridDim.y):
        acc = 0.0
        if j < n:
            for i in range(ty, m, TY):
                acc += V[k, i] * G[i, j]
        sm[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and j < n:
            total = sm[0, tx]
            for r in range(1, TY):
                total += sm[r, tx]
            I[k, j] = total
        cuda.syncthreads()


def _ideal_power_body(V, G, partial):
    """partial[by, bx] = sum of |V| |V G| over this block's share."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * TX + tx
    p, m = V.shape
    n = G.shape[1]
    acc = 0.0
    if j < n:
        for k in range(cuda.blockIdx.y, p, cuda.gridDim.y):
            for i in range(ty, m, TY):
                v = V[k, i]
                acc += v * v * abs(G[i, j])
    _block_sum_to(acc, partial)


_k_kernel = _pair(_k_body)
_pf_forward_kernel = _pair(_pf_forward_body)
_pf_power_kernel = _pair(_pf_power_body)
_transposed_kernel = _pair(_transposed_body)
_pf_grad_v_kernel = _pair(_pf_grad_v_body)
_pf_grad_cd_part_kernel = _pair(_pf_grad_cd_part_body)
_pf_grad_cd_sum_kernel = _pair(_pf_grad_cd_sum_body)
_ideal_forward_kernel = _pair(_ideal_forward_body)
_ideal_power_kernel = _pair(_ideal_power_body)


def _compute_K(dtype, d_eps, m, n):
    K = cuda.device_array((m, n), dtype=dtype)
    _k_kernel[dtype][((n + TX - 1) // TX, (m + TY - 1) // TY), (TX, TY)](d_eps, dtype.type(A2_B), K)
    return K


def cd_chunks(p, m, n):
    """(chunk length, number of chunks) of the examples for the dL/dc, dL/d(d_eps) kernel.

    Enough chunks that the threads of all chunks (one per device per chunk, in blocks of TXY)
    reach :data:`CD_TARGET_THREADS`, but no chunk shorter than :data:`CD_MIN_CHUNK` examples and
    at most 65535 chunks (the grid's y limit). Depends only on p, m, n and the block size, so the
    same inputs always give the same reduction and the same bits.
    """
    if p <= 0:
        return 0, 0
    padded = -(-(m * n) // TXY) * TXY
    wanted = -(-CD_TARGET_THREADS // padded)
    most = min(_MAX_GRID_Y, -(-p // CD_MIN_CHUNK))
    chunks = max(1, min(wanted, most))
    chunk = -(-p // chunks)
    return chunk, -(-p // chunk)


def _pf_grad_cd(dtype, dV, dc, dd, K, eps, dg, gc, gd):
    """dL/dc into gc and dL/d(d_eps) into gd (m, n), by the two-stage reduction over chunks of
    examples (:func:`cd_chunks`): partial sums per chunk in float64, then their sum in order."""
    p, m = dV.shape
    n = dc.shape[1]
    chunk, chunks = cd_chunks(p, m, n)
    blocks = -(-(m * n) // TXY)
    if chunks == 0:  # no examples: zero gradients
        part_c = part_d = cuda.to_device(np.zeros((1, m, n), dtype=np.float64))
    else:
        part_c = cuda.device_array((chunks, m, n), dtype=np.float64)
        part_d = cuda.device_array((chunks, m, n), dtype=np.float64)
        _pf_grad_cd_part_kernel[dtype][(blocks, chunks), TXY](dV, dc, dd, K, eps, dg, chunk,
                                                              part_c, part_d)
    _pf_grad_cd_sum_kernel[dtype][blocks, TXY](part_c, part_d, dc, gc, gd)


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in amperes of the PF crossbar: sum over rows of the device currents.

    V (p, m) in volts, c (m, n) in A/V, d_eps (m, n) in F/m.
    """
    dtype, on_device, p, m, n, dV, (dc, dd) = _prepare(V, [("c", c), ("d_eps", d_eps)])
    if not (p and m and n):
        return _zeros((p, n), dtype, on_device)
    I = cuda.device_array((p, n), dtype=dtype)
    K = _compute_K(dtype, dd, m, n)
    _pf_forward_kernel[dtype][_grid_cols(p, n), (TX, TY)](dV, dc, K, dtype.type(A2_EPS), I)
    return _out(I, on_device)


def pf_currents_vjp(V, c, d_eps, grad_I, need_V=True):
    """Vector-Jacobian product of :func:`pf_currents`.

    grad_I (p, n) is dL/dI (1/A). Returns (dL/dV (p, m), dL/dc (m, n), dL/d(d_eps) (m, n));
    dL/dV is None (and its kernel is not run) when ``need_V`` is false.
    At V = 0 exactly, dL/dV is 0 (the reference differentiates sign and |.| as 0 there).
    """
    dtype, on_device, p, m, n, dV, (dc, dd) = _prepare(V, [("c", c), ("d_eps", d_eps)])
    dg = _to_device("grad_I", grad_I, dtype, (p, n))
    if not (m and n):  # no devices: every gradient is zero (or empty)
        grads = tuple(_zeros(shape, dtype, on_device) for shape in ((p, m), (m, n), (m, n)))
        return (grads[0] if need_V else None,) + grads[1:]
    gV = cuda.device_array((p, m), dtype=dtype)
    gc = cuda.device_array((m, n), dtype=dtype)
    gd = cuda.device_array((m, n), dtype=dtype)
    eps = dtype.type(A2_EPS)
    K = _compute_K(dtype, dd, m, n)
    if p and need_V:
        KT = cuda.device_array((n, m), dtype=dtype)
        cT = cuda.device_array((n, m), dtype=dtype)
        grid_t = ((m + TX - 1) // TX, (n + TY - 1) // TY)
        _transposed_kernel[dtype][grid_t, (TX, TY)](dd, dc, dtype.type(A2_B), KT, cT)
        grid_v = ((m + TX - 1) // TX, min((p + TY - 1) // TY, _MAX_GRID_Y))
        _pf_grad_v_kernel[dtype][grid_v, (TX, TY)](dV, cT, KT, eps, dg, gV)
    _pf_grad_cd(dtype, dV, dc, dd, K, eps, dg, gc, gd)
    return (_out(gV, on_device) if need_V else None), _out(gc, on_device), _out(gd, on_device)


def pf_power(V, c, d_eps):
    """Average crossbar power (W): sum over examples and devices of |V| |I_ind|, divided by p.

    V (p, m) in volts, c (m, n) in A/V, d_eps (m, n) in F/m. With p == 0 the result is nan.
    """
    dtype, _, p, m, n, dV, (dc, dd) = _prepare(V, [("c", c), ("d_eps", d_eps)])
    if p == 0:
        return float("nan")
    if m == 0 or n == 0:
        return 0.0
    K = _compute_K(dtype, dd, m, n)
    grid = _grid_cols(p, n)
    partial = cuda.device_array((grid[1], grid[0]), dtype=np.float64)
    _pf_power_kernel[dtype][grid, (TX, TY)](dV, dc, K, dtype.type(A2_EPS), partial)
    return float(partial.copy_to_host().sum() / p)


def ideal_currents(V, G):
    """Column currents I = V G (p, n) of an ideal crossbar, in amperes.

    V (p, m) in volts, G (m, n) in siemens.
    """
    dtype, on_device, p, m, n, dV, (dG,) = _prepare(V, [("G", G)])
    if not (p and m and n):
        return _zeros((p, n), dtype, on_device)
    I = cuda.device_array((p, n), dtype=dtype)
    _ideal_forward_kernel[dtype][_grid_cols(p, n), (TX, TY)](dV, dG, I)
    return _out(I, on_device)


def ideal_power(V, G):
    """Average power (W) of an ideal crossbar: sum of |V| |V G_ij| over devices, divided by p."""
    dtype, _, p, m, n, dV, (dG,) = _prepare(V, [("G", G)])
    if p == 0:
        return float("nan")
    if m == 0 or n == 0:
        return 0.0
    grid = _grid_cols(p, n)
    partial = cuda.device_array((grid[1], grid[0]), dtype=np.float64)
    _ideal_power_kernel[dtype][grid, (TX, TY)](dV, dG, partial)
    return float(partial.copy_to_host().sum() / p)
