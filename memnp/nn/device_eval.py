"""Evaluation passes of a :class:`~memnp.nn.device.DeviceTrainer`'s members on the GPU, and the
trainer the experiments use (issue 17, item 1: memristive validation and test-during-training on
the device).

:class:`PixelTrainer` is a DeviceTrainer whose uint8 training set becomes exactly the inputs the
experiments' CPU path trains on: float32 u / 255 (``memnp.experiments.datasource.to_float``),
then the model's dtype, through a table of the 256 pixel values (DeviceTrainer's own ``u * scale``
differs from that by up to an ulp of float32 in float64 runs).

:class:`DeviceEvaluator` runs forward-only passes: E evaluation members, each one trainer member's
weights (copied on the device) under its own PF stage and Generator, over a data set uploaded once
as uint8 (:meth:`DeviceEvaluator.upload`). Per batch and layer the kernels of
:mod:`memnp.kernels.cuda_step` (stats_scan, devices, forward, then the loss kernel), so every pass
draws the words ``Sequential.evaluate`` draws (draws="active": one word per driven device, layer by
layer, batch after batch) and gives its loss (mean cross-entropy + the L1 penalty), accuracy and,
when asked, power (W, the crossbars' total averaged over batches, as ``Sequential.power``). Per
call two arrays go in (the members' constants and their PCG64 states) and one comes back (the
words used, per-batch losses, hits and powers); the Generators are then moved on by the words used.
"""
import dataclasses

import numpy as np

from ..crossbar.nonidealities.iv import IVNonlinearityPF
from ..kernels import cuda_eval as ke
from ..kernels import cuda_step as ks
from .device import DeviceTrainer, _advance, _batch_size, _generators, _states

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


def stage_params(stage, owner, l1, lr=0.0):
    """(N_PARAMS + 1,) float64: cuda_step's constants of ``stage`` (G_off, G_on, k_V, the PF fit),
    the learning rate and L1 coefficient, then the owner (the trainer member read)."""
    pf = stage.nonidealities[0].fused()
    (l00, l01), (l10, l11) = np.asarray(pf.factor, dtype=np.float64)
    return np.array([stage.G_off, stage.G_on, stage.k_V, pf.slopes[0], pf.slopes[1], pf.intercepts[0],
                     pf.intercepts[1], l00, l01, l10, l11, lr, l1, owner], dtype=np.float64)


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


class DeviceEvaluator:
    """Forward-only passes of a trainer's members (see the module docstring). shapes: the layers'
    (n_in, n_out); dtype: the members' float dtype."""

    def __init__(self, shapes, dtype):
        self.shapes = [tuple(s) for s in shapes]
        self.dtype = np.dtype(dtype)
        self._step = ks.kernels(self.dtype)
        self._eval = ke.kernels(self.dtype)
        self.table = None
        self.E = self.B = 0

    @classmethod
    def of(cls, trainer):
        """The evaluator of a DeviceTrainer's members."""
        return cls(trainer.shapes, trainer.dtype)

    def upload(self, images, labels):
        """A DeviceData of images (N, ...) uint8 with N x n_in values and labels (N,) in [0, classes)."""
        images = np.asarray(images)
        n_in, classes = self.shapes[0][0], self.shapes[-1][1]
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

    def _work(self, E, B):
        """(Re)allocate the work arrays for E members and batches of up to B examples."""
        if E <= self.E and B <= self.B:
            return
        E, B = max(E, self.E), max(B, self.B)
        dt, L = self.dtype, len(self.shapes)
        widths = [self.shapes[0][0]] + [n_out for _, n_out in self.shapes]
        self.D = [cuda.device_array((E, n_in + 1, 2 * n_out), dtype=dt) for n_in, n_out in self.shapes]
        self.dev = [{name: cuda.device_array((E, n_in + 1, 2 * n_out), dtype=dt) for name in ("G", "c", "d", "KK")}
                    for n_in, n_out in self.shapes]
        self.rank = [cuda.device_array((E, n_in + 1), dtype=np.int64) for n_in, _ in self.shapes]
        self.x = [cuda.device_array((E, B, w), dtype=dt) for w in widths]
        self.I = [cuda.device_array((E, B, 2 * n_out), dtype=dt) for _, n_out in self.shapes]
        self.terms = [cuda.device_array((E, B, 2 * n_out), dtype=np.float64) for _, n_out in self.shapes]
        n_out = self.shapes[-1][1]
        self.gy = cuda.device_array((E, B, n_out), dtype=dt)
        self.gI = cuda.device_array((E, B, 2 * n_out), dtype=dt)
        self.labels = cuda.device_array((E, B), dtype=np.int64)
        self.scratch = cuda.device_array((E, B, 2), dtype=np.float64)
        self.st = cuda.device_array((L, E, ks.N_STATS), dtype=np.float64)
        self.offsets = cuda.device_array((L, E), dtype=np.uint64)
        self.E, self.B = E, B

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
        B, N, E = _batch_size(batch_size), data.examples, len(members)
        B = min(B, N)
        self._work(E, B)
        power = any(m.power for m in members)
        steps = -(-N // B)
        P = cuda.to_device(np.stack([stage_params(m.stage, m.member, m.l1) for m in members]))
        state = cuda.to_device(_states(rngs, np.zeros((E, 0), dtype=np.uint64)))
        record = cuda.device_array((E, 1 + 3 * steps), dtype=np.float64)
        k, ev, last = self._step, self._eval, len(self.shapes) - 1
        D = [self.D[l][:E] for l in range(len(self.shapes))]
        for l, (n_in, n_out) in enumerate(self.shapes):
            ev["select"][ks.grid(E * (n_in + 1) * 2 * n_out)](weights[l], P, D[l])
        x, I, dev, rank = [a[:E] for a in self.x], [a[:E] for a in self.I], self.dev, self.rank
        labels, scratch, st, offsets = self.labels[:E], self.scratch[:E], self.st[:, :E], self.offsets[:, :E]
        sizes = []
        for s in range(steps):
            p = min(B, N - s * B)
            sizes.append(p)
            ev["gather_range"][ks.grid(E * p * self.shapes[0][0])](data.pool, data.labels, s * B, p, self.table,
                                                                  x[0], labels)
            for l, (n_in, n_out) in enumerate(self.shapes):
                G, c, d, KK = (dev[l][name][:E] for name in ("G", "c", "d", "KK"))
                r = rank[l][:E]
                k["stats_scan"][E, ks.RT](D[l], P, st[l], x[l], p, r, offsets[l], state)
                k["devices"][ks.grid(E * (n_in + 1))](D[l], r, st[l], P, state, offsets[l], G, c, d, KK)
                k["forward"][ks.grid(E * p * n_out, ks.RS)](x[l], p, r, c, KK, st[l], P, I[l], x[l + 1], l < last)
            k["loss"][E, ks.RT](x[-1], labels, p, st, P, self.gy[:E], scratch, record, s, steps, I[last], st[last],
                                self.gI[:E])
            if power:
                for l, (n_in, n_out) in enumerate(self.shapes):
                    terms = self.terms[l][:E]
                    ev["power_terms"][ks.grid(E * p * 2 * n_out)](x[l], p, rank[l][:E], dev[l]["c"][:E],
                                                                 dev[l]["KK"][:E], P, terms)
                    ev["power_sum"][E, ks.RT](terms, p, record, 1 + 2 * steps + s, l > 0)
        k["finish"][ks.grid(E)](state, record)
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
