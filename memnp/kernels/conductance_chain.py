"""The conductance phases of a combined stage in one Numba pass, and their VJP in one pass.

A stage of the pipeline (memnp.crossbar.pipeline) turns the programmed conductances G into the
read ones through up to four phases, in this order:

    programming  fused.D2D:       G1 = G exp(sigma (sigma / 2 - eps))    (memnp.kernels.d2d_devices)
    drift        fused.Drift:     G2 = G1 f_drift,  f_drift = (t / t0) ** -nu
    stuck        fused.Stuck:     G3 = values where mask, else G2
    read_noise   fused.ReadNoise: G'' = G3 f_read

(the records a phase's nonideality returns from ``fused()``, :mod:`memnp.kernels.fused`)

and the backward pass runs them in reverse (stuck devices get exact zeros). Phase by phase this
is one NumPy or Numba pass per phase and per direction (and two for the stuck devices);
:func:`apply` and :func:`apply_vjp` do the phases a stage holds in one loop over the devices,
with the same operations in the same order and precision, so the results are bit for bit those
of the phases' own ``apply`` / ``apply_vjp`` (tested). :func:`apply_numpy` and
:func:`apply_vjp_numpy` are the plain NumPy references (the phases' NumPy methods in turn).

Arrays: G, the draws and the gradients (m, n) (any shape, C-contiguous, one float dtype; the
stuck mask bool). Draws by phase name as in :class:`memnp.crossbar.pipeline.Draws`: eps (D2D),
the drift factors, (mask, values) and the read-noise factors.
"""
import functools

import numpy as np
from numba import njit

from . import fused as fused_params
from .d2d_devices import _sigma
from .fastexp import fast_exp, wide_vectors

#: The D2D loop's flags (memnp.kernels.d2d_devices): the same contractions, so the same bits.
_FASTMATH = {"nsz", "contract"}
#: The phases :func:`apply` takes, in order (each nonideality says through its ``fused()`` record,
#: memnp.kernels.fused, whether this loop runs it).
PHASES = fused_params.CONDUCTANCE_SLOTS


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _apply(G, eps, r_on, r_off, slope, s_on, d2d, f_drift, drift, mask, values, stuck, f_read, read,
           out):
    wide_vectors()
    t = G.dtype.type
    r_on, r_off, k, s0, half, one = t(r_on), t(r_off), t(slope), t(s_on), t(0.5), t(1.0)
    for q in range(np.uint64(G.size)):
        g = G[q]
        if d2d:
            R = one / g
            sigma = _sigma(R, r_on, r_off, k, s0)
            g = g * fast_exp(sigma * (half * sigma - eps[q]))
        if drift:
            g = g * f_drift[q]
        if stuck:
            g = values[q] if mask[q] else g
        if read:
            g = g * f_read[q]
        out[q] = g


@njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _apply_vjp(G, eps, r_on, r_off, slope, s_on, d2d, f_drift, drift, mask, stuck, f_read, read,
               grad, out):
    wide_vectors()
    t = G.dtype.type
    r_on, r_off, k, s0, half, one, zero = (t(r_on), t(r_off), t(slope), t(s_on), t(0.5), t(1.0),
                                           t(0.0))
    for q in range(np.uint64(G.size)):
        g = grad[q]
        if read:
            g = g * f_read[q]
        if stuck:
            g = zero if mask[q] else g
        if drift:
            g = g * f_drift[q]
        if d2d:
            R = one / G[q]
            sigma = _sigma(R, r_on, r_off, k, s0)
            d_sigma = k if (R >= r_on) & (R <= r_off) else zero
            factor = fast_exp(sigma * (half * sigma - eps[q]))
            g = g * factor * (one - (sigma - eps[q]) * d_sigma * R)
        out[q] = g


def fusable(phases):
    """True when ``phases`` ({phase name: nonideality}, a stage's) has at least two conductance
    phases and every one of them returns this loop's record from ``fused()``
    (:mod:`memnp.kernels.fused`)."""
    held = [name for name in PHASES if name in phases]
    if len(held) < 2:
        return False
    return all(fused_params.params(phases[name], name) is not None for name in held)


@functools.lru_cache(maxsize=64)
def _d2d_constants(d2d):
    """(r_on, r_off, slope, s_on) of a D2D phase's record (memnp.kernels.fused.D2D): read once
    per (frozen, hashable) nonideality."""
    record = fused_params.params(d2d, "programming")
    return record.r_on, record.r_off, record.slope, record.s_on


#: Placeholders for the phases a stage does not hold, by dtype.
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}
_NO_MASK = np.empty(0, np.bool_)


def _fits(a, dtype, shape):
    return type(a) is np.ndarray and a.dtype == dtype and a.shape == shape and a.flags.c_contiguous


def _flat(draws, name, dtype, shape):
    """The draw ``name`` flattened, or None when it is not of G's dtype, shape and layout (the plain
    dict lookup: Draws also answers integer keys)."""
    a = dict.get(draws, name)
    return a.reshape(-1) if _fits(a, dtype, shape) else None


def _parts(phases, G, draws, grad=None):
    """The kernels' arguments, or None when an array is not of G's dtype, shape and layout."""
    dtype, shape = G.dtype, G.shape
    empty = _EMPTY.get(dtype)
    if empty is None or not G.flags.c_contiguous or (grad is not None and not _fits(grad, dtype, shape)):
        return None
    d2d = phases.get("programming")
    eps = f_drift = f_read = values = empty
    mask = _NO_MASK
    if d2d is not None:
        eps = _flat(draws, "programming", dtype, shape)
        if eps is None:
            return None
    has_drift = "drift" in phases
    if has_drift:
        f_drift = _flat(draws, "drift", dtype, shape)
        if f_drift is None:
            return None
    has_stuck = "stuck" in phases
    if has_stuck:
        mask, values = dict.get(draws, "stuck")
        if not (_fits(values, dtype, shape) and _fits(mask, np.bool_, shape)):
            return None
        mask, values = mask.reshape(-1), values.reshape(-1)
    has_read = "read_noise" in phases
    if has_read:
        f_read = _flat(draws, "read_noise", dtype, shape)
        if f_read is None:
            return None
    constants = _d2d_constants(d2d) if d2d is not None else (1.0, 1.0, 0.0, 0.0)
    return (eps, *constants, d2d is not None, f_drift, has_drift, mask, values, has_stuck, f_read, has_read)


def apply(phases, G, draws):
    """G'' (shape and dtype of G, S) after the conductance phases of ``phases`` (a stage's
    {phase name: nonideality}, :func:`fusable`), with their ``draws``; None when the arrays are
    not all C-contiguous of G's float dtype and shape (the caller then runs the phases one by one)."""
    parts = _parts(phases, G, draws)
    if parts is None:
        return None
    out = np.empty_like(G)
    _apply(G.reshape(-1), *parts, out.reshape(-1))
    return out


def apply_vjp(phases, G, draws, grad):
    """dL/dG (shape and dtype of G) from dL/dG'' (``grad``), with the draws of the forward pass;
    None when the arrays do not fit (see :func:`apply`)."""
    parts = _parts(phases, G, draws, grad)
    if parts is None:
        return None
    parts = parts[:9] + parts[10:]            # the backward pass needs no stuck values
    out = np.empty_like(G)
    _apply_vjp(G.reshape(-1), *parts, grad.reshape(-1), out.reshape(-1))
    return out


def _numpy_steps(phases):
    steps = []
    for name in PHASES:
        item = phases.get(name)
        if item is not None:
            steps.append((name, item))
    return steps


def _numpy(item):
    """The NumPy forms of a phase's disturbance and its VJP (``disturb_numpy`` where the class
    has one beside its loop, else ``disturb``)."""
    return (getattr(item, "disturb_numpy", item.disturb),
            getattr(item, "disturb_vjp_numpy", item.disturb_vjp))


def apply_numpy(phases, G, draws):
    """:func:`apply` as the phases' NumPy methods in turn (the reference)."""
    for name, item in _numpy_steps(phases):
        G = _numpy(item)[0](G, draws[name])
    return G


def apply_vjp_numpy(phases, G, draws, grad):
    """:func:`apply_vjp` as the phases' NumPy VJPs in reverse order (the reference)."""
    inputs = []
    for name, item in _numpy_steps(phases):
        inputs.append((name, item, G))
        G = _numpy(item)[0](G, draws[name])
    for name, item, G_in in reversed(inputs):
        grad = _numpy(item)[1](G_in, draws[name], grad)
    return grad


def apply_vjp_with(args, G, grad):
    """:func:`apply_vjp` with the kernel's arguments of the forward pass (``args``, as
    memnp.kernels.stage_draws.sample_and_apply returns them, flat arrays it made); None when grad
    is not C-contiguous of G's dtype and shape."""
    if not _fits(grad, G.dtype, G.shape):
        return None
    out = np.empty_like(G)
    _apply_vjp(G.reshape(-1), *args, grad.reshape(-1), out.reshape(-1))
    return out
