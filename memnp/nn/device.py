"""Device-resident training of K MLPs, PF or linear, on a CUDA GPU (issue 17, items 1-2).

:class:`DeviceTrainer` takes one :class:`memnp.nn.Sequential` or K of them (the members: the same
layer sizes and dtype; each may have its own stage, learning rate, L1 coefficient, Generator
and data order) and runs their training steps with the kernels of
:mod:`memnp.kernels.cuda_step`, every kernel indexed by (member, row, column), so one step of K
networks costs the same launches as one. Supported networks: [Flatten], MemristiveDense, Sigmoid,
..., MemristiveDense, Softmax, with double weights (D >= 0, projected after each step) or standard
weights (signed W, two devices per weight, mapped by the stage's mapping rule:
memnp.kernels.cuda_standard; not under the ideal stage, which the CPU reads digitally), every
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
from .layers import Flatten, Sigmoid, Softmax
from .memristive import MemristiveDense
from .model import Sequential
from .optim import SGD

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


def _members(models):
    if isinstance(models, Sequential):
        return [models]
    try:
        models = list(models)
    except TypeError:
        raise ValueError(f"models must be a memnp.nn.Sequential or a list of them; got "
                         f"{type(models).__name__}") from None
    if not models or not all(isinstance(m, Sequential) for m in models):
        raise ValueError("models must be a memnp.nn.Sequential or a non-empty list of them")
    return models


def _dense_layers(model, index):
    """The MemristiveDense layers of a supported network, or ValueError naming what is not."""
    layers = list(model.layers)
    if layers and isinstance(layers[0], Flatten):
        layers = layers[1:]
    where = f"DeviceTrainer (member {index})"
    for layer in layers:
        if type(layer) not in (MemristiveDense, Sigmoid, Softmax):
            raise ValueError(f"{where} supports MLPs of MemristiveDense layers (double or standard weights) "
                             f"with Sigmoid between and Softmax last; {type(layer).__name__} is not supported")
    dense = layers[0::2]
    between = layers[1:-1:2]
    if len(layers) < 2 or len(layers) % 2 or not isinstance(layers[-1], Softmax) \
            or not all(isinstance(layer, MemristiveDense) for layer in dense) \
            or not all(isinstance(layer, Sigmoid) for layer in between):
        raise ValueError(f"{where} needs the layers [Flatten], MemristiveDense, Sigmoid, ..., MemristiveDense, "
                         f"Softmax; got {[type(layer).__name__ for layer in model.layers]}")
    if len({layer.weights for layer in dense}) != 1:
        raise ValueError(f"{where}: the layers mix double and standard weights; the device needs one kind")
    reason = device_stage.unsupported(model.stage)
    if reason is not None:
        raise ValueError(f"{where}: {reason}")
    if dense[0].weights == "standard" and model.stage.is_ideal:
        raise ValueError(f"{where}: standard weights under an ideal stage are read digitally (x W + b) on the "
                         "host; the device reads crossbars")
    opt = model.optimizer
    if type(opt) is not SGD or opt.momentum:
        got = opt.config() if type(opt) is SGD else type(opt).__name__
        raise ValueError(f"{where} supports plain SGD (momentum 0) only; got {got}")
    return dense


def _params(model):
    """(N_PARAMS,) float64: the member's constants (memnp.kernels.cuda_phases' columns)."""
    stage = model.stage
    pf_terms = [0.0] * 8                      # a linear read: no PF constants
    if "currents" in stage.phases:
        pf = stage.phases["currents"].fused()     # the residuals' factor L, the slopes and intercepts
        (l00, l01), (l10, l11) = np.asarray(pf.factor, dtype=np.float64)
        pf_terms = [pf.slopes[0], pf.slopes[1], pf.intercepts[0], pf.intercepts[1], l00, l01, l10, l11]
    step = [stage.G_off, stage.G_on, stage.k_V, *pf_terms, model.optimizer.lr, model.l1]
    out = np.concatenate([np.array(step, dtype=np.float64), device_stage.stage_columns(stage, model.dtype)])
    kde = device_stage.kde_table(stage)
    if kde is not None:                       # StuckDistribution: its table's size and bandwidth
        out[cuda_phases.KDE_N], out[cuda_phases.KDE_H] = len(kde[0]), kde[1]
    if _standard(model):
        out[cuda_phases.MAPPING] = (cuda_phases.STANDARD_DEFAULT if stage.mapping_rule == "default"
                                    else cuda_phases.STANDARD_AVG)
        out[cuda_phases.G_AVG] = 0.5 * (stage.G_off + stage.G_on)
    return out


def _standard(model):
    """True when the model's memristive layers hold standard weights (signed W, two devices per weight)."""
    return model.memristive_layers[0].weights == "standard"


def _generators(rngs, members, half_words=()):
    """The members' Generators, checked; ``half_words``: the members whose stage draws float32
    stuck uniforms (their Generators must not hold a half word)."""
    rngs = [rngs] if isinstance(rngs, np.random.Generator) else list(rngs)
    if len(rngs) != members:
        raise ValueError(f"rng must be one numpy.random.Generator per member ({members}); got {len(rngs)}")
    for rng in rngs:
        if not isinstance(rng, np.random.Generator) or type(rng.bit_generator) is not np.random.PCG64:
            raise ValueError("rng must be numpy.random.Generator(s) on numpy.random.PCG64 "
                             "(np.random.default_rng(seed))")
    if len({id(rng) for rng in rngs}) != len(rngs):
        raise ValueError("rng: each member needs its own Generator (the same object was given twice)")
    for k in half_words:
        if rngs[k].bit_generator.state["has_uint32"]:
            raise ValueError(f"rng of member {k} holds half a word from an earlier 32-bit draw; the device's "
                             "float32 stuck-device draws need a Generator that holds none (a fresh one, or "
                             "one used only by memnp's training)")
    return rngs


def _states(rngs, extra):
    """uint64 (K, 6 + extra.shape[1]): state high, low, increment high, low, 0 words, no half word
    held (memnp.kernels.cuda_step's state), then extra."""
    packed = np.zeros((len(rngs), 6 + extra.shape[1]), dtype=np.uint64)
    for k, rng in enumerate(rngs):
        s = rng.bit_generator.state["state"]
        packed[k, :4] = [s["state"] >> 64, s["state"] & (2 ** 64 - 1), s["inc"] >> 64, s["inc"] & (2 ** 64 - 1)]
    packed[:, 6:] = extra
    return packed


def _batch_size(batch_size):
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    return int(batch_size)


def _advance(rng, words):
    """Move rng on by ``words`` raw words as random_raw would (its buffered 32-bit half kept)."""
    bits = rng.bit_generator
    before = bits.state
    bits.advance(int(words))
    after = bits.state
    after["has_uint32"], after["uinteger"] = before["has_uint32"], before["uinteger"]
    bits.state = after


def _checked(models):
    """(each member's MemristiveDense layers, the layers' (n_in, n_out)) of supported members, or
    ValueError naming what is not supported."""
    dense = [_dense_layers(model, k) for k, model in enumerate(models)]
    shapes = [(layer.n_in, layer.n_out) for layer in dense[0]]
    for k, layers in enumerate(dense):
        if [(layer.n_in, layer.n_out) for layer in layers] != shapes:
            raise ValueError(f"DeviceTrainer: member {k}'s layer sizes differ from member 0's ({shapes})")
        if models[k].dtype != models[0].dtype:
            raise ValueError(f"DeviceTrainer: member {k}'s dtype differs from member 0's")
        if layers[0].weights != dense[0][0].weights:
            raise ValueError(f"DeviceTrainer: member {k} has {layers[0].weights} weights, member 0 "
                             f"{dense[0][0].weights} weights; the members need one kind")
    return dense, shapes


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
            if self.standard:
                k["standard_vjp"][ks.grid(K * (n_in + 1) * n_out)](D, dev["gD"], st, self.P, dev["gW"], dev["prodW"])
                k["tie_share"][K, ks.RT](dev["prodW"], st)
                k["standard_update"][ks.grid(K * (n_in + 1) * n_out)](D, dev["gW"], st, self.P)
            else:
                k["tie_share"][K, ks.RT](dev["prod"], st)
                k["update"][ks.grid(K * (n_in + 1) * 2 * n_out)](D, dev["gD"], st, self.P)

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
