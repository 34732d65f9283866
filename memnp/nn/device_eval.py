"""Evaluation passes of a :class:`~memnp.nn.device.DeviceTrainer`'s members on the GPU, and the
trainer the experiments use (issue 17, item 1: memristive validation and test-during-training on
the device).

:class:`PixelTrainer` is a DeviceTrainer whose uint8 training set becomes exactly the inputs the
experiments' CPU path trains on: float32 u / 255 (``memnp.experiments.datasource.to_float``),
then the model's dtype, through a table of the 256 pixel values (DeviceTrainer's own ``u * scale``
differs from that by up to an ulp of float32 in float64 runs).

:class:`DeviceEvaluator` runs evaluation passes: E evaluation members, each one trainer member's
weights (copied on the device) under its own stage and Generator, over a data set uploaded once
as uint8 (:meth:`DeviceEvaluator.upload`). A pass is an epoch, in order, of an
:class:`EvalTrainer`: a DeviceTrainer of stand-in networks whose steps are the forward half of
the trainer's step only (``DeviceTrainer._forward`` without ``backward``: statistics, draws, reads,
loss and hits; no gradient, no update, so the weights stay as they are; its learning rate is 0
besides), drawing what ``Sequential.evaluate`` draws (draws="active": one word per driven device,
layer by layer, batch after batch); the kernels, record layout and Generator bookkeeping are the
trainer's. With chip sampling (``EvalMember.sampling``, memnp.experiments.passes.evaluate's
"chip"), every batch draws the chip from the member Generator's state as given, for every device
of each crossbar (draws="all"), and read noise from the member's read Generator, which runs on
from batch to batch (the ``chip`` option of the forward half). It gives the loss (mean
cross-entropy + the L1 penalty), accuracy and, when asked, power (W: the crossbars' total,
averaged over batches, as ``Sequential.power``; the kernels of memnp.kernels.cuda_eval after
each step). Per call one array goes in (the members' PCG64 states with the order; with chip
sampling a second, the read streams' states) and one comes back (the record; a second with the
powers, a third with the read words used); the Generators are moved on by the words used (a
chip Generator keeps its state). The evaluation trainers (one per set of owners, stages and L1
coefficients) are kept for the next call.
"""
import dataclasses

import numpy as np

from ..kernels import cuda_eval as ke
from ..kernels import cuda_step as ks
from . import device_stage
from .device import ChipReads, DeviceTrainer
from .device_members import _advance, _batch_size, _generators, _params, _states
from .model import Sequential
from .optim import SGD

cuda = ks.cuda


def stage_supported(stage, power=True):
    """None when the device passes can read under ``stage``, else the reason (a sentence): with
    ``power`` a stage the DeviceTrainer runs (memnp.nn.device_stage.unsupported: PF or linear
    reads after its conductance phases and DAC, which the power kernels of memnp.kernels.cuda_eval
    model; either mapping rule: double weights ignore it, standard weights are mapped by it);
    without, whatever DeviceTrainer supports (its constructor says what it does not)."""
    if stage is None:
        return "the device passes need a stage (a memristive network)"
    return device_stage.unsupported(stage) if power else None


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
    """One evaluation pass: ``member`` (the trainer member whose weights are read), ``stage``
    (:func:`stage_supported`), ``rng`` (its Generator, PCG64; moved on by the pass),
    ``l1`` (the network's L1 coefficient: the loss holds its penalty, as ``Sequential.evaluate``'s),
    ``power`` (whether the pass reports power), ``sampling`` ("batch": fresh draws per batch from
    ``rng``, as ``Sequential.evaluate``; "chip": memnp.experiments.passes.evaluate's chip sampling,
    every batch drawn from ``rng``'s state as given, for every device (draws="all"), which ``rng``
    keeps, and read noise from ``read_rng``, moved on batch after batch)."""
    member: int
    stage: object
    rng: np.random.Generator
    l1: float = 0.0
    power: bool = False
    sampling: str = "batch"
    read_rng: np.random.Generator = None

    def __post_init__(self):
        if self.sampling not in ("batch", "chip"):
            raise ValueError(f"sampling must be 'batch' or 'chip'; got {self.sampling!r}")
        if (self.sampling == "chip") != (self.read_rng is not None):
            raise ValueError("read_rng (a numpy.random.Generator: the read-noise stream) is needed with "
                             "sampling 'chip' and only then")


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """A data set on the device: pool (N, n_in) uint8, labels (N,) int64, N examples."""
    pool: object
    labels: object
    examples: int


def _copy(rng):
    """A new Generator on a PCG64 in ``rng``'s state."""
    copy = np.random.Generator(np.random.PCG64())
    copy.bit_generator.state = rng.bit_generator.state
    return copy


def _stand_in(model, stage, l1):
    """A network of ``model``'s architecture under ``stage`` with L1 ``l1``: an evaluation
    trainer member (its weights are replaced on the device before every pass)."""
    from .layers import layer_from_config
    architecture = model.architecture()
    layers = [layer_from_config(config) for config in architecture["layers"]]
    copy = Sequential(layers, input_shape=model.input_shape, stage=stage, optimizer=SGD(1.0), l1=l1)
    copy.astype(model.dtype)
    return copy.initialize(np.random.default_rng(0))


class EvalTrainer(PixelTrainer):
    """The trainer of E evaluation members (stand-in networks; its steps are forward halves: the
    weights stay as they are), reading trainer members ``owners`` (E,); with ``power`` set (a
    float64 device array (E, steps)) every step also writes the batch's crossbar power there; with
    ``chip`` set (a ChipReads) its steps draw as chip sampling does."""

    def __init__(self, models, owners, batch_size):
        super().__init__(models, batch_size)
        params = np.stack([_params(model) for model in models])
        params[:, ks.LR] = 0.0
        self.P = cuda.to_device(params)
        self.owners = cuda.to_device(np.asarray(owners, dtype=np.int64))
        self.power = None
        self.chip = None       # a ChipReads during a chip-sampling pass
        self._terms = None

    def _step(self, x0, p, column, steps, record, state):
        """An evaluation step: the trainer's forward half only (no gradient, no update), then the
        power kernels when asked."""
        self._forward(x0, p, column, steps, record, state, backward=False, chip=self.chip)
        if self.power is None:
            return
        kernels = ke.kernels(self.dtype)
        if self._terms is None or self._terms[0].shape[1] < self.B:
            self._terms = [cuda.device_array((self.K, self.B, 2 * n), dtype=np.float64) for _, n in self.shapes]
        xs = [x0] + self.x[1:]
        for l, (_, n_out) in enumerate(self.shapes):
            kernels["power_terms"][ks.grid(self.K * p * 2 * n_out)](xs[l], p, self.rank[l], self.dev[l]["c"],
                                                                   self.dev[l]["KK"], self.P, self._terms[l])
            kernels["power_sum"][self.K, ks.RT](self._terms[l], p, self.power, column, l > 0)


class DeviceEvaluator:
    """Evaluation passes of a trainer's members (see the module docstring). model: one of the
    trainer's networks (its architecture and dtype)."""

    def __init__(self, model):
        self.model = model
        self.table = None
        self.trainers = {}   # (owner, id(stage), l1) per member -> (EvalTrainer, the stages kept alive)

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
        """The EvalTrainer of these members (built once per owners, stages and L1 coefficients)."""
        key = tuple((m.member, id(m.stage), float(m.l1)) for m in members)
        if key not in self.trainers:
            models = [_stand_in(self.model, m.stage, m.l1) for m in members]
            self.trainers[key] = (EvalTrainer(models, [m.member for m in members], B), [m.stage for m in members])
        return self.trainers[key][0]

    def evaluate(self, weights, members, data, batch_size):
        """One pass per EvalMember over ``data`` (a DeviceData, in order) in batches of
        ``batch_size`` (the last may be shorter). weights: the trainer's D per layer (device arrays
        (K, m, c)). Returns [{"loss", "accuracy", "power" (None unless asked)}] per member, in order."""
        members = list(members)
        if not members:
            return []
        for m in members:
            reason = stage_supported(m.stage, m.power)
            if reason is not None:
                raise ValueError(reason)
            if not 0 <= m.member < weights[0].shape[0]:
                raise ValueError(f"member must be in [0, {weights[0].shape[0]}); got {m.member}")
        chip = members[0].sampling == "chip"
        if any((m.sampling == "chip") != chip for m in members):
            raise ValueError("the members of one evaluate call must share their sampling ('batch' or 'chip')")
        N, E = data.examples, len(members)
        B = min(_batch_size(batch_size), N)
        steps = -(-N // B)
        ev = self._trainer(members, B)
        select = ke.kernels(ev.dtype)["select"]
        for l, (n_in, n_out) in enumerate(ev.shapes):
            select[ks.grid(E * (n_in + 1) * 2 * n_out)](weights[l], ev.owners, ev.D[l])
        ev.pool, ev.pool_labels, ev.examples, ev.scale = data.pool, data.labels, N, self.table
        power = any(m.power for m in members)
        ev.power = cuda.device_array((E, steps), dtype=np.float64) if power else None
        rngs = [m.rng for m in members]
        if chip:      # the trainer moves copies on: each chip Generator keeps its state
            rngs = [_copy(rng) for rng in rngs]
            reads = cuda.to_device(_states(_generators([m.read_rng for m in members], E),
                                           np.zeros((E, 0), dtype=np.uint64)))
            ev.chip = ChipReads(reads, cuda.device_array((len(ev.shapes), E), dtype=np.uint64))
        try:
            record = ev.train_epoch(rngs, order=np.arange(N), batch_size=B)
        finally:
            ev.chip = None
        if chip:
            for m, used in zip(members, reads.copy_to_host()[:, 4]):
                _advance(m.read_rng, used)
        powers = ev.power.copy_to_host() if power else None
        sizes = np.array([min(B, N - s * B) for s in range(steps)], dtype=np.float64)
        return [{"loss": float(np.sum(record.losses[e] * sizes) / N),
                 "accuracy": float(np.sum(record.accuracies[e] * sizes) / N),
                 "power": float(np.mean(powers[e])) if m.power else None} for e, m in enumerate(members)]
