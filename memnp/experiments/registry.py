"""The paper's nine simulations (docs/model.md §7), four beyond the paper (``combined``, ``drift``,
``adc``: the physical pipeline of memnp.crossbar.pipeline; ``line_resistance``), as data.

A *training setup* names a data set family, a device preset and how the network is trained; an
*inference setup* names a device preset (and mapping rule). A simulation is a list of (training
setup, inference setup) pairs. :mod:`memnp.experiments.plan` expands the selected simulations at a
scale into jobs (its ``Job``, ``Plan``, ``expand``, ``check_devices``, ``inference_setup_config``,
``training_config`` and ``inference_config`` are offered here too). Simulations that share a
training setup share its jobs: the ideal MNIST networks serve six simulations, and
``nonideality_agnosticism`` only adds inference jobs for networks the others train.

The test-during-training stages of a training setup are the inference setups paired with it in the
registry's simulations with ``monitor=True`` (all but ``nonideality_agnosticism`` and the four
beyond the paper; in registry order), whichever simulations are selected, so a training job's key
does not depend on ``--only``, and the new simulations leave the paper's job keys as they were.

Beyond the paper, ``line_resistance`` (:mod:`memnp.experiments.line_resistance`, ``monitor=False``,
left out of the default set) sweeps the wire resistance r. Its fine-tuning setups have a
``parent``: one training job per parent network, keyed by the parent job's key and depending on
it, that starts from the parent's weights. Its pairs depend on the scale (:func:`pairs_at`).
"""
import dataclasses

from ..crossbar import Stage
from ..data.presets import ADC_BITS, DRIFT_TIMES
from . import line_resistance

#: The ideal stage: no nonidealities, on the high-resistance SiOx conductance range (only the
#: power of an ideal read depends on it; standard weights take the digital shortcut).
IDEAL_STAGE = {"G_off": 5.24841e-7, "G_on": 2.6242e-6, "k_V": 0.5, "mapping_rule": "default",
               "nonidealities": []}


#: The drift simulation's reads of the worked-example chip: (inference setup, device preset, label,
#: seconds after programming), in time order. "chip" (1 day) is also the combined simulation's.
DRIFT_READS = tuple((f"chip_{s}" if s != "1d" else "chip",
                     f"siox-high-chip-{s}" if s != "1d" else "siox-high-chip",
                     f"whole chip, {w} after programming", t)
                    for (s, t), w in zip(DRIFT_TIMES.items(), ("1 s", "1 h", "1 day", "1 month", "1 year")))
#: The drift simulation's trainings: ideal, aware at 1 s, aware at 1 day.
DRIFT_TRAININGS = ("ideal", "chip_1s", "chip")
#: The adc simulation's trainings (aware: on high-R SiOx PF alone, without converters).
ADC_TRAININGS = ("ideal", "high_pf")


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    name: str
    family: str          # "mnist" or "cifar10"
    device: str          # "ideal" or a memnp.data.presets name
    label: str
    regularised: bool = False
    standard_weights: bool = False
    mapping_rule: str = "default"
    parent: str = None   # fine-tuning: the training setup whose networks it starts from
    wires: float = None  # line_resistance sweep: r (ohm per segment), see .line_resistance


@dataclasses.dataclass(frozen=True)
class InferenceSetup:
    name: str
    device: str
    label: str
    mapping_rule: str = "default"
    wires: float = None  # line_resistance sweep: r (ohm per segment), see .line_resistance


@dataclasses.dataclass(frozen=True)
class Simulation:
    name: str
    description: str
    pairs: tuple         # ((training setup name, inference setup name), ...)
    monitor: bool = True  # whether its pairs define test-during-training stages
    default: bool = True  # in reproduce's default set (otherwise only by name or --preset paper)


def _t(name, family, device, label, **kw):
    return TrainingSetup(name, family, device, label, **kw)


TRAININGS = {t.name: t for t in [
    _t("ideal", "mnist", "ideal", "ideal training"),
    _t("low_pf", "mnist", "siox-low", "low-R SiOx PF, aware"),
    _t("low_pf_reg", "mnist", "siox-low", "low-R SiOx PF, aware + regularised", regularised=True),
    _t("high_pf", "mnist", "siox-high", "high-R SiOx PF, aware"),
    _t("high_pf_reg", "mnist", "siox-high", "high-R SiOx PF, aware + regularised", regularised=True),
    _t("high_pf_stuck_on", "mnist", "siox-high-stuck-on", "high-R PF + stuck at G_on, aware"),
    _t("stuck_off", "mnist", "stuck-off", "stuck at G_off, aware"),
    _t("tahfo2", "mnist", "tahfo2", "Ta/HfO2 stuck distribution, aware"),
    _t("d2d_high", "mnist", "d2d-high", "high D2D, aware"),
    _t("d2d_more_std_avg", "mnist", "d2d-more-uniform", "more uniform D2D, standard weights (avg rule)",
       standard_weights=True, mapping_rule="avg"),
    _t("d2d_more_std_default", "mnist", "d2d-more-uniform", "more uniform D2D, standard weights (default rule)",
       standard_weights=True),
    _t("d2d_less_std_avg", "mnist", "d2d-less-uniform", "less uniform D2D, standard weights (avg rule)",
       standard_weights=True, mapping_rule="avg"),
    _t("d2d_less_std_default", "mnist", "d2d-less-uniform", "less uniform D2D, standard weights (default rule)",
       standard_weights=True),
    _t("d2d_more", "mnist", "d2d-more-uniform", "more uniform D2D, double weights"),
    _t("d2d_more_reg", "mnist", "d2d-more-uniform", "more uniform D2D, double weights, regularised",
       regularised=True),
    _t("d2d_less", "mnist", "d2d-less-uniform", "less uniform D2D, double weights"),
    _t("d2d_less_reg", "mnist", "d2d-less-uniform", "less uniform D2D, double weights, regularised",
       regularised=True),
    _t("cnn_ideal", "cifar10", "ideal", "CIFAR-10 CNN, ideal training"),
    _t("cnn_high_pf", "cifar10", "siox-high", "CIFAR-10 CNN, high-R SiOx PF, aware"),
    # Beyond the paper (the physical pipeline): the worked-example chip, read 1 day and 1 s after
    # programming (memnp.data.presets.CHIP).
    _t("chip", "mnist", "siox-high-chip", "whole chip (1 day), aware"),
    _t("chip_1s", "mnist", "siox-high-chip-1s", "whole chip (1 s), aware"),
]}

INFERENCES = {i.name: i for i in [
    InferenceSetup("ideal", "ideal", "ideal (software baseline)"),
    InferenceSetup("low_pf", "siox-low", "low-R SiOx PF"),
    InferenceSetup("high_pf", "siox-high", "high-R SiOx PF"),
    InferenceSetup("stuck_off", "stuck-off", "stuck at G_off 5 %"),
    InferenceSetup("high_pf_stuck_on", "siox-high-stuck-on", "high-R PF + stuck at G_on 5 %"),
    InferenceSetup("d2d_more", "d2d-more-uniform", "more uniform D2D"),
    InferenceSetup("d2d_less", "d2d-less-uniform", "less uniform D2D"),
    InferenceSetup("d2d_high", "d2d-high", "high D2D"),
    InferenceSetup("tahfo2", "tahfo2", "Ta/HfO2 stuck distribution"),
    InferenceSetup("d2d_more_avg", "d2d-more-uniform", "more uniform D2D (avg rule)", "avg"),
    InferenceSetup("d2d_less_avg", "d2d-less-uniform", "less uniform D2D (avg rule)", "avg"),
    *(InferenceSetup(name, device, label) for name, device, label, _ in DRIFT_READS),
    *(InferenceSetup(f"adc{b}", f"siox-high-adc{b}", f"high-R SiOx PF, {b}-bit ADC") for b in ADC_BITS),
    *(InferenceSetup(f"adc{b}_tiles", f"siox-high-adc{b}-tiles", f"high-R SiOx PF, {b}-bit ADC, 128 x 64 tiles")
      for b in ADC_BITS),
]}

#: The nine MNIST inference setups of the robustness matrix (docs/model.md §7.9), in the paper's order.
AGNOSTIC_INFERENCES = ("ideal", "low_pf", "high_pf", "stuck_off", "high_pf_stuck_on", "d2d_more",
                       "d2d_less", "d2d_high", "tahfo2")
#: The 13 MNIST networks of the robustness matrix (every aware-trained MNIST network with double
#: weights, and the ideal one; the four standard-weight D2D networks are not in the paper's heatmap).
AGNOSTIC_TRAININGS = ("ideal", "low_pf", "low_pf_reg", "high_pf", "high_pf_reg", "high_pf_stuck_on",
                      "stuck_off", "d2d_more", "d2d_more_reg", "d2d_less", "d2d_less_reg", "d2d_high",
                      "tahfo2")


def _pairs(trainings, inferences):
    return tuple((t, i) for t in trainings for i in inferences)


SIMULATIONS = {s.name: s for s in [
    Simulation("ideal", "ideal training, inference on every setup (and the CIFAR-10 CNN on high-R PF)",
               _pairs(["ideal"], AGNOSTIC_INFERENCES) + _pairs(["cnn_ideal"], ["ideal", "high_pf"])),
    Simulation("iv_nonlinearity", "aware training on low- and high-resistance SiOx PF, unregularised and regularised",
               _pairs(["ideal"], ["low_pf", "high_pf"]) + _pairs(["low_pf", "low_pf_reg"], ["low_pf"])
               + _pairs(["high_pf", "high_pf_reg"], ["high_pf"])),
    Simulation("iv_nonlinearity_and_stuck_on", "high-resistance PF + 5 % stuck at G_on",
               _pairs(["ideal", "high_pf_stuck_on"], ["high_pf_stuck_on"])),
    Simulation("iv_nonlinearity_cnn", "CIFAR-10 CNN, aware training on high-resistance PF",
               _pairs(["cnn_ideal"], ["ideal", "high_pf"]) + _pairs(["cnn_high_pf"], ["high_pf"])),
    Simulation("stuck_distribution", "Ta/HfO2 stuck devices (KDE of stuck values)",
               _pairs(["ideal", "tahfo2"], ["tahfo2"])),
    Simulation("stuck_off", "5 % of devices stuck at G_off",
               _pairs(["ideal", "stuck_off"], ["stuck_off"])),
    Simulation("high_d2d", "high device-to-device variability",
               _pairs(["ideal", "d2d_high"], ["d2d_high"])),
    Simulation("weight_implementation", "more and less uniform D2D: standard weights (avg, default rule) vs double weights",
               _pairs(["ideal"], ["d2d_more", "d2d_less"])
               + (("d2d_more_std_avg", "d2d_more_avg"), ("d2d_more_std_default", "d2d_more"),
                  ("d2d_less_std_avg", "d2d_less_avg"), ("d2d_less_std_default", "d2d_less"))
               + _pairs(["d2d_more", "d2d_more_reg"], ["d2d_more"])
               + _pairs(["d2d_less", "d2d_less_reg"], ["d2d_less"])),
    Simulation("nonideality_agnosticism", "every trained MNIST network on all nine inference setups",
               _pairs(AGNOSTIC_TRAININGS, AGNOSTIC_INFERENCES), monitor=False),
    # Beyond the paper. monitor=False: pairing "ideal" or "high_pf" with these inference setups must
    # not add test-during-training stages to them (it would change the paper's job keys).
    Simulation("combined", "the worked-example chip (high-R SiOx PF, D2D, 2 % stuck at G_off, 5 % read "
               "noise, drift to 1 day, 6-bit DAC and ADC, 128 x 64 tiles): ideal, PF-aware and chip-aware "
               "training, each tested on the chip",
               _pairs(["ideal", "high_pf", "chip"], ["chip"]), monitor=False),
    Simulation("drift", "the chip read 1 s, 1 h, 1 day, 1 month and 1 year after programming: ideal "
               "training, aware training at 1 s and at 1 day",
               _pairs(DRIFT_TRAININGS, [name for name, *_ in DRIFT_READS]), monitor=False),
    Simulation("adc", "high-R SiOx PF read by 3- to 8-bit ADCs, one array and 128 x 64 tiles: ideal "
               "and PF-aware training",
               _pairs(ADC_TRAININGS, [f"adc{b}" for b in ADC_BITS] + [f"adc{b}_tiles" for b in ADC_BITS]),
               monitor=False),
]}
#: The paper's nine simulations (docs/model.md §7), in registry order; the others go beyond the paper.
PAPER_SIMULATIONS = tuple(SIMULATIONS)[:9]


# -- line_resistance (beyond the paper; memnp.experiments.line_resistance) -------------------------
# monitor=False: its pairs add no test-during-training stages to "ideal", "low_pf" and "high_pf"
# (the paper's job keys stay as they were). default=False: too slow for the default set.
_LR_TRAININGS, _LR_INFERENCES, _LR_PAIRS = line_resistance.setups(TrainingSetup, InferenceSetup)
TRAININGS.update((t.name, t) for t in _LR_TRAININGS)
INFERENCES.update((i.name, i) for i in _LR_INFERENCES)
SIMULATIONS[line_resistance.NAME] = Simulation(
    line_resistance.NAME, "low- and high-R SiOx PF in 128 x 64 tiles with r ohm per line segment: ideal, "
    "PF-aware, and PF-aware fine-tuned with r in the loop", _LR_PAIRS, monitor=False, default=False)


def default_names(preset=None):
    """The simulations ``reproduce`` runs without ``--only``: all with ``--preset paper``, else
    those with ``default`` set."""
    return [name for name, sim in SIMULATIONS.items() if sim.default or preset == "paper"]


def pairs_at(simulation, scale):
    """The (training, inference) pairs of a Simulation run at ``scale`` (a sweep keeps its scale's
    points, see :func:`memnp.experiments.line_resistance.keeps`)."""
    return tuple((t, i) for t, i in simulation.pairs
                 if line_resistance.keeps((TRAININGS[t], INFERENCES[i]), scale))


def check_names(names):
    """The simulation names, validated (ValueError listing the allowed names)."""
    names = list(names)
    bad = [n for n in names if n not in SIMULATIONS]
    if bad:
        raise ValueError(f"unknown simulation {bad[0]!r}; --only must be one of {', '.join(SIMULATIONS)}")
    return names


def device_stage(device, mapping_rule="default", devices=None):
    """The Stage of a device preset name ("ideal" or a memnp.data.presets name); ``devices``
    ({preset name: Stage}, e.g. read from preset files) replaces built-in presets."""
    if devices and device in devices:
        stage = devices[device]
    elif device == "ideal":
        stage = Stage.from_dict(IDEAL_STAGE)
    else:
        from ..data.presets import preset_stage
        stage = preset_stage(device)
    if stage.mapping_rule != mapping_rule:
        stage = dataclasses.replace(stage, mapping_rule=mapping_rule)
    return stage


def monitor_inferences(training_name):
    """Inference setups for the test-during-training of a training setup (see module docstring)."""
    out = []
    for sim in SIMULATIONS.values():
        if sim.monitor:
            for t, i in sim.pairs:
                if t == training_name and i not in out:
                    out.append(i)
    return out


def used_devices(names):
    """The device names (preset names and "ideal") the simulations ``names`` train or test on,
    test-during-training stages included, in first-use order."""
    out = []
    for name in check_names(names):
        for t, i in SIMULATIONS[name].pairs:
            for device in [TRAININGS[t].device] + [INFERENCES[m].device for m in monitor_inferences(t)] \
                    + [INFERENCES[i].device]:
                if device not in out:
                    out.append(device)
    return out


#: Names of :mod:`memnp.experiments.plan` offered here too (imported on first use: plan imports
#: this module).
_PLAN_NAMES = ("Job", "Plan", "expand", "check_devices", "inference_setup_config", "training_config",
               "inference_config")


def __getattr__(name):
    if name in _PLAN_NAMES:
        from . import plan
        return getattr(plan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
