"""CUDA kernels of a device-resident training step of K double-weight PF MLPs (numba.cuda; issue 17).

Every kernel is indexed by (member, row, column) or (member, example, column), so a step of K
networks costs the same number of launches as one. Arrays (device arrays, float dtype T = float32
or float64 unless said otherwise):

- D (K, m, c): a layer's double weights in the crossbar's layout (m = n_in + 1 rows, bias last;
  c = 2 n_out columns, positive device first); G (S), c (A/V), d_eps (F/m), KK = A**2 B / d_eps
  (1/V) and dL/dD of the same shape; ``prod`` (K, m, c) float64 scratch;
- x (K, B, n_in) inputs in [0, 1] (the first B' <= B examples used: ``p``); I, dL/dI (K, B, c) in
  A and 1/A; y, dL/dy (K, B, n_out);
- rank (K, m) int64: a row's index among the rows its member's batch drives (-1: not driven);
- P (K, N_PARAMS) float64, the members' constants (columns G_OFF ... L1 below); st (K, N_STATS)
  float64, a layer's per-step scalars (max weight, ties, sum |D|, k_G, dL/d(max weight), share);
- state (K, 5) uint64: PCG64 state (high, low), increment (high, low) and the words used since the
  state was uploaded; offsets (K,) uint64: where a layer's draws start in that stream.

Each kernel computes what the CPU path computes (the references: :mod:`memnp.kernels.mapping`,
:mod:`memnp.kernels.pf_devices`, :mod:`memnp.kernels.softmax`, :mod:`memnp.kernels.sgd`,
memnp.nn.optim's L1, and the PF kernels' algebra of :mod:`memnp.kernels.cuda`), with float64
sums, in the same order where it matters; the residuals use the words of
:mod:`memnp.kernels.cuda_random` (one word per driven device, row by row, in the order the CPU's
``pf_devices.residuals`` takes them). tests/test_nn_device.py checks whole steps against
``Sequential.train_step``. Compiled without fast-math for both dtypes.
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from .cuda import SIMULATOR
from .cuda_random import _M_HI, _M_LO, _box_muller, _jump_params, _mul_add128, _output
from .physics import A2_B, A2_EPS

#: Threads of the per-member blocks (reductions; a power of two) and of the elementwise kernels.
RT = 8 if SIMULATOR else 256
TT = 8 if SIMULATOR else 128
#: Threads that share one output's rows in the forward kernel (a power of two dividing TT).
RS = 2 if SIMULATOR else 8
MAX_BLOCKS = 4 if SIMULATOR else 8192

#: Columns of P.
G_OFF, G_ON, K_V, S_C, S_D, B_C, B_D, L00, L01, L10, L11, LR, L1 = range(13)
N_PARAMS = 13
#: Columns of st.
MAXW, TIES, ABSSUM, K_G, GMAX, SHARE = range(6)
N_STATS = 6


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
    a2b, eps, zero, one = T(A2_B), T(A2_EPS), T(0.0), T(1.0)

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
        """labels[k, q] = packed[k, 5 + q] (a train_step's labels, sent with the states)."""
        for t in range(cuda.grid(1), labels.shape[0] * p, cuda.gridsize(1)):
            k = t // p
            q = t - k * p
            labels[k, q] = np.int64(packed[k, 5 + q])

    @cuda.jit
    def stats_scan(D, P, st, x, p, rank, offsets, state):
        """Per member (one block): max D, its ties, sum |D| (float64), k_G = (G_on - G_off) / max D;
        the rank of each row among the driven rows (an input nonzero in some example; the bias row
        always), and the layer's first word: offsets[k] = the words used so far, then (driven rows)
        x c more are used."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _, m, c = D.shape
        top = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            top = max(top, F(D[k, i, t - i * c]))
        top = _reduce(sm, tid, top, True)
        ties = 0.0
        total = 0.0
        for t in range(tid, m * c, RT):
            i = t // c
            w = F(D[k, i, t - i * c])
            total += abs(w)
            if w == top:
                ties += 1.0
        ties = _reduce(sm, tid, ties, False)
        total = _reduce(sm, tid, total, False)
        n_in = m - 1
        si = cuda.shared.array(RT, np.int64)
        carry = 0
        for base in range(0, n_in, RT):       # RT rows at a time: flags, then a block-wide scan
            i = base + tid
            driven = 0
            if i < n_in:
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
            used = state[k, 4]
            offsets[k] = used
            state[k, 4] = used + U((carry + 1) * c)

    @cuda.jit
    def devices(D, rank, st, P, state, offsets, G, cc, dd, KK):
        """Per (member, row), along its columns: the row's residual words, G = k_G D + G_off, c and
        d_eps (pf_devices), KK = A**2 B / d_eps. Rows not driven get c = 0 (they carry no current)."""
        members, m, c = D.shape
        for t in range(cuda.grid(1), members * m, cuda.gridsize(1)):
            k = t // m
            i = t - k * m
            r = rank[k, i]
            if r < 0:
                for j in range(c):
                    G[k, i, j] = one
                    cc[k, i, j] = zero
                    dd[k, i, j] = one
                    KK[k, i, j] = zero
                continue
            inc_h = state[k, 2]
            inc_l = state[k, 3]
            mh, ml, ch, cl = _jump_params(offsets[k] + U(r * c) + U(1), inc_h, inc_l)
            h, lo = _mul_add128(state[k, 0], state[k, 1], mh, ml, ch, cl)
            kg, off = T(st[k, K_G]), T(P[k, G_OFF])
            ms_c, ms_d, bc, bd = T(-P[k, S_C]), T(-P[k, S_D]), T(P[k, B_C]), T(P[k, B_D])
            l00, l01, l10, l11 = P[k, L00], P[k, L01], P[k, L10], P[k, L11]
            for j in range(c):
                z_cos, z_sin = _box_muller(_output(h, lo))
                e_c = T(l00 * z_cos + l01 * z_sin)
                e_d = T(l10 * z_cos + l11 * z_sin)
                g = D[k, i, j] * kg + off
                ln_g = T(math.log(g))
                cv = T(math.exp(T(T(ln_g * ms_c) + bc) + e_c))
                dv = T(math.exp(T(T(ln_g * ms_d) + bd) + e_d))
                G[k, i, j] = g
                cc[k, i, j] = cv
                dd[k, i, j] = dv
                KK[k, i, j] = a2b / dv
                h, lo = _mul_add128(h, lo, _M_HI, _M_LO, inc_h, inc_l)

    @cuda.jit
    def forward(x, p, rank, cc, KK, st, P, I, y, hidden):
        """Per (member, example, output): the pair's PF currents over the driven rows (V = k_V x,
        k_V on the bias row), y = (I+ - I-) / (k_V k_G), then the sigmoid when ``hidden``. RS
        threads of a block share an item's rows (float64 partial sums, added in order)."""
        members, m, c = cc.shape
        n_in, n_out = m - 1, c // 2
        tid = cuda.threadIdx.x
        lane = tid % RS
        sa = cuda.shared.array(TT, np.float64)
        sb = cuda.shared.array(TT, np.float64)
        total = members * p * n_out
        for base in range(cuda.blockIdx.x * (TT // RS), total, cuda.gridDim.x * (TT // RS)):
            t = base + tid // RS
            a = 0.0
            b = 0.0
            k = q = j = 0
            if t < total:
                k = t // (p * n_out)
                r = t - k * (p * n_out)
                q = r // n_out
                j = 2 * (r - q * n_out)
                kv = T(P[k, K_V])
                for i in range(lane, m, RS):
                    if rank[k, i] >= 0:
                        v = kv * x[k, q, i] if i < n_in else kv
                        u = abs(v)
                        E = math.sqrt(u * KK[k, i, j] + eps)
                        a += cc[k, i, j] * v * math.exp(E)
                        E = math.sqrt(u * KK[k, i, j + 1] + eps)
                        b += cc[k, i, j + 1] * v * math.exp(E)
            sa[tid] = a
            sb[tid] = b
            cuda.syncthreads()
            if lane == 0 and t < total:
                for h in range(1, RS):
                    a += sa[tid + h]
                    b += sb[tid + h]
                ip, im = T(a), T(b)
                I[k, q, j] = ip
                I[k, q, j + 1] = im
                value = (ip - im) / T(P[k, K_V] * (P[k, G_ON] - P[k, G_OFF]) / st[k, MAXW])
                if hidden:
                    value = one / (one + T(math.exp(-value)))
                y[k, q, j // 2] = value
            cuda.syncthreads()

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
    def loss(z, labels, p, st_all, P, gz, scratch, record, column, steps, I, st, gI):
        """Per member (one block): softmax cross-entropy of logits z (K, B, classes), dL/dz, hits;
        record[k, 1 + column] = mean loss + l1 sum |D|, record[k, 1 + steps + column] = hits; then
        the last layer's outputs VJP (:func:`outputs_vjp`'s work, with its I, st and dL/dI)."""
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
            for j in range(classes):
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
            record[k, 1 + column] = total / p + penalty
            record[k, 1 + steps + column] = hits
        _outputs_vjp(k, tid, sm, gz, I, p, st, P, gI)

    @cuda.jit
    def outputs_vjp(gy, I, p, st, P, gI):
        """Per member (one block): dL/dI from dL/dy, and st[k, GMAX] = dL/d(max weight) through y."""
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        sm = cuda.shared.array(RT, np.float64)
        _outputs_vjp(k, tid, sm, gy, I, p, st, P, gI)

    @cuda.jit
    def inputs_vjp(x, p, rank, cc, KK, gI, P, gx):
        """Per (member, example, input): dL/dx = k_V sum_j dL/dI dI/dV, through the sigmoid that made
        x: gx = dL/dx x (1 - x) (the previous layer's dL/dy)."""
        members, m, c = cc.shape
        n_in = m - 1
        for t in range(cuda.grid(1), members * p * n_in, cuda.gridsize(1)):
            k = t // (p * n_in)
            r = t - k * (p * n_in)
            q = r // n_in
            i = r - q * n_in
            kv = T(P[k, K_V])
            xv = x[k, q, i]
            v = kv * xv
            acc = 0.0
            if rank[k, i] >= 0 and v != zero:
                u = abs(v)
                for j in range(c):
                    s = u * KK[k, i, j]
                    E = math.sqrt(s + eps)
                    E2 = E + E
                    acc += gI[k, q, j] * (cc[k, i, j] * math.exp(E) * (E2 + s) / E2)
            g = T(acc) * kv
            gx[k, q, i] = g * xv * (one - xv)

    @cuda.jit
    def devices_vjp(x, p, rank, G, cc, dd, KK, D, gI, st, P, gD, prod):
        """Per device: dL/dc, dL/d(d_eps) over the examples, dL/dG (pf_devices), dL/dD = k_G dL/dG,
        and prod = dL/dG D (for the max-weight path). Rows not driven: 0."""
        members, m, c = D.shape
        n_in = m - 1
        for t in range(cuda.grid(1), members * m * c, cuda.gridsize(1)):
            k = t // (m * c)
            r = t - k * (m * c)
            i = r // c
            j = r - i * c
            if rank[k, i] < 0:
                gD[k, i, j] = zero
                prod[k, i, j] = 0.0
                continue
            kv = T(P[k, K_V])
            ks = KK[k, i, j]
            cs = cc[k, i, j]
            ds = dd[k, i, j]
            acc_c = 0.0
            acc_d = 0.0
            for q in range(p):
                v = kv * x[k, q, i] if i < n_in else kv
                s = abs(v) * ks
                E = math.sqrt(s + eps)
                g_ve = gI[k, q, j] * (v * math.exp(E))
                acc_c += g_ve
                acc_d += g_ve * (s / ((E + E) * ds))
            g_c = T(acc_c)
            g_d = T(-F(cs) * acc_d)
            g_G = (T(-P[k, S_C]) * g_c * cs + T(-P[k, S_D]) * g_d * ds) / G[k, i, j]
            gD[k, i, j] = T(st[k, K_G]) * g_G
            prod[k, i, j] = F(g_G * D[k, i, j])

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
        """Per weight: the tie share, L1 (gamma sign D), SGD and the non-negative projection."""
        members, m, c = D.shape
        for t in range(cuda.grid(1), members * m * c, cuda.gridsize(1)):
            k = t // (m * c)
            r = t - k * (m * c)
            i = r // c
            j = r - i * c
            w = D[k, i, j]
            g = gD[k, i, j]
            if F(w) == st[k, MAXW]:
                g = T(F(g) + st[k, SHARE])
            if P[k, L1] != 0.0:
                sign = one if w > zero else (-one if w < zero else zero)
                g = g + T(P[k, L1]) * sign
            value = w - T(P[k, LR]) * g
            D[k, i, j] = zero if value < zero else value

    @cuda.jit
    def finish(state, record):
        """record[k, 0] = the words member k used (float64: exact below 2**53)."""
        k = cuda.grid(1)
        if k < state.shape[0]:
            record[k, 0] = F(state[k, 4])

    return dict(gather=gather, take_labels=take_labels, stats_scan=stats_scan, devices=devices,
                forward=forward, loss=loss, outputs_vjp=outputs_vjp, inputs_vjp=inputs_vjp,
                devices_vjp=devices_vjp, tie_share=tie_share, update=update, finish=finish)


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
