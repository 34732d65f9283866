"""A sequential network: training step, prediction, evaluation, power report and model files.

The crossbar stage a pass runs under is the model's ``stage`` unless a call gives another, so the
same weights can be trained under one stage and evaluated under any inference stage. Every random
draw of a pass (nonidealities) comes from the Generator the caller passes as ``rng``.

Model files are ``.npz`` archives (read with ``allow_pickle=False``): ``architecture`` and
``stage`` are one-element string arrays holding JSON, and parameter ``name`` of layer ``i`` is
stored under ``layer{i}.{name}``. Files are written atomically.
"""
import json
import math
import os
import zipfile
import zlib

import numpy as np

from ..data._atomic import atomic_write
from ..crossbar import Stage
from ..kernels import get_backend
from .activations import Softmax
from .base import DRAW_POLICIES, Layer, PassContext, _dtype, _generator, layer_from_config, stage_or_none
from .losses import accuracy, cross_entropy_and_accuracy_from_logits, cross_entropy_from_probabilities
from .optim import SGD, l1_gradient_, l1_penalty

FORMAT = "memnp.Sequential"
#: Draw policies of a pass (see memnp.nn.base.PassContext).
DRAWS = DRAW_POLICIES
VERSION = 1


class Sequential:
    """Layers applied in order.

    layers: list of memnp.nn layers; input_shape: one example's shape (optional; checked against the
    layers when given); stage: the default Stage (needed by memristive layers); optimizer: default
    SGD(lr=0.01); l1: L1 coefficient gamma on every memristive weight and bias tensor (0: none;
    1e-4 in the paper's regularised stages); backend: kernel backend name (None: the default).

    When the last layer is :class:`Softmax`, the loss and its gradient are computed from the logits
    (log-softmax), exactly as Keras does for such a network.
    """

    def __init__(self, layers, input_shape=None, stage=None, optimizer=None, l1=0.0, backend=None):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("layers must hold at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"layers must be memnp.nn layers (Dense, MemristiveDense, ...); layer {i} is "
                                 f"{type(layer).__name__}")
        self.input_shape = None if input_shape is None else _shape("input_shape", input_shape)
        if self.input_shape is not None:
            self.output_shape()
        else:
            _check_widths(self.layers)
        self.stage = stage_or_none("stage", stage)
        if optimizer is not None and not callable(getattr(optimizer, "step", None)):
            raise ValueError(f"optimizer must be None or an optimizer with a step method (memnp.nn.optim.SGD); "
                             f"got {type(optimizer).__name__}")
        self.optimizer = optimizer if optimizer is not None else SGD()
        if isinstance(l1, (bool, np.bool_)):
            raise ValueError(f"l1 must be a number >= 0, not a boolean; got {l1!r}")
        try:
            l1 = float(l1)
        except (TypeError, ValueError):
            raise ValueError(f"l1 must be a finite number >= 0; got {l1!r}") from None
        if not (math.isfinite(l1) and l1 >= 0):
            raise ValueError(f"l1 must be a finite number >= 0; got {l1!r}")
        self.l1 = l1
        self.backend = backend
        self._fused = isinstance(self.layers[-1], Softmax)
        trainable = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = trainable[0] if trainable else len(self.layers)
        for i, layer in enumerate(self.layers):
            if hasattr(layer, "needs_input_gradient"):
                layer.needs_input_gradient = i > self._first_trainable

    # -- structure ------------------------------------------------------------------------------
    @property
    def dtype(self):
        return self.layers[0].dtype

    def astype(self, dtype):
        """Convert every layer's parameters to ``dtype`` (float32 or float64); returns self."""
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def output_shape(self):
        """One example's output shape (needs ``input_shape``); ValueError if the layers don't chain."""
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as exc:
                raise ValueError(f"layer {i} ({type(layer).__name__}) does not fit its input: "
                                 f"{exc}") from None
        return shape

    def initialize(self, rng):
        """Initialise every layer's parameters from ``rng`` (each layer's own initialiser)."""
        _generator(rng)
        for layer in self.layers:
            layer.initialize(rng)
        return self

    @property
    def memristive_layers(self):
        return [layer for layer in self.layers if getattr(layer, "memristive", False)]

    def parameters(self):
        """[(key "layer{i}.{name}", layer, name)] for every parameter."""
        return [(f"layer{i}.{name}", layer, name)
                for i, layer in enumerate(self.layers) for name in layer.params]

    def architecture(self):
        return {"format": FORMAT, "version": VERSION,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "dtype": self.dtype.name, "l1": self.l1,
                "layers": [layer.config() for layer in self.layers]}

    # -- passes ---------------------------------------------------------------------------------
    def _context(self, rng, stage, draws="active", read_rng=None):
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be None or a numpy.random.Generator (np.random.default_rng(seed)); "
                             f"got {type(rng).__name__}")
        if draws not in DRAWS:
            raise ValueError(f"draws must be one of {', '.join(DRAWS)}; got {draws!r}")
        # The backend is resolved once per pass (a name becomes its memnp.kernels.backend.Backend)
        # and handed down: layers -> CrossbarPass -> tiling -> the wires' solver.
        return PassContext(stage if stage is not None else self.stage, rng, get_backend(self.backend), draws,
                           read_rng)

    def _inputs(self, x):
        x = np.asarray(x)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"x must hold at least one example; got shape {x.shape}")
        if x.dtype.kind in "ui" and x.max() > 1:
            raise ValueError(f"x holds {x.dtype} values up to {x.max()}: memnp models take inputs "
                             f"scaled to [0, 1] (for 8-bit images, pass x / 255)")
        if x.dtype.kind not in "fiub":
            raise ValueError(f"x must be a real numeric array; got dtype {x.dtype}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(f"x must have shape (examples, {', '.join(map(str, self.input_shape))}); "
                             f"got {x.shape}")
        return x

    def _run(self, x, ctx, last):
        for layer in self.layers[:last]:
            x = layer.forward(x, ctx)
        return x

    def forward(self, x, rng=None, stage=None, draws="active", read_rng=None):
        """Outputs (p, ...) of the whole network for one batch x (p, ...). ``draws``: "active" or
        "all"; ``read_rng``: the read-noise stream (see :class:`memnp.nn.base.PassContext`)."""
        return self._run(self._inputs(x), self._context(rng, stage, draws, read_rng), len(self.layers))

    def predict(self, x, rng=None, stage=None, batch_size=None, draws="active"):
        """Outputs for x, in batches of ``batch_size`` (None: one batch); fresh draws per batch."""
        x = self._inputs(x)
        if batch_size is None:
            return self.forward(x, rng, stage, draws)
        return np.concatenate([self.forward(x[i:i + batch_size], rng, stage, draws)
                               for i in range(0, len(x), _batch(batch_size))])

    def _loss(self, x, y, ctx):
        """(loss without L1, accuracy, dL/d(output of the last layer the gradient starts at))."""
        if self._fused:
            return cross_entropy_and_accuracy_from_logits(self._run(x, ctx, len(self.layers) - 1), y)
        probabilities = self._run(x, ctx, len(self.layers))
        loss, grad = cross_entropy_from_probabilities(probabilities, y)
        return loss, accuracy(probabilities, y), grad

    def l1_penalty(self):
        """l1 * sum |theta| over the memristive layers' parameters (0.0 when l1 is 0)."""
        if not self.l1:
            return 0.0
        return l1_penalty([v for layer in self.memristive_layers for v in layer.params.values()], self.l1)

    def compute_gradients(self, x, y, rng=None, stage=None):
        """Forward and backward pass on one batch: fills every layer's ``grads`` (L1 included) and
        returns (loss including the L1 penalty, accuracy)."""
        x = self._inputs(x)
        loss, acc, grad = self._loss(x, y, self._context(rng, stage))
        stop = len(self.layers) - 1 if self._fused else len(self.layers)
        for i in range(stop - 1, self._first_trainable - 1, -1):
            grad = self.layers[i].backward(grad, need_dx=i > self._first_trainable)
        if self.l1:
            for layer in self.memristive_layers:
                for _, theta, grad, _ in layer.update_groups():
                    l1_gradient_(theta, grad, self.l1)
        return loss + self.l1_penalty(), acc

    def train_step(self, x, y, rng=None, stage=None):
        """One optimiser step on the batch (x (p, ...), integer labels y (p,)); double weights are
        projected onto >= 0 as part of it. Returns (loss including L1, accuracy) before the step."""
        loss, acc = self.compute_gradients(x, y, rng, stage)
        self.optimizer.step((f"layer{i}.{name}", theta, grad, non_negative)
                            for i, layer in enumerate(self.layers)
                            for name, theta, grad, non_negative in layer.update_groups())
        return loss, acc

    def evaluate(self, x, y, rng=None, stage=None, batch_size=100, power=False, draws="active",
                 read_rng=None):
        """{"loss", "accuracy", "power"} over x in batches (fresh draws per batch). loss is the mean
        cross-entropy plus the L1 penalty (as Keras reports it); power (W) is the total average power
        of the memristive crossbars, averaged over batches (None unless ``power``)."""
        x, y = self._inputs(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"y must have one label per example of x ({len(x)}); got {len(y)}")
        ctx = self._context(rng, stage, draws, read_rng)
        losses, hits, powers = 0.0, 0.0, []
        step = _batch(batch_size)
        for i in range(0, len(x), step):
            xb, yb = x[i:i + step], y[i:i + step]
            loss, acc, _ = self._loss(xb, yb, ctx)
            losses += loss * len(xb)
            hits += acc * len(xb)
            if power:
                powers.append(self.power())
        return {"loss": losses / len(x) + self.l1_penalty(), "accuracy": hits / len(x),
                "power": float(np.mean(powers)) if power else None}

    def layer_powers(self):
        """Average power (W) of each memristive layer's crossbar in the last forward pass."""
        return [layer.power() for layer in self.memristive_layers]

    def power(self):
        """Total average power (W) of the memristive crossbars in the last forward pass (docs/model.md §3)."""
        return float(sum(self.layer_powers()))

    # -- files ----------------------------------------------------------------------------------
    def save(self, path):
        """Write weights, architecture and stage to ``path`` (.npz), atomically."""
        arrays = {"architecture": np.array([json.dumps(self.architecture())]),
                  "stage": np.array([json.dumps(None if self.stage is None else self.stage.to_dict())])}
        for key, layer, name in self.parameters():
            arrays[key] = layer.params[name]
        path = os.fspath(path)
        atomic_write(path, lambda f: np.savez(f, **arrays),
                     prefix=os.path.basename(path) + ".", suffix=".tmp", parents=False)

    @classmethod
    def load(cls, path, backend=None, optimizer=None):
        """Rebuild a model (architecture, stage, l1, weights) from a file written by :meth:`save`."""
        architecture, stage, weights = _read(path)
        try:
            layers = [layer_from_config(config) for config in architecture["layers"]]
            model = cls(layers, input_shape=architecture.get("input_shape"), stage=stage,
                        optimizer=optimizer, l1=architecture.get("l1", 0.0), backend=backend)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)}: the architecture in the file is not valid: {exc}") from None
        model.astype(architecture.get("dtype", "float32"))
        model._set_weights(weights, path)
        return model

    def load_weights(self, path):
        """Load the weights of a file written by :meth:`save` into this model (same architecture)."""
        architecture, _, weights = _read(path)
        ours = [layer.config() for layer in self.layers]
        if architecture.get("layers") != ours:
            raise ValueError(f"{os.fspath(path)} holds a different architecture: "
                             f"{architecture.get('layers')} (this model: {ours})")
        self._set_weights(weights, path)
        return self

    def set_weights(self, arrays, source="weights"):
        """Copy {"layer{i}.{name}": array} into the parameters (a model file's "architecture" and
        "stage" entries are ignored). ValueError naming ``source`` (a file name, say) and the layer
        for a missing, unexpected or misshapen array, or one that is not floating-point or holds
        NaN or inf (in the layer's dtype); on an error no parameter changes. Returns self."""
        self._set_weights({key: value for key, value in arrays.items() if key not in ("architecture", "stage")},
                          source)
        return self

    def _set_weights(self, weights, path):
        expected = {key: layer.params[name].shape for key, layer, name in self.parameters()}
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        if missing or extra:
            raise ValueError(f"{os.fspath(path)} does not fit the architecture: missing parameters "
                             f"{missing or 'none'}, unexpected arrays {extra or 'none'}")
        checked = []
        for key, layer, name in self.parameters():
            value = weights[key]
            where = f"{key} (layer {key[5:key.index('.')]}, {type(layer).__name__}.{name})"
            if value.shape != expected[key]:
                raise ValueError(f"{os.fspath(path)} does not fit the architecture: {where} has shape "
                                 f"{value.shape} in the file but the layer needs {expected[key]}")
            if value.dtype.kind != "f":
                raise ValueError(f"{os.fspath(path)}: {where} must hold floating-point values; got dtype "
                                 f"{value.dtype}")
            with np.errstate(over="ignore"):      # too large for the layer's dtype: inf, refused below
                value = value.astype(layer.dtype)
            bad = np.count_nonzero(~np.isfinite(value))
            if bad:
                raise ValueError(f"{os.fspath(path)}: {where} holds {bad} NaN or infinite value(s) (in "
                                 f"{layer.dtype}); weights must be finite (was the file written by a "
                                 f"diverged training?)")
            checked.append((layer, name, value))
        for layer, name, value in checked:    # all or nothing: the model is unchanged on an error
            layer.params[name] = value


def _check_widths(layers):
    """ValueError when a layer's input width differs from the output width of the layers before
    it (widths: the last axis; see :meth:`memnp.nn.base.Layer.input_width`)."""
    width, source = None, None
    for i, layer in enumerate(layers):
        need = layer.input_width()
        if need is not None and width is not None and need != width:
            raise ValueError(f"layers do not chain: layer {i} ({type(layer).__name__}) takes inputs of "
                             f"width {need}, but layer {source} ({type(layers[source]).__name__}) "
                             f"gives {width}")
        out = layer.output_width(width)
        if out != width or need is not None:
            source = i
        width = out


def _shape(name, shape):
    """One example's shape: a tuple of integers >= 1."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or isinstance(shape, str) or not dims or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 1 for n in dims):
        raise ValueError(f"{name} must be a tuple of integers >= 1 (one example's shape); got {shape!r}")
    return tuple(int(n) for n in dims)


def _batch(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    return int(batch_size)


def _read(path):
    """(architecture dict, Stage or None, {key: array}) of a model file."""
    if os.path.isdir(os.fspath(path)):
        raise ValueError(f"{os.fspath(path)} is a directory, not a memnp model file (.npz)")
    try:
        data = np.load(os.fspath(path), allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array (.npy), not a .npz archive")
        with data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{os.fspath(path)} is not a readable .npz model file: it is truncated or not a memnp "
                         f"model file (a .npz archive written by Sequential.save) ({type(exc).__name__}: "
                         f"{exc})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)} is not a readable .npz model file: {exc}") from None
    for key in ("architecture", "stage"):
        if key not in arrays or arrays[key].shape != (1,) or arrays[key].dtype.kind != "U":
            raise ValueError(f"{os.fspath(path)} is not a memnp model file: no '{key}' JSON string array")
    try:
        architecture = json.loads(str(arrays.pop("architecture")[0]))
        stage = json.loads(str(arrays.pop("stage")[0]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: bad JSON in the model file: {exc}") from None
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a memnp model file (format must be {FORMAT!r})")
    if architecture.get("version") != VERSION:
        raise ValueError(f"{os.fspath(path)} has model-file version {architecture.get('version')!r}; "
                         f"this memnp reads version {VERSION}")
    _dtype(architecture.get("dtype", "float32"))
    try:
        stage = None if stage is None else Stage.from_dict(stage)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)}: the stage in the model file is not valid: {exc}") from None
    return architecture, stage, arrays
