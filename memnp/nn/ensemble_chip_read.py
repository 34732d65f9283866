"""The combined stage's crossbar phases of K members in one Numba call per pass (issue 15).

:class:`memnp.nn.ensemble_member_read.MemberCrossbar` runs each member's
:class:`memnp.crossbar.CrossbarPass` in turn. Where every member's pass would take the one-call
path of a combined stage -- the draws, the conductance chain and the float32 PF device parameters
in one kernel (memnp.kernels.stage_draws.sample_and_apply), the DAC, the tiled PF read with its
ADCs (memnp.crossbar.tiling's stacked read), no line resistance -- :func:`forward` prepares the
members' arguments (their PCG64 states and NumPy's half-word buffers, their read streams' words,
their phases' parameters, their rows of arrays and ADC constants) and runs all members in one
call of :mod:`memnp.kernels.ensemble_chip`, then writes the Generators' states back as
memnp.kernels.stage_draws._one_call does; :meth:`ChipMembers.backward` runs their backward passes
in one call too. Elsewhere :func:`forward` returns None and the caller runs the members' own
passes: the numbers are the same either way, bit for bit.

A member whose ADC clipped (rare: the full scales are worst-case currents) goes through its own
CrossbarPass.backward (:meth:`ChipMembers.member_pass` rebuilds its read state), as do the
members' powers.
"""
import numpy as np

from ..crossbar import CrossbarPass, tiling
from ..crossbar.pipeline import Draws
from ..crossbar.simulate import ReadState
from ..kernels import ensemble_chip, normal, pcg64, sparse

__all__ = ["ChipMembers", "forward", "eligible_stages"]

_MASK64 = (1 << 64) - 1
_EMPTY_WORDS = np.empty(0, np.uint64)


def eligible_stages(stages, dtype):
    """The members' common held phases (D2D, drift, stuck, read noise, PF) when every stage's read
    of ``dtype`` conductances takes the one-call path this module runs, else None."""
    if np.dtype(dtype) != np.float32:
        return None
    held = None
    for stage in stages:
        plan = stage.draw_plan
        phases = stage.phases
        if plan is None or stage.nonpreserving is None or "wires" in phases or "adc" not in phases \
                or stage.plain_read or not plan[1][4]:
            return None
        if held is None:
            held = plan[1]
        elif plan[1] != held:
            return None
    return held


def _generators(rngs, read_rngs):
    """Whether every member draws from its own PCG64 Generator and (when given) its own read
    stream, no bit generator shared."""
    seen = set()
    for rng, read_rng in zip(rngs, read_rngs):
        if not isinstance(rng, np.random.Generator) or type(rng.bit_generator) is not np.random.PCG64:
            return False
        seen.add(id(rng.bit_generator))
        if read_rng is not None:
            if not isinstance(read_rng, np.random.Generator):
                return False
            seen.add(id(read_rng.bit_generator))
    return len(seen) == len(rngs) + sum(r is not None for r in read_rngs)


def draw_params(stages):
    """(K, 24) float64: each member's draw plan parameters (memnp.kernels.stage_draws.plan)."""
    return np.stack([stage.draw_plan[0] for stage in stages])


def dac_constants(stages, dtype):
    """(K, 3) in ``dtype``: each member's DAC constants (1 / k_V, levels, k_V / levels), ones
    without a DAC."""
    t = np.dtype(dtype).type
    out = np.ones((len(stages), 3), dtype)
    if "dac" in stages[0].phases:
        for k, stage in enumerate(stages):
            levels = stage.phases["dac"].levels
            out[k] = (t(1.0 / stage.k_V), t(levels), t(stage.k_V / levels))
    return out


class ChipMembers:
    """The K members' fused read (:class:`memnp.kernels.ensemble_chip.ChipRead`) with what their
    backward passes and powers need."""

    def __init__(self, stages, backend, layout, p, V, G, read, params, held, bounds, m):
        self.stages, self.backend, self.layout, self.p = stages, backend, layout, p
        self.V, self.G, self.read, self.params, self.held = V, G, read, params, held
        self.bounds, self.m = bounds, m

    def member_pass(self, k):
        """Member k's CrossbarPass holding the read state its own forward pass would have kept."""
        layout, read, n = self.layout, self.read, self.G.shape[1]
        o0, o1 = layout.offsets[k], layout.offsets[k + 1]
        r, a, b = o1 - o0, o0 * n, o1 * n
        shape = (r, n)
        d2d, drift, stuck, noise, _ = self.held
        stage = self.stages[k]
        part = {"programming": read.eps, "drift": read.f_drift, "read_noise": read.f_read}
        draws = {}
        for name in stage.phases:
            if name == "stuck":
                draws[name] = (read.mask[a:b].reshape(shape), read.values[a:b].reshape(shape))
            elif name == "currents":
                draws[name] = read.residuals[:, a:b].reshape((2,) + shape)
            elif name in part:
                draws[name] = part[name][a:b].reshape(shape)
        p = self.params[k]
        vjp_args = (read.eps[a:b] if d2d else read.eps, p[16], p[17], p[18], p[19], d2d,
                    read.f_drift[a:b] if drift else read.f_drift, drift, read.mask[a:b] if stuck else read.mask,
                    stuck, read.f_read[a:b] if noise else read.f_read, noise)
        devices = (read.c[o0:o1], read.d_eps[o0:o1])
        V_read = layout.block(read.Vq, k, self.p)
        bounds = self.bounds[k]
        adc = stage.phases["adc"]
        fs = tiling._full_scales(stage, adc, tuple(rows for _, _, rows in bounds))
        tiles = tiling.StackedRead(V_read, bounds, devices, None, fs, bool(read.clipped[k]))
        crossbar = CrossbarPass(stage, self.backend)
        crossbar.inputs_checked = crossbar.gradients_checked = True
        crossbar._cache = ReadState(layout.block(self.V, k, self.p), self.G[o0:o1], read.G_read[a:b].reshape(shape),
                                    Draws(draws), devices, V_read, None, tiles, vjp_args)
        return crossbar

    def _parallel(self):
        return ensemble_chip.parallel((self.p + 1) * self.G.size, len(self.stages))

    def backward(self, grad_I, need_V):
        """(dL/dV (p R,) voltage-packed or None, dL/dG (R, n)) from dL/dI (K, p, n)."""
        grad_I = np.ascontiguousarray(grad_I, dtype=self.G.dtype)
        grad_V, grad_G = ensemble_chip.backward(self.read, grad_I, self.G, self.layout.offsets, self.params,
                                                np.array(self.held, np.bool_), need_V, self._parallel())
        for k in np.flatnonzero(self.read.clipped):
            gV, gG = self.member_pass(int(k)).backward(grad_I[k], need_V=need_V)
            o0, o1 = self.layout.offsets[k], self.layout.offsets[k + 1]
            grad_G[o0:o1] = gG
            if need_V:
                self.layout.block(grad_V, int(k), self.p)[:] = gV
        return grad_V, grad_G


def forward(stages, backend, layout, V, G, p, rngs, read_rngs):
    """A :class:`ChipMembers` of the members' reads of V (p R,) voltage-packed (V) and G (R, n)
    (S) from the rows each member reads (``layout``), member k drawing from rngs[k] (read noise
    from read_rngs[k] when given); None where a member's own pass would take another path (the
    Generators are then untouched)."""
    held = eligible_stages(stages, G.dtype)
    K = len(stages)
    if held is None or not _generators(rngs, read_rngs) or not G.flags.c_contiguous:
        return None
    n = G.shape[1]
    offsets = layout.offsets
    counts_rows = np.diff(offsets)
    if counts_rows.min() < 1 or int(counts_rows.max()) * n >= normal.PARALLEL_MIN:
        return None
    d2d, drift, stuck, read, pf = held
    dtype = G.dtype
    m = layout.n_rows
    params = draw_params(stages)
    states = np.empty((K, 4), np.uint64)
    counts = np.empty(K, np.int64)
    buffered = np.zeros(K, np.int64)
    held_words = np.zeros(K, np.uint64)
    read_parts, read_offsets = [], np.zeros(K + 1, np.int64)
    dac_consts = dac_constants(stages, dtype)
    dac = "dac" in stages[0].phases
    tile_of_row = np.zeros(layout.total, np.int64)
    tiles = np.empty(K, np.int64)
    tile_offsets = np.zeros(K + 1, np.int64)
    scale, step, top, levels, bounds_all = [], [], [], np.empty(K, dtype), []
    bit_states = []
    for k, stage in enumerate(stages):
        r = int(counts_rows[k])
        size = r * n
        half = (size + 1) // 2
        separate = read_rngs[k] is not None and read
        words = pcg64.raw_words(read_rngs[k].bit_generator, half) if separate else _EMPTY_WORDS
        read_parts.append(words)
        read_offsets[k + 1] = read_offsets[k] + words.size
        bits = rngs[k].bit_generator
        state = bits.state
        b = int(state["has_uint32"]) if stuck else 0
        buffered[k] = b
        held_words[k] = int(state["uinteger"]) if stuck else 0
        counts[k] = half * (d2d + drift + (read and not separate)) + size * pf + ((size - b + 1) // 2 if stuck else 0)
        s, inc = state["state"]["state"], state["state"]["inc"]
        states[k] = (s >> 64, s & _MASK64, inc >> 64, inc & _MASK64)
        bit_states.append((bits, state, size))
        rows = None if r == m else layout.member_rows(k)
        bounds = tiling.row_blocks(stage, r, rows, m)
        bounds_all.append(bounds)
        T = len(bounds)
        tiles[k] = T
        tile_offsets[k + 1] = tile_offsets[k] + T
        if T > 1:
            tile_of_row[offsets[k]:offsets[k + 1]] = tiling._tile_of_row(bounds, r)
        a, st, tp, lv = tiling._adc_constants(stage, stage.phases["adc"], tuple(rows for _, _, rows in bounds), dtype)
        scale.append(a)
        step.append(st)
        top.append(tp)
        levels[k] = lv
    read_words = np.concatenate(read_parts) if read_offsets[K] else _EMPTY_WORDS
    out = ensemble_chip.forward(G, V, offsets, p, states, counts, buffered, held_words, read_words, read_offsets,
                                params, np.array(held, np.bool_), dac, dac_consts, tile_of_row, tiles, tile_offsets,
                                np.concatenate(scale), np.concatenate(step), np.concatenate(top), levels,
                                float(sparse.min_zeros(n)), sparse.MIN_DEVICES,
                                ensemble_chip.parallel((p + 1) * G.size, K))
    for k, (bits, state, size) in enumerate(bit_states):
        s_hi, s_lo, held_after = (int(v) for v in out.after[k])
        state["state"]["state"] = (s_hi << 64) | s_lo
        if stuck:
            # NumPy's half-word buffer as its float32 uniforms leave it (stage_draws._one_call)
            state["has_uint32"] = (size - int(buffered[k])) % 2
            state["uinteger"] = held_after
        bits.state = state
    return ChipMembers(stages, backend, layout, p, V, G, out, params, held, bounds_all, m)
