"""Digital layers with hand-written forward and backward passes.

Every layer follows one protocol:

- ``forward(x, ctx=None) -> y`` keeps what the backward pass needs (``ctx`` is the
  :class:`PassContext` of the call; only memristive layers read it);
- ``backward(dy, need_dx=True) -> dx`` returns dL/dx (or None when ``need_dx`` is False) and
  fills ``layer.grads[name]`` for every parameter ``layer.params[name]``;
- ``config()`` describes the layer as JSON-ready data; :func:`layer_from_config` rebuilds it.

Image tensors are NHWC: (examples, height, width, channels). Convolutions are 'valid' with
stride 1; pooling is 2 x 2 with stride 2 (odd trailing rows and columns are dropped, as Keras does).
Parameters are held in the layer's dtype (float32 by default); inputs are used in their own dtype.
"""
import dataclasses
import math

import numpy as np
from scipy import special

from ..crossbar import Stage
from ..crossbar.validation import generator
from ..registry import build_from_dict

_LAYERS = {}


def register(cls):
    """Class decorator: make ``cls`` rebuildable by :func:`layer_from_config`."""
    _LAYERS[cls.__name__] = cls
    return cls


def layer_from_config(config):
    """Rebuild a layer (with zero parameters) from :meth:`Layer.config` output."""
    return build_from_dict(_LAYERS, config, "layer")


@dataclasses.dataclass(frozen=True)
class PassContext:
    """What a forward pass runs under: the crossbar stage (memnp.crossbar.Stage or None), the
    Generator every random draw comes from (None when the stage draws nothing), the kernel
    backend (a memnp.kernels.backend.Backend or its name; None: the default) and the draw policy: ``"active"`` draws only for the crossbar
    rows a batch reads (rows whose inputs are all 0 are skipped), ``"all"`` draws for every device
    and keeps the active rows' draws, so a reseeded Generator gives every device the same draws
    whatever the inputs (what a programmed chip, held fixed over many batches, needs).
    ``read_rng``: where the "read" draws (read noise) come from when given (chip mode: a stream
    that goes on from batch to batch while ``rng`` is rebuilt for every batch); None: from ``rng``."""

    stage: object = None
    rng: object = None
    backend: object = None
    draws: str = "active"
    read_rng: object = None

    def __post_init__(self):
        stage_or_none("stage", self.stage)
        if self.draws not in DRAW_POLICIES:
            raise ValueError(f"draws must be one of {', '.join(DRAW_POLICIES)}; got {self.draws!r}")


#: Draw policies of a pass (see PassContext).
DRAW_POLICIES = ("active", "all")


def stage_or_none(name, stage):
    """ValueError unless ``stage`` is a memnp.crossbar.Stage or None."""
    if stage is not None and not isinstance(stage, Stage):
        raise ValueError(f"{name} must be a memnp.crossbar.Stage (Stage(G_off, G_on, ...), or "
                         f"Stage.from_dict / memnp.data.presets.preset_stage) or None; got {type(stage).__name__}")
    return stage


def _dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def _generator(rng):
    """ValueError unless ``rng`` is a numpy.random.Generator."""
    return generator("rng", rng)


def _batch_of(x, n_in, name):
    """ValueError unless x is a non-empty (p, n_in) array."""
    _examples(x, 2, n_in, name, f"(examples, {n_in})", "rows")


def _image_batch(x, c_in, name):
    """ValueError unless x is a non-empty (N, H, W, c_in) array."""
    _examples(x, 4, c_in, name, f"(examples, height, width, {c_in})", "images")


def _examples(x, ndim, last, name, form, unit):
    """ValueError unless x has ``ndim`` axes, ``last`` entries on the last one and at least one
    example (``form``: the expected shape in words; ``unit``: what one example is)."""
    shape = np.shape(x)
    if len(shape) != ndim or shape[-1] != last:
        raise ValueError(f"x must have shape {form} for {name}; got {shape}")
    if shape[0] == 0:
        raise ValueError(f"x must hold at least one example (a batch of >= 1 {unit}); got shape {shape}")


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


class Layer:
    """Base class: no parameters, identity config."""

    def __init__(self, dtype="float32"):
        self.dtype = _dtype(dtype)
        self.params = {}
        self.grads = {}

    # -- parameters -----------------------------------------------------------------------------
    def param_shapes(self):
        """{name: shape} of every parameter."""
        return {name: value.shape for name, value in self.params.items()}

    def initialize(self, rng):
        """Draw the initial parameters from ``rng`` (no-op for layers without parameters)."""

    @property
    def constrained(self):
        """Names of the parameters kept >= 0 (projected after every optimiser step)."""
        return ()

    def update_groups(self):
        """[(name, parameter, gradient, non_negative)] the optimiser updates in place: one per
        parameter (a layer may group parameters that share storage); non_negative: project the
        group onto >= 0 after the update."""
        constrained = self.constrained
        return [(name, value, self.grads[name], name in constrained) for name, value in self.params.items()]

    def astype(self, dtype):
        """Convert parameters (and future computations) to ``dtype`` (float32 or float64)."""
        self.dtype = _dtype(dtype)
        for name, value in self.params.items():
            self.params[name] = value.astype(self.dtype)
        self.grads = {}
        return self

    def config(self):
        return {"type": type(self).__name__}

    def output_shape(self, input_shape):
        """Shape of one example's output from one example's input shape (tuples, no batch axis)."""
        return tuple(input_shape)

    def input_width(self):
        """The size of the last input axis this layer needs (None: any); with
        :meth:`output_width`, how :class:`~memnp.nn.model.Sequential` checks that its layers
        chain when it has no input shape."""
        return None

    def output_width(self, width):
        """The size of the last output axis from that of the input (None: unknown); elementwise
        layers keep it."""
        return width

    # -- passes ---------------------------------------------------------------------------------
    def _forward_cache(self, name):
        """The attribute ``name`` that forward keeps for backward; ValueError before any forward."""
        value = getattr(self, name, None)
        if value is None:
            raise ValueError(f"{type(self).__name__}.backward needs a forward pass first (call forward)")
        return value

    def _gradient(self, dy, shape):
        """ValueError unless dL/dy ``dy`` has ``shape``, the shape of the last forward pass's
        outputs (a tuple compare: no broadcasting of a wrong gradient)."""
        if getattr(dy, "shape", None) != tuple(shape):
            raise ValueError(f"dy must have the shape of {type(self).__name__}'s outputs in the last forward "
                             f"pass {tuple(shape)}; got {getattr(dy, 'shape', type(dy).__name__)}")

    def forward(self, x, ctx=None):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({fields})"


def glorot_uniform(rng, shape, fan_in, fan_out, dtype):
    """Keras's default kernel initialiser: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)


@register
class Dense(Layer):
    """y = x W + b: x (p, n_in), W (n_in, n_out), b (n_out,), y (p, n_out)."""

    def __init__(self, n_in, n_out, dtype="float32"):
        super().__init__(dtype)
        self.n_in, self.n_out = _count("n_in", n_in), _count("n_out", n_out)
        self.params = {"W": np.zeros((self.n_in, self.n_out), self.dtype),
                       "b": np.zeros(self.n_out, self.dtype)}

    def config(self):
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out}

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.n_in,):
            raise ValueError(f"Dense expects inputs ({self.n_in},); got {tuple(input_shape)}")
        return (self.n_out,)

    def input_width(self):
        return self.n_in

    def output_width(self, width):
        return self.n_out

    def initialize(self, rng):
        _generator(rng)
        self.params["W"] = glorot_uniform(rng, (self.n_in, self.n_out), self.n_in, self.n_out, self.dtype)
        self.params["b"] = np.zeros(self.n_out, self.dtype)

    def forward(self, x, ctx=None):
        _batch_of(x, self.n_in, "Dense")
        self._x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy, need_dx=True):
        x = self._forward_cache("_x")
        self._gradient(dy, (x.shape[0], self.n_out))
        self.grads["W"] = x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T if need_dx else None


def _conv_outputs(x_shape, kernel_size, c_out):
    """The outputs' shape (N, H - kh + 1, W - kw + 1, c_out) of a 'valid' convolution of x (N, H, W, .)."""
    (N, H, W, _), (kh, kw) = x_shape, kernel_size
    return (N, H - kh + 1, W - kw + 1, c_out)


def im2col(x, kh, kw):
    """Receptive fields of x (N, H, W, C) as rows: (N * Ho * Wo, kh * kw * C), Ho = H - kh + 1,
    Wo = W - kw + 1, columns ordered (row offset, column offset, channel)."""
    N, H, W, C = x.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    cols = np.empty((N, Ho, Wo, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[:, i:i + Ho, j:j + Wo, :]
    return cols.reshape(N * Ho * Wo, kh * kw * C)


def col2im(cols, x_shape, kh, kw):
    """Adjoint of :func:`im2col`: sum the rows' gradients (N * Ho * Wo, kh * kw * C) back onto x."""
    N, H, W, C = x_shape
    Ho, Wo = H - kh + 1, W - kw + 1
    cols = cols.reshape(N, Ho, Wo, kh, kw, C)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + Ho, j:j + Wo, :] += cols[:, :, :, i, j, :]
    return dx


def _conv_output_shape(input_shape, kh, kw, c_in, c_out, name):
    if len(input_shape) != 3 or input_shape[2] != c_in:
        raise ValueError(f"{name} expects inputs (height, width, {c_in}); got {tuple(input_shape)}")
    Ho, Wo = input_shape[0] - kh + 1, input_shape[1] - kw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{name} with a {kh} x {kw} kernel needs inputs at least that large; "
                         f"got {tuple(input_shape)}")
    return (Ho, Wo, c_out)


@register
class Conv2D(Layer):
    """'valid', stride-1 convolution (cross-correlation, as Keras) by im2col and one GEMM.

    x (N, H, W, c_in) -> y (N, H - kh + 1, W - kw + 1, c_out); kernel (kh, kw, c_in, c_out), bias (c_out,).
    """

    def __init__(self, c_in, c_out, kernel_size=(3, 3), dtype="float32"):
        super().__init__(dtype)
        self.c_in, self.c_out = _count("c_in", c_in), _count("c_out", c_out)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        self.kernel_size = (_count("kernel_size", kh), _count("kernel_size", kw))
        self.params = {"kernel": np.zeros(self.kernel_size + (self.c_in, self.c_out), self.dtype),
                       "bias": np.zeros(self.c_out, self.dtype)}

    def config(self):
        return {"type": "Conv2D", "c_in": self.c_in, "c_out": self.c_out,
                "kernel_size": list(self.kernel_size)}

    def output_shape(self, input_shape):
        return _conv_output_shape(input_shape, *self.kernel_size, self.c_in, self.c_out, "Conv2D")

    def input_width(self):
        return self.c_in

    def output_width(self, width):
        return self.c_out

    def initialize(self, rng):
        _generator(rng)
        kh, kw = self.kernel_size
        shape = self.params["kernel"].shape
        self.params["kernel"] = glorot_uniform(rng, shape, kh * kw * self.c_in, kh * kw * self.c_out,
                                               self.dtype)
        self.params["bias"] = np.zeros(self.c_out, self.dtype)

    def forward(self, x, ctx=None):
        kh, kw = self.kernel_size
        _image_batch(x, self.c_in, "Conv2D")
        self._x_shape = x.shape
        self._cols = im2col(x, kh, kw)
        y = self._cols @ self.params["kernel"].reshape(-1, self.c_out)
        y += self.params["bias"]
        N, H, W, _ = x.shape
        return y.reshape(N, H - kh + 1, W - kw + 1, self.c_out)

    def backward(self, dy, need_dx=True):
        cols = self._forward_cache("_cols")
        self._gradient(dy, _conv_outputs(self._x_shape, self.kernel_size, self.c_out))
        dy2 = dy.reshape(-1, self.c_out)
        kernel = self.params["kernel"]
        self.grads["kernel"] = (cols.T @ dy2).reshape(kernel.shape)
        self.grads["bias"] = dy2.sum(axis=0)
        if not need_dx:
            return None
        return col2im(dy2 @ kernel.reshape(-1, self.c_out).T, self._x_shape, *self.kernel_size)


@register
class MaxPool2D(Layer):
    """2 x 2 max pooling, stride 2: x (N, H, W, C) -> (N, H // 2, W // 2, C).

    The gradient goes to the first maximum of each window (row-major order), as TensorFlow's does.
    """

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"MaxPool2D expects inputs (height, width, channels); got {tuple(input_shape)}")
        return (input_shape[0] // 2, input_shape[1] // 2, input_shape[2])

    def forward(self, x, ctx=None):
        N, H, W, C = x.shape
        H2, W2 = H // 2, W // 2
        self._x_shape = x.shape
        quads = [x[:, i:2 * H2:2, j:2 * W2:2, :] for i in (0, 1) for j in (0, 1)]
        y = np.maximum(np.maximum(quads[0], quads[1]), np.maximum(quads[2], quads[3]))
        # Route the gradient to the first maximum: a window position takes it if it equals the max
        # and no earlier position did.
        taken = np.zeros(y.shape, dtype=bool)
        masks = []
        for quad in quads:
            mask = (quad == y) & ~taken
            taken |= mask
            masks.append(mask)
        self._masks = masks
        return y

    def backward(self, dy, need_dx=True):
        masks = self._forward_cache("_masks")
        if not need_dx:
            return None
        N, H, W, C = self._x_shape
        H2, W2 = H // 2, W // 2
        self._gradient(dy, (N, H2, W2, C))
        # Every covered position is written, so only odd trailing rows/columns need zeroing.
        dx = np.empty(self._x_shape, dtype=dy.dtype)
        dx[:, 2 * H2:] = 0
        dx[:, :, 2 * W2:] = 0
        for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            np.multiply(masks[k], dy, out=dx[:, i:2 * H2:2, j:2 * W2:2, :])
        return dx


@register
class Flatten(Layer):
    """(N, ...) -> (N, product of the rest)."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def output_width(self, width):
        return None

    def forward(self, x, ctx=None):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        shape = self._forward_cache("_x_shape")
        self._gradient(dy, (shape[0], math.prod(shape[1:])))
        return dy.reshape(shape) if need_dx else None


@register
class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x, ctx=None):
        self._y = special.expit(x)
        return self._y

    def backward(self, dy, need_dx=True):
        y = self._forward_cache("_y")
        self._gradient(dy, y.shape)
        if not need_dx:
            return None
        return dy * y * (1 - y)


@register
class ReLU(Layer):
    """y = min(max(x, 0), max_value) elementwise (max_value None: no cap).

    Gradient 1 where 0 < x <= max_value, else 0 (TensorFlow's relu and clip_by_value rules).
    """

    def __init__(self, max_value=None, dtype="float32"):
        super().__init__(dtype)
        if max_value is not None:
            if isinstance(max_value, (bool, np.bool_)):
                raise ValueError(f"max_value must be None or a finite number > 0, not a boolean; got {max_value!r}")
            max_value = float(max_value)
            if not math.isfinite(max_value) or max_value <= 0:
                raise ValueError(f"max_value must be None or a finite number > 0; got {max_value!r}")
        self.max_value = max_value

    def config(self):
        return {"type": "ReLU", "max_value": self.max_value}

    def forward(self, x, ctx=None):
        if self.max_value is None:
            self._pass = x > 0
            return np.maximum(x, 0)
        self._pass = (x > 0) & (x <= self.max_value)
        return np.clip(x, 0, self.max_value)

    def backward(self, dy, need_dx=True):
        passed = self._forward_cache("_pass")
        self._gradient(dy, passed.shape)
        return dy * passed if need_dx else None


def softmax(z):
    """Row-wise softmax of z (p, k), computed stably."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


@register
class Softmax(Layer):
    """Row-wise softmax (p, k) -> (p, k). A :class:`~memnp.nn.model.Sequential` ending in Softmax
    computes its loss from the logits (the Softmax input) instead of calling this backward."""

    def forward(self, x, ctx=None):
        self._y = softmax(x)
        return self._y

    def backward(self, dy, need_dx=True):
        y = self._forward_cache("_y")
        self._gradient(dy, y.shape)
        if not need_dx:
            return None
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))
