"""Edges of the crossbar library's inputs found by an audit (issue 16, item 4): nonidealities,
stages and crossbar passes that accepted bad values silently or refused them with an unhelpful
error. Each is now a ValueError naming the parameter and the allowed range."""
import math

import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, Stage
from memnp.kernels.normal import Z_MAX
from memnp.nonidealities import (ADC, D2DLognormal, Drift, IVNonlinearityPF, LineResistance, ProgrammingNoise,
                                 ReadNoise, StuckDistribution, Tiles)

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
COV = [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]
HIGH_PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186), COV)


def test_drift_needs_t_at_or_after_t0():
    assert Drift(0.1, 0.01, 1.0, 1.0).t == 1.0            # t = t0: the programmed values
    with pytest.raises(ValueError, match=r"t \(seconds since programming\) must be >= t0 = 1000.0 s"):
        Drift(0.1, 0.01, 1.0, 1000.0)


def test_drift_decay_is_bounded():
    # (nu_mean + Z_MAX nu_std) ln(t / t0) <= ln(1e6): at the bound it is accepted, just above not.
    t = math.exp(math.log(1e6) / (0.5 + Z_MAX * 0.01)) * 0.999
    factors = Drift(0.5, 0.01, t).sample((40, 40), np.random.default_rng(0))
    assert factors.min() >= 1e-6 and np.all(factors <= 1)
    with pytest.raises(ValueError, match=r"at most a factor 1e\+06.*must be <= 13.8"):
        Drift(0.5, 0.01, t * 1.01)
    with pytest.raises(ValueError, match=r"nu_mean=100.0"):
        Drift(100.0, 0.0, 1e6)


@pytest.mark.parametrize("name", ["R_on_log_std", "R_off_log_std"])
def test_d2d_log_std_is_bounded(name):
    other = "R_off_log_std" if name == "R_on_log_std" else "R_on_log_std"
    D2DLognormal(G_OFF, G_ON, **{name: 5.0, other: 0.1})
    for bad in (5.01, 100.0, math.inf, math.nan, -0.1):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number in \[0.0, 5.0\]"):
            D2DLognormal(G_OFF, G_ON, **{name: bad, other: 0.1})


def test_d2d_at_the_largest_log_std_stays_finite_in_float32():
    d2d = D2DLognormal(G_OFF, G_ON, 5.0, 5.0)
    G = np.full((1, 2), G_ON, np.float32)
    draws = np.array([[-Z_MAX, Z_MAX]], np.float32)
    out = d2d.disturb(G, draws)
    assert np.all(np.isfinite(out)) and np.all(out > 0)


@pytest.mark.parametrize("make", [ReadNoise, ProgrammingNoise])
def test_noise_sigma_rel_is_bounded(make):
    assert make(10.0).sigma_rel == 10.0
    for bad in (10.5, 1e300):
        with pytest.raises(ValueError, match=r"sigma_rel must be at most 10 \(a relative standard deviation of "
                                             r"1000 %\)"):
            make(bad)
    with pytest.raises(ValueError, match=r"sigma_rel must be a finite number >= 0"):
        make(math.inf)


@pytest.mark.parametrize("G_off, G_on, name", [(1e-300, 1e-299, "G_off"), (1e-16, 1e-6, "G_off"),
                                               (1e-6, 1e30, "G_on"), (1e-6, 1001.0, "G_on")])
def test_conductance_range_is_bounded(G_off, G_on, name):
    from memnp.crossbar import w_to_G
    Stage(1e-15, 1e3)                                   # both ends allowed
    with pytest.raises(ValueError, match=rf"{name} must be a conductance in \[1e-15, 1000\] S"):
        Stage(G_off, G_on)
    with pytest.raises(ValueError, match=rf"{name} must be a conductance in \[1e-15, 1000\] S"):
        w_to_G(np.ones((2, 2)), G_off, G_on)


def test_stage_refuses_a_d2d_range_other_than_its_own():
    Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF * (1 + 1e-12), G_ON, 0.1, 0.1),))   # rounding: fine
    with pytest.raises(ValueError, match=r"D2DLognormal G_off must equal the stage's G_off \(5.24841e-07 S\)"):
        Stage(G_OFF, G_ON, 0.5, (D2DLognormal(1e-6, G_ON, 0.1, 0.1),))
    with pytest.raises(ValueError, match=r"D2DLognormal G_on must equal the stage's G_on"):
        Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF, 1e-5, 0.1, 0.1),))


def test_stuck_at_g_off_and_g_on_are_the_stage_values():
    from memnp.nonidealities import StuckAtGOff, StuckAtGOn
    Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(G_OFF, 0.1),))
    Stage(G_OFF, G_ON, 0.5, (StuckAtGOn(G_ON * (1 + 1e-12), 0.1),))
    with pytest.raises(ValueError, match=r"StuckAtGOff G_off must equal the stage's G_off \(5.24841e-07 S\); "
                                         r"got 1.049682e-06 S \(use StuckAt for another stuck value\)"):
        Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(2 * G_OFF, 0.1),))
    with pytest.raises(ValueError, match=r"StuckAtGOn G_on must equal the stage's G_on \(2.6242e-06 S\)"):
        Stage(G_OFF, G_ON, 0.5, (StuckAtGOn(G_ON / 2, 0.1),))


def test_stage_refuses_an_adc_full_scale_below_one_device():
    # One device at G_off read at k_V = 0.5 V passes 0.5 G_off (Ohm's law), under any I-V model.
    smallest = 0.5 * G_OFF
    for phases in ((), (HIGH_PF,)):
        Stage(G_OFF, G_ON, 0.5, phases + (ADC(6, smallest * 1.001),))
        for bad in (1e-30, smallest * 0.999):
            with pytest.raises(ValueError, match=r"ADC full_scale \(A\) must be at least k_V G_off, the "
                                                 r"current of one device at G_off read at k_V \(2.624e-07 A"):
                Stage(G_OFF, G_ON, 0.5, phases + (ADC(6, bad),))
    Stage(G_OFF, G_ON, 0.5, (ADC(6),))                      # worst-case: fits any stage


def test_stuck_distribution_must_draw_mostly_inside_the_stage_range():
    near = StuckDistribution((1.0e-6, 1.2e-6, 1.5e-6, 2.0e-6), 0.1)
    assert 0 < near.outside(G_OFF, G_ON) < 0.05                # the tails spill a little: accepted
    Stage(G_OFF, G_ON, 0.5, (near,))
    # means in other units (mS instead of S) or of another device: every draw is outside
    far = StuckDistribution((1e-3, 1.2e-3, 2e-3), 0.1)
    assert far.outside(G_OFF, G_ON) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match=r"StuckDistribution means \(S\) must be stuck conductances on the "
                                         r"stage's range .* at most 0.5 of the values drawn"):
        Stage(G_OFF, G_ON, 0.5, (far,))


def test_stuck_distribution_outside_matches_its_draws():
    stuck = StuckDistribution((3e-7, 6e-7, 9e-7, 2.5e-6, 2.7e-6), 1.0)
    mask, values = stuck.sample((300, 300), np.random.default_rng(4))
    drawn = np.mean((values < G_OFF) | (values > G_ON))
    assert stuck.outside(G_OFF, G_ON) == pytest.approx(drawn, abs=0.005)
    assert 0.1 < drawn < 0.5


def test_stage_refuses_pf_parameters_that_overflow():
    Stage(G_OFF, G_ON, 0.5, (HIGH_PF,))
    for intercepts in ((1000.0, -37.1186), (-0.25, -80.0), (-0.25, 200.0)):
        pf = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), intercepts, COV)
        with pytest.raises(ValueError, match=r"IVNonlinearityPF slopes, intercepts and covariance must give "
                                             r"devices with c, d_eps and a current at k_V = 0.5 V in float32's"):
            Stage(G_OFF, G_ON, 0.5, (pf,))
    huge = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186), [[1e6, 0], [0, 1e6]])
    with pytest.raises(ValueError, match="IVNonlinearityPF slopes, intercepts and covariance"):
        Stage(G_OFF, G_ON, 0.5, (huge,))


def test_programming_noise_sigma_abs_within_the_range():
    Stage(G_OFF, G_ON, 0.5, (ProgrammingNoise(0.1, G_ON - G_OFF),))
    with pytest.raises(ValueError, match=r"ProgrammingNoise sigma_abs \(S\) must be at most the stage's range "
                                         r"G_on - G_off = 2.099e-06 S; got 1.0 S"):
        Stage(G_OFF, G_ON, 0.5, (ProgrammingNoise(0.1, 1.0),))


def test_stage_json_errors_say_what():
    with pytest.raises(ValueError, match="a stage's JSON text is not valid JSON"):
        Stage.from_json("{")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stage", [Stage(G_OFF, G_ON, 0.5), Stage(G_OFF, G_ON, 0.5, (HIGH_PF,))])
def test_crossbar_pass_needs_conductances_in_the_stage_range(rng, dtype, stage):
    crossbar = CrossbarPass(stage, "numpy")
    V = (0.5 * rng.random((3, 4))).astype(dtype)
    G = rng.uniform(G_OFF, G_ON, (4, 2)).astype(dtype)
    G[0, 0], G[1, 1] = dtype(G_OFF), dtype(G_ON)          # both ends, rounded to dtype
    crossbar.forward(V, G, rng)
    for bad in (100 * G_ON, G_ON * (1 + 1e-5), G_OFF * (1 - 1e-5), 1e-30):
        H = G.copy()
        H[2, 1] = bad
        with pytest.raises(ValueError, match=r"G must hold conductances in the stage's range \[G_off, G_on\] = "
                                             r"\[5.24841e-07, 2.6242e-06\] S"):
            crossbar.forward(V, H, rng)
        with pytest.raises(ValueError, match=r"G must hold conductances in the stage's range"):
            crossbar.forward(V, np.asfortranarray(H), rng)        # the NumPy path, not the bit scan
    for bad, message in ((0.0, "conductances > 0 S"), (np.nan, "finite"), (np.inf, "finite")):
        H = G.copy()
        H[2, 1] = bad
        with pytest.raises(ValueError, match=message):
            crossbar.forward(V, H, rng)


def test_crossbar_pass_state_before_forward():
    stage = Stage(G_OFF, G_ON, 0.5, (LineResistance(1.0, 1.0),))
    crossbar = CrossbarPass(stage, "numpy")
    for what, read in (("CrossbarPass.power()", lambda: crossbar.power()),
                       ("CrossbarPass.power_parts()", lambda: crossbar.power_parts()),
                       ("CrossbarPass.read_conductances", lambda: crossbar.read_conductances),
                       ("CrossbarPass.draws", lambda: crossbar.draws),
                       ("CrossbarPass.wire_reports()", lambda: crossbar.wire_reports()),
                       ("CrossbarPass.solve_report", lambda: crossbar.solve_report)):
        with pytest.raises(ValueError, match=rf"{what.replace('(', '[(]').replace(')', '[)]')} needs a "
                                             r"forward pass first \(call forward\)"):
            read()


def test_crossbar_pass_rows(rng):
    stage = Stage(G_OFF, G_ON, 0.5, (ADC(6), Tiles(2, 2)))
    crossbar = CrossbarPass(stage, "numpy")
    V = (0.5 * rng.random((3, 3))).astype(np.float64)
    G = rng.uniform(G_OFF, G_ON, (3, 2))
    rows = np.array([0, 2, 3])
    crossbar.forward(V, G, rng, rows=rows, n_rows=5)
    crossbar.forward(V, G, rng, n_rows=3)
    for bad_rows, n_rows, message in (
            (np.array([5, 1, 0]), 6, r"rows must be strictly ascending row indices in \[0, n_rows\) = \[0, 6\); "
                                     r"got \[5, 1, 0\]"),
            (np.array([0, 2, 6]), 6, r"rows must be strictly ascending row indices in \[0, n_rows\)"),
            (np.array([-1, 2, 3]), 6, r"rows must be strictly ascending"),
            (np.array([0, 2, 2]), 6, r"rows must be strictly ascending"),
            (np.array([0.0, 1.0, 2.0]), 6, r"rows must be a 1-D integer array of V's column count \(3\)"),
            (np.array([0, 1]), 6, r"rows must be a 1-D integer array of V's column count \(3\)"),
            (rows, 2, r"n_rows must be an integer >= the number of rows given \(3\)"),
            (rows, None, r"n_rows must be an integer >= the number of rows given \(3\)"),
            (None, 7, r"n_rows must be None or V's column count 3 when rows is None; got 7")):
        with pytest.raises(ValueError, match=message):
            crossbar.forward(V, G, rng, rows=bad_rows, n_rows=n_rows)


def test_replayed_draws_are_checked(rng):
    from memnp.nonidealities import StuckAtGOff
    stage = Stage(G_OFF, G_ON, 0.5, (ReadNoise(0.1), StuckAtGOff(G_OFF, 0.2), HIGH_PF, ADC(6)))
    crossbar = CrossbarPass(stage, "numpy")
    V = (0.5 * rng.random((2, 3))).astype(np.float64)
    G = rng.uniform(G_OFF, G_ON, (3, 2))
    I = crossbar.forward(V, G, rng)
    good = dict(crossbar.draws)
    np.testing.assert_array_equal(crossbar.forward(V, G, None, draws=good), I)
    cases = [({k: v for k, v in good.items() if k != "read_noise"},
              r"draws must hold the draws of the stage's random phases \(stuck, read_noise, currents\); "
              r"missing read_noise, unexpected none"),
             ({**good, "drift": np.ones((3, 2))}, r"missing none, unexpected drift"),
             ({**good, "read_noise": np.ones((2, 2))},                        # was a broadcasting error
              r"draws\['read_noise'\] must hold arrays whose last two axes are G's shape \(3, 2\); "
              r"got shape \(2, 2\)"),
             ({**good, "stuck": (good["stuck"][0], np.ones((2, 3)))}, r"draws\['stuck'\] must hold arrays"),
             ({**good, "read_noise": np.full((3, 2), np.nan)},                # was silent NaN currents
              r"draws\['read_noise'\] must contain only finite values"),
             ([1, 2], r"draws must be a dict by phase name"),
             ((None, None, None),
              r"draws given as a tuple must be a paper stage's \(preserving, nonpreserving\) pair")]
    for draws, message in cases:
        with pytest.raises(ValueError, match=message):
            crossbar.forward(V, G, None, draws=draws)
    paper = CrossbarPass(Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF, G_ON, 0.1, 0.1), HIGH_PF)), "numpy")
    paper.forward(V, G, rng)
    paper.forward(V, G, None, draws=(paper.draws[0], paper.draws[1]))    # the old pair still replays
    with pytest.raises(ValueError, match=r"missing programming, unexpected none"):   # was AttributeError
        paper.forward(V, G, None, draws=(None, paper.draws[1]))


def test_adc_full_scale_must_let_the_largest_current_reach_a_level(rng):
    rows = 4
    largest = rows * 0.5 * G_ON                       # every row at k_V, every device at G_on
    V = np.full((2, rows), 0.5)
    G = np.full((rows, 2), G_ON)
    top = 2 * 63 * largest                            # 6 bits: L = 63
    I = CrossbarPass(Stage(G_OFF, G_ON, 0.5, (ADC(6, top * 0.999),)), "numpy").forward(V, G, rng)
    assert np.all(I > 0)                              # just below the bound: the largest current reads level 1
    with pytest.raises(ValueError, match=r"ADC full_scale \(A\) must be at most 2 \(2\^bits - 1\) = 126 times the "
                                         r"largest column current of an array of 4 rows \(5.248e-06 A\)"):
        CrossbarPass(Stage(G_OFF, G_ON, 0.5, (ADC(6, 1e30),)), "numpy").forward(V, G, rng)   # was all zeros
    with pytest.raises(ValueError, match=r"array of 2 rows"):                   # per array under Tiles
        CrossbarPass(Stage(G_OFF, G_ON, 0.5, (ADC(6, top * 0.6), Tiles(2, 2))), "numpy").forward(V, G, rng)


@pytest.mark.parametrize("item", [ReadNoise(0.1), ProgrammingNoise(0.1), Drift(0.1, 0.01, 10.0), HIGH_PF,
                                  D2DLognormal(G_OFF, G_ON, 0.1, 0.1), StuckDistribution((1e-6, 2e-6), 0.1)])
def test_sample_needs_a_generator_and_a_float_dtype(item):
    item.sample((2, 3), np.random.default_rng(0), np.float32)
    for rng in (None, 0, np.random.RandomState(0)):                 # None was an AttributeError
        with pytest.raises(ValueError, match=r"rng must be a numpy.random.Generator"):
            item.sample((2, 3), rng)
    with pytest.raises(ValueError, match=r"dtype must be a floating-point type .*; got int32"):   # was ints
        item.sample((2, 3), np.random.default_rng(0), np.int32)


def test_pf_direct_calls_check_g_and_residuals(rng):
    V = 0.5 * rng.random((2, 3))
    G = rng.uniform(G_OFF, G_ON, (3, 2))
    residuals = HIGH_PF.sample(G.shape, rng)
    I = HIGH_PF.currents(V, G, residuals, "numpy")
    assert I.shape == (2, 2) and np.all(I > 0)
    for call in (lambda g, r: HIGH_PF.currents(V, g, r, "numpy"), lambda g, r: HIGH_PF.power(V, g, r, "numpy"),
                 lambda g, r: HIGH_PF.currents_vjp(V, g, r, np.ones((2, 2)), "numpy")):
        with pytest.raises(ValueError, match=r"G must contain only values > 0"):      # was NaN currents
            call(-G, residuals)
        with pytest.raises(ValueError, match=r"residuals must have shape \(2, \*G.shape\) = \(2, 3, 2\)"):
            call(G, residuals[:, :2])
        with pytest.raises(ValueError, match=r"residuals must contain only finite values"):
            call(G, np.full_like(residuals, np.nan))
