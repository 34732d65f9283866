"""Stage validation and JSON, and a crossbar pass under every kind of stage (docs/model.md §1-3)."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.crossbar import CrossbarPass, Stage
from memnp.kernels import reference
from memnp.nonidealities import D2DLognormal, IVNonlinearityPF, StuckAtGOff, StuckAtGOn, StuckDistribution

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                      [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
STAGES = {
    "ideal": Stage(G_OFF, G_ON),
    "pf": Stage(G_OFF, G_ON, nonidealities=(PF,)),
    "stuck": Stage(G_OFF, G_ON, nonidealities=(StuckAtGOff(G_OFF, 0.3),)),
    "pf+stuck_on": Stage(G_OFF, G_ON, nonidealities=(StuckAtGOn(G_ON, 0.3), PF)),
    "kde": Stage(G_OFF, G_ON, nonidealities=(StuckDistribution([1e-7, 6e-7, 1.1e-6, 2e-6], 0.3),)),
    "d2d": Stage(G_OFF, G_ON, nonidealities=(D2DLognormal(G_OFF, G_ON, 0.25, 0.25),)),
    "d2d+pf": Stage(G_OFF, G_ON, nonidealities=(D2DLognormal(G_OFF, G_ON, 0.05, 0.5), PF)),
}


@pytest.mark.parametrize("name", STAGES)
def test_stage_json_round_trip(name):
    stage = STAGES[name]
    assert Stage.from_json(stage.to_json()) == stage
    assert Stage.from_dict(stage.to_dict()).label == stage.label


def test_stage_rejects_two_of_a_kind_and_bad_fields():
    with pytest.raises(ValueError, match="at most one linearity-preserving"):
        Stage(G_OFF, G_ON, nonidealities=(StuckAtGOff(G_OFF, 0.1), StuckAtGOn(G_ON, 0.1)))
    with pytest.raises(ValueError, match="at most one linearity-nonpreserving"):
        Stage(G_OFF, G_ON, nonidealities=(PF, PF))
    with pytest.raises(ValueError, match="mapping_rule"):
        Stage(G_OFF, G_ON, mapping_rule="max")
    with pytest.raises(ValueError, match="G_off"):
        Stage(G_ON, G_OFF)
    with pytest.raises(ValueError, match="k_V"):
        Stage(G_OFF, G_ON, k_V=-0.5)
    with pytest.raises(ValueError, match="unknown stage fields"):
        Stage.from_dict({"G_off": G_OFF, "G_on": G_ON, "kV": 0.5})
    with pytest.raises(ValueError, match="nonidealities"):
        Stage(G_OFF, G_ON, nonidealities=("PF",))


@pytest.mark.parametrize("name", STAGES)
def test_crossbar_pass_gradients_with_replayed_draws(rng, name):
    stage = STAGES[name]
    V = 0.5 * rng.random((3, 5)) + 0.01
    G = rng.uniform(G_OFF, G_ON, (5, 4))
    crossbar = CrossbarPass(stage, backend="numpy")
    I = crossbar.forward(V, G, rng)
    draws = crossbar.draws
    R = rng.normal(size=I.shape) / np.abs(I).max()
    grad_V, grad_G = crossbar.backward(R)
    replay = CrossbarPass(stage, backend="numpy")
    loss = lambda: float(np.sum(R * replay.forward(V, G, None, draws=draws)))  # noqa: E731
    assert relative_error(grad_V, numerical_gradient(loss, V, 1e-7)) < 1e-6
    assert relative_error(grad_G, numerical_gradient(loss, G, 1e-7)) < 1e-6


def test_crossbar_pass_ideal_values_and_power(rng):
    V = 0.5 * rng.random((4, 5))
    G = rng.uniform(G_OFF, G_ON, (5, 6))
    crossbar = CrossbarPass(STAGES["ideal"], backend="numpy")
    np.testing.assert_allclose(crossbar.forward(V, G, rng), V @ G, rtol=1e-14)
    expected = sum((V[p, i] ** 2) * G[i, j] for p in range(4) for i in range(5) for j in range(6)) / 4
    assert crossbar.power() == pytest.approx(expected, rel=1e-12)


def test_crossbar_pass_pf_power_matches_reference(rng):
    V = 0.5 * rng.random((4, 5))
    G = rng.uniform(G_OFF, G_ON, (5, 6))
    crossbar = CrossbarPass(STAGES["pf"], backend="numpy")
    crossbar.forward(V, G, rng)
    c, d_eps = PF.device_parameters(G, crossbar.draws[1])
    I_ind = reference.pf_device_currents(V, c, d_eps)
    assert crossbar.power() == pytest.approx(float((np.abs(V)[:, :, None] * np.abs(I_ind)).sum() / 4), rel=1e-12)


def test_same_seed_same_numbers():
    V = np.full((2, 3), 0.3)
    G = np.full((3, 4), 1e-6)
    out = [CrossbarPass(STAGES["d2d+pf"], "numpy").forward(V, G, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(out[0], out[1])
    other = CrossbarPass(STAGES["d2d+pf"], "numpy").forward(V, G, np.random.default_rng(8))
    assert not np.array_equal(out[0], other)
