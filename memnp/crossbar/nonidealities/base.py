"""The kinds of nonideality (docs/model.md §2) and their JSON registry.

A *linearity-preserving* nonideality replaces the conductances G by disturbed ones G':
``sample(shape, rng, dtype) -> draws``, ``disturb(G, draws) -> G'`` and
``disturb_vjp(G, draws, grad_G_disturbed) -> grad_G``.

A *periphery* nonideality (DAC, ADC, Tiles) acts on the voltages, the currents or the layout of
the arrays and draws nothing. Each class declares the phase of a read it belongs to (``phase``, one
of :data:`memnp.crossbar.pipeline.PHASE_NAMES`, whose order is the physical one) and its draws
(``draws``: "chip", "read" or None); :func:`register` checks the declarations and makes the class
loadable from JSON. The README's "Adding a nonideality" says what a new class writes.

A *linearity-nonpreserving* nonideality computes the currents itself from V and G:
``sample(shape, rng, dtype) -> draws``, then ``currents``, ``currents_vjp`` and ``power``.

The line resistance (:class:`~memnp.crossbar.nonidealities.wires.LineResistance`, kind "wires")
draws nothing and solves the currents with the wires' resistance.

Draws are plain arrays (of the dtype asked for, which is the conductances' dtype in a pass) made from an explicit ``numpy.random.Generator``; the caller keeps the
draws of a forward pass and hands them to the backward pass (or replays them), so the object itself
holds only its parameters and can be shared by every layer of a network.
"""
import dataclasses
import json

from ...registry import build_from_dict
from ..pipeline import DRAW_KINDS, PHASE_NAMES

_REGISTRY = {}
#: Relative slack of the stage's cross-phase comparisons (values written as decimal text).
STAGE_SLACK = 1e-9


def register(cls):
    """Class decorator: make ``cls`` (a frozen dataclass subclass of :class:`Nonideality` that
    declares ``phase`` and ``draws``) loadable by :func:`nonideality_from_dict` and a member of its
    phase; ValueError for a bad declaration or a name another class holds."""
    if not (isinstance(cls, type) and issubclass(cls, Nonideality) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"register takes a dataclass subclass of Nonideality; got {cls!r}")
    if cls.phase not in PHASE_NAMES:
        raise ValueError(f"{cls.__name__}.phase must be one of {', '.join(PHASE_NAMES)}; got {cls.phase!r}")
    if cls.draws not in DRAW_KINDS:
        raise ValueError(f"{cls.__name__}.draws must be 'chip', 'read' or None; got {cls.draws!r}")
    other = _REGISTRY.get(cls.__name__)
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"a nonideality named {cls.__name__} is already registered ({other.__module__})")
    _REGISTRY[cls.__name__] = cls
    return cls


def unregister(cls):
    """Remove ``cls`` from the registry (tests that register classes of their own)."""
    if _REGISTRY.get(cls.__name__) is cls:
        del _REGISTRY[cls.__name__]


def registered():
    """{class name: class} of every registered nonideality, in registration order."""
    return dict(_REGISTRY)


def required_fields(cls):
    """The names of ``cls``'s dataclass fields without a default: the keys its JSON dict must have."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def schema():
    """{type name: required keys (besides "type")} of every registered nonideality: the JSON
    schema of a stage's nonidealities (memnp.data.presets)."""
    return {name: required_fields(cls) for name, cls in _REGISTRY.items()}


class Nonideality:
    """Common behaviour: a label, and a JSON round trip of the dataclass fields."""

    #: "preserving", "nonpreserving", "periphery" or "wires".
    kind = None
    #: The phase of a read (memnp.crossbar.pipeline.PHASE_NAMES); a stage holds at most one
    #: nonideality per phase and applies them in the phases' order.
    phase = None
    #: Whose draws ``sample`` makes: "chip" (once per programmed chip in chip mode), "read" (every
    #: batch), or None (draws nothing).
    draws = None
    #: True for the paper's nonidealities (docs/model.md §2): a stage of only these keeps its
    #: listed order, labels and JSON.
    paper = False

    def fused(self):
        """The record of the fused loop that runs this phase (memnp.kernels.fused), or None (the
        default: the phase runs on its own, with its own methods)."""
        return None

    def check_stage(self, stage):
        """ValueError (naming the parameter and the allowed range) when this nonideality does not
        fit the :class:`~memnp.crossbar.Stage` that holds it (its G_off, G_on, k_V and other
        phases): the stage's cross-phase checks, run once when the stage is built. The default
        accepts every stage."""

    @property
    def label(self):
        raise NotImplementedError

    def check_stage(self, stage):
        """Checks against the :class:`~memnp.crossbar.Stage` that holds this nonideality (its
        G_off, G_on and k_V): ValueError naming the parameter and the allowed range when it does
        not fit. None here; classes with such limits override it."""

    def to_dict(self):
        fields = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            fields[field.name] = value.tolist() if hasattr(value, "tolist") else value
        return {"type": type(self).__name__, **fields}

    def to_json(self):
        return json.dumps(self.to_dict())


class LinearityPreserving(Nonideality):
    """A conductance phase: ``sample`` (if ``draws`` is not None), ``disturb`` and ``disturb_vjp``."""

    kind = "preserving"

    def sample(self, shape, rng, dtype=None):
        raise NotImplementedError

    def disturb(self, G, draws):
        raise NotImplementedError

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        raise NotImplementedError

    # The pipeline's verbs (memnp.crossbar.pipeline): a conductance phase's apply is its disturb.
    def apply(self, G, draws):
        """G' (shape and dtype of G, S) from G (m, n) in S and this phase's draws."""
        return self.disturb(G, draws)

    def apply_vjp(self, G, draws, grad):
        """dL/dG (m, n) from dL/dG' (m, n), with the draws of the forward pass."""
        return self.disturb_vjp(G, draws, grad)


class LinearityNonpreserving(Nonideality):
    kind = "nonpreserving"
    phase = "currents"


class Periphery(Nonideality):
    """Converters and array layout around the crossbar (DAC, ADC, Tiles): no random draws."""

    kind = "periphery"

    def sample(self, shape, rng, dtype=None):
        return None


def nonideality_from_dict(data):
    """Rebuild a nonideality from :meth:`Nonideality.to_dict` output."""
    return build_from_dict(_REGISTRY, data, "nonideality")


def nonideality_from_json(text):
    return nonideality_from_dict(json.loads(text))
