"""CUDA kernels of a device-resident training step of K MLPs (double or standard weights) on PF or
linear crossbars (numba.cuda; issue 17).

This module holds the step's kernels around the crossbar read (data, statistics, loss, update);
the read's are in :mod:`memnp.kernels.cuda_phases` (the conductance phases and the PF device
parameters: ``devices``) and :mod:`memnp.kernels.cuda_read` (DAC, PF or linear currents, tiles and ADCs:
``forward``, ``inputs_vjp``, ``devices_vjp``); :func:`kernels` gives them all by name.

Every kernel is indexed by (member, row, column) or (member, example, column), so a step of K
networks costs the same number of launches as one. Arrays (device arrays, float dtype T = float32
or float64 unless said otherwise):

- D (K, m, c): a layer's double weights in the crossbar's layout (m = n_in + 1 rows, bias last;
  c = 2 n_out columns, positive device first); G (S), c (A/V), d_eps (F/m), KK = A**2 B / d_eps
  (1/V) and dL/dD of the same shape; ``prod`` (K, m, c) float64 scratch;
- x (K, B, n_in) inputs in [0, 1] (the first B' <= B examples used: ``p``); I, dL/dI (K, B, c) in
  A and 1/A; y, dL/dy (K, B, n_out);
- rank (K, m) int64: a row's index among the rows its member's batch drives (-1: not driven);
- P (K, N_PARAMS) float64, the members' constants (the columns of memnp.kernels.cuda_phases:
  G_OFF ... L1, then the stage's); st (K, N_STATS) float64, a layer's per-step scalars (max
  weight, ties, sum |D|, k_G, dL/d(max weight), share);
- state (K, 6) uint64: PCG64 state (high, low), increment (high, low), the words used since the
  state was uploaded, and the half word NumPy holds after float32 stuck draws (bit 63 set once
  there is one: the high half of the last stuck word); offsets (K,) uint64: where a layer's draws
  start in that stream;
- record (K, 3 + 2 steps) float64: the words used, that half word (-1: none), then per step the
  losses and the hits (NaN where a weight was NaN or inf before the step), then sum |D| over the
  layers after the last step (not finite where a weight is not: ``weights_sum``).

Each kernel computes what the CPU path computes (the references: :mod:`memnp.kernels.mapping`,
:mod:`memnp.kernels.pf_devices`, :mod:`memnp.kernels.softmax`, :mod:`memnp.kernels.sgd`,
memnp.nn.optim's L1, and the PF kernels' algebra of :mod:`memnp.kernels.cuda`), with float64
sums, in the same order where it matters; the draws use the words of
:mod:`memnp.kernels.cuda_random`, in the order the CPU takes them (memnp.kernels.cuda_phases).
tests/test_nn_device.py checks whole steps against ``Sequential.train_step``. Compiled without
fast-math for both dtypes.
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from . import cuda_phases, cuda_read, cuda_standard
from .cuda import SIMULATOR
from .cuda_phases import (ABSSUM, B_C, B_D, G_OFF, G_ON, GMAX, HALF_WORDS, HAS_D2D, HAS_DRIFT,  # noqa: F401
                          HAS_PROG, HAS_READ, HAS_STUCK, IS_PF, MAPPING, DOUBLE, STANDARD_DIGITAL, K_G, K_V, L00,
                          L01, L1, L10, L11, LR, MAXW, N_PARAMS, N_STATS, S_C, S_D,
                          SHARE, TIES)
from .cuda_random import _jump_params, _mul_add128, _output
from .cuda_read import RS, TT  # noqa: F401

#: Threads of the per-member blocks (reductions; a power of two); the elementwise kernels' TT and
#: the forward kernel's RS come from memnp.kernels.cuda_read.
RT = 8 if SIMULATOR else 256
MAX_BLOCKS = 4 if SIMULATOR else 8192
#: state[k, 5]'s flag (a half word is held) and its value's mask.
HELD, LOW32 = np.uint64(1 << 63), np.uint64(0xFFFFFFFF)


@cuda.jit(device=True)
def _reduce(sm, tid, value, take_max):
    """The sum (or max) of ``value`` over the block's RT threads (float64 shared array sm (RT,))."""
    sm[tid] = value
    cuda.syncthreads()
    s = RT // 2
    while s > 0:
        if tid < s:
            if take_max:
                sm[tid] = max(sm[tid], sm[tid + s])
            else:
                sm[tid] += sm[tid + s]
        cuda.syncthreads()
        s //= 2
    total = sm[0]
    cuda.syncthreads()
    return total


def _build(T):
    """The kernels for float dtype T (np.float32 or np.float64): a dict name -> kernel."""
    F = np.float64
    U = np.uint64
    zero, one = T(0.0), T(1.0)
    f32 = T == np.float32

    @cuda.jit
    def gather(pool, pool_labels, order, start, p, scale, x, labels):
        """x[k, q] = pool[order[k, start + q]] * scale (uint8 -> T), labels likewise."""
        members, _, n = x.shape
        for t in range(cuda.grid(1), members * p * n, cuda.gridsize(1)):
            k = t // (p * n)
            r = t - k * (p * n)
            q = r // n
            i = r - q * n
            e = order[k, start + q]
            x[k, q, i] = T(pool[e, i]) * scale
            if i == 0:
                labels[k, q] = pool_labels[e]

    @cuda.jit
    def take_labels(packed, p, labels):
        """labels[k, q] = packed[k, 6 + q] (a train_step's labels, sent with the states)."""
        for t in range(cuda.grid(1), labels.shape[0] * p, cuda.gridsize(1)):
            k = t // p
            q = t - k * p
            labels[k, q] = np.int64(packed[k, 6 + q])

    @cuda.jit
    def stats_scan(D, P, st, x, p, rank, offsets, state, every_row, reads, read_offsets, chip, restart):
        """Per member (one block): max |D|, its ties, sum |D| (float64), k_G = (G_on - G_off) / max |D|
        (D: double weights, >= 0, or standard weights W; max |W| is w_to_G's max_weight);
        the rank of each row among the driven rows (an input nonzero in some example; the bias row
        always; with ``every_row``, on a linear stage, every row: the CPU reads every row of a
        linear crossbar whose input gradient is wanted, that is every layer but the first), and
        the layer's first word: offsets[k] = the words used so far, then (driven rows) x c x
        P[k, HALF_WORDS] / 2 more are used (memnp.kernels.cuda_phases).

        ``chip`` (chip sampling, draws="all"): every row counts as driven (rank = row index: the
        words of the whole crossbar; a row no example drives adds exact zeros to the read), and
        read noise takes its (rows) x c / 2 words from the read stream ``reads`` ((K, 6), the
        state's layout) from read_offsets[k] on; ``restart``: the words used restart at 0 (the
        chip's draws of every batch start at the seed's first word). Otherwise reads and
        read_offsets are not used."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _, m, c = D.shape
        top = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            top = max(top, abs(F(D[k, i, t - i * c])))
        top = _reduce(sm, tid, top, True)
        ties = 0.0
        total = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            w = F(D[k, i, t - i * c])
            total += abs(w)
            if abs(w) == top:
                ties += 1.0
        ties = _reduce(sm, tid, ties, False)
        total = _reduce(sm, tid, total, False)
        n_in = m - 1
        si = cuda.shared.array(RT, np.int64)
        carry = 0
        every = every_row and P[k, IS_PF] == 0.0
        for base in range(0, n_in, RT):       # RT rows at a time: flags, then a block-wide scan
            i = base + tid
            driven = 0
            if i < n_in and (every or chip):
                driven = 1
            elif i < n_in:
                for q in range(p):
                    if x[k, q, i] != zero:
                        driven = 1
                        break
            si[tid] = driven
            cuda.syncthreads()
            s = 1
            while s < RT:                     # Hillis-Steele inclusive scan of the flags
                v = si[tid - s] if tid >= s else 0
                cuda.syncthreads()
                si[tid] += v
                cuda.syncthreads()
                s *= 2
            if i < n_in:
                rank[k, i] = carry + si[tid] - 1 if driven else -1
            carry += si[RT - 1]
            cuda.syncthreads()
        if tid == 0:
            st[k, MAXW] = top
            st[k, TIES] = ties
            st[k, ABSSUM] = total
            st[k, K_G] = (P[k, G_ON] - P[k, G_OFF]) / top
            rank[k, n_in] = carry
            if P[k, MAPPING] != DOUBLE:     # standard weights: two devices per weight
                c = 2 * c
            used = U(0) if restart else state[k, 4]
            offsets[k] = used
            words = U((carry + 1) * c) * U(P[k, HALF_WORDS]) // U(2)
            if chip and P[k, HAS_READ] != 0.0:
                read_words = U((carry + 1) * c) // U(2)
                words -= read_words
                read_offsets[k] = reads[k, 4]
                reads[k, 4] += read_words
            state[k, 4] = used + words
            if f32 and P[k, HAS_STUCK] != 0.0:
                # float32 stuck uniforms use both halves of their words: NumPy then holds the high
                # half of the last one (has_uint32 stays 0), which the host Generator gets back.
                n_half = U((carry + 1) * c // 2)
                before = U(P[k, HAS_D2D] != 0.0 or P[k, HAS_PROG] != 0.0) + U(P[k, HAS_DRIFT] != 0.0)
                mh, ml, ch, cl = _jump_params(used + (before + U(1)) * n_half, state[k, 2], state[k, 3])
                h, lo = _mul_add128(state[k, 0], state[k, 1], mh, ml, ch, cl)
                state[k, 5] = (_output(h, lo) >> U(32)) | HELD

    @cuda.jit(device=True)
    def _outputs_vjp(k, tid, sm, gy, I, p, st, P, gI):
        """dL/dI (member k) from dL/dy, and st[k, GMAX] = dL/d(max weight) through y (CPU:
        mapping.outputs_vjp); the calling block's RT threads share the work."""
        cuda.syncthreads()
        n_out = gy.shape[2]
        span = P[k, K_V] * (P[k, G_ON] - P[k, G_OFF])
        scale = T(st[k, MAXW] / span)
        acc = 0.0
        for t in range(tid, p * n_out, RT):
            q = t // n_out
            jo = t - q * n_out
            g = gy[k, q, jo]
            gI[k, q, 2 * jo] = scale * g
            gI[k, q, 2 * jo + 1] = -scale * g
            acc += F(g * (I[k, q, 2 * jo] - I[k, q, 2 * jo + 1]))
        total = _reduce(sm, tid, acc, False)
        if tid == 0:
            st[k, GMAX] = total / span

    @cuda.jit
    def loss(z, labels, p, st_all, P, gz, scratch, record, column, steps, I, st, gI, backward):
        """Per member (one block): softmax cross-entropy of logits z (K, B, classes), hits;
        record[k, 2 + column] = mean loss + l1 sum |D|, record[k, 2 + steps + column] = hits; with
        ``backward`` also dL/dz and the last layer's outputs VJP (:func:`outputs_vjp`'s work, with
        its I, st and dL/dI); without (an evaluation step) gz, gI and st[k, GMAX] are not written."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        classes = z.shape[2]
        for q in range(tid, p, RT):
            top = z[k, q, 0]
            best = 0
            for j in range(1, classes):
                if z[k, q, j] > top:
                    top = z[k, q, j]
                    best = j
            s = 0.0
            for j in range(classes):
                s += math.exp(F(z[k, q, j]) - F(top))
            lse = F(top) + math.log(s)
            label = labels[k, q]
            scratch[k, q, 0] = lse - F(z[k, q, label])
            scratch[k, q, 1] = 1.0 if best == label else 0.0
            for j in range(classes if backward else 0):
                gz[k, q, j] = T((math.exp(F(z[k, q, j]) - lse) - (1.0 if j == label else 0.0)) / p)
        cuda.syncthreads()
        if tid == 0:
            total = 0.0
            hits = 0.0
            for q in range(p):
                total += scratch[k, q, 0]
                hits += scratch[k, q, 1]
            penalty = 0.0
            if P[k, L1] != 0.0:
                for layer in range(st_all.shape[0]):
                    penalty += st_all[layer, k, ABSSUM]
                penalty = P[k, L1] * penalty
            finite = True     # the weights read (before the step): sum |D| is NaN or inf where one is
            for layer in range(st_all.shape[0]):
                if not math.isfinite(st_all[layer, k, ABSSUM]):
                    finite = False
            record[k, 2 + column] = total / p + penalty
            record[k, 2 + steps + column] = hits if finite else math.nan
        if backward:
            _outputs_vjp(k, tid, sm, gz, I, p, st, P, gI)

    @cuda.jit
    def outputs_vjp(gy, I, p, st, P, gI):
        """Per member (one block): dL/dI from dL/dy, and st[k, GMAX] = dL/d(max weight) through y."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _outputs_vjp(k, tid, sm, gy, I, p, st, P, gI)

    @cuda.jit
    def tie_share(prod, st):
        """Per member (one block): dL/d(max weight) = upstream - sum(dL/dG D) k_G / max D, shared
        equally by the ties: st[k, SHARE]."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _, m, c = prod.shape
        acc = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            acc += prod[k, i, t - i * c]
        total = _reduce(sm, tid, acc, False)
        if tid == 0:
            st[k, SHARE] = (st[k, GMAX] - total * st[k, K_G] / st[k, MAXW]) / st[k, TIES]

    @cuda.jit
    def update(D, gD, st, P):
        """Per weight: the tie share (times sign D where |D| = max |D|: 1 for double weights, which
        are >= 0), L1 (gamma sign D), SGD and, for double weights, the non-negative projection. D
        and gD: double weights (K, m, c), or standard ones (K, m, c / 2) with dL/dW from
        memnp.kernels.cuda_standard (the tie term added in float64, as the CPU's w_to_G_vjp adds it)."""
        members, m, c = D.shape
        for t in range(cuda.grid(1), members * m * c, cuda.gridsize(1)):
            k = t // (m * c)
            r = t - k * (m * c)
            i = r // c
            j = r - i * c
            w = D[k, i, j]
            g = gD[k, i, j]
            sign = one if w > zero else (-one if w < zero else zero)
            if abs(F(w)) == st[k, MAXW] and P[k, MAPPING] != STANDARD_DIGITAL:  # y = x W + b: no max path
                g = T(F(g) + st[k, SHARE] * F(sign))
            if P[k, L1] != 0.0:
                g = g + T(P[k, L1]) * sign
            value = w - T(P[k, LR]) * g
            D[k, i, j] = zero if value < zero and P[k, MAPPING] == DOUBLE else value

    @cuda.jit
    def weights_sum(D, record, column, add):
        """Per member (one block): record[k, column] (+)= sum |D| (float64; NaN or inf where a weight
        is NaN or inf: the weights' check after an epoch, as the CPU path checks its parameters)."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _, m, c = D.shape
        acc = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            acc += abs(F(D[k, i, t - i * c]))
        total = _reduce(sm, tid, acc, False)
        if tid == 0:
            record[k, column] = record[k, column] + total if add else total

    @cuda.jit
    def finish(state, record):
        """record[k, 0] = the words member k used (float64: exact below 2**53); record[k, 1] = the
        half word NumPy would hold, or -1."""
        k = cuda.grid(1)
        if k < state.shape[0]:
            record[k, 0] = F(state[k, 4])
            held = state[k, 5]
            record[k, 1] = F(held & LOW32) if held & HELD else -1.0

    phases = cuda_phases._build(T)
    read = cuda_read._build(T, phases["chain_vjp"])
    return dict(gather=gather, take_labels=take_labels, stats_scan=stats_scan, devices=phases["devices"],
                stuck_counts=phases["stuck_counts"], stuck_starts=phases["stuck_starts"],
                forward=read["forward"], loss=loss, outputs_vjp=outputs_vjp, inputs_vjp=read["inputs_vjp"],
                devices_vjp=read["devices_vjp"], tie_share=tie_share, update=update, weights_sum=weights_sum,
                finish=finish, **cuda_standard._build(T))


_KERNELS = {}


def kernels(dtype):
    """The kernel dict for float32 or float64 (built once per dtype)."""
    dtype = np.dtype(dtype)
    if dtype not in _KERNELS:
        _KERNELS[dtype] = _build(dtype.type)
    return _KERNELS[dtype]


def grid(count, per_item=1):
    """(blocks, threads) of an elementwise kernel over ``count`` items (grid-stride loops), with
    ``per_item`` threads per item (forward: RS)."""
    return max(1, min(MAX_BLOCKS, -(-count * per_item // TT))), TT
