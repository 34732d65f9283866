"""Evaluation passes of a :class:`~memnp.nn.device.DeviceTrainer`'s members on the GPU, and the
trainer the experiments use (issue 17, item 1: memristive validation and test-during-training on
the device).

:class:`PixelTrainer` is a DeviceTrainer whose uint8 training set becomes exactly the inputs the
experiments' CPU path trains on: float32 u / 255 (``memnp.experiments.datasource.to_float``),
then the model's dtype, through a table of the 256 pixel values (DeviceTrainer's own ``u * scale``
differs from that by up to an ulp of float32 in float64 runs).

:class:`DeviceEvaluator` runs evaluation passes: E evaluation members, each one trainer member's
weights (copied on the device) under its own PF stage and Generator, over a data set uploaded once
as uint8 (:meth:`DeviceEvaluator.upload`). A pass is the trainer's own step (``_step``: the same
kernels, the same draws as ``Sequential.evaluate`` with draws="active": one word per driven
device, layer by layer, batch after batch) on an evaluation trainer whose learning rate is 0, so
its weights do not move, and whatever kernels the trainer's steps use, the evaluation uses too
(its backward work is wasted, the price of that). It gives the loss (mean cross-entropy + the L1
penalty), accuracy and, when asked, power (W: the crossbars' total, averaged over batches, as
``Sequential.power``; memnp.kernels.cuda_eval). Per call one array goes in (the members' PCG64
states with the owners of their weights) and one comes back (the words used, per-batch losses,
hits and powers); the Generators are then moved on by the words used. The evaluation trainers
(one per set of owners, stages and L1 coefficients) are kept for the next call.
"""
import dataclasses

import numpy as np

from ..crossbar.nonidealities.iv import IVNonlinearityPF
from ..kernels import cuda_eval as ke
from ..kernels import cuda_step as ks
from .device import DeviceTrainer, _advance, _batch_size, _generators, _params, _states
from .model import Sequential
from .optim import SGD

cuda = ks.cuda


def stage_supported(stage):
    """None when the device passes can read under ``stage`` (only IVNonlinearityPF, the default
    mapping rule), else the reason (a sentence)."""
    if stage is None or len(stage.nonidealities) != 1 or not isinstance(stage.nonidealities[0], IVNonlinearityPF):
        got = None if stage is None else [type(item).__name__ for item in stage.nonidealities]
        return f"the device passes need a stage whose only nonideality is IVNonlinearityPF; got {got}"
    if stage.mapping_rule != "default":
        return f"the device passes use the default mapping rule; got {stage.mapping_rule!r}"
    return None


class PixelTrainer(DeviceTrainer):
    """A DeviceTrainer whose training batches are the experiments' float32 u / 255 pixels (see
    the module docstring); set_data takes the uint8 images and labels only."""

    def __init__(self, models, batch_size=64):
        super().__init__(models, batch_size)
        self._kernels = dict(self._kernels, gather=ke.kernels(self.dtype)["gather"])

    def set_data(self, images, labels):
        """Upload the training set (N, ...) uint8 and its labels (N,), once."""
        super().set_data(images, labels)
        self.scale = cuda.to_device(ke.pixels())    # the gather's table, in place of DeviceTrainer's scale


@dataclasses.dataclass(frozen=True)
class EvalMember:
    """One evaluation pass: ``member`` (the trainer member whose weights are read), ``stage`` (a
    PF stage, :func:`stage_supported`), ``rng`` (its Generator, PCG64; moved on by the pass),
    ``l1`` (the network's L1 coefficient: the loss holds its penalty, as ``Sequential.evaluate``'s),
    ``power`` (whether the pass reports power)."""
    member: int
    stage: object
    rng: np.random.Generator
    l1: float = 0.0
    power: bool = False


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """A data set on the device: pool (N, n_in) uint8, labels (N,) int64, N examples."""
    pool: object
    labels: object
    examples: int


def _stand_in(model, stage, l1):
    """A network of ``model``'s architecture under ``stage`` with L1 ``l1``: an evaluation
    trainer member (its weights are replaced on the device before every pass)."""
    from .layers import layer_from_config
    architecture = model.architecture()
    layers = [layer_from_config(config) for config in architecture["layers"]]
    copy = Sequential(layers, input_shape=model.input_shape, stage=stage, optimizer=SGD(1.0), l1=l1)
    copy.astype(model.dtype)
    return copy.initialize(np.random.default_rng(0))


class DeviceEvaluator:
    """Evaluation passes of a trainer's members (see the module docstring). model: one of the
    trainer's networks (its architecture and dtype)."""

    def __init__(self, model):
        self.model = model
        self.table = None
        self.trainers = {}   # (owner, id(stage), l1) per member -> (evaluation trainer, stages kept alive)

    @classmethod
    def of(cls, trainer):
        """The evaluator of a DeviceTrainer's members."""
        return cls(trainer.models[0])

    def upload(self, images, labels):
        """A DeviceData of images (N, ...) uint8 with N x n_in values and labels (N,) in [0, classes)."""
        images = np.asarray(images)
        n_in = self.model.memristive_layers[0].n_rows
        classes = self.model.memristive_layers[-1].n_out
        if images.dtype != np.uint8 or not len(images) or images.size != len(images) * n_in:
            raise ValueError(f"images must be a non-empty uint8 array with {n_in} values per example; got "
                             f"{images.dtype} {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu" or labels.min() < 0 \
                or labels.max() >= classes:
            raise ValueError(f"labels must be {len(images)} integers in [0, {classes}); got {labels.dtype} "
                             f"{labels.shape}")
        if self.table is None:
            self.table = cuda.to_device(ke.pixels())
        return DeviceData(cuda.to_device(np.ascontiguousarray(images.reshape(len(images), n_in))),
                          cuda.to_device(labels.astype(np.int64)), len(images))

    def _trainer(self, members, B):
        """The evaluation trainer of these members (built once: stand-in networks, learning rate 0)."""
        key = tuple((m.member, id(m.stage), float(m.l1)) for m in members)
        if key not in self.trainers:
            models = [_stand_in(self.model, m.stage, m.l1) for m in members]
            trainer = DeviceTrainer(models, batch_size=B)
            params = np.stack([_params(model) for model in models])
            params[:, ks.LR] = 0.0               # the steps leave the weights as they are
            trainer.P = cuda.to_device(params)
            self.trainers[key] = (trainer, [m.stage for m in members])
        trainer = self.trainers[key][0]
        trainer._batch(B)
        return trainer

    def evaluate(self, weights, members, data, batch_size):
        """One pass per EvalMember over ``data`` (a DeviceData) in batches of ``batch_size`` (the
        last may be shorter). weights: the trainer's D per layer (device arrays (K, m, c)).
        Returns [{"loss", "accuracy", "power" (None unless asked)}] per member, in order."""
        members = list(members)
        if not members:
            return []
        rngs = _generators([m.rng for m in members], len(members))
        for m in members:
            reason = stage_supported(m.stage)
            if reason is not None:
                raise ValueError(reason)
            if not 0 <= m.member < weights[0].shape[0]:
                raise ValueError(f"member must be in [0, {weights[0].shape[0]}); got {m.member}")
        N, E = data.examples, len(members)
        B = min(_batch_size(batch_size), N)
        ev = self._trainer(members, B)
        kernels = ke.kernels(ev.dtype)
        steps = -(-N // B)
        state = cuda.to_device(_states(rngs, np.array([[m.member] for m in members], dtype=np.uint64)))
        owner = state.shape[1] - 1
        record = cuda.device_array((E, 1 + 3 * steps), dtype=np.float64)
        for l, (n_in, n_out) in enumerate(ev.shapes):
            kernels["select"][ks.grid(E * (n_in + 1) * 2 * n_out)](weights[l], state, owner, ev.D[l])
        power = any(m.power for m in members)
        sizes = []
        for s in range(steps):
            p = min(B, N - s * B)
            sizes.append(p)
            kernels["gather_range"][ks.grid(E * p * ev.shapes[0][0])](data.pool, data.labels, s * B, p, self.table,
                                                                     ev.x[0], ev.labels)
            ev._step(ev.x[0], p, s, steps, record, state)
            if power:
                for l, (n_in, n_out) in enumerate(ev.shapes):
                    terms = self._terms(ev)[l]
                    kernels["power_terms"][ks.grid(E * p * 2 * n_out)](ev.x[l], p, ev.rank[l], ev.dev[l]["c"],
                                                                      ev.dev[l]["KK"], ev.P, terms)
                    kernels["power_sum"][E, ks.RT](terms, p, record, 1 + 2 * steps + s, l > 0)
        ev._kernels["finish"][ks.grid(E)](state, record)
        host = record.copy_to_host()
        for rng, used in zip(rngs, host[:, 0].astype(np.uint64)):
            _advance(rng, used)
        sizes = np.asarray(sizes, dtype=np.float64)
        out = []
        for e, m in enumerate(members):
            losses, hits, powers = host[e, 1:1 + steps], host[e, 1 + steps:1 + 2 * steps], host[e, 1 + 2 * steps:]
            out.append({"loss": float(np.sum(losses * sizes) / N), "accuracy": float(np.sum(hits) / N),
                        "power": float(np.mean(powers)) if m.power else None})
        return out

    @staticmethod
    def _terms(ev):
        """float64 (E, B, 2 n_out) scratch per layer for the power terms (kept with the evaluation
        trainer, sized for its batches)."""
        terms = getattr(ev, "_power_terms", None)
        if terms is None or terms[0].shape[1] != ev.B:
            terms = ev._power_terms = [cuda.device_array((ev.K, ev.B, 2 * n), dtype=np.float64)
                                       for _, n in ev.shapes]
        return terms
