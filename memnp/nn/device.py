"""Device-resident training of K MLPs, PF or linear, on a CUDA GPU (issue 17, items 1-2).

:class:`DeviceTrainer` takes one :class:`memnp.nn.Sequential` or K of them (the members: the same
layer sizes and dtype; each may have its own stage, learning rate, L1 coefficient, Generator
and data order) and runs their training steps with the kernels of
:mod:`memnp.kernels.cuda_step`, every kernel indexed by (member, row, column), so one step of K
networks costs the same launches as one. Supported networks: [Flatten], MemristiveDense, Sigmoid,
..., MemristiveDense, Softmax, with double weights (D >= 0, projected after each step) or standard
weights (signed W, two devices per weight, mapped by the stage's mapping rule:
memnp.kernels.cuda_standard; under the ideal stage, which the CPU reads digitally as y = x W + b,
an exact linear crossbar with that map's VJP), every
member of one kind, on a stage with IVNonlinearityPF in its currents phase or none (a linear read,
I = V G'': the ideal stage, or D2D, stuck devices, ... alone; members of one trainer may mix PF
and linear stages) and, optionally, D2DLognormal or ProgrammingNoise, Drift, stuck devices at a
fixed value or with drawn values (StuckDistribution), ReadNoise, DAC, ADC and Tiles (the combined
stage: memnp.kernels.cuda_phases and memnp.kernels.cuda_read run its phases in the CPU's physical
order with the CPU's draws; a linear stage draws no PF residuals, and its layers after the first
read and draw every row, as the CPU's do), under either mapping rule (double weights map alike),
trained with plain SGD (momentum 0); anything else is a ValueError naming it
(:meth:`DeviceTrainer.supports` asks without raising).

What stays on the device for the trainer's life: the weights per layer (double: D (K, n_in + 1,
2 n_out); standard: W (K, n_in + 1, n_out), bias row last), the members' constants and the work
arrays; after :meth:`DeviceTrainer.set_data`, the training
set as uint8 (scaled per batch on the device). Per epoch (:meth:`train_epoch`) one array goes in
(the members' PCG64 states with the epoch's permutations, uint64 (K, 6 + N)) and one comes back
(the words used, the half word NumPy holds after float32 stuck draws, per-step losses and hit
counts, the weights' check, float64 (K, 3 + 2 steps)); the host Generators are then moved on by
the words used (``bit_generator.advance``), so they end where the CPU path's would. :meth:`train_step` with
host arrays sends its batch (x, then the states with the labels) and reads one record. The draws
are the CPU's: the same PCG64 words per driven device, the same Box-Muller pairs and uniforms, in
the same order (layer by layer, driven rows only, phase by
phase, as ``Sequential.train_step`` with draws="active").

Weights go back to the host models on :meth:`sync` (so ``model.save`` works); the host models'
weights are read once, when the trainer is built. The CPU path's checks of each step (finite
weights, a max weight > 0) are not made on the device: a diverged member shows NaN losses in its
records (and NaN weights after ``sync``) instead of a ValueError; the record says where its
weights held NaN or inf (a NaN accuracy at each step whose weights did, ``EpochRecord.finite``
after the epoch), so the caller can refuse them where the CPU path does
(memnp.experiments.device_train).

An evaluation step (memnp.nn.device_eval) runs the forward half of a step only
(:meth:`DeviceTrainer._forward` without ``backward``); chip sampling's draws (every row, the
chip's words from the seed's first word in every batch, read noise from its own stream) are the
``chip`` option of that half (:class:`ChipReads`).
"""
import dataclasses

import numpy as np

from ..kernels import cuda_phases
from . import device_stage
from ..kernels import cuda_step as ks
from ..kernels.cuda import _require_device
from .device_members import (_advance, _batch_size, _checked, _generators, _members, _params,  # noqa: F401
                             _standard, _states)

cuda = ks.cuda


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One step of every member: losses (K,) (cross-entropy + L1, before the step) and accuracies (K,)."""
    losses: np.ndarray
    accuracies: np.ndarray


@dataclasses.dataclass(frozen=True)
class ChipReads:
    """Chip sampling's read-noise streams on the device: state (K, 6) uint64 (the members' read
    Generators in the step state's layout; column 4 counts the words used, on across batches) and
    offsets (layers, K) uint64 (where each layer's read words start)."""
    state: object
    offsets: object


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One epoch: losses and accuracies (K, steps), as StepRecord per step (an accuracy is NaN where
    the member's weights held NaN or inf before the step); words (K,) PCG64 words used; finite (K,)
    bool: the member's weights after the epoch hold no NaN or inf."""
    losses: np.ndarray
    accuracies: np.ndarray
    words: np.ndarray
    finite: np.ndarray = None


class DeviceTrainer:
    """Training steps of K PF or linear MLPs with everything on the GPU (see the module docstring).

    models: a Sequential or a list of K; batch_size: the largest batch (work arrays are sized for
    it; bigger train_step batches enlarge them)."""

    def __init__(self, models, batch_size=64):
        self.models = _members(models)
        _require_device()
        dense, shapes = _checked(self.models)
        self.dtype = np.dtype(self.models[0].dtype)
        self.K = len(self.models)
        self.shapes = shapes
        self._dense = dense
        self._kernels = ks.kernels(self.dtype)
        params = np.stack([_params(model) for model in self.models])
        self._half_words = [k for k in range(self.K) if self.dtype == np.float32 and params[k, cuda_phases.HAS_STUCK]]
        self._kde = bool(params[:, cuda_phases.STUCK_KDE].any())     # drawn stuck values: counted first
        self.kde = cuda.to_device(device_stage.kde_tables([model.stage for model in self.models]))
        self.P = cuda.to_device(params)
        # Per layer: the rows of arrays (the most any member's Tiles make) and their ADC constants.
        self.blocks = [max(cuda_phases.blocks_of(model.stage, n_in + 1) for model in self.models)
                       for n_in, _ in shapes]
        self.adc = [cuda.to_device(np.stack([device_stage.adc_table(model.stage, n_in + 1, blocks, self.dtype)
                                             for model in self.models]))
                    for (n_in, _), blocks in zip(shapes, self.blocks)]
        self.D = [cuda.to_device(np.stack([layers[l]._matrix() for layers in dense]))
                  for l in range(len(shapes))]
        self.st = cuda.device_array((len(shapes), self.K, ks.N_STATS), dtype=np.float64)
        self.offsets = cuda.device_array((len(shapes), self.K), dtype=np.uint64)
        self.rank = [cuda.device_array((self.K, n_in + 1), dtype=np.int64) for n_in, _ in shapes]
        self.stuck_rows = [cuda.device_array((self.K, n_in + 2), dtype=np.int64) for n_in, _ in shapes]
        per_device = ("G", "c", "d", "KK", "gD", "eps", "fdr", "frd", "stk")
        self.dev = [{name: cuda.device_array((self.K, n_in + 1, 2 * n_out), dtype=self.dtype)
                     for name in per_device} for n_in, n_out in shapes]
        self.standard = _standard(self.models[0])
        for l, (n_in, n_out) in enumerate(shapes):
            self.dev[l]["prod"] = cuda.device_array((self.K, n_in + 1, 2 * n_out), dtype=np.float64)
            if self.standard:       # dL/dW and dL/dz W, one per weight
                self.dev[l]["gW"] = cuda.device_array((self.K, n_in + 1, n_out), dtype=self.dtype)
                self.dev[l]["prodW"] = cuda.device_array((self.K, n_in + 1, n_out), dtype=np.float64)
        self.B = 0
        self._batch(_batch_size(batch_size))
        self.pool = self.pool_labels = None

    @staticmethod
    def supports(models):
        """(True, "") when a DeviceTrainer can train ``models`` (a Sequential or a list of K), else
        (False, the reason: the ValueError's message the constructor would raise). Needs no GPU."""
        try:
            _checked(_members(models))
        except ValueError as exc:
            return False, str(exc)
        return True, ""

    def _batch(self, B):
        """(Re)allocate the batch-sized work arrays for batches up to B examples."""
        if B <= self.B:
            return
        K, dt = self.K, self.dtype
        widths = [self.shapes[0][0]] + [n_out for _, n_out in self.shapes]
        self.x = [cuda.device_array((K, B, w), dtype=dt) for w in widths]   # x[l]: layer l's input; x[-1]: logits
        self.I = [cuda.device_array((K, B, 2 * n_out), dtype=dt) for _, n_out in self.shapes]
        self.gI = [cuda.device_array((K, B, 2 * n_out), dtype=dt) for _, n_out in self.shapes]
        self.gy = [cuda.device_array((K, B, n_out), dtype=dt) for _, n_out in self.shapes]
        self.inside = [cuda.device_array((K, blocks, B, 2 * n_out), dtype=dt)
                       for (_, n_out), blocks in zip(self.shapes, self.blocks)]
        self.labels = cuda.device_array((K, B), dtype=np.int64)
        self.scratch = cuda.device_array((K, B, 2), dtype=np.float64)
        self.B = B

    # -- data -----------------------------------------------------------------------------------
    def set_data(self, images, labels, scale=1 / 255):
        """Upload a training set once: images (N, ...) uint8 (N, n_in after flattening), labels (N,)
        integers in [0, classes); a batch is images * scale (cast to the dtype) on the device."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim < 2 or not len(images):
            raise ValueError(f"images must be a non-empty uint8 array (N, ...); got {images.dtype} {images.shape}")
        images = np.ascontiguousarray(images.reshape(len(images), -1))
        if images.shape[1] != self.shapes[0][0]:
            raise ValueError(f"images must have {self.shapes[0][0]} values per example; got {images.shape[1]}")
        labels = self._labels(labels, len(images), members=False)
        try:
            ok = 0 < float(scale) * 255 <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"scale must be a number in (0, 1/255] (inputs in [0, 1]); got {scale!r}")
        self.pool, self.pool_labels = cuda.to_device(images), cuda.to_device(labels)
        self.scale = self.dtype.type(scale)
        self.examples = len(images)

    def _labels(self, labels, count, members=True):
        """labels as int64, (count,) or, with ``members``, (K, count); ValueError otherwise."""
        labels = np.asarray(labels)
        classes = self.shapes[-1][1]
        shapes = ((count,), (self.K, count)) if members else ((count,),)
        if labels.shape not in shapes or labels.dtype.kind not in "iu" or labels.size and (
                labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"y must hold {count} integer labels in [0, {classes}) (per member, or "
                             f"shared by the members where allowed); got "
                             f"{labels.dtype} {labels.shape}")
        return labels.astype(np.int64)

    # -- steps ----------------------------------------------------------------------------------
    def _step(self, x0, p, column, steps, record, state):
        """Launch one training step (x0: layer 0's inputs (K, >= p, n_in) on the device): the
        forward half, then the backward half."""
        self._forward(x0, p, column, steps, record, state)
        self._backward(x0, p)

    def _forward(self, x0, p, column, steps, record, state, backward=True, chip=None):
        """The forward half of a step: per layer the statistics and row ranks, the devices (the
        draws) and the read; then the loss and hits into ``record``'s column, and with ``backward``
        dL/dz and the last layer's dL/dI (an evaluation step passes False: no gradient is
        written). ``chip``: None, or chip sampling's read stream (a :class:`ChipReads`): every row
        drawn, the draws restarting at the seed's first word, read noise from the read stream."""
        k, K = self._kernels, self.K
        xs = [x0] + self.x[1:]
        last = len(self.shapes) - 1
        for l, (n_in, n_out) in enumerate(self.shapes):
            D, dev, st, off = self.D[l], self.dev[l], self.st[l], self.offsets[l]
            reads, read_off = (state, off) if chip is None else (chip.state, chip.offsets[l])
            k["stats_scan"][K, ks.RT](D, self.P, st, xs[l], p, self.rank[l], off, state, l > 0, reads, read_off,
                                      chip is not None, chip is not None and l == 0)
            if self._kde:
                k["stuck_counts"][ks.grid(K * (n_in + 1))](D, self.rank[l], self.P, state, off, self.stuck_rows[l])
                k["stuck_starts"][ks.grid(K)](self.P, state, self.stuck_rows[l])
            k["devices"][ks.grid(K * (n_in + 1))](D, self.rank[l], st, self.P, state, off, dev["G"], dev["c"],
                                                  dev["d"], dev["KK"], dev["eps"], dev["fdr"], dev["frd"],
                                                  dev["stk"], self.stuck_rows[l], self.kde, reads, read_off,
                                                  chip is not None)
            k["forward"][ks.grid(K * p * n_out, ks.RS)](xs[l], p, self.rank[l], dev["c"], dev["KK"], st, self.P,
                                                        self.adc[l], self.I[l], self.x[l + 1], l < last,
                                                        self.inside[l])
        k["loss"][K, ks.RT](self.x[-1], self.labels, p, self.st, self.P, self.gy[last], self.scratch, record,
                            column, steps, self.I[last], self.st[last], self.gI[last], backward)

    def _backward(self, x0, p):
        """The backward half of a step, after :meth:`_forward` (with ``backward``): per layer from
        the last, the VJPs (outputs, inputs, devices), the tie share and the update."""
        k, K = self._kernels, self.K
        xs = [x0] + self.x[1:]
        last = len(self.shapes) - 1
        for l in range(last, -1, -1):
            n_in, n_out = self.shapes[l]
            D, dev, st = self.D[l], self.dev[l], self.st[l]
            if l < last:     # the last layer's: in the loss kernel
                k["outputs_vjp"][K, ks.RT](self.gy[l], self.I[l], p, st, self.P, self.gI[l])
            if l:
                k["inputs_vjp"][ks.grid(K * p * n_in)](xs[l], p, self.rank[l], dev["c"], dev["KK"],
                                                       self.gI[l], self.P, self.gy[l - 1], self.inside[l])
            k["devices_vjp"][ks.grid(K * (n_in + 1) * 2 * n_out)](
                xs[l], p, self.rank[l], dev["G"], dev["c"], dev["d"], dev["KK"], D, self.gI[l], st, self.P,
                dev["gD"], dev["prod"], dev["eps"], dev["fdr"], dev["frd"], dev["stk"], self.inside[l])
            grad, prod = dev["gD"], dev["prod"]
            if self.standard:       # dL/dW from the devices' dL/dG
                grad, prod = dev["gW"], dev["prodW"]
                k["standard_vjp"][ks.grid(D.size)](D, dev["gD"], st, self.P, grad, prod)
            k["tie_share"][K, ks.RT](prod, st)
            k["update"][ks.grid(D.size)](D, grad, st, self.P)

    def _finish(self, rngs, state, record, steps, sizes):
        for l, D in enumerate(self.D):
            self._kernels["weights_sum"][self.K, ks.RT](D, record, 2 + 2 * steps, l > 0)
        self._kernels["finish"][ks.grid(self.K)](state, record)
        host = record.copy_to_host()
        words = host[:, 0].astype(np.uint64)
        for rng, used in zip(rngs, words):
            _advance(rng, used)
        for rng, held in zip(rngs, host[:, 1]):
            if held >= 0:       # float32 stuck draws: the half word NumPy's uniforms leave held
                bits = rng.bit_generator.state
                bits["uinteger"] = int(held)
                rng.bit_generator.state = bits
        accuracies = host[:, 2 + steps:2 + 2 * steps] / np.asarray(sizes, dtype=np.float64)
        return EpochRecord(host[:, 2:2 + steps], accuracies, words, np.isfinite(host[:, 2 + 2 * steps]))

    def train_step(self, x, y, rng):
        """One step of every member on a host batch: x (p, ...) shared by the members or (K, p, ...),
        inputs in [0, 1]; y (p,) or (K, p) labels; rng one Generator per member (PCG64). Sends x,
        then the states with the labels; reads one record. Returns a StepRecord."""
        rngs = _generators(rng, self.K, self._half_words)
        x = np.asarray(x)
        n_in = self.shapes[0][0]
        example = self.models[0].input_shape or (n_in,)
        if x.ndim not in (len(example) + 1, len(example) + 2) or x.dtype.kind not in "fiub" or not x.size \
                or (x.ndim == len(example) + 2 and len(x) != self.K) or x.size % n_in:
            raise ValueError(f"x must be (p, {', '.join(map(str, example))}) shared by the members or "
                             f"(K = {self.K}, p, ...) with inputs in [0, 1]; got {x.dtype} {x.shape}")
        x = x.reshape(self.K if x.ndim == len(example) + 2 else 1, -1, n_in)
        if not np.all((x >= 0) & (x <= 1)):
            raise ValueError("x must hold inputs in [0, 1] (finite)")
        p = x.shape[1]
        x = np.ascontiguousarray(np.broadcast_to(x, (self.K, p, n_in)), dtype=self.dtype)
        labels = np.broadcast_to(self._labels(y, p), (self.K, p))
        self._batch(p)
        xd = cuda.to_device(x)
        state = cuda.to_device(_states(rngs, labels))
        record = cuda.device_array((self.K, 5), dtype=np.float64)
        self._kernels["take_labels"][ks.grid(self.K * p)](state, p, self.labels)
        self._step(xd, p, 0, 1, record, state)
        out = self._finish(rngs, state, record, 1, [p])
        return StepRecord(out.losses[:, 0], out.accuracies[:, 0])

    def train_epoch(self, rng, order=None, batch_size=64):
        """One epoch over the uploaded set (:meth:`set_data`) in batches of ``batch_size`` (the last
        may be shorter); ``order``: (N,) or (K, N) permutations, or None to draw each member's from
        its Generator (``rng.permutation(N)``, before the epoch's draws). Returns an EpochRecord."""
        if self.pool is None:
            raise ValueError("train_epoch needs a training set: call set_data(images, labels) first")
        rngs = _generators(rng, self.K, self._half_words)
        N = self.examples
        B = _batch_size(batch_size)
        if order is None:
            order = np.stack([r.permutation(N) for r in rngs])
        order = np.asarray(order)
        if order.shape not in ((N,), (self.K, N)) or order.dtype.kind not in "iu" or order.min() < 0 \
                or order.max() >= N:
            raise ValueError(f"order must be (N,) or (K, N) = ({self.K}, {N}) example indices in [0, {N}); "
                             f"got {order.dtype} {order.shape}")
        order = np.broadcast_to(order, (self.K, N))
        self._batch(B)
        packed = cuda.to_device(_states(rngs, order))
        state, index = packed[:, :6], packed[:, 6:]
        steps = -(-N // B)
        record = cuda.device_array((self.K, 3 + 2 * steps), dtype=np.float64)
        sizes = []
        for s in range(steps):
            p = min(B, N - s * B)
            sizes.append(p)
            self._kernels["gather"][ks.grid(self.K * p * self.shapes[0][0])](
                self.pool, self.pool_labels, index, s * B, p, self.scale, self.x[0], self.labels)
            self._step(self.x[0], p, s, steps, record, state)
        return self._finish(rngs, state, record, steps, sizes)

    def sync(self):
        """Copy the device weights into the host models (in place); returns the models."""
        for l, D in enumerate(self.D):
            host = D.copy_to_host()
            for k, layers in enumerate(self._dense):
                layer = layers[l]
                if self.standard:       # W and b are the layer's own arrays (its matrix is a copy)
                    layer.params["W"][...] = host[k][:-1].reshape(layer.params["W"].shape)
                    layer.params["b"][...] = host[k][-1]
                else:
                    layer._matrix()[...] = host[k]
        return self.models
