"""What a :class:`memnp.nn.device.DeviceTrainer` takes of its members (issue 17): the checks of the
networks it can train (layers, weights, stage, optimiser; every member alike), each member's
constants (the columns of memnp.kernels.cuda_phases), and the Generators' PCG64 states it packs
for the device and moves on after it (``bit_generator.advance``).
"""
import numpy as np

from ..kernels import cuda_phases
from . import device_stage
from .layers import Flatten, Sigmoid, Softmax
from .memristive import MemristiveDense
from .model import Sequential
from .optim import SGD


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
    if _standard(model):
        out[cuda_phases.MAPPING] = (cuda_phases.STANDARD_DIGITAL if stage.is_ideal
                                    else cuda_phases.STANDARD_DEFAULT if stage.mapping_rule == "default"
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
