"""The protocol every layer follows, and what layers share.

- ``forward(x, ctx=None) -> y`` keeps what the backward pass needs (``ctx`` is the
  :class:`PassContext` of the call; only memristive layers read it);
- ``backward(dy, need_dx=True) -> dx`` returns dL/dx (or None when ``need_dx`` is False) and
  fills ``layer.grads[name]`` for every parameter ``layer.params[name]``;
- ``config()`` describes the layer as JSON-ready data; :func:`layer_from_config` rebuilds it
  (classes decorated with :func:`register`).

Here: :class:`Layer` (the base class), :class:`PassContext`, the registry, the checks of a batch's
shape and of counts, and :func:`glorot_uniform`. Parameters are held in the layer's dtype (float32
by default); inputs are used in their own dtype. The layers themselves are in
:mod:`memnp.nn.layers` (structural) and :mod:`memnp.nn.activations`.
"""
import dataclasses
import math

import numpy as np

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
