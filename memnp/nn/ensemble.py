"""An ensemble of K independent trainings of one architecture (issue 15).

``Ensemble(models)`` takes K :class:`memnp.nn.Sequential` models of the same architecture (layer
configs and input shape), dtype, backend and stage structure (the same phases, each held by the
same nonideality class, and the same mapping rule). Every number may differ between members:
device ranges, PF parameters, sigmas, stuck probabilities, learning rate, L1, the Generator and
the data order. Batches carry a leading member axis: xs (K, p, ...) (or a list of K batches of
p examples each), ys (K, p), rngs a list of K Generators.

The rule: after any number of steps, member k's weights, losses, accuracies and Generator state
equal, bit for bit on the cpu backend, what ``models[k].train_step(xs[k], ys[k], rngs[k])`` gives
alone. The members stay the K Sequential objects and hold their own weights, so
``ensemble.members[k].save(path)`` writes member k's model file.

Speed (cpu backend): a training step runs each double-weight ``MemristiveDense`` layer under a
PF-only stage (the paper's PF-aware training, bench/epoch.py case c) for all members in one
kernel call per stair (:class:`memnp.nn.ensemble_read.StackedCrossbar`: ragged active rows per
member, both cores busy for K >= 2), and the softmax loss, L1 gradient and SGD step of those
layers in one call each; those members keep their double weights in one stacked array (their
params are views of it). Each member's draws still come from its own Generator, in the order it
draws them alone. The following loop over members (the same numbers, one call per member):
digital layers (Flatten, Sigmoid, ReLU, convolutions, pooling), memristive layers with standard
weights, a memristive layer followed by anything but Sigmoid, ReLU or the final Softmax, every
stage with phases besides PF currents (the combined stage's fused draw and conductance chain,
DAC, the tiled read with ADCs, line resistance: a whole member's layer per call), optimisers other
than plain SGD, models not ending in Softmax, other backends, and ``predict`` and ``evaluate``.
After an ensemble step a member's ``grads`` and ``power()`` are not those of the step (ask the
ensemble's ``evaluate(power=True)`` or the member's own pass).
"""
import numpy as np

from ..crossbar.nonidealities.iv import IVNonlinearityPF
from ..kernels import ensemble_steps, get_backend
from .ensemble_read import StackedCrossbar, threads_for
from .layers import Flatten, ReLU, Sigmoid, Softmax
from .losses import _labels
from .memristive import MemristiveDense
from .model import DRAWS, Sequential, _batch
from .optim import SGD, l1_gradient_

__all__ = ["Ensemble"]


class Ensemble:
    """K Sequential models of one architecture trained and evaluated together.

    models: a non-empty sequence of :class:`Sequential` (see the module docstring for what must
    agree); ValueError naming the first member that differs from member 0 and what differs.
    """

    def __init__(self, models):
        if isinstance(models, Sequential):
            raise ValueError("models must be a sequence of Sequential models (one per member), "
                             "not a single Sequential")
        try:
            models = list(models)
        except TypeError:
            raise ValueError(f"models must be a sequence of Sequential models; got "
                             f"{type(models).__name__}") from None
        if not models:
            raise ValueError("models must hold at least one Sequential model (K >= 1); got K = 0")
        for k, model in enumerate(models):
            if not isinstance(model, Sequential):
                raise ValueError(f"member {k} must be a memnp.nn.Sequential; got {type(model).__name__}")
        seen = {}
        for k, model in enumerate(models):
            if id(model) in seen:
                raise ValueError(f"member {k} is the same Sequential object as member {seen[id(model)]}; "
                                 "every member must be its own model")
            seen[id(model)] = k
        first = models[0]
        reference = _structure(first)
        for k, model in enumerate(models[1:], start=1):
            ours = _structure(model)
            for what in ("architecture", "input shape", "dtype", "backend", "stage"):
                theirs, own = reference[what], ours[what]
                if own == theirs:
                    continue
                if what == "architecture":
                    if len(own) != len(theirs):
                        what, own, theirs = "number of layers", len(own), len(theirs)
                    else:
                        i = next(i for i, (a, b) in enumerate(zip(own, theirs)) if a != b)
                        what, own, theirs = f"layer {i}", own[i], theirs[i]
                raise ValueError(f"member {k} differs from member 0 in its {what}: "
                                 f"{_describe(what, own)} (member 0: {_describe(what, theirs)}); an "
                                 "ensemble needs one architecture, dtype, backend and phase structure")
        self._members = tuple(models)
        self._plan = _plan(self._members)

    # -- structure ------------------------------------------------------------------------------
    @property
    def members(self):
        """The K :class:`Sequential` models, in order (they hold the trained weights)."""
        return self._members

    @property
    def stacked_layers(self):
        """Indices of the layers a training step runs for all members in one kernel call per
        stair (empty: the step loops over the members' own train_step)."""
        if self._plan is None:
            return ()
        return tuple(i for i, step in enumerate(self._plan) if isinstance(step, StackedCrossbar))

    def __len__(self):
        return len(self._members)

    @property
    def dtype(self):
        return self._members[0].dtype

    # -- inputs ---------------------------------------------------------------------------------
    def _batches(self, name, xs, labels=False):
        """xs as a list of K arrays with one example count p (ValueError naming the member)."""
        K = len(self._members)
        if isinstance(xs, np.ndarray):
            if xs.ndim < (1 if labels else 2):
                raise ValueError(f"{name} must have shape (K, p{'' if labels else ', ...'}) with K = {K} "
                                 f"members; got {xs.shape}")
            items = list(xs)
        else:
            try:
                items = list(xs)
            except TypeError:
                raise ValueError(f"{name} must be an array (K, p, ...) or a list of K = {K} batches; "
                                 f"got {type(xs).__name__}") from None
        if len(items) != K:
            raise ValueError(f"{name} must hold one batch per member (K = {K}); got {len(items)}")
        items = [np.asarray(item) for item in items]
        for k, item in enumerate(items):
            if item.ndim == 0:
                raise ValueError(f"{name}[{k}] (member {k}) must be a batch of examples; got a scalar")
        p = len(items[0])
        for k, item in enumerate(items):
            if len(item) != p:
                raise ValueError(f"{name}[{k}] (member {k}) holds {len(item)} examples but member 0's "
                                 f"holds {p}: every member's batch must have the same size")
        return items

    def _pairs(self, xs, ys):
        xs, ys = self._batches("xs", xs), self._batches("ys", ys, labels=True)
        if len(xs[0]) != len(ys[0]):
            raise ValueError(f"ys must hold one label per example of xs: member 0 has {len(xs[0])} "
                             f"examples and {len(ys[0])} labels")
        return xs, ys

    def _per_member(self, name, values, kind):
        """A list of K values: None -> K Nones; otherwise a sequence of length K."""
        K = len(self._members)
        if values is None:
            return [None] * K
        if isinstance(values, (np.random.Generator, str, bytes)) or not hasattr(values, "__len__"):
            raise ValueError(f"{name} must be a list of K = {K} {kind} (one per member); got "
                             f"{type(values).__name__}")
        values = list(values)
        if len(values) != K:
            raise ValueError(f"{name} must hold one {kind[:-1] if kind.endswith('s') else kind} per "
                             f"member (K = {K}); got {len(values)}")
        return values

    def _rngs(self, rngs, name="rngs"):
        rngs = self._per_member(name, rngs, "Generators")
        for k, rng in enumerate(rngs):
            if rng is not None and not isinstance(rng, np.random.Generator):
                raise ValueError(f"{name}[{k}] (member {k}) must be None or a numpy.random.Generator; "
                                 f"got {type(rng).__name__}")
        seen = {}
        for k, rng in enumerate(rngs):
            if rng is not None:
                if id(rng) in seen:
                    raise ValueError(f"{name}[{k}] (member {k}) is the same Generator as member "
                                     f"{seen[id(rng)]}'s: each member needs its own")
                seen[id(rng)] = k
        return rngs

    def _stages(self, stages):
        stages = self._per_member("stages", stages, "Stages")
        return [s if s is not None else m.stage for s, m in zip(stages, self._members)]

    # -- passes ---------------------------------------------------------------------------------
    def train_step(self, xs, ys, rngs=None):
        """One optimiser step of every member on its own batch: xs (K, p, ...) or K batches of p
        examples, ys (K, p) integer labels, rngs K Generators (None: the stages draw nothing).
        Returns (losses (K,), accuracies (K,)) float64, each member's loss including its L1
        penalty and its accuracy before the step."""
        xs, ys = self._pairs(xs, ys)
        rngs = self._rngs(rngs)
        if self._plan is not None:
            return self._stacked_step(xs, ys, rngs)
        K = len(self._members)
        losses, accuracies = np.empty(K), np.empty(K)
        for k, model in enumerate(self._members):
            losses[k], accuracies[k] = model.train_step(xs[k], ys[k], rngs[k])
        return losses, accuracies

    def _stacked_step(self, xs, ys, rngs):
        """:meth:`train_step` with the stacked layers of ``self._plan`` (see the module docstring)."""
        members, plan = self._members, self._plan
        K = len(members)
        dtype = self.dtype
        for k, model in enumerate(members):
            if model.dtype != dtype:
                raise ValueError(f"member {k} now has dtype {model.dtype} (member 0: {dtype}); an "
                                 "ensemble needs one dtype")
            if model.stage is not None and model.stage.random and rngs[k] is None:
                raise ValueError(f"rngs[{k}] (member {k}) must be a numpy.random.Generator: the "
                                 "member's stage has random nonidealities")
        stacked = [step for step in plan if isinstance(step, StackedCrossbar)]
        for step in stacked:
            step.sync()
        X = np.stack([model._inputs(x) for model, x in zip(members, xs)])
        ctxs = [model._context(rng, None) for model, rng in zip(members, rngs)]
        first = members[0]
        last = len(first.layers) - 1             # the Softmax: its input, the logits, feeds the loss
        acts = X
        for i in range(last):
            step = plan[i]
            if isinstance(step, StackedCrossbar):
                acts = step.forward(acts, rngs)
            elif step == "flatten":
                for model, a in zip(members, acts):
                    model.layers[i].forward(a)
                acts = acts.reshape(K, acts.shape[1], -1)
            else:
                acts = np.stack([model.layers[i].forward(a, ctx) for model, a, ctx in zip(members, acts, ctxs)])
        p, classes = acts.shape[1], acts.shape[2]
        labels = []
        for k, y in enumerate(ys):
            try:
                labels.append(_labels(y, p, classes))
            except ValueError as exc:
                raise ValueError(f"ys[{k}] (member {k}): {exc}") from None
        with threads_for(acts.size):
            loss = ensemble_steps.softmax_cross_entropy(np.ascontiguousarray(acts), np.stack(labels))
        grad = loss.grad
        grad_D = {}
        start = first._first_trainable
        for i in range(last - 1, start - 1, -1):
            step, need_dx = plan[i], i > start
            if isinstance(step, StackedCrossbar):
                grad, grad_D[i] = step.backward(grad, need_dx)
            else:
                grads = [model.layers[i].backward(g, need_dx=need_dx) for model, g in zip(members, grad)]
                grad = np.stack(grads) if need_dx else None
        losses = np.empty(K)
        for k, model in enumerate(members):
            if model.l1:        # the member's L1 gradient on its layers that ran alone
                for i, layer in enumerate(model.layers):
                    if getattr(layer, "memristive", False) and i not in grad_D:
                        for _, theta, g, _ in layer.update_groups():
                            l1_gradient_(theta, g, model.l1)
        gammas = np.array([model.l1 for model in members])
        plain_sgd = all(type(model.optimizer) is SGD and not model.optimizer.momentum for model in members)
        lrs = np.array([model.optimizer.lr for model in members]) if plain_sgd else None
        for i, g in grad_D.items():
            if gammas.any():
                with threads_for(g.size):
                    ensemble_steps.l1_gradient(plan[i].D, g, gammas)
        for k, model in enumerate(members):
            losses[k] = float(loss.loss[k]) + model.l1_penalty()
        for i, g in grad_D.items():
            if plain_sgd:
                with threads_for(g.size):
                    ensemble_steps.sgd_step(plan[i].D, g, lrs, non_negative=True)
            else:
                for k, model in enumerate(members):
                    model.optimizer.step([(f"layer{i}.D", plan[i].slices[k], g[k], True)])
        for k, model in enumerate(members):
            model.optimizer.step((f"layer{i}.{name}", theta, g, non_negative)
                                 for i, layer in enumerate(model.layers) if i not in grad_D and layer.params
                                 for name, theta, g, non_negative in layer.update_groups())
        return losses, loss.hits / p

    def predict(self, xs, rngs=None, stages=None, batch_size=None, draws="active"):
        """Outputs (K, n, ...) of every member for its inputs xs (K, n, ...), in batches of
        ``batch_size`` (None: one batch); stages: None (each member's own) or K Stages."""
        xs = self._batches("xs", xs)
        rngs, stages = self._rngs(rngs), self._stages(stages)
        if batch_size is not None:
            _batch(batch_size)
        if draws not in DRAWS:
            raise ValueError(f"draws must be one of {', '.join(DRAWS)}; got {draws!r}")
        return np.stack([model.predict(xs[k], rngs[k], stages[k], batch_size, draws)
                         for k, model in enumerate(self._members)])

    def evaluate(self, xs, ys, rngs=None, stages=None, batch_size=100, power=False, draws="active",
                 read_rngs=None):
        """{"loss": (K,), "accuracy": (K,), "power": (K,) or None} over every member's inputs xs
        (K, n, ...) and labels ys (K, n), as :meth:`Sequential.evaluate` gives for each member
        alone (loss includes the member's L1 penalty; power in W)."""
        xs, ys = self._pairs(xs, ys)
        rngs, stages = self._rngs(rngs), self._stages(stages)
        read_rngs = self._rngs(read_rngs, "read_rngs")
        _batch(batch_size)
        results = [model.evaluate(xs[k], ys[k], rngs[k], stages[k], batch_size, power, draws, read_rngs[k])
                   for k, model in enumerate(self._members)]
        return {"loss": np.array([r["loss"] for r in results], dtype=np.float64),
                "accuracy": np.array([r["accuracy"] for r in results], dtype=np.float64),
                "power": np.array([r["power"] for r in results], dtype=np.float64) if power else None}


#: Layers whose backward pass hands a stacked memristive layer below them a fresh C-contiguous
#: dL/dy (what the member's own read takes its one-pass kernel path with).
_STACKABLE_ABOVE = (Sigmoid, ReLU)


def _plan(members):
    """Per layer index, how a training step runs it for the K members: a :class:`StackedCrossbar`
    (one kernel call per stair), "flatten" (a reshape of the stacked batch) or "member" (a loop
    over the members' own layers); None when no layer can be stacked (the step is then a loop
    over the members' own train_step)."""
    first = members[0]
    stage = first.stage
    if (get_backend(first.backend).name != "cpu" or not first._fused or stage is None
            or list(stage.phases) != ["currents"] or type(stage.nonpreserving) is not IVNonlinearityPF):
        return None
    layers = first.layers
    plan = []
    for i, layer in enumerate(layers):
        above = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is MemristiveDense and layer.weights == "double" and i >= first._first_trainable \
                and (isinstance(above, _STACKABLE_ABOVE) or (type(above) is Softmax and i + 1 == len(layers) - 1)):
            plan.append(StackedCrossbar(i, [model.layers[i] for model in members],
                                        [model.stage for model in members]))
        elif type(layer) is Flatten:
            plan.append("flatten")
        else:
            plan.append("member")
    return plan if any(isinstance(step, StackedCrossbar) for step in plan) else None


def _structure(model):
    """What must agree between members: {what: comparable value}."""
    stage = model.stage
    if stage is None:
        phases = None
    else:
        phases = (tuple((name, type(item).__name__) for name, item in stage.phases.items()),
                  stage.mapping_rule)
    return {"architecture": [layer.config() for layer in model.layers],
            "input shape": model.input_shape,
            "dtype": model.dtype.name,
            "backend": get_backend(model.backend).name,
            "stage": phases}


def _describe(what, value):
    if what == "stage":
        if value is None:
            return "no stage"
        phases, rule = value
        return (f"phases [{', '.join(f'{name}: {cls}' for name, cls in phases) or 'none'}], "
                f"mapping rule {rule!r}")
    return repr(value)
