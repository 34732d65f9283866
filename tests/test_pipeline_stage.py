"""The nonideality pipeline's stage (issue 10): the physical order whatever the listing, one
nonideality per phase, JSON round trips, cross-phase checks and bad input."""
import numpy as np
import pytest

from memnp.crossbar import PHASES, CrossbarPass, Draws, Stage
from memnp.crossbar import pipeline
from memnp.crossbar.pipeline import IDENTITY
from memnp.nonidealities import (ADC, DAC, D2DLognormal, Drift, IVNonlinearityPF, ProgrammingNoise,
                                 ReadNoise, StuckAt, StuckAtGOff, StuckAtGOn, StuckDistribution, Tiles,
                                 nonideality_from_dict)
from pipeline_stages import COMBINED, G_OFF, G_ON, PF, STAGES, crossbar_inputs


def test_phases_table_is_the_physical_order():
    assert [p.name for p in PHASES] == ["programming", "drift", "stuck", "read_noise", "dac", "currents",
                                        "wires", "adc", "tiles"]
    # Each class declares its phase and draws; the phases' classes come from those declarations.
    declared = {cls.__name__: (cls.phase, cls.draws) for cls in
                (D2DLognormal, ProgrammingNoise, Drift, StuckAt, StuckDistribution, ReadNoise, DAC,
                 IVNonlinearityPF, ADC, Tiles)}
    assert declared == {"D2DLognormal": ("programming", "chip"), "ProgrammingNoise": ("programming", "chip"),
                        "Drift": ("drift", "chip"), "StuckAt": ("stuck", "chip"),
                        "StuckDistribution": ("stuck", "chip"), "ReadNoise": ("read_noise", "read"),
                        "DAC": ("dac", None), "IVNonlinearityPF": ("currents", "chip"), "ADC": ("adc", None),
                        "Tiles": ("tiles", None)}
    assert pipeline.classes("stuck") == ("StuckAt", "StuckAtGOff", "StuckAtGOn", "StuckDistribution")
    assert pipeline.classes("wires") == ("LineResistance",)
    stage = STAGES["combined"]
    assert list(stage.phases) == ["programming", "drift", "stuck", "read_noise", "dac", "currents", "adc",
                                  "tiles"]
    assert stage.phase("wires") is IDENTITY and stage.phase("dac") is COMBINED[6]


def test_listing_order_does_not_change_the_stage_or_the_result(rng):
    V, G = crossbar_inputs(rng, m=8)
    shuffled = [COMBINED[i] for i in rng.permutation(len(COMBINED))]
    a, b = Stage(G_OFF, G_ON, 0.5, COMBINED), Stage(G_OFF, G_ON, 0.5, tuple(reversed(shuffled)))
    assert a == b and a.label == b.label and a.to_dict() == b.to_dict()
    I_a = CrossbarPass(a, "numpy").forward(V, G, np.random.default_rng(5))
    I_b = CrossbarPass(b, "numpy").forward(V, G, np.random.default_rng(5))
    np.testing.assert_array_equal(I_a, I_b)
    # the stored order is the physical one
    assert [type(n).__name__ for n in a.nonidealities] == [
        "D2DLognormal", "Drift", "StuckAtGOff", "ReadNoise", "DAC", "IVNonlinearityPF", "ADC", "Tiles"]


def test_paper_stages_keep_their_listing_label_and_json():
    stuck_on = StuckAtGOn(G_ON, 0.1)
    stage = Stage(G_OFF, G_ON, 0.5, (PF, stuck_on))
    assert stage.nonidealities == (PF, stuck_on) and stage.is_paper
    assert stage.label.startswith("IVNonlinearityPF(") and "+StuckAtGOn(p=0.1)[" in stage.label
    assert set(stage.to_dict()) == {"G_off", "G_on", "k_V", "mapping_rule", "nonidealities"}
    assert stage.preserving is stuck_on and stage.nonpreserving is PF
    # two conductance phases of the paper's classes: not a paper stage any more
    both = Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(G_OFF, 0.1), D2DLognormal(G_OFF, G_ON, 0.1, 0.1)))
    assert not both.is_paper and both.to_dict()["pipeline"] == ["programming", "stuck"]
    with pytest.raises(ValueError, match="several conductance phases"):
        both.preserving


@pytest.mark.parametrize("name", list(STAGES))
def test_json_round_trips(name):
    stage = STAGES[name]
    again = Stage.from_json(stage.to_json())
    assert again == stage and again.label == stage.label and again.to_dict() == stage.to_dict()
    assert stage.to_dict()["pipeline"] == list(stage.phases)
    for item in stage.nonidealities:
        assert nonideality_from_dict(item.to_dict()) == item


def test_json_of_each_new_class():
    for item in (ProgrammingNoise(0.1, 1e-8), Drift(0.05, 0.01, 86400.0, 2.0), ReadNoise(0.05), DAC(6),
                 ADC(4), ADC(8, 2.5e-5), Tiles(128, 64)):
        assert nonideality_from_dict(item.to_dict()) == item


def test_pipeline_field_must_be_the_fixed_order():
    data = STAGES["combined"].to_dict()
    data["pipeline"] = list(reversed(data["pipeline"]))
    with pytest.raises(ValueError, match="fixed physical order"):
        Stage.from_dict(data)


@pytest.mark.parametrize("make, match", [
    (lambda: DAC(0), "bits must be an integer from 1 to 16"),
    (lambda: DAC(17), "bits must be an integer from 1 to 16"),
    (lambda: ADC(2.5), "bits must be an integer from 1 to 16"),
    (lambda: ADC(True), "bits must be an integer from 1 to 16"),
    (lambda: ADC(6, "best"), "full_scale"),
    (lambda: ADC(6, -1e-6), "full_scale"),
    (lambda: ProgrammingNoise(-0.1), "sigma_rel must be a finite number >= 0"),
    (lambda: ProgrammingNoise(0.1, -1e-9), "sigma_abs must be a finite number >= 0"),
    (lambda: ReadNoise(-0.05), "sigma_rel must be a finite number >= 0"),
    (lambda: Drift(0.05, -0.01, 10.0), "nu_std must be a finite number >= 0"),
    (lambda: Drift(-0.05, 0.01, 10.0), "nu_mean must be a finite number >= 0"),
    (lambda: Drift(0.05, 0.01, 0.0), r"t \(seconds since programming\) must be a finite number > 0"),
    (lambda: Drift(0.05, 0.01, -5.0), r"t \(seconds since programming\) must be"),
    (lambda: Drift(0.05, 0.01, 10.0, 0.0), r"t0 \(seconds\) must be a finite number > 0"),
    (lambda: Tiles(1, 64), "rows must be an integer >= 2"),
    (lambda: Tiles(128, 0), "cols must be an integer >= 2"),
    (lambda: Tiles(128.0, 64), "rows must be an integer >= 2"),
])
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("items", [
    (ProgrammingNoise(0.1), D2DLognormal(G_OFF, G_ON, 0.1, 0.1)),
    (ReadNoise(0.05), ReadNoise(0.02)),
    (DAC(4), DAC(6)),
    (ADC(4), ADC(6)),
    (Tiles(4, 4), Tiles(8, 8)),
    (Drift(0.1, 0, 10.0), Drift(0.1, 0, 20.0)),
])
def test_a_second_nonideality_of_a_phase_is_refused(items):
    with pytest.raises(ValueError, match="at most one .*nonideality per phase"):
        Stage(G_OFF, G_ON, 0.5, items)


def test_pf_k_V_must_be_the_stage_k_V():
    other = IVNonlinearityPF(0.4, PF.slopes, PF.intercepts, PF.covariance)
    with pytest.raises(ValueError, match=r"IVNonlinearityPF k_V must equal the stage's k_V \(0.5 V\); got 0.4"):
        Stage(G_OFF, G_ON, 0.5, (other,))
    Stage(G_OFF, G_ON, 0.4, (other,))


@pytest.mark.parametrize("stuck", [StuckAt(3e-6, 0.1), StuckAt(1e-7, 0.1), StuckAtGOff(1e-7, 0.1),
                                   StuckAtGOn(5e-6, 0.1)])
def test_stuck_value_outside_the_conductance_range_is_refused(stuck):
    with pytest.raises(ValueError, match=r"must lie in the stage's conductance range \[G_off, G_on\]"):
        Stage(G_OFF, G_ON, 0.5, (stuck,))


def test_stuck_values_inside_the_range_are_accepted():
    for stuck in (StuckAt(1e-6, 0.1), StuckAtGOff(G_OFF, 0.1), StuckAtGOn(G_ON, 0.1),
                  StuckDistribution([1e-7, 6e-7, 1.1e-6], 0.1)):
        Stage(G_OFF, G_ON, 0.5, (stuck,))


def test_dac_refuses_inputs_outside_the_unit_interval(rng):
    stage = Stage(G_OFF, G_ON, 0.5, (DAC(4),))
    V, G = crossbar_inputs(rng)
    V[0, 1] = 0.6
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        CrossbarPass(stage, "numpy").forward(V, G, None)
    V[0, 1] = -0.01
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        CrossbarPass(stage, "numpy").forward(V, G, None)


def test_draws_are_kept_by_phase_name(rng):
    V, G = crossbar_inputs(rng)
    crossbar = CrossbarPass(STAGES["combined"], "numpy")
    crossbar.forward(V, G, rng)
    draws = crossbar.draws
    assert isinstance(draws, Draws) and list(draws) == ["programming", "drift", "stuck", "read_noise", "currents"]
    assert draws[1] is draws["currents"]
    with pytest.raises(KeyError, match="index by phase name"):
        draws[0]
    paper = CrossbarPass(Stage(G_OFF, G_ON, 0.5, (PF, StuckAtGOn(G_ON, 0.2))), "numpy")
    paper.forward(V, G, rng)
    assert paper.draws[0] is paper.draws["stuck"] and paper.draws[1] is paper.draws["currents"]
