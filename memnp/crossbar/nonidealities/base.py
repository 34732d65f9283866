"""The kinds of nonideality (docs/model.md §2) and their JSON registry.

A *linearity-preserving* nonideality replaces the conductances G by disturbed ones G':
``sample(shape, rng, dtype) -> draws``, ``disturb(G, draws) -> G'`` and
``disturb_vjp(G, draws, grad_G_disturbed) -> grad_G``.

A *periphery* nonideality (DAC, ADC, Tiles) acts on the voltages, the currents or the layout of
the arrays and draws nothing. Which phase of a read each class belongs to, and the order of the
phases, is :data:`memnp.crossbar.pipeline.PHASES`.

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

_REGISTRY = {}


def register(cls):
    """Class decorator: make ``cls`` loadable by :func:`nonideality_from_dict`."""
    _REGISTRY[cls.__name__] = cls
    return cls


class Nonideality:
    """Common behaviour: a label, and a JSON round trip of the dataclass fields."""

    #: "preserving", "nonpreserving", "periphery" or "wires"; a stage holds at most one
    #: nonideality per phase (memnp.crossbar.pipeline.PHASES).
    kind = None

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
