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

Speed (cpu backend): the paper's PF-aware MLP ([Flatten,] PF layer, Sigmoid, PF layer, Softmax;
float32, plain SGD, PCG64 Generators), and the same network under the combined stage's one-call
chip read, train in one kernel call per step
(:mod:`memnp.nn.ensemble_mlp_step`), for any number of members (one member: where its layer calls
would run on one thread). Otherwise a training step runs each double-weight ``MemristiveDense`` layer under a
PF-only stage (the paper's PF-aware training, bench/epoch.py case c) for all members in one
kernel call per pass in float32 (:mod:`memnp.kernels.ensemble_fused`: the scan, mapping, draws,
currents and outputs, then the VJP; each thread takes whole members) or one call per stair in
float64 (:class:`memnp.nn.ensemble_read.StackedCrossbar`: ragged active rows per member; on all
of Numba's threads once the members' work together passes a one-thread threshold derived from
:func:`memnp.kernels.cpu_auto.serial_below`), and the softmax
loss, L1 gradient and SGD step of those layers in one call each; their double weights live in one
stacked array (each member's params are views of its slice). Each member's draws still come from
its own Generator, in the order it draws them alone. Flatten and Sigmoid run on the stacked batch.

Under stages with other phases (the combined stage's draws and conductance chain, the DAC, the
tiled read with its ADCs) the same layers run their mapping stairs (scan, maximum weight,
conductances of the rows read, voltages, outputs, their VJPs) and the loss, L1 and SGD in K-axis
calls, and those phases (:class:`memnp.nn.ensemble_member_read.MemberCrossbar`) for all members
in one call per pass where every member's read takes the combined stage's one-call path
(:mod:`memnp.nn.ensemble_chip_read`, float32), else in each member's own CrossbarPass, one call per
member.

These loop over the members (the same numbers, one call per member): other digital layers
(ReLU, convolutions, pooling), memristive layers with standard weights or followed by anything
but Sigmoid, ReLU or the final Softmax, and optimisers other than plain SGD. A whole step loops
over the members' own ``train_step`` under ideal stages, line resistance (rows not separable) or
stages without a nonlinear I-V model, for models not ending in Softmax and on backends without
K-axis reads (``Backend.ensemble`` None: numpy, cuda). ``predict`` and ``evaluate`` run the same
stacked forward pass under the members' own stages or given ones (K stages of one structure),
with either draw policy. After a stacked pass a member's ``grads`` and ``power()`` are not those
of the pass (ask the ensemble's ``evaluate(power=True)``). The passes are in
:mod:`memnp.nn.ensemble_pass`.
"""
import numpy as np

from ..kernels import get_backend
from . import ensemble_mlp_step, ensemble_pass
from .ensemble_read import StackedLayer
from .model import DRAWS, Sequential, _batch

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
        owner = {}
        for k, model in enumerate(models):
            for i, layer in enumerate(model.layers):
                if layer.params and owner.setdefault(id(layer), (k, i)) != (k, i):
                    raise ValueError(f"member {k} shares its layer {i} with member {owner[id(layer)][0]}: "
                                     "every member must hold its own layers")
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
        self._weights = {}        # layer index -> StackedWeights, shared by every plan
        self._plans = {}          # id() of a tuple of stages -> (the stages, their plan)
        self._own = (None, None)  # (the members' stages, their plan): see _plan

    # -- structure ------------------------------------------------------------------------------
    @property
    def members(self):
        """The K :class:`Sequential` models, in order (they hold the trained weights)."""
        return self._members

    @property
    def _plan(self):
        """The stacked plan under the members' own stages (rebuilt when a member's ``stage`` was
        replaced; ValueError when the stages no longer share one phase structure)."""
        stages = tuple(model.stage for model in self._members)
        own_stages, own_plan = self._own
        if own_stages is None or any(a is not b for a, b in zip(own_stages, stages)):
            reference = _structure(self._members[0])["stage"]
            for k, model in enumerate(self._members[1:], start=1):
                ours = _structure(model)["stage"]
                if ours != reference:
                    raise ValueError(f"member {k} differs from member 0 in its stage: {_describe('stage', ours)} "
                                     f"(member 0: {_describe('stage', reference)}); an ensemble needs one "
                                     "phase structure")
            own_plan = ensemble_pass.plan(self._members, list(stages), self._weights)
            self._own = (stages, own_plan)
        return own_plan

    @property
    def stacked_layers(self):
        """Indices of the layers a training step runs for all members in one kernel call per
        stair (empty: the step loops over the members' own train_step)."""
        steps = self._plan
        if steps is None:
            return ()
        return tuple(i for i, step in enumerate(steps) if isinstance(step, StackedLayer))

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
                bits = id(rng.bit_generator)
                if bits in seen:
                    raise ValueError(f"{name}[{k}] (member {k}) draws from the same Generator (bit "
                                     f"generator) as member {seen[bits]}: each member needs its own")
                seen[bits] = k
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
        original = xs
        xs, ys = self._pairs(xs, ys)
        rngs = self._rngs(rngs)
        steps = self._plan
        if steps is not None:
            return ensemble_pass.train_step(self._members, steps, self._stacked_inputs(original, xs), ys, rngs)
        K = len(self._members)
        losses, accuracies = np.empty(K), np.empty(K)
        for k, model in enumerate(self._members):
            losses[k], accuracies[k] = model.train_step(xs[k], ys[k], rngs[k])
        return losses, accuracies

    def trains_in_one_call(self, batch_size):
        """Whether :meth:`train_step` on batches of ``batch_size`` examples per member runs the
        one-call step (:mod:`memnp.nn.ensemble_mlp_step`; faster than each member's own
        ``train_step`` even for one member)."""
        return ensemble_mlp_step.applies(self._members, self._plan, batch_size)

    def _plan_for(self, stages):
        """The stacked plan of a pass under ``stages`` (K Stages or Nones), or None (member by
        member). Plans of other stages than the members' own are kept for the last few stage
        lists seen (an inference sweep asks for the same ones again and again)."""
        if all(s is model.stage for s, model in zip(stages, self._members)):
            return self._plan
        if any(s is None for s in stages):
            return None
        key = tuple(id(s) for s in stages)
        hit = self._plans.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], stages)):
            if len({(tuple((n, type(v).__name__) for n, v in s.phases.items()), s.mapping_rule)
                    for s in stages}) != 1:
                return None      # stages of different structures: member by member
            if len(self._plans) >= 8:
                self._plans.clear()
            hit = self._plans[key] = (tuple(stages), ensemble_pass.plan(self._members, stages, self._weights))
        return hit[1]

    def _stacked_inputs(self, original, xs):
        """X (K, p, ...) in the members' dtype: ``original`` itself when it is already such an
        array (what Sequential._inputs would hand on unchanged), else the members' checked inputs
        stacked."""
        model = self._members[0]
        if isinstance(original, np.ndarray) and original.dtype == model.dtype and original.ndim >= 3 \
                and original.flags.c_contiguous and original.shape[1] \
                and (model.input_shape is None or original.shape[2:] == model.input_shape):
            return original
        return np.stack([member._inputs(x) for member, x in zip(self._members, xs)])

    def predict(self, xs, rngs=None, stages=None, batch_size=None, draws="active"):
        """Outputs (K, n, ...) of every member for its inputs xs (K, n, ...), in batches of
        ``batch_size`` (None: one batch); stages: None (each member's own) or K Stages."""
        original = xs
        xs = self._batches("xs", xs)
        rngs, stages = self._rngs(rngs), self._stages(stages)
        if batch_size is not None:
            _batch(batch_size)
        if draws not in DRAWS:
            raise ValueError(f"draws must be one of {', '.join(DRAWS)}; got {draws!r}")
        steps = self._plan_for(stages)
        if steps is not None:
            return ensemble_pass.predict(self._members, steps, self._stacked_inputs(original, xs), rngs,
                                         batch_size, stages, draws)
        return np.stack([model.predict(xs[k], rngs[k], stages[k], batch_size, draws)
                         for k, model in enumerate(self._members)])

    def evaluate(self, xs, ys, rngs=None, stages=None, batch_size=100, power=False, draws="active",
                 read_rngs=None):
        """{"loss": (K,), "accuracy": (K,), "power": (K,) or None} over every member's inputs xs
        (K, n, ...) and labels ys (K, n), as :meth:`Sequential.evaluate` gives for each member
        alone (loss includes the member's L1 penalty; power in W)."""
        original = xs
        xs, ys = self._pairs(xs, ys)
        rngs, stages = self._rngs(rngs), self._stages(stages)
        read_rngs = self._rngs(read_rngs, "read_rngs")
        batch_size = _batch(batch_size)
        if draws not in DRAWS:
            raise ValueError(f"draws must be one of {', '.join(DRAWS)}; got {draws!r}")
        steps = self._plan_for(stages)
        if steps is not None:
            return ensemble_pass.evaluate(self._members, steps, self._stacked_inputs(original, xs), ys,
                                          rngs, batch_size, power, stages, draws, read_rngs)
        results = [model.evaluate(xs[k], ys[k], rngs[k], stages[k], batch_size, power, draws, read_rngs[k])
                   for k, model in enumerate(self._members)]
        return {"loss": np.array([r["loss"] for r in results], dtype=np.float64),
                "accuracy": np.array([r["accuracy"] for r in results], dtype=np.float64),
                "power": np.array([r["power"] for r in results], dtype=np.float64) if power else None}


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
