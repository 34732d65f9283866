"""The physical order of a crossbar read: one table that Stage, CrossbarPass, the layers and the
JSON all read.

A stage holds at most one nonideality per phase. Whatever order they are listed in, a read applies
them in the order of :data:`PHASES`:

===========  ========  =======  ==========================================================
phase        acts on   draws    classes
===========  ========  =======  ==========================================================
programming  G         chip     D2DLognormal, ProgrammingNoise
drift        G         chip     Drift: G (t / t0) ** -nu, nu per device
stuck        G         chip     StuckAt, StuckAtGOff, StuckAtGOn, StuckDistribution
                                (override programming and drift)
read_noise   G         read     ReadNoise: fresh for every batch in both sampling modes
dac          V         --       DAC: inputs rounded to 2^bits levels before V = k_V x
currents     I         chip     Ohm's law (no class), or IVNonlinearityPF's residuals
wires        I         --       LineResistance (the circuit solver), with the currents
adc          I         --       ADC: per array, after Tiles split the crossbar
tiles        arrays    --       Tiles: arrays of at most rows x cols devices (wraps dac,
                                currents, wires and adc; not a disturbance)
===========  ========  =======  ==========================================================

Each nonideality class declares its phase, whose draws it makes ("chip", "read" or None) and
whether it is one of the paper's (class attributes ``phase``, ``draws``, ``paper`` of
:class:`memnp.crossbar.nonidealities.base.Nonideality`); the classes of a phase are the registered
classes that declare it (:func:`classes`), so the table above is this module's :data:`PHASES`
(the order) and the classes' own declarations, written nowhere else.

"chip" draws belong to a programmed chip: made once per chip in chip mode (held over a test pass)
and every batch in batch mode (the paper); "read" draws are made for every batch in both modes.
Draws are made phase by phase in this order from the caller's Generator, so a stage of the
paper's nonidealities (one conductance phase and/or PF) consumes the Generator exactly as before.
"""
import collections

#: (name, acts on), in physical order.
Phase = collections.namedtuple("Phase", "name acts_on")

PHASES = (
    Phase("programming", "G"),
    Phase("drift", "G"),
    Phase("stuck", "G"),
    Phase("read_noise", "G"),
    Phase("dac", "V"),
    Phase("currents", "I"),
    Phase("wires", "I"),
    Phase("adc", "I"),
    Phase("tiles", "arrays"),
)

PHASE_NAMES = tuple(phase.name for phase in PHASES)
#: Phases that disturb the conductances G, in order.
G_PHASES = tuple(phase.name for phase in PHASES if phase.acts_on == "G")
#: The draws a class may declare.
DRAW_KINDS = ("chip", "read", None)
_ORDER = {name: i for i, name in enumerate(PHASE_NAMES)}


def classes(phase):
    """The names of the registered nonideality classes of ``phase``, in registration order."""
    from .nonidealities.base import registered
    return tuple(name for name, cls in registered().items() if cls.phase == phase)


def phase_of(item):
    """The phase name of a nonideality object (its class's ``phase``), or ValueError."""
    phase = getattr(type(item), "phase", None)
    if phase not in _ORDER:
        raise ValueError(f"nonidealities must be of a class that declares its phase (one of "
                         f"{', '.join(PHASE_NAMES)}); got {item!r}")
    return phase


def is_paper(items):
    """True when every item is one of the paper's nonidealities (the stage keeps today's form)."""
    return all(getattr(type(item), "paper", False) for item in items)


def arrange(items):
    """{phase name: item} in physical order, or ValueError when two items share a phase."""
    found = {}
    for item in items:
        phase = phase_of(item)
        if phase in found:
            other = found[phase]
            kind = getattr(item, "kind", None)
            kind = f"linearity-{kind} " if kind in ("preserving", "nonpreserving") else ""
            raise ValueError(f"nonidealities may hold at most one {kind}nonideality per phase "
                             f"(phase {phase!r}); got {other.label} and {item.label}")
        found[phase] = item
    return {name: found[name] for name in sorted(found, key=_ORDER.__getitem__)}


class Identity:
    """The stand-in for a phase a stage does not hold: no draws, x unchanged, gradient unchanged."""

    label = "identity"

    def sample(self, shape, rng, dtype=None):
        return None

    def apply(self, x, draws=None):
        return x

    def apply_vjp(self, x, draws, grad):
        return grad


IDENTITY = Identity()


class Draws(dict):
    """The draws of one crossbar pass: {phase name: draws}, in physical order.

    For the paper's stages, index 0 and 1 also give the old (linearity-preserving,
    linearity-nonpreserving) pair: ``draws[0]`` the conductance phase's draws, ``draws[1]`` the PF
    residuals (None where the stage has none)."""

    def __getitem__(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            if key == 1:
                return self.get("currents")
            if key == 0:
                held = [name for name in G_PHASES if name in self]
                if len(held) > 1:
                    raise KeyError("draws[0] names the one conductance phase of a paper stage; this "
                                   f"stage has {', '.join(held)}: index by phase name")
                return self.get(held[0]) if held else None
            raise KeyError(key)
        return dict.__getitem__(self, key)

    @classmethod
    def from_pair(cls, stage, pair):
        """Draws from the old (preserving, nonpreserving) tuple of a paper stage."""
        preserving, nonpreserving = pair
        held = [name for name in G_PHASES if name in stage.phases]
        out = cls()
        if preserving is not None:
            if len(held) != 1:
                raise ValueError("draws given as a (preserving, nonpreserving) pair need a stage with "
                                 "one conductance phase; give a dict by phase name")
            out[held[0]] = preserving
        if nonpreserving is not None:
            out["currents"] = nonpreserving
        return out
