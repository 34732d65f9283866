"""A stage: the crossbar conditions a network is trained or evaluated under (SPEC §1-2)."""
import dataclasses
import json

from .mapping import RULES
from .nonidealities.base import Nonideality, nonideality_from_dict
from .validation import conductance_range, positive


@dataclasses.dataclass(frozen=True)
class Stage:
    """Conductance range G_off < G_on (S), voltage scaling k_V (V), nonidealities and mapping rule.

    At most one nonideality of each kind (linearity-preserving, linearity-nonpreserving, wires)
    is allowed: they are applied in that order (disturb G, then compute the currents; wires, a
    :class:`~memnp.nonidealities.LineResistance`, solve the circuit those device currents make).
    """

    G_off: float
    G_on: float
    k_V: float = 0.5
    nonidealities: tuple = ()
    mapping_rule: str = "default"

    def __post_init__(self):
        G_off, G_on = conductance_range(self.G_off, self.G_on)
        object.__setattr__(self, "G_off", G_off)
        object.__setattr__(self, "G_on", G_on)
        object.__setattr__(self, "k_V", positive("k_V", self.k_V))
        if self.mapping_rule not in RULES:
            raise ValueError(f"mapping_rule must be one of {', '.join(RULES)}; got {self.mapping_rule!r}")
        items = tuple(nonideality_from_dict(n) if isinstance(n, dict) else n for n in self.nonidealities)
        seen = {}
        for item in items:
            if not isinstance(item, Nonideality):
                raise ValueError(f"nonidealities must be Nonideality objects or their dicts; got {item!r}")
            if item.kind in seen:
                raise ValueError(
                    f"nonidealities may hold at most one linearity-{item.kind} nonideality; got "
                    f"{seen[item.kind].label} and {item.label}")
            seen[item.kind] = item
        object.__setattr__(self, "nonidealities", items)
        # Looked up several times per crossbar pass: kept (not fields, so not in eq, repr or JSON).
        object.__setattr__(self, "_preserving", seen.get("preserving"))
        object.__setattr__(self, "_nonpreserving", seen.get("nonpreserving"))
        object.__setattr__(self, "_wires", seen.get("wires"))

    @property
    def preserving(self):
        """The linearity-preserving nonideality, or None."""
        return self._preserving

    @property
    def nonpreserving(self):
        """The linearity-nonpreserving nonideality, or None."""
        return self._nonpreserving

    @property
    def wires(self):
        """The line resistance (:class:`~memnp.nonidealities.LineResistance`), or None."""
        return self._wires

    @property
    def is_ideal(self):
        return not self.nonidealities

    @property
    def label(self):
        parts = [n.label for n in self.nonidealities] or ["ideal"]
        return "+".join(parts) + f"[G_off={self.G_off:.4g},G_on={self.G_on:.4g},k_V={self.k_V:.4g}]"

    def to_dict(self):
        return {"G_off": self.G_off, "G_on": self.G_on, "k_V": self.k_V,
                "mapping_rule": self.mapping_rule,
                "nonidealities": [n.to_dict() for n in self.nonidealities]}

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ValueError(f"a stage must be a dict; got {type(data).__name__}")
        unknown = set(data) - {"G_off", "G_on", "k_V", "mapping_rule", "nonidealities"}
        if unknown:
            raise ValueError(f"unknown stage fields: {', '.join(sorted(unknown))}")
        fields = dict(data)
        fields["nonidealities"] = tuple(fields.get("nonidealities", ()))
        return cls(**fields)

    def to_json(self):
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))
