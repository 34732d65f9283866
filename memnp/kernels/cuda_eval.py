"""CUDA kernels of the device-resident evaluation passes and of the experiments' pixels (numba.cuda).

They work with the kernels and array layouts of :mod:`memnp.kernels.cuda_step` (K members, D
(K, m, c), rank (K, m), c and KK (K, m, c), x (K, B, n_in), P (K, N_PARAMS) float64):

- ``gather``: a batch of uint8 examples (pool (N, n_in), in each member's order (K, N)) made into
  inputs x[k, q] = T(table[pool[e]]) through a table of the 256 pixel values (float32 (256,)), so
  the device's inputs are exactly the CPU's ``datasource.to_float`` pixels (float32 u / 255), also
  in float64 (DeviceTrainer's gather, with the table in place of its scale);
- ``select``: the evaluation members' weights, out[e] = D[owners[e]] (owners (E,) int64), a
  device-to-device copy;
- ``power_terms`` and ``power_sum``: a crossbar's average power (W) over the batch, at the
  voltages V after the stage's DAC (the CPU's ``V_read``; Tiles and ADCs do not change it): on a
  PF stage as :func:`memnp.kernels.reference.pf_power`, the sum over examples, driven rows and
  columns of V**2 |c| exp(E) (E = sqrt(|V| KK + A**2 eps)); on a linear stage (P[k, IS_PF] = 0,
  c holding G'') as :func:`memnp.kernels.reference.ideal_power`, the sum of V**2 |G''|; divided
  by p; terms (K, B, c) float64 scratch.

Their NumPy references: :func:`pixels` (the table), :func:`memnp.kernels.reference.pf_power` and
:func:`memnp.kernels.reference.ideal_power`; tests/test_experiments_device.py and
tests/test_nn_device_linear.py compare them. Compiled without fast-math.
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from .cuda_phases import IS_PF
from .cuda_read import voltage_functions
from .cuda_step import RT, _reduce
from .physics import A2_EPS

def pixels():
    """float32 (256,): the value of each uint8 level as the experiments' inputs hold it (u / 255,
    rounded to float32: memnp.experiments.datasource.to_float)."""
    table = np.arange(256, dtype=np.float32)
    table /= np.float32(255.0)
    return table


def _build(T):
    F = np.float64
    eps = T(A2_EPS)
    _, _dac, _voltage = voltage_functions(T)

    @cuda.jit
    def gather(pool, pool_labels, order, start, p, table, x, labels):
        """x[k, q] = T(table[pool[order[k, start + q]]]), labels likewise."""
        members, _, n = x.shape
        for t in range(cuda.grid(1), members * p * n, cuda.gridsize(1)):
            k = t // (p * n)
            r = t - k * (p * n)
            q = r // n
            i = r - q * n
            e = order[k, start + q]
            x[k, q, i] = T(table[pool[e, i]])
            if i == 0:
                labels[k, q] = pool_labels[e]

    @cuda.jit
    def select(D, owners, out):
        """out[e] = D[owners[e]] (each evaluation member's weights, copied on the device)."""
        members, m, c = out.shape
        for t in range(cuda.grid(1), members * m * c, cuda.gridsize(1)):
            e = t // (m * c)
            r = t - e * (m * c)
            i = r // c
            out[e, i, r - i * c] = D[owners[e], i, r - i * c]

    @cuda.jit
    def power_terms(x, p, rank, cc, KK, P, terms):
        """terms[k, q, j] = sum over the driven rows i of V**2 |c| exp(E), or V**2 |G''| on a linear
        stage (float64; V = k_V x, k_V on the bias row, through the DAC)."""
        members, m, c = cc.shape
        for t in range(cuda.grid(1), members * p * c, cuda.gridsize(1)):
            k = t // (p * c)
            r = t - k * (p * c)
            q = r // c
            j = r - q * c
            kv, dac_l, inv, dac_step = _dac(k, P)
            pf = P[k, IS_PF] != 0.0
            acc = 0.0
            for i in range(m):
                if rank[k, i] >= 0:
                    v = _voltage(x, k, q, i, kv, dac_l, inv, dac_step)
                    if pf:
                        E = math.sqrt(abs(v) * KK[k, i, j] + eps)
                        acc += F(v * v * abs(cc[k, i, j]) * T(math.exp(E)))
                    else:
                        vl = F(v)
                        acc += vl * vl * abs(F(cc[k, i, j]))
            terms[k, q, j] = acc

    @cuda.jit
    def power_sum(terms, p, record, column, add):
        """Per member (one block): record[k, column] (+)= sum of terms[k, :p] / p."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        c = terms.shape[2]
        acc = 0.0
        for t in range(tid, p * c, RT):
            q = t // c
            acc += terms[k, q, t - q * c]
        total = _reduce(sm, tid, acc, False)
        if tid == 0:
            value = total / p
            record[k, column] = record[k, column] + value if add else value

    return dict(gather=gather, select=select, power_terms=power_terms,
                power_sum=power_sum)


_KERNELS = {}


def kernels(dtype):
    """The kernel dict for float32 or float64 (built once per dtype)."""
    dtype = np.dtype(dtype)
    if dtype not in _KERNELS:
        _KERNELS[dtype] = _build(dtype.type)
    return _KERNELS[dtype]
