"""A stage: the crossbar conditions a network is trained or evaluated under (docs/model.md §1-2)."""
import dataclasses
import json

from ..kernels import conductance_chain, stage_draws
from . import pipeline
from .mapping import RULES
from .nonidealities.base import Nonideality, nonideality_from_dict
from .validation import conductance_range, positive


@dataclasses.dataclass(frozen=True)
class Stage:
    """Conductance range G_off < G_on (S), voltage scaling k_V (V), nonidealities and mapping rule.

    ``nonidealities`` holds at most one nonideality per phase of :data:`memnp.crossbar.pipeline.PHASES`
    (programming, drift, stuck, read noise, DAC, currents, wires, ADC, tiles); a read applies them
    in that physical order whatever order they are listed in. A stage made only of the paper's
    nonidealities (at most one conductance phase and PF) keeps its listed order, label and JSON
    exactly as before the pipeline; any other stage stores them in physical order and records the
    order in its JSON ("pipeline": the phase names).
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
        if isinstance(self.nonidealities, (str, dict)) or not hasattr(self.nonidealities, "__iter__"):
            raise ValueError(f"nonidealities must be a list of Nonideality objects or their dicts; "
                             f"got {self.nonidealities!r}")
        items = tuple(nonideality_from_dict(n) if isinstance(n, dict) else n for n in self.nonidealities)
        for item in items:
            if not isinstance(item, Nonideality):
                raise ValueError(f"nonidealities must be Nonideality objects or their dicts; got {item!r}")
        phases = pipeline.arrange(items)
        paper = pipeline.is_paper(items) and sum(name in phases for name in pipeline.G_PHASES) <= 1
        if not paper:
            items = tuple(phases.values())
        object.__setattr__(self, "nonidealities", items)
        # Looked up several times per crossbar pass: kept (not fields, so not in eq, repr or JSON).
        object.__setattr__(self, "_phases", phases)
        for item in items:
            item.check_stage(self)   # each nonideality's checks against the stage (cross-phase)
        object.__setattr__(self, "_paper", paper)
        object.__setattr__(self, "_g_phases", tuple((name, phases[name]) for name in pipeline.G_PHASES
                                                    if name in phases))
        object.__setattr__(self, "_nonpreserving", phases.get("currents"))
        object.__setattr__(self, "_random", any(item.draws for item in items))
        object.__setattr__(self, "_plain_read", not any(name in phases for name in ("adc", "wires", "tiles")))
        # Several conductance phases that memnp.kernels.conductance_chain runs (their fused()
        # records): applied in one pass (the same numbers as phase by phase). Paper stages keep
        # their own path.
        object.__setattr__(self, "_fused_conductances", not paper and conductance_chain.fusable(phases))
        # ... and their draws in one kernel call (memnp.kernels.stage_draws): the phases'
        # parameters, read once.
        object.__setattr__(self, "_draw_plan", stage_draws.plan(phases) if self._fused_conductances
                           else None)

    @property
    def phases(self):
        """{phase name: nonideality} in physical order (memnp.crossbar.pipeline.PHASES)."""
        return self._phases

    def phase(self, name):
        """The stage's nonideality of phase ``name``, or the identity stand-in."""
        if name not in pipeline.PHASE_NAMES:
            raise ValueError(f"phase must be one of {', '.join(pipeline.PHASE_NAMES)}; got {name!r}")
        return self._phases.get(name, pipeline.IDENTITY)

    @property
    def conductance_phases(self):
        """((phase name, nonideality), ...) of the phases acting on G, in order."""
        return self._g_phases

    @property
    def preserving(self):
        """The linearity-preserving nonideality of a stage with at most one (the paper's form),
        or None; ValueError for a stage with several conductance phases (use :attr:`phases`)."""
        if len(self._g_phases) > 1:
            raise ValueError("this stage has several conductance phases "
                             f"({', '.join(name for name, _ in self._g_phases)}); use stage.phases")
        return self._g_phases[0][1] if self._g_phases else None

    @property
    def fused_conductances(self):
        """True when a read applies the conductance phases in one pass
        (:mod:`memnp.kernels.conductance_chain`)."""
        return self._fused_conductances

    @property
    def draw_plan(self):
        """The draws' parameters for :func:`memnp.kernels.stage_draws.sample`, or None."""
        return self._draw_plan

    @property
    def nonpreserving(self):
        """The linearity-nonpreserving nonideality (the I-V model of the currents phase), or None."""
        return self._nonpreserving

    @property
    def is_ideal(self):
        return not self.nonidealities

    @property
    def is_paper(self):
        """True when the stage holds only the paper's nonidealities, in the paper's combinations."""
        return self._paper

    @property
    def random(self):
        """True when a read draws random numbers (some phase has draws)."""
        return self._random

    @property
    def plain_read(self):
        """True when the currents are one read of the whole crossbar (no ADC, wires or tiles)."""
        return self._plain_read

    @property
    def wires(self):
        """The line resistance (:class:`~memnp.nonidealities.LineResistance`), or None."""
        return self._phases.get("wires")

    @property
    def rows_separable(self):
        """True when rows at 0 V carry no current and change nothing (not so with wires)."""
        return "wires" not in self._phases

    @property
    def label(self):
        parts = [n.label for n in self.nonidealities] or ["ideal"]
        return "+".join(parts) + f"[G_off={self.G_off:.4g},G_on={self.G_on:.4g},k_V={self.k_V:.4g}]"

    def to_dict(self):
        out = {"G_off": self.G_off, "G_on": self.G_on, "k_V": self.k_V,
               "mapping_rule": self.mapping_rule,
               "nonidealities": [n.to_dict() for n in self.nonidealities]}
        if not self._paper:
            out["pipeline"] = list(self._phases)
        return out

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ValueError(f"a stage must be a dict; got {type(data).__name__}")
        unknown = set(data) - {"G_off", "G_on", "k_V", "mapping_rule", "nonidealities", "pipeline"}
        if unknown:
            raise ValueError(f"unknown stage fields: {', '.join(sorted(unknown))}")
        fields = dict(data)
        order = fields.pop("pipeline", None)
        fields["nonidealities"] = tuple(fields.get("nonidealities", ()))
        stage = cls(**fields)
        if order is not None and list(order) != list(stage.phases):
            raise ValueError(f"pipeline records the fixed physical order of the stage's phases "
                             f"({', '.join(stage.phases)}); got {order!r}")
        return stage

    def to_json(self):
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"a stage's JSON text is not valid JSON: {exc}") from None
        return cls.from_dict(data)
