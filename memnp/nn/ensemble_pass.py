"""The stacked passes of :class:`memnp.nn.Ensemble`: a training step, predictions and evaluation
of K members with their stackable layers run once for all members (issue 15).

:func:`plan` says, per layer index, how a pass runs it: a
:class:`memnp.nn.ensemble_read.StackedCrossbar` (a double-weight MemristiveDense layer under a
PF-only stage: one K-axis kernel call per stair), a
:class:`memnp.nn.ensemble_member_read.MemberCrossbar` (the same layer under a stage with other
phases: K-axis mapping stairs, each member's own crossbar pass), "flatten" and "sigmoid" (on the stacked batch
(K, p, ...): a reshape, an elementwise function, so each member's values are its own) or "member"
(each member's own layer, one call per member). Activations travel as (K, p, ...) arrays.

Every function here gives, per member, exactly what the member's own Sequential method gives
(the same calls in the same order on the same values, or K-axis kernels that equal them bit for
bit on the cpu backend), and each member's draws come from its own Generator in its own order.
"""
import numpy as np
from scipy import special

from ..crossbar.nonidealities.iv import IVNonlinearityPF
from ..kernels import ensemble_steps, get_backend
from . import ensemble_mlp_step
from .ensemble_member_read import MemberCrossbar, member_readable
from .ensemble_read import StackedCrossbar, StackedLayer, StackedWeights, threads_for
from .layers import Flatten, ReLU, Sigmoid, Softmax
from .losses import _labels
from .memristive import MemristiveDense
from .optim import SGD, l1_gradient_

__all__ = ["plan", "train_step", "predict", "evaluate"]

#: Layers whose backward pass hands a stacked memristive layer below them a fresh C-contiguous
#: dL/dy (what the member's own read takes its one-pass kernel path with).
_STACKABLE_ABOVE = (Sigmoid, ReLU)


def plan(members, stages, weights):
    """Per layer index, how a pass under ``stages`` (one per member) runs it for the K members
    (see the module docstring); None when no layer can be stacked (the ensemble then loops over
    the members' own methods). ``weights``: {layer index: StackedWeights}, the stacked storage
    shared by every plan of one ensemble (entries are added here)."""
    first = members[0]
    backend = get_backend(first.backend)
    reads = backend.ensemble
    pf_only = all(_pf_only(s) is not None for s in stages)
    if reads is None or not first._fused or not (pf_only or all(member_readable(s) for s in stages)):
        return None
    layers = first.layers
    steps = []
    for i, layer in enumerate(layers):
        above = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is MemristiveDense and layer.weights == "double" and i >= first._first_trainable \
                and (isinstance(above, _STACKABLE_ABOVE) or (type(above) is Softmax and i + 1 == len(layers) - 1)):
            if i not in weights:
                weights[i] = StackedWeights(i, [model.layers[i] for model in members])
            steps.append(StackedCrossbar(weights[i], stages, reads) if pf_only
                         else MemberCrossbar(weights[i], stages, backend))
        elif type(layer) is Flatten:
            steps.append("flatten")
        elif type(layer) is Sigmoid:
            steps.append("sigmoid")
        else:
            steps.append("member")
    return steps if any(isinstance(step, StackedLayer) for step in steps) else None


def _pf_only(stage):
    """The stage's IVNonlinearityPF when it is the stage's only phase, else None."""
    if stage is None or list(stage.phases) != ["currents"] or type(stage.nonpreserving) is not IVNonlinearityPF:
        return None
    return stage.nonpreserving


def _prepare(members, steps, rngs, stages, draws="active", read_rngs=None):
    """Check what a stacked pass under ``stages`` needs of the members now; sync the stacked
    weights; the members' pass contexts."""
    dtype = members[0].dtype
    for k, (model, stage) in enumerate(zip(members, stages)):
        if model.dtype != dtype:
            raise ValueError(f"member {k} now has dtype {model.dtype} (member 0: {dtype}); an "
                             "ensemble needs one dtype")
        if stage is not None and stage.random and rngs[k] is None:
            raise ValueError(f"rngs[{k}] (member {k}) must be a numpy.random.Generator: the "
                             "member's stage has random nonidealities")
    for step in steps:
        if isinstance(step, StackedLayer):
            step.sync()
    if "member" not in steps:
        return [None] * len(members)      # only the member-by-member layers read a context
    read_rngs = read_rngs or [None] * len(members)
    return [model._context(rng, stage, draws, read_rng)
            for model, rng, stage, read_rng in zip(members, rngs, stages, read_rngs)]


def _forward(members, steps, X, rngs, ctxs, sigmoids, draws_all=False, read_rngs=None):
    """The logits (K, p, classes): every layer but the final Softmax (its outputs for
    Sigmoid layers kept in ``sigmoids`` by index)."""
    acts = X
    for i in range(len(members[0].layers) - 1):
        step = steps[i]
        if isinstance(step, StackedLayer):
            acts = step.forward(acts, rngs, draws_all, read_rngs)
        elif step == "flatten":
            for model, a in zip(members, acts):
                model.layers[i].forward(a)
            acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
        elif step == "sigmoid":
            acts = sigmoids[i] = special.expit(acts)
            for model, y in zip(members, acts):
                model.layers[i]._y = y
        else:
            acts = np.stack([model.layers[i].forward(a, ctx) for model, a, ctx in zip(members, acts, ctxs)])
    return acts


def _losses(logits, ys):
    """ensemble_steps.MemberLosses of logits (K, p, classes) and the members' labels (checked
    as Sequential checks them; a bad member is named)."""
    K, p, classes = logits.shape
    labels = np.asarray(ys)
    if labels.shape != (K, p) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= classes:
        for k, y in enumerate(ys):
            try:
                _labels(y, p, classes)
            except ValueError as exc:
                raise ValueError(f"ys[{k}] (member {k}): {exc}") from None
        labels = np.stack([np.asarray(y) for y in ys])
    with threads_for(logits.size):
        return ensemble_steps.softmax_cross_entropy(np.ascontiguousarray(logits), labels)


def train_step(members, steps, X, ys, rngs):
    """(losses (K,), accuracies (K,)) of one optimiser step of every member under its own stage:
    X (K, p, ...) in the members' dtype, ys K label arrays, rngs K Generators. The paper's
    PF-aware MLP takes its one-call step (:mod:`memnp.nn.ensemble_mlp_step`) where that is faster."""
    done = ensemble_mlp_step.train_step(members, steps, X, ys, rngs)
    if done is not None:
        return done
    ctxs = _prepare(members, steps, rngs, [model.stage for model in members])
    sigmoids = {}
    loss = _losses(_forward(members, steps, X, rngs, ctxs, sigmoids), ys)
    p = X.shape[1]
    grad = loss.grad
    grad_D = {}
    start = members[0]._first_trainable
    for i in range(len(members[0].layers) - 2, start - 1, -1):
        step, need_dx = steps[i], i > start
        if isinstance(step, StackedLayer):
            grad, grad_D[i] = step.backward(grad, need_dx)
        elif step == "sigmoid":
            y = sigmoids[i]
            grad = grad * y * (1 - y) if need_dx else None
        else:
            grads = [model.layers[i].backward(g, need_dx=need_dx) for model, g in zip(members, grad)]
            grad = np.stack(grads) if need_dx else None
    for model in members:
        if model.l1:        # the member's L1 gradient on its layers that ran alone
            for i, layer in enumerate(model.layers):
                if getattr(layer, "memristive", False) and i not in grad_D:
                    for _, theta, g, _ in layer.update_groups():
                        l1_gradient_(theta, g, model.l1)
    gammas = np.array([model.l1 for model in members])
    if gammas.any():
        for i, g in grad_D.items():
            with threads_for(g.size):
                ensemble_steps.l1_gradient(steps[i].D, g, gammas)
    losses = np.array([float(loss.loss[k]) + model.l1_penalty() for k, model in enumerate(members)])
    plain_sgd = all(type(model.optimizer) is SGD and not model.optimizer.momentum for model in members)
    lrs = np.array([model.optimizer.lr for model in members]) if plain_sgd else None
    for i, g in grad_D.items():
        if plain_sgd:
            with threads_for(g.size):
                ensemble_steps.sgd_step(steps[i].D, g, lrs, non_negative=True)
        else:
            for k, model in enumerate(members):
                model.optimizer.step([(f"layer{i}.D", steps[i].slices[k], g[k], True)])
    alone = [i for i, layer in enumerate(members[0].layers) if layer.params and i not in grad_D]
    if alone:
        for model in members:
            model.optimizer.step((f"layer{i}.{name}", theta, g, non_negative) for i in alone
                                 for name, theta, g, non_negative in model.layers[i].update_groups())
    return losses, loss.hits / p


def predict(members, steps, X, rngs, batch_size, stages, draws="active"):
    """Outputs (K, n, classes) of the members for X (K, n, ...) under ``stages``, batch by batch
    (None: one)."""
    ctxs = _prepare(members, steps, rngs, stages, draws)
    n = X.shape[1]
    size = n if batch_size is None else batch_size
    out = []
    for i in range(0, n, size):
        logits = _forward(members, steps, X[:, i:i + size], rngs, ctxs, {}, draws == "all")
        out.append(np.stack([model.layers[-1].forward(z, ctx) for model, z, ctx in zip(members, logits, ctxs)]))
    return out[0] if len(out) == 1 else np.concatenate(out, axis=1)


def evaluate(members, steps, X, ys, rngs, batch_size, power, stages, draws="active", read_rngs=None):
    """Sequential.evaluate of every member under ``stages``: {"loss" (K,), "accuracy" (K,),
    "power" (K,) or None}. The stacked layers' PF-only stages make no read draws, so
    ``read_rngs`` only reach the layers that run member by member."""
    K = len(members)
    ctxs = _prepare(members, steps, rngs, stages, draws, read_rngs)
    n = X.shape[1]
    labels = np.stack([np.asarray(y) for y in ys]) if len({np.shape(y) for y in ys}) == 1 else None
    losses, hits = [0.0] * K, [0.0] * K
    powers = [[] for _ in range(K)]
    memristive = [i for i, layer in enumerate(members[0].layers) if getattr(layer, "memristive", False)]
    for i in range(0, n, batch_size):
        xb = X[:, i:i + batch_size]
        yb = labels[:, i:i + batch_size] if labels is not None else [y[i:i + batch_size] for y in ys]
        result = _losses(_forward(members, steps, xb, rngs, ctxs, {}, draws == "all", read_rngs), yb)
        p = xb.shape[1]
        for k in range(K):
            losses[k] += float(result.loss[k]) * p
            hits[k] += int(result.hits[k]) / p * p
        if power:
            layer_powers = [steps[j].powers() if isinstance(steps[j], StackedLayer)
                            else [model.layers[j].power() for model in members] for j in memristive]
            for k in range(K):
                powers[k].append(float(sum(float(per[k]) for per in layer_powers)))
    return {"loss": np.array([losses[k] / n + model.l1_penalty() for k, model in enumerate(members)]),
            "accuracy": np.array([hits[k] / n for k in range(K)]),
            "power": np.array([float(np.mean(pw)) for pw in powers]) if power else None}
