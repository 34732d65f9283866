"""The draws of a combined stage from one block of raw words per Generator, in one kernel call.

Phase by phase (memnp.crossbar.simulate.CrossbarPass.sample), a combined stage asks its Generator
for raw words five times (D2D, drift, stuck, read noise, PF residuals) and draws the stuck mask
with ``rng.random``. :func:`sample` takes the same words in one block per Generator (the chip
phases from ``rng``; read noise from ``read_rng`` when given, else from ``rng`` in its place in
the order), from memnp's PCG64 loop (:mod:`memnp.kernels.pcg64`, NumPy's words, faster) or
``random_raw``, and hands each phase its slice, to the phases' own loops: the same numbers, and
the same Generator state afterwards, as the phases one by one. Below 2**18 devices every phase
runs in one kernel call (:func:`_all`, with the phases' parameters from :func:`plan`, which a Stage
keeps); :func:`sample_and_apply` also applies the conductance phases
(memnp.kernels.conductance_chain) and computes the float32 PF device parameters
(memnp.kernels.pf_devices) in the same call. The stuck mask comes from the words as NumPy's
``Generator.random`` makes its uniforms from PCG64 (:mod:`memnp.kernels.uniforms`; its
``uniforms_numpy`` is the reference, tested against ``rng.random``):

    float64: u = (w >> 11) 2**-53, one word per device;
    float32: u = (h >> 8) 2**-24 for the 32-bit halves h of each word, low half first, two
             devices per word (NumPy's next_uint32: a half word it holds from an earlier float32
             draw, "has_uint32" in the state, comes first, and an odd count leaves one held; the
             state is left as NumPy leaves it).

Only for float32 or float64 draws, phases whose nonideality returns its loop's record from
``fused()`` (:mod:`memnp.kernels.fused`; stuck devices with a fixed value) and, with stuck
devices, a PCG64 bit generator; otherwise :func:`sample` returns None
and the caller samples phase by phase. Arrays: the draws in the phases' shapes and dtypes
(memnp.crossbar.pipeline.Draws), G (m, n) in S.
"""
import math

import numpy as np
from numba import njit

from . import drift as drift_loops
from . import conductance_chain
from . import fused as fused_params
from . import normal
from . import pcg64
from . import pf_devices
from . import read_noise as read_loops
from .uniforms import _stuck_f32, _stuck_f64

_JIT = {"error_model": "numpy", "cache": True}
_SHIFT32 = np.uint64(32)


@njit(**_JIT)
def _all_apply(state, count, read_words, G, buffered, held, params, pf_loop):
    """:func:`_all` for the devices of G (flat, float32 or float64), then the read conductances
    G'' (memnp.kernels.conductance_chain's loop) and, with ``pf_loop``, the PF device parameters
    (c, d_eps) of G'' (memnp.kernels.pf_devices' loop; PF's (s_c, b_c, s_d, b_d) are params[20:24],
    D2D's constants params[16:20])."""
    n = G.size
    eps, f_drift, mask, values, f_read, residuals, held_after, s_hi, s_lo = _all(
        state, count, read_words, G[:0], n, buffered, held, params)
    G_read = np.empty_like(G)
    r_on, r_off, slope, s_on = params[16], params[17], params[18], params[19]
    conductance_chain._apply(G, eps, r_on, r_off, slope, s_on, params[0] != 0, f_drift, params[1] != 0, mask,
                             values, params[5] != 0, f_read, params[8] != 0, G_read)
    c = np.empty(n if pf_loop else 0, G.dtype)
    d_eps = np.empty(n if pf_loop else 0, G.dtype)
    if pf_loop:
        pf_devices._parameters(G_read, residuals[0], residuals[1], params[20], params[21], params[22],
                               params[23], c, d_eps)
    return eps, f_drift, mask, values, f_read, residuals, held_after, s_hi, s_lo, G_read, c, d_eps


@njit(**_JIT)
def _all(state, count, read_words, template, n, buffered, held, params):
    """Every phase's draws (flat, ``template``'s dtype; empty for the phases not held) from one
    block of ``count`` words of the PCG64 at ``state`` (s_hi, s_lo, inc_hi, inc_lo) in physical
    order, each phase's loop on its slice; read noise from ``read_words`` when that is not empty.
    ``params``: :func:`plan` as float64. float32 stuck uniforms start with the held half word when
    ``buffered``. Also returns the half word NumPy would hold afterwards and the PCG64 state."""
    words = np.empty(count, np.uint64)
    s_hi, s_lo = pcg64.fill(state[0], state[1], state[2], state[3], words)
    d2d, drift, nu_mean, nu_std, log_ratio = params[0] != 0, params[1] != 0, params[2], params[3], params[4]
    stuck, p, value, read, sigma, floor = params[5] != 0, params[6], params[7], params[8] != 0, params[9], params[10]
    pf, l00, l01, l10, l11 = params[11] != 0, params[12], params[13], params[14], params[15]
    dtype = template.dtype
    f32 = template.itemsize == 4
    half = (n + 1) // 2
    start = 0
    eps = np.empty(n if d2d else 0, dtype)
    if d2d:
        normal._serial(words[start:start + half], eps)
        start += half
    f_drift = np.empty(n if drift else 0, dtype)
    if drift:
        drift_loops._factors(words[start:start + half], nu_mean, nu_std, log_ratio, f_drift)
        start += half
    mask = np.empty(n if stuck else 0, np.bool_)
    values = np.empty(n if stuck else 0, dtype)
    held_after = held
    if stuck:
        if f32:
            count = (n - buffered + 1) // 2
            _stuck_f32(words[start:start + count], buffered, held, np.float32(p), np.float32(value), mask,
                       values)
            if count:
                held_after = words[start + count - 1] >> _SHIFT32
        else:
            count = n
            _stuck_f64(words[start:start + count], p, value, mask, values)
        start += count
    f_read = np.empty(n if read else 0, dtype)
    if read:
        if read_words.size:
            read_loops._factors(read_words, sigma, floor, f_read)
        else:
            read_loops._factors(words[start:start + half], sigma, floor, f_read)
            start += half
    residuals = np.empty((2, n if pf else 0), dtype)
    if pf:
        pf_devices._residuals(words[start:start + n], l00, l01, l10, l11, residuals[0], residuals[1])
    return eps, f_drift, mask, values, f_read, residuals, held_after, s_hi, s_lo


def _records(phases):
    """{phase name: the phase's record (memnp.kernels.fused)} of the phases with draws, or None
    when one of them is not a loop this module runs (a stuck record needs a fixed value)."""
    records = {}
    for name, item in phases.items():
        if item.draws is None:
            continue                         # no draws (DAC, wires, ADC, tiles)
        record = fused_params.params(item, name)
        if record is None or (name == "stuck" and record.value is None):
            return None
        records[name] = record
    return records


def _counts(records, n, dtype, buffered):
    """[(phase name, words, record)] in physical order; ``buffered``: whether NumPy holds half a
    word for the next float32 uniform."""
    counts = []
    for name, record in records.items():
        if name == "stuck":
            counts.append((name, n if dtype == np.float64 else (n - buffered + 1) // 2, record))
        elif name == "currents":
            counts.append((name, n, record))
        else:
            counts.append((name, (n + 1) // 2, record))
    return counts


def plan(phases):
    """(the phases' parameters as :func:`_all` and :func:`_all_apply` take them (24,) float64:
    the draws', D2D's constants and PF's (s_c, b_c, s_d, b_d); which phases are held), or None
    when a phase is not one this module draws. A stage computes it once
    (``Stage.draw_plan``)."""
    records = _records(phases)
    if records is None:
        return None
    d2d, drift, stuck, read, pf = (records.get(name) for name in
                                   ("programming", "drift", "stuck", "read_noise", "currents"))
    (l00, l01), (l10, l11) = pf.factor if pf is not None else ((0.0, 0.0), (0.0, 0.0))
    held = (d2d is not None, drift is not None, stuck is not None, read is not None, pf is not None)
    d2d_constants = (d2d.r_on, d2d.r_off, d2d.slope, d2d.s_on) if d2d is not None else (1.0, 1.0, 0.0, 0.0)
    pf_params = (pf.slopes[0], pf.intercepts[0], pf.slopes[1], pf.intercepts[1]) if pf is not None \
        else (0.0, 0.0, 0.0, 0.0)
    params = np.array([held[0],
                       held[1], drift.nu_mean if drift else 0.0, drift.nu_std if drift else 0.0,
                       drift.log_ratio if drift else 0.0,
                       held[2], stuck.p if stuck else 0.0, stuck.value if stuck else 0.0,
                       held[3], read.sigma if read else 0.0, read.floor if read else 0.0,
                       held[4], l00, l01, l10, l11, *d2d_constants, *pf_params], dtype=np.float64)
    params.setflags(write=False)
    return params, held


def sample(phases, shape, rng, read_rng=None, dtype=np.float64, draw_plan=None):
    """{phase name: draws} for a stage's ``phases`` ({phase name: nonideality}) and a crossbar of
    ``shape`` (m, n), the same as each phase's ``sample`` in turn (read noise from ``read_rng``
    when given; ``draw_plan``: :func:`plan` of the phases, if the caller keeps it); None when a phase or the Generator is not one this function
    takes (see the module docstring)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64) or not isinstance(rng, np.random.Generator):
        return None
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    if n == 0:
        return None
    if read_rng is not None and (not isinstance(read_rng, np.random.Generator)
                                 or read_rng.bit_generator is rng.bit_generator):
        return None
    bits = rng.bit_generator
    if type(bits) is not np.random.PCG64:
        records = _records(phases)
        if "stuck" in phases or records is None:
            return None
        return _draws(_counts(records, n, dtype, 0), None, bits.random_raw, shape, n, dtype, read_rng)
    if n < normal.PARALLEL_MIN:
        if draw_plan is None:
            draw_plan = plan(phases)
            if draw_plan is None:
                return None
        return _one_call(phases, draw_plan, bits, shape, n, dtype, read_rng)
    # PCG64: one read of the state (NumPy's held half word, memnp's PCG64 loop) and one write.
    records = _records(phases)
    if records is None:
        return None
    with bits.lock:
        state = bits.state
        counts = _counts(records, n, dtype, int(state["has_uint32"]))
        inner = state["state"]

        def words(count):
            out, inner["state"] = pcg64.words_from(inner["state"], inner["inc"], count)
            return out
        out = _draws(counts, state, words, shape, n, dtype, read_rng)
        bits.state = state
    return out


_EMPTY_WORDS = np.empty(0, np.uint64)
_MASK64 = (1 << 64) - 1
_TEMPLATES = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def _one_call(phases, draw_plan, bits, shape, n, dtype, read_rng, G=None, pf_loop=False):
    """:func:`_draws` in one kernel call (:func:`_all`), the words from memnp's PCG64 loop; one
    read and one write of the state. Given G (flat, contiguous, ``dtype``), also G'' and, with
    ``pf_loop``, the PF device parameters (:func:`_all_apply`): returns (draws, G'', c, d_eps)."""
    params, (d2d, drift, stuck, read, pf) = draw_plan
    separate = read_rng is not None and read
    half = (n + 1) // 2
    read_words = pcg64.raw_words(read_rng.bit_generator, half) if separate else _EMPTY_WORDS
    with bits.lock:
        state = bits.state
        f32_stuck = stuck and dtype == np.float32
        buffered, held = (int(state["has_uint32"]), int(state["uinteger"])) if f32_stuck else (0, 0)
        count = half * (d2d + drift + (read and not separate)) + n * pf
        if stuck:
            count += n if dtype == np.float64 else (n - buffered + 1) // 2
        inner = state["state"]
        s, inc = inner["state"], inner["inc"]
        words_state = np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64], np.uint64)
        if G is None:
            result = _all(words_state, count, read_words, _TEMPLATES[dtype], n, buffered, np.uint64(held), params)
        else:
            result = _all_apply(words_state, count, read_words, G, buffered, np.uint64(held), params, pf_loop)
        eps, f_drift, mask, values, f_read, residuals, held_after, s_hi, s_lo = result[:9]
        inner["state"] = (int(s_hi) << 64) | int(s_lo)
        if f32_stuck:
            # NumPy's half-word buffer as its float32 uniforms leave it
            state["has_uint32"] = (n - buffered) % 2
            state["uinteger"] = int(held_after)
        bits.state = state
    out = {}
    for name in phases:
        if name == "programming":
            out[name] = eps.reshape(shape)
        elif name == "drift":
            out[name] = f_drift.reshape(shape)
        elif name == "stuck":
            out[name] = (mask.reshape(shape), values.reshape(shape))
        elif name == "read_noise":
            out[name] = f_read.reshape(shape)
        elif name == "currents":
            out[name] = residuals.reshape((2,) + shape)
    if G is None:
        return out
    G_read, c, d_eps = result[9:]
    # the conductance phases' VJP arguments (memnp.kernels.conductance_chain.apply_vjp_with)
    p = params
    vjp_args = (eps, p[16], p[17], p[18], p[19], d2d, f_drift, drift, mask, stuck, f_read, read)
    return (out, G_read.reshape(shape), c.reshape(shape) if pf_loop else None,
            d_eps.reshape(shape) if pf_loop else None, vjp_args)


def sample_and_apply(phases, draw_plan, G, rng, read_rng=None):
    """(draws, G'' (G's shape and dtype, S), PF devices (c, d_eps) or None, the arguments of
    memnp.kernels.conductance_chain.apply_vjp_with) of a fresh read of the
    conductances G (m, n) in S: :func:`sample`, then memnp.kernels.conductance_chain.apply and
    (float32, the dtype whose PF parameters take their loop) the PF device parameters, in one
    kernel call, with the same numbers; None where :func:`sample`'s one-call path does not apply
    (the caller then runs the steps one by one)."""
    if draw_plan is None or not isinstance(rng, np.random.Generator) or type(rng.bit_generator) is not np.random.PCG64:
        return None
    dtype = G.dtype
    if dtype not in _TEMPLATES or type(G) is not np.ndarray or G.ndim != 2 or not G.flags.c_contiguous:
        return None
    n = G.size
    if n == 0 or n >= normal.PARALLEL_MIN:
        return None
    if read_rng is not None and (not isinstance(read_rng, np.random.Generator)
                                 or read_rng.bit_generator is rng.bit_generator):
        return None
    pf_loop = draw_plan[1][4] and dtype in pf_devices.FASTER["parameters"]
    draws, G_read, c, d_eps, vjp_args = _one_call(phases, draw_plan, rng.bit_generator, G.shape, n, dtype,
                                                  read_rng, G.reshape(-1), pf_loop)
    return draws, G_read, ((c, d_eps) if pf_loop else None), vjp_args


def _draws(counts, state, words_of, shape, n, dtype, read_rng):
    """The draws of the phases in ``counts`` ([(phase name, words, record)]) from one block of ``words_of(count)``; ``state``: the
    PCG64 state dict whose half-word buffer the float32 stuck uniforms use and update (or None)."""
    separate = read_rng is not None
    words = words_of(sum(c for name, c, _ in counts if not (separate and name == "read_noise")))
    out = {}
    start = 0
    for name, count, item in counts:
        if name == "read_noise" and separate:
            w = pcg64.raw_words(read_rng.bit_generator, count)
        else:
            w = words[start:start + count]
            start += count
        if name == "stuck" and dtype == np.float32:
            buffered, held = int(state["has_uint32"]), int(state["uinteger"])
            out[name] = _stuck(item, w, shape, dtype, buffered, held)
            # NumPy's half-word buffer as its float32 uniforms leave it
            state["has_uint32"] = (n - buffered) % 2
            state["uinteger"] = int(w[-1] >> _SHIFT32) if w.size else held
        else:
            out[name] = _draw(name, item, w, shape, n, dtype)
    return out


def _stuck(item, words, shape, dtype, buffered, held):
    mask = np.empty(shape, np.bool_)
    values = np.empty(shape, dtype)
    _stuck_f32(words, buffered, np.uint64(held), dtype.type(item.p), dtype.type(item.value),
               mask.reshape(-1), values.reshape(-1))
    return mask, values


def _draw(name, item, words, shape, n, dtype):
    """The draws of phase ``name`` from ``words``, with its record ``item`` (memnp.kernels.fused)."""
    if name == "programming":
        eps = np.empty(shape, dtype)
        (normal._parallel if n >= normal.PARALLEL_MIN else normal._serial)(words, eps.reshape(-1))
        return eps
    if name == "drift":
        f = np.empty(shape, dtype)
        drift_loops._factors(words, float(item.nu_mean), float(item.nu_std), float(item.log_ratio),
                             f.reshape(-1))
        return f
    if name == "stuck":     # float64 (float32: _stuck)
        mask = np.empty(shape, np.bool_)
        values = np.empty(shape, dtype)
        _stuck_f64(words, dtype.type(item.p), dtype.type(item.value), mask.reshape(-1), values.reshape(-1))
        return mask, values
    if name == "read_noise":
        f = np.empty(shape, dtype)
        read_loops._factors(words, float(item.sigma), float(item.floor), f.reshape(-1))
        return f
    residuals = np.empty((2,) + shape, dtype)
    (l00, l01), (l10, l11) = np.asarray(item.factor, dtype=np.float64)
    pf_devices._residuals(words, l00, l01, l10, l11, residuals[0].reshape(-1), residuals[1].reshape(-1))
    return residuals
