"""The conductance phases of a combined stage on the GPU, for memnp.kernels.cuda_step (issue 17).

A device-resident step reads each layer's crossbar as the CPU's ``CrossbarPass.forward`` does for
the rows some example drives (memnp.crossbar.pipeline's physical order): the programmed
conductances G = k_G D + G_off (S) go through D2D variability (the D2DLognormal record of
memnp.kernels.fused) or Gaussian programming noise (ProgrammingNoise's constants, read from the
class by memnp.nn.device_stage; its normals take D2D's words), drift, stuck devices (a fixed stuck
value, or values drawn from a stuck distribution) and read noise, in that order
(memnp.kernels.conductance_chain's loop), and on a PF stage (P[k, IS_PF] = 1) the PF device
parameters (c, d_eps) are made from the read conductances G''; on a linear stage (no currents
phase: I = V G'', P[k, IS_PF] = 0) the read needs G'' alone. Every phase is drawn fresh for every
step (batch mode, as ``Sequential.train_step``); in chip sampling (memnp.kernels.cuda_step's
stats_scan with ``chip``) every row is drawn, from the seed's first word in every batch, and read
noise comes from a separate read stream (``reads``) that runs on from batch to batch. Standard
weights W are mapped to their two devices by the member's rule (MAPPING; memnp.crossbar.mapping's
w_to_G) instead of k_G D + G_off.

The words. A layer of r driven rows and c columns holds n = r c devices (n is even: c = 2 n_out).
Its draws take, in order, n / 2 words (D2D, a Box-Muller pair per two devices), n / 2 (drift),
n (float64 stuck uniforms, ``(w >> 11) 2**-53``) or n / 2 (float32: the low, then the high 32-bit
half of each word), with StuckDistribution (P[k, STUCK_KDE]) 2 s more for the values of the s
stuck devices (memnp.kernels.cuda_stuck: ``stuck_counts`` and ``stuck_starts`` count them row by
row first), n / 2 (read noise) and, under PF only, n (PF residuals, one word per device):
the block that memnp.kernels.stage_draws takes (and the phases one by one would). A linear stage
without conductance phases (the ideal stage) uses no words. Row s (its rank among the
driven rows) finds its words of each phase by a PCG64 jump (memnp.kernels.cuda_random). A float32
stage with stuck devices needs a Generator that holds no half word (``has_uint32`` 0), which
``DeviceTrainer`` checks; with n even it holds none afterwards either, but its state keeps the
last stuck word's high half (``uinteger``), which the step finds and hands back
(memnp.kernels.cuda_step's stats_scan and finish).

:func:`_build` gives, per float dtype T, the ``devices`` kernel (per (member, row): the draws, G''
and the PF parameters; on a linear stage c = G'', d_eps = 1 and KK = 0, so the read kernels find
G'' where PF's c is) and the device function ``chain_vjp`` (dL/dG from dL/dG'', the backward
pass of memnp.kernels.conductance_chain: read noise, stuck (exact zeros), drift, D2D).
:func:`stage_columns` packs a stage's constants into the members' parameter rows (the columns
below: the step's, then the stage's). What the kernels can run, and the ADCs' constants per row of
arrays, are read from the stage in memnp.nn.device_stage (kernels import nothing from crossbar).
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from . import fused as fused_records
from .cuda_random import _M_HI, _M_LO, _box_muller, _jump_params, _mul_add128, _output
from .cuda_stuck import value as kde_value
from .physics import A2_B

#: Columns of P (float64 (K, N_PARAMS)): the step's (memnp.kernels.cuda_step), then the stage's.
G_OFF, G_ON, K_V, S_C, S_D, B_C, B_D, L00, L01, L10, L11, LR, L1 = range(13)
(TILE_ROWS, DAC_L, DAC_INV, DAC_STEP, ADC_L, HAS_D2D, R_ON, R_OFF, SLOPE, S_ON, HAS_DRIFT, NU_MEAN, NU_STD,
 LOG_RATIO, HAS_STUCK, STUCK_P, STUCK_V, HAS_READ, SIGMA, FLOOR, HALF_WORDS, HAS_PROG, PROG_REL, PROG_ABS,
 PROG_FLOOR, MAPPING, G_AVG, IS_PF, STUCK_KDE, KDE_H, KDE_N) = range(13, 44)
N_PARAMS = 44
#: MAPPING's values: double weights (G = k_G D + G_off), standard weights W under the default rule
#: (G+ = max(z, 0) + G_off, G- = -min(z, 0) + G_off, z = k_G W) or the avg rule (G+- = G_avg +- z / 2),
#: or standard weights under the ideal stage, which the CPU reads digitally (y = x W + b): mapped
#: by the default rule, an exact linear crossbar computes that map, and its VJP is made the
#: digital one (memnp.kernels.cuda_standard and cuda_step's update).
DOUBLE, STANDARD_DEFAULT, STANDARD_AVG, STANDARD_DIGITAL = 0.0, 1.0, 2.0, 3.0
#: Columns of st (float64 (K, N_STATS)), a layer's per-step scalars.
MAXW, TIES, ABSSUM, K_G, GMAX, SHARE = range(6)
N_STATS = 6

#: The phases the kernels run (the currents phase: PF, or none for a linear read); anything else
#: is refused.
PHASES = ("programming", "drift", "stuck", "read_noise", "dac", "currents", "adc", "tiles")
_U = np.uint64
_SHIFT11, _SHIFT8, _SHIFT32, _LOW32 = _U(11), _U(8), _U(32), _U(0xFFFFFFFF)


#: TILE_ROWS of a stage without Tiles: more rows than any crossbar (one row of arrays).
NO_TILES = 2 ** 30


def stage_columns(stage, dtype, programming=None):
    """The stage's columns TILE_ROWS ... KDE_N (float64 (31,)) for float ``dtype``, MAPPING, G_AVG,
    KDE_H and KDE_N left 0 (memnp.nn.device sets the mapping's, memnp.nn.device_stage's
    ``kde_table`` has the others); ``stage`` must pass memnp.nn.device_stage.unsupported (its
    currents phase: PF, or none). ``programming``: (sigma_rel, sigma_abs (S), the floor's fraction
    of G) of the stage's Gaussian programming noise in the programming slot (read from its class
    by memnp.nn.device_stage.programming_noise), or None."""
    phases = stage.phases
    out = np.zeros(N_PARAMS - TILE_ROWS, dtype=np.float64)

    def put(column, value):
        out[column - TILE_ROWS] = value
    tiles = phases.get("tiles")
    put(TILE_ROWS, tiles.rows if tiles is not None else NO_TILES)
    dac, adc = phases.get("dac"), phases.get("adc")
    if dac is not None:
        put(DAC_L, dac.levels)
        put(DAC_INV, 1.0 / stage.k_V)
        put(DAC_STEP, stage.k_V / dac.levels)
    if adc is not None:
        put(ADC_L, adc.levels)
    pf = "currents" in phases
    put(IS_PF, 1 if pf else 0)
    half_words = 2 if pf else 0                             # PF residuals: one word per device
    records = {name: fused_records.params(phases[name], name) for name in fused_records.CONDUCTANCE_SLOTS
               if name in phases}
    records = {name: record for name, record in records.items() if record is not None}
    if "programming" in records:
        r = records["programming"]
        put(HAS_D2D, 1)
        put(R_ON, r.r_on), put(R_OFF, r.r_off), put(SLOPE, r.slope), put(S_ON, r.s_on)
        half_words += 1
    elif programming is not None:      # one normal per device from the same Box-Muller pairs
        put(HAS_PROG, 1)
        put(PROG_REL, programming[0]), put(PROG_ABS, programming[1]), put(PROG_FLOOR, programming[2])
        half_words += 1
    if "drift" in records:
        r = records["drift"]
        put(HAS_DRIFT, 1)
        put(NU_MEAN, r.nu_mean), put(NU_STD, r.nu_std), put(LOG_RATIO, r.log_ratio)
        half_words += 1
    if "stuck" in records:
        r = records["stuck"]
        put(HAS_STUCK, 1)
        put(STUCK_P, r.p)
        if r.value is None:                                 # values drawn (StuckDistribution)
            put(STUCK_KDE, 1)
        else:
            put(STUCK_V, r.value)
        half_words += 2 if np.dtype(dtype) == np.float64 else 1
    if "read_noise" in records:
        r = records["read_noise"]
        put(HAS_READ, 1)
        put(SIGMA, r.sigma), put(FLOOR, r.floor)
        half_words += 1
    put(HALF_WORDS, half_words)
    return out


def blocks_of(stage, m):
    """The number of rows of arrays of an m-row crossbar (1 without Tiles)."""
    tiles = stage.phases.get("tiles")
    return math.ceil(m / tiles.rows) if tiles is not None else 1


def _build(T):
    """{"devices", "stuck_counts", "stuck_starts": kernels, "chain_vjp": device function} for float
    dtype T."""
    F = np.float64
    U = np.uint64
    zero, one, half = T(0.0), T(1.0), T(0.5)
    f32 = T == np.float32
    scale32 = np.float32(2.0 ** -24)

    @cuda.jit(device=True)
    def _programmed(D, k, i, j, kg, off, P):
        """The programmed conductance G (S) of device (i, j) of member k (T): from double weights
        D (K, m, c), or standard weights W (K, m, c / 2) under the member's mapping rule (the
        operations of memnp.crossbar.mapping's double_w_to_G and w_to_G, each rounded to T)."""
        rule = P[k, MAPPING]
        if rule == DOUBLE:
            return D[k, i, j] * kg + off
        z = kg * D[k, i, j // 2]
        if rule == STANDARD_DEFAULT or rule == STANDARD_DIGITAL:
            return max(z, zero) + off if j % 2 == 0 else -min(z, zero) + off
        g_avg, hz = T(P[k, G_AVG]), half * z
        return g_avg + hz if j % 2 == 0 else g_avg - hz

    @cuda.jit(device=True)
    def _seek(state, k, position):
        """The PCG64 state (high, low) whose output is word ``position`` of member k's stream."""
        mh, ml, ch, cl = _jump_params(position + U(1), state[k, 2], state[k, 3])
        return _mul_add128(state[k, 0], state[k, 1], mh, ml, ch, cl)

    @cuda.jit(device=True)
    def _d2d(g, e, P, k):
        """G exp(sigma (sigma / 2 - eps)), sigma from R = 1 / G (memnp.kernels.d2d_devices)."""
        r_on, r_off, slope, s_on = T(P[k, R_ON]), T(P[k, R_OFF]), T(P[k, SLOPE]), T(P[k, S_ON])
        R = one / g
        sigma = slope * (min(max(R, r_on), r_off) - r_on) + s_on
        return g * T(math.exp(sigma * (half * sigma - e)))

    @cuda.jit(device=True)
    def _programming(g, e, P, k):
        """max(G + (sigma_rel G + sigma_abs) eps, floor G), each operation rounded to T as
        ProgrammingNoise.disturb's NumPy passes round it."""
        noisy = T(T(T(g * T(P[k, PROG_REL])) + T(P[k, PROG_ABS])) * e)
        return max(T(noisy + g), T(T(P[k, PROG_FLOOR]) * g))

    @cuda.jit(device=True)
    def _stuck_pair(sh, sl, inc_h, inc_l, p_stuck):
        """(stuck 0, stuck 1, the state moved on) of the next two devices from the stuck stream at
        (sh, sl): float32, the low then the high half of one word; float64, one word each."""
        w = _output(sh, sl)
        sh, sl = _mul_add128(sh, sl, _M_HI, _M_LO, inc_h, inc_l)
        if f32:
            s0 = np.float32((w & _LOW32) >> _SHIFT8) * scale32 < np.float32(p_stuck)
            s1 = np.float32(w >> _SHIFT32 >> _SHIFT8) * scale32 < np.float32(p_stuck)
        else:
            s0 = F(w >> _SHIFT11) * 2.0 ** -53 < p_stuck
            w = _output(sh, sl)
            sh, sl = _mul_add128(sh, sl, _M_HI, _M_LO, inc_h, inc_l)
            s1 = F(w >> _SHIFT11) * 2.0 ** -53 < p_stuck
        return s0, s1, sh, sl

    @cuda.jit(device=True)
    def _stuck_start(P, k, m, c, rank, r, base):
        """The stream position of row r's first stuck word (the layer's words start at ``base``)."""
        n_half = U(rank[k, m - 1] + 1) * U(c // 2)
        if P[k, HAS_D2D] != 0.0 or P[k, HAS_PROG] != 0.0:
            base += n_half
        if P[k, HAS_DRIFT] != 0.0:
            base += n_half
        return base + U(r) * (U(c // 2) if f32 else U(c))

    @cuda.jit
    def stuck_counts(D, rank, P, state, offsets, counts):
        """Drawn stuck values (P[k, STUCK_KDE]): per (member, row), counts[k, i] = the row's stuck
        devices (its mask from the words, as ``devices`` draws it; 0 for rows not driven). D: the
        weights, double or standard (two devices per weight)."""
        members, m, c = D.shape
        standard = P[0, MAPPING] != DOUBLE     # the members hold one kind of weights
        if standard:
            c = 2 * c
        for t in range(cuda.grid(1), members * m, cuda.gridsize(1)):
            k = t // m
            i = t - k * m
            counts[k, i] = 0
            if P[k, STUCK_KDE] == 0.0 or rank[k, i] < 0:
                continue
            sh, sl = _seek(state, k, _stuck_start(P, k, m, c, rank, rank[k, i], offsets[k]))
            n = 0
            for _ in range(c // 2):
                s0, s1, sh, sl = _stuck_pair(sh, sl, state[k, 2], state[k, 3], P[k, STUCK_P])
                n += int(s0) + int(s1)
            counts[k, i] = n

    @cuda.jit
    def stuck_starts(P, state, counts):
        """Per member (one thread): counts[k, i] becomes the number of stuck devices in the rows
        before i, counts[k, m] their total s; the values' 2 s words are added to the words used."""
        k = cuda.grid(1)
        if k < counts.shape[0] and P[k, STUCK_KDE] != 0.0:
            m = counts.shape[1] - 1
            total = 0
            for i in range(m):
                n = counts[k, i]
                counts[k, i] = total
                total += n
            counts[k, m] = total
            state[k, 4] = state[k, 4] + U(2 * total)

    @cuda.jit
    def devices(D, rank, st, P, state, offsets, G, cc, dd, KK, eps, fdr, frd, stk, stuck_rows, kde, reads,
                read_offsets, chip):
        """Per (member, row), along its columns: the row's words of every phase, G'' (into G), the
        draws the backward pass needs (eps, drift and read factors, stuck 1/0: (K, m, c) each),
        c and d_eps (pf_devices) of G'', KK = A**2 B / d_eps; on a linear stage c = G'', d_eps = 1,
        KK = 0 (no PF words). Drawn stuck values: stuck_rows (K, m + 1) int64 from ``stuck_counts``
        and ``stuck_starts``, kde (K, N, 3) the members' tables (memnp.kernels.cuda_stuck). Rows
        not driven: c = 0, KK = 0. D: the weights, double (K, m, c) or standard (K, m, c / 2) (P's
        MAPPING column). With ``chip`` (chip sampling) read noise comes from the read stream
        ``reads`` (K, 6) from word read_offsets[k] on (memnp.kernels.cuda_step's stats_scan), not
        from ``state``."""
        members, m, c = G.shape
        half_c = U(c // 2)
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
            n_half = U(rank[k, m - 1] + 1) * half_c          # words of a Box-Muller phase
            base = offsets[k]
            rs = U(r)
            d2d, drift, stuck, read = P[k, HAS_D2D] != 0.0, P[k, HAS_DRIFT] != 0.0, P[k, HAS_STUCK] != 0.0, \
                P[k, HAS_READ] != 0.0
            prog = P[k, HAS_PROG] != 0.0
            dh = dl = fh = fl = sh = sl = rh = rl = U(0)
            if d2d or prog:
                dh, dl = _seek(state, k, base + rs * half_c)
                base += n_half
            if drift:
                fh, fl = _seek(state, k, base + rs * half_c)
                base += n_half
            drawn = stuck and P[k, STUCK_KDE] != 0.0
            qh = ql = wh = wl = U(0)
            if stuck:
                if f32:
                    sh, sl = _seek(state, k, base + rs * half_c)
                    base += n_half
                else:
                    sh, sl = _seek(state, k, base + rs * U(c))
                    base += n_half + n_half
            if drawn:      # the choice words, then the values' (rng.random) words: s each
                total, first = U(stuck_rows[k, m]), U(stuck_rows[k, i])
                qh, ql = _seek(state, k, base + first)
                wh, wl = _seek(state, k, base + total + first)
                base += total + total
            n_kde, h_kde = int(P[k, KDE_N]), P[k, KDE_H]
            rinc_h, rinc_l = inc_h, inc_l
            if read and chip:
                rh, rl = _seek(reads, k, read_offsets[k] + rs * half_c)
                rinc_h, rinc_l = reads[k, 2], reads[k, 3]
            elif read:
                rh, rl = _seek(state, k, base + rs * half_c)
                base += n_half
            pf = P[k, IS_PF] != 0.0
            ph = pl = U(0)
            if pf:
                ph, pl = _seek(state, k, base + rs * U(c))
            kg, off = T(st[k, K_G]), T(P[k, G_OFF])
            ms_c, ms_d, bc, bd = T(-P[k, S_C]), T(-P[k, S_D]), T(P[k, B_C]), T(P[k, B_D])
            l00, l01, l10, l11 = P[k, L00], P[k, L01], P[k, L10], P[k, L11]
            nu_mean, nu_std, log_ratio = P[k, NU_MEAN], P[k, NU_STD], P[k, LOG_RATIO]
            p_stuck, sigma, floor = P[k, STUCK_P], P[k, SIGMA], P[k, FLOOR]
            value = T(P[k, STUCK_V])
            for j2 in range(c // 2):
                e0 = e1 = zero
                if d2d or prog:
                    z0, z1 = _box_muller(_output(dh, dl))
                    e0, e1 = T(z0), T(z1)
                    dh, dl = _mul_add128(dh, dl, _M_HI, _M_LO, inc_h, inc_l)
                f0 = f1 = one
                if drift:
                    z0, z1 = _box_muller(_output(fh, fl))
                    f0 = T(math.exp(-max(nu_mean + nu_std * z0, 0.0) * log_ratio))
                    f1 = T(math.exp(-max(nu_mean + nu_std * z1, 0.0) * log_ratio))
                    fh, fl = _mul_add128(fh, fl, _M_HI, _M_LO, inc_h, inc_l)
                s0 = s1 = False
                v0 = v1 = value
                if stuck:
                    s0, s1, sh, sl = _stuck_pair(sh, sl, inc_h, inc_l, p_stuck)
                if drawn and s0:
                    u_c, u_r = F(_output(qh, ql) >> _SHIFT11) * 2.0 ** -53, F(_output(wh, wl) >> _SHIFT11) * 2.0 ** -53
                    qh, ql = _mul_add128(qh, ql, _M_HI, _M_LO, inc_h, inc_l)
                    wh, wl = _mul_add128(wh, wl, _M_HI, _M_LO, inc_h, inc_l)
                    v0 = T(kde_value(kde, k, n_kde, h_kde, u_c, u_r))
                if drawn and s1:
                    u_c, u_r = F(_output(qh, ql) >> _SHIFT11) * 2.0 ** -53, F(_output(wh, wl) >> _SHIFT11) * 2.0 ** -53
                    qh, ql = _mul_add128(qh, ql, _M_HI, _M_LO, inc_h, inc_l)
                    wh, wl = _mul_add128(wh, wl, _M_HI, _M_LO, inc_h, inc_l)
                    v1 = T(kde_value(kde, k, n_kde, h_kde, u_c, u_r))
                r0 = r1 = one
                if read:
                    z0, z1 = _box_muller(_output(rh, rl))
                    r0, r1 = T(max(1.0 + sigma * z0, floor)), T(max(1.0 + sigma * z1, floor))
                    rh, rl = _mul_add128(rh, rl, _M_HI, _M_LO, rinc_h, rinc_l)
                for half_index in range(2):
                    j = 2 * j2 + half_index
                    e = e0 if half_index == 0 else e1
                    f = f0 if half_index == 0 else f1
                    s = s0 if half_index == 0 else s1
                    sv = v0 if half_index == 0 else v1
                    rf = r0 if half_index == 0 else r1
                    g = _programmed(D, k, i, j, kg, off, P)
                    if d2d:
                        g = _d2d(g, e, P, k)
                    if prog:
                        g = _programming(g, e, P, k)
                    if drift:
                        g = g * f
                    if stuck and s:
                        g = sv
                    if read:
                        g = g * rf
                    eps[k, i, j] = e
                    fdr[k, i, j] = f
                    frd[k, i, j] = rf
                    stk[k, i, j] = one if s else zero
                    G[k, i, j] = g
                    if not pf:
                        cc[k, i, j] = g
                        dd[k, i, j] = one
                        KK[k, i, j] = zero
                        continue
                    z_cos, z_sin = _box_muller(_output(ph, pl))
                    ph, pl = _mul_add128(ph, pl, _M_HI, _M_LO, inc_h, inc_l)
                    e_c = T(l00 * z_cos + l01 * z_sin)
                    e_d = T(l10 * z_cos + l11 * z_sin)
                    ln_g = T(math.log(g))
                    cv = T(math.exp(T(T(ln_g * ms_c) + bc) + e_c))
                    dv = T(math.exp(T(T(ln_g * ms_d) + bd) + e_d))
                    cc[k, i, j] = cv
                    dd[k, i, j] = dv
                    KK[k, i, j] = T(A2_B) / dv

    @cuda.jit(device=True)
    def chain_vjp(g, k, i, j, D, st, P, eps, fdr, frd, stk):
        """dL/dG (programmed) from g = dL/dG'' of device (k, i, j): read noise, stuck devices
        (exact zeros), drift, D2D in reverse (memnp.kernels.conductance_chain._apply_vjp)."""
        if P[k, HAS_READ] != 0.0:
            g = g * frd[k, i, j]
        if P[k, HAS_STUCK] != 0.0 and stk[k, i, j] != zero:
            g = zero
        if P[k, HAS_DRIFT] != 0.0:
            g = g * fdr[k, i, j]
        if P[k, HAS_D2D] != 0.0:
            r_on, r_off, slope, s_on = T(P[k, R_ON]), T(P[k, R_OFF]), T(P[k, SLOPE]), T(P[k, S_ON])
            e = eps[k, i, j]
            R = one / _programmed(D, k, i, j, T(st[k, K_G]), T(P[k, G_OFF]), P)
            sigma = slope * (min(max(R, r_on), r_off) - r_on) + s_on
            d_sigma = slope if (R >= r_on) and (R <= r_off) else zero
            factor = T(math.exp(sigma * (half * sigma - e)))
            g = g * factor * (one - (sigma - e) * d_sigma * R)
        if P[k, HAS_PROG] != 0.0:       # ProgrammingNoise.disturb_vjp: 1 + sigma_rel eps, floor where clipped
            e = eps[k, i, j]
            G0 = _programmed(D, k, i, j, T(st[k, K_G]), T(P[k, G_OFF]), P)
            rel, floor = T(P[k, PROG_REL]), T(P[k, PROG_FLOOR])
            if T(G0 + T(T(T(rel * G0) + T(P[k, PROG_ABS])) * e)) <= T(floor * G0):
                g = floor * g
            else:
                g = T(T(e * rel) + one) * g
        return g

    return {"devices": devices, "chain_vjp": chain_vjp, "stuck_counts": stuck_counts, "stuck_starts": stuck_starts}
