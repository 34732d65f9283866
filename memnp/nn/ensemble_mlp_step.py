"""The one-call training step of an :class:`memnp.nn.Ensemble` of PF-aware MLPs (issue 15).

When a stacked plan (:func:`memnp.nn.ensemble_pass.plan`) is [Flatten,] memristive layer,
Sigmoid, memristive layer, Softmax in float32, every member trains with plain SGD and draws from a
PCG64 Generator, and the layers are either two :class:`memnp.nn.ensemble_read.StackedCrossbar`
with fused kernels (a PF-only stage: the paper's PF-aware MNIST network,
:mod:`memnp.kernels.ensemble_mlp_step`) or two
:class:`memnp.nn.ensemble_member_read.MemberCrossbar` whose reads take the combined stage's
one-call chip path (:mod:`memnp.kernels.ensemble_chip_step`), :func:`train_step` runs the whole
step in one kernel call: each thread takes whole members from inputs to new weights. The
numbers are the layered path's (:func:`memnp.nn.ensemble_pass.train_step`), which are the
members' own; a step the kernel cannot finish as the layered path would (bad weights,
inputs or gradients, a clipping ADC) writes nothing and returns None, so the caller runs the
layered path, which raises the error naming the member (or runs that member's own pass).

It is used where it is the faster schedule: with two or more members (whole members per thread),
or one member whose layer calls would run on one thread anyway.
"""
import weakref
from dataclasses import dataclass

import numba
import numpy as np

from ..crossbar import tiling
from ..kernels import ensemble_chip_step, ensemble_fused, ensemble_mlp_step, normal, sparse
from ..kernels.cpu_auto import serial_below
from . import ensemble_chip_read
from .ensemble_member_read import MemberCrossbar
from .ensemble_read import StackedCrossbar, StackedLayer
from .layers import Sigmoid, Softmax
from .optim import SGD

__all__ = ["MLPStep", "mlp_step", "applies", "train_step"]

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, eq=False)
class MLPStep:
    """The layer indices and the per-member constants of a one-call step: ``first`` and
    ``second`` the two PF layers' indices, ``sigmoid`` the Sigmoid's, ``flatten`` the Flatten's
    or None; factors (2, K, 2, 2), slopes and intercepts (2, K, 2) float64 (per layer, per
    member); min_fraction (2,) float64 and nn (2,) int64 per layer."""

    first: int
    sigmoid: int
    second: int
    flatten: object
    factors: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    min_fraction: np.ndarray
    nn: np.ndarray
    #: Under a combined stage read through memnp.kernels.ensemble_chip: a :class:`ChipConstants`.
    chip: object = None


@dataclass(frozen=True, eq=False)
class ChipConstants:
    """What the combined stage's one-call step takes of the members' stages
    (memnp.kernels.ensemble_chip_step): params (K, 24), held_flags (5,), dac (bool), dac_consts
    (K, 3), levels (K,), and per layer the rows of arrays' first rows ``starts`` (T + 1,) and
    their ADC constants ``adc`` (3, K, T) (scale, step, top)."""

    params: np.ndarray
    held_flags: np.ndarray
    dac: bool
    dac_consts: np.ndarray
    levels: np.ndarray
    starts: tuple
    adc: tuple


def _chip_constants(stages, layers_m):
    """:class:`ChipConstants` of stages whose reads take the one-call chip path (float32), or None."""
    held = ensemble_chip_read.eligible_stages(stages, np.float32)
    if held is None:
        return None
    t = np.float32
    starts, adc, levels = [], [], None
    for m in layers_m:
        layer_starts, per_member = None, []
        for stage in stages:
            bounds, first_rows = tiling._row_bounds(stage.phases.get("tiles"), m)
            if layer_starts is not None and not np.array_equal(layer_starts, first_rows):
                return None
            layer_starts = first_rows
            per_member.append(tiling._adc_constants(stage, stage.phases["adc"], tuple(b - a for a, b in bounds), t))
        starts.append(np.array(layer_starts, np.int64))
        adc.append(np.ascontiguousarray(np.array([[c[i] for c in per_member] for i in range(3)], t)))
        levels = np.array([c[3] for c in per_member], t)
    return ChipConstants(ensemble_chip_read.draw_params(stages).astype(np.float64), np.array(held, np.bool_),
                         "dac" in stages[0].phases, ensemble_chip_read.dac_constants(stages, t), levels, tuple(starts),
                         tuple(adc))


_plans = weakref.WeakKeyDictionary()      # the first StackedCrossbar -> (its plan list, MLPStep)


def mlp_step(members, steps):
    """The :class:`MLPStep` of a stacked plan, or None when the plan is not the one-call step's
    network (see the module docstring)."""
    first = members[0]
    stacked = [i for i, step in enumerate(steps) if isinstance(step, StackedLayer)]
    if len(stacked) != 2 or first.dtype != np.float32:
        return None
    cached = _plans.get(steps[stacked[0]])
    if cached is not None and cached[0] is steps:
        return cached[1]
    i1, i2 = stacked
    layers = first.layers
    flatten = 0 if steps[0] == "flatten" else None
    shape_ok = (i1 == (1 if flatten == 0 else 0) and i2 == i1 + 2 and steps[i1 + 1] == "sigmoid"
                and type(layers[i1 + 1]) is Sigmoid and len(layers) == i2 + 2 and type(layers[-1]) is Softmax
                and first._first_trainable == i1)
    if not shape_ok or any(layer.params for i, layer in enumerate(layers) if i not in (i1, i2)):
        return None
    sc1, sc2 = steps[i1], steps[i2]
    chip = None
    if type(sc1) is StackedCrossbar and type(sc2) is StackedCrossbar:
        if sc1.fused is None or sc2.fused is None:
            return None
    elif type(sc1) is MemberCrossbar and type(sc2) is MemberCrossbar:
        if sc1.chip is None:
            return None
    else:
        return None
    sc1.sync()
    sc2.sync()
    (m1, n1), (m2, n2) = sc1.D.shape[1:], sc2.D.shape[1:]
    if type(sc1) is MemberCrossbar:
        if max(m1 * n1, m2 * n2) >= normal.PARALLEL_MIN:
            return None       # the chip read would draw in parallel (ensemble_chip_read.forward)
        chip = _chip_constants(sc1.stages, (m1, m2))
        if chip is None:
            return None
        factors = np.zeros((2, len(members), 2, 2))      # PF's numbers are in chip.params
        slopes = intercepts = np.zeros((2, len(members), 2))
    else:
        factors = np.stack([sc1.factors, sc2.factors])
        slopes = np.stack([sc1.slopes, sc2.slopes])
        intercepts = np.stack([sc1.intercepts, sc2.intercepts])
    found = MLPStep(i1, i1 + 1, i2, flatten, factors, slopes, intercepts,
                    np.array([sparse.min_zeros(n1), sparse.min_zeros(n2)], np.float64),
                    np.array([sparse._padded_width(n1), sparse._padded_width(n2)], np.int64), chip)
    _plans[sc1] = (steps, found)
    return found


def _schedule(K, p, D):
    """True: whole members on Numba's threads; False: the calling thread; None: the layered path,
    for one member whose layer calls would be split over the threads.

    Two or more members always take the one call. With fewer members than threads some threads
    idle, but the layered path is not expected to do better there: it splits each member's small
    calls over all the threads and wakes them about a dozen times per step, and one network's
    epoch was no faster on 16 threads than on 2 (unmeasured for K < threads: bench/gpu_check.sh
    times K = 5 on a GPU box's 16 cores). A parallel region is used from a third of
    :func:`memnp.kernels.cpu_auto.serial_below` device evaluations, as whole-member fused calls."""
    threads = numba.get_num_threads()
    if threads == 1:
        return False
    evaluations = K * p * D.shape[1] * D.shape[2]      # layer 1's, every row read
    if K >= 2:
        return 3 * evaluations >= serial_below()       # too little work: the calling thread
    if not ensemble_fused.parallel(evaluations, 1):
        return False
    return None


def applies(members, steps, p):
    """Whether steps of p examples per member take the one-call step (when their data, weights and
    gradients are valid and every member draws from a PCG64 Generator)."""
    plan = mlp_step(members, steps) if steps is not None else None
    return (plan is not None and _schedule(len(members), p, steps[plan.first].D) is not None
            and all(model.dtype == np.float32 and type(model.optimizer) is SGD and not model.optimizer.momentum
                    for model in members))


def train_step(members, steps, X, ys, rngs):
    """(losses (K,), accuracies (K,)) of one step of every member in one kernel call, or None when
    this step is not the one-call step's (the caller then runs the layered path). X (K, p, ...)
    in float32, ys K label arrays, rngs K Generators."""
    plan = mlp_step(members, steps)
    if plan is None:
        return None
    K, p = X.shape[0], X.shape[1]
    sc1, sc2 = steps[plan.first], steps[plan.second]
    parallel = _schedule(K, p, sc1.D)
    if parallel is None or any(model.dtype != np.float32 for model in members):
        return None
    optimizers = [model.optimizer for model in members]
    if not all(type(o) is SGD and not o.momentum for o in optimizers):
        return None
    if any(rng is None or type(rng.bit_generator) is not np.random.PCG64 for rng in rngs):
        return None
    labels = np.asarray(ys)
    classes = sc2.D.shape[2] // 2
    if labels.shape != (K, p) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= classes:
        return None
    x = X.reshape(K, p, -1)
    if x.dtype != np.float32 or not x.flags.c_contiguous or x.shape[2] + 1 != sc1.D.shape[1]:
        return None
    sc1.sync()
    sc2.sync()
    penalties = [model.l1_penalty() for model in members]      # before the step, as the layered path
    gamma = np.array([model.l1 for model in members], np.float64)
    lr = np.array([o.lr for o in optimizers], np.float64)
    held = []
    try:
        states = np.empty((K, 4), np.uint64)
        hw = np.zeros((K, 2), np.uint64)
        for k, rng in enumerate(rngs):
            bits = rng.bit_generator
            bits.lock.acquire()
            state = bits.state
            held.append((bits, state))
            s, inc = state["state"]["state"], state["state"]["inc"]
            states[k] = (s >> 64, s & _MASK64, inc >> 64, inc & _MASK64)
            hw[k] = (int(state["has_uint32"]), int(state["uinteger"]))
        labels = np.ascontiguousarray(labels, np.int64)
        chip = plan.chip
        if chip is None:
            loss, hits, status, hidden = ensemble_mlp_step.train_step(
                x, labels, sc1.D, sc2.D, sc1.k_V, sc1.G_off, sc1.G_on, plan.factors, plan.slopes, plan.intercepts,
                states, gamma, lr, plan.min_fraction, sparse.MIN_DEVICES, plan.nn, parallel)
        else:
            loss, hits, status, hidden = ensemble_chip_step.train_step(
                x, labels, sc1.D, sc2.D, sc1.k_V, sc1.G_off, sc1.G_on, chip.params, chip.held_flags, chip.dac,
                chip.dac_consts, chip.levels, chip.starts[0], chip.starts[1], chip.adc[0], chip.adc[1], states, hw,
                gamma, lr, plan.min_fraction, sparse.MIN_DEVICES, plan.nn, parallel)
        if status.any():
            return None
        for (bits, state), (hi, lo), (has, word) in zip(held, states[:, :2], hw):
            state["state"]["state"] = (int(hi) << 64) | int(lo)
            if chip is not None and chip.held_flags[2]:      # the stuck draws' half-word buffer
                state["has_uint32"], state["uinteger"] = int(has), int(word)
            bits.state = state
    finally:
        for bits, _ in held:
            bits.lock.release()
    for k, model in enumerate(members):      # the layer caches the layered path leaves
        if plan.flatten is not None:
            model.layers[plan.flatten].forward(X[k])
        model.layers[plan.first]._last = None
        model.layers[plan.second]._last = None
        model.layers[plan.sigmoid]._y = hidden[k]
    sc1._state = sc2._state = None
    return loss + np.array(penalties, np.float64), hits / p
