"""The ``line_resistance`` simulation (beyond the paper): test error against the wire resistance.

Low- and high-resistance SiOx PF crossbars cut into 128 x 64 arrays (:class:`Tiles`; the MNIST
first layer's 785 x 100 double-weight crossbar is 7 x 2 arrays, the second layer's 26 x 20 one),
each array its own circuit with r ohms per word- and bit-line segment
(:class:`~memnp.crossbar.nonidealities.wires.LineResistance`; r = 0: the same tiles without
wires). 128 rows is a common array height and the solver's benchmark size; 64 columns keeps the
word lines half as long as the bit lines, as in the ``adc`` simulation's tiles. For every r the
test error of three trainings:

- ideal training (the registry's ``ideal`` networks);
- PF-aware training (``low_pf`` / ``high_pf``, the iv_nonlinearity networks, reused);
- the PF-aware network fine-tuned for a few epochs with that r in the loop (training setups
  ``lr_{low,high}_ft_r{r}``; a training job keyed by its parent's key, starting from the
  parent's weights, see :func:`memnp.experiments.protocol.train`).

The solver makes every read with wires ~100-1000 x dearer than without, so the sweep has its own
settings per run scale (:data:`SCALES`): the r values, the fine-tuning epochs and examples, and how
many test examples and repeats each inference uses. The simulation is left out of the default set
of ``reproduce`` (run it with ``--only line_resistance``; ``--preset paper`` includes it).
"""
import dataclasses

from ..crossbar import Stage
from .configs import DataSpec, Inference, Training, _int, _optional_int

#: Every r (ohm per segment, word and bit lines alike) any scale uses; the paper scale uses all.
R_VALUES = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
#: The arrays every crossbar is cut into (rows x columns).
TILES = {"type": "Tiles", "rows": 128, "cols": 64}
#: (tag, device preset, PF-aware training setup, label) of the two SiOx regimes.
DEVICES = (("low", "siox-low", "low_pf", "low-R SiOx PF"), ("high", "siox-high", "high_pf", "high-R SiOx PF"))
#: The simulation's name in the registry.
NAME = "line_resistance"


@dataclasses.dataclass(frozen=True)
class SweepScale:
    """How big the sweep is at one run scale.

    r_values: the r (ohm) swept, each in :data:`R_VALUES`. finetune_epochs: epochs of fine-tuning.
    finetune_train / finetune_validation: training / validation examples fine-tuning uses (the
    first N of the parent's; None: all the parent used). validation_repeats: memristive
    validation repeats after every fine-tuning epoch (the best median kept). test_examples: the
    first N test examples each inference reads (None: all). max_repeats: inference repeats, at
    most the scale's.
    """

    r_values: tuple
    finetune_epochs: int
    finetune_train: int = None
    finetune_validation: int = None
    validation_repeats: int = 1
    test_examples: int = None
    max_repeats: int = 25

    def __post_init__(self):
        r_values = tuple(float(r) for r in self.r_values)
        bad = [r for r in r_values if r not in R_VALUES]
        if not r_values or bad:
            raise ValueError(f"r_values must be taken from {R_VALUES}; got {self.r_values!r}")
        object.__setattr__(self, "r_values", r_values)
        object.__setattr__(self, "finetune_epochs", _int("finetune_epochs", self.finetune_epochs, 1))
        for name in ("finetune_train", "finetune_validation", "test_examples"):
            object.__setattr__(self, name, _optional_int(name, getattr(self, name), 1))
        object.__setattr__(self, "validation_repeats", _int("validation_repeats", self.validation_repeats, 1))
        object.__setattr__(self, "max_repeats", _int("max_repeats", self.max_repeats, 1))


#: Per run scale (by Scale.name; another name gets "default"'s).
SCALES = {
    # Two r values, a few dozen examples: an end-to-end test in seconds.
    "tiny": SweepScale((0.0, 1.0), finetune_epochs=1, finetune_train=64, finetune_validation=32,
                       validation_repeats=1, test_examples=32, max_repeats=1),
    # Decades 0.1-10 ohm and 0; fine-tuning 2 epochs on the first 640 training digits; 400 test
    # digits, 2 repeats (see the README for its time on 2 cores).
    "default": SweepScale((0.0, 0.1, 1.0, 10.0), finetune_epochs=2, finetune_train=640,
                          finetune_validation=320, validation_repeats=1, test_examples=400, max_repeats=2),
    # Half-decades, 5 fine-tuning epochs on the whole training set, the scale's repeats.
    "paper": SweepScale(R_VALUES, finetune_epochs=5, validation_repeats=5),
}


def settings(scale):
    """The :class:`SweepScale` of a run scale (``scale.name``; unknown names: ``default``)."""
    return SCALES.get(scale.name, SCALES["default"])


def r_tag(r):
    """A name-safe tag of r: 0 -> "r0", 0.1 -> "r0p1", 10 -> "r10"."""
    return "r" + f"{float(r):g}".replace(".", "p")


def inference_name(device_tag, r):
    return f"lr_{device_tag}_{r_tag(r)}"


def finetune_name(device_tag, r):
    return f"lr_{device_tag}_ft_{r_tag(r)}"


def wires_stage(device, r, devices=None):
    """The Stage of device preset ``device`` in 128 x 64 tiles with r ohm per segment (r = 0: no
    LineResistance, the tiles alone). devices: optional {preset name: Stage} replacing built-in
    presets (``reproduce --device-file``)."""
    from ..data.presets import preset
    stage = devices[device].to_dict() if devices and device in devices else preset(device)
    stage["nonidealities"] = list(stage["nonidealities"]) + [dict(TILES)]
    if r > 0:
        stage["nonidealities"].append({"type": "LineResistance", "r_word": float(r), "r_bit": float(r)})
    return Stage.from_dict(stage)


def inference(setup, scale, devices=None):
    """The Inference config of a sweep inference setup (``setup.wires`` = r) at ``scale``
    (``devices``: see :func:`wires_stage`)."""
    s = settings(scale)
    return Inference(stage=wires_stage(setup.device, setup.wires, devices),
                     repeats=min(scale.inference_repeats, s.max_repeats), sampling=scale.sampling,
                     test_examples=s.test_examples)


def finetune(setup, parent, scale, devices=None):
    """The Training config of fine-tuning the parent's network (``parent``: its Training config)
    with r = ``setup.wires`` in the loop: the parent's data (fewer examples per
    :func:`settings`), batch size, learning rate and weights; memristive validation after every
    epoch; no test during training. devices: see :func:`wires_stage`."""
    s = settings(scale)
    data = parent.data
    data = DataSpec(name=data.name, train=_fewer(data.train, s.finetune_train),
                    validation=_fewer(data.validation, s.finetune_validation), test=data.test)
    return Training(data=data, stage=wires_stage(setup.device, setup.wires, devices), regularised=parent.regularised,
                    standard_weights=parent.standard_weights, epochs=s.finetune_epochs,
                    batch_size=parent.batch_size, learning_rate=parent.learning_rate, l1=parent.l1,
                    checkpoint="memristive", validation_every=1, validation_repeats=s.validation_repeats,
                    test_stages=(), augment=parent.augment)


def _fewer(limit, cap):
    if cap is None:
        return limit
    return cap if limit is None else min(limit, cap)


def keeps(setups, scale):
    """Whether a pair whose setups are ``setups`` runs at ``scale``: every setup that sweeps r
    (``wires`` not None) has an r of the scale's sweep."""
    r_values = settings(scale).r_values
    return all(getattr(s, "wires", None) is None or s.wires in r_values for s in setups)


def setups(training_setup, inference_setup):
    """(training setups, inference setups, pairs) of the simulation, for the registry: every
    r of :data:`R_VALUES` (a scale keeps its own, see :func:`keeps`)."""
    trainings, inferences, pairs = [], [], []
    for tag, device, aware, label in DEVICES:
        for r in R_VALUES:
            name = inference_name(tag, r)
            inferences.append(inference_setup(name, device, f"{label}, 128 x 64 tiles, r = {r:g} ohm", wires=r))
            pairs += [("ideal", name), (aware, name)]
            if r > 0:   # at r = 0 fine-tuning would only continue the aware training
                ft = finetune_name(tag, r)
                trainings.append(training_setup(ft, "mnist", device, f"{label}, aware, fine-tuned at r = {r:g} ohm",
                                                parent=aware, wires=r))
                pairs.append((ft, name))
    return trainings, inferences, tuple(pairs)
