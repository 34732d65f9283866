"""A nonideality defined outside memnp (issue 15, step 4): declaring its phase and draws and
registering it is all it takes to run in a Stage, to train, and to round-trip through JSON."""
import dataclasses

import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.crossbar import CrossbarPass, Stage, pipeline
from memnp.data.presets import validate_stage_dict
from memnp.nn import MemristiveDense, Sequential, Softmax
from memnp.nn.optim import SGD
from memnp.nonidealities import D2DLognormal, LinearityPreserving, ReadNoise, nonideality_from_dict, register
from memnp.crossbar.nonidealities.base import registered, unregister
from pipeline_stages import G_OFF, G_ON, PF, crossbar_inputs


@dataclasses.dataclass(frozen=True)
class Fade(LinearityPreserving):
    """Test-only drift law: G' = G (1 - depth u), u uniform in [0, 1) per device (chip draws)."""

    depth: float
    bias: float = 0.0

    phase = "drift"
    draws = "chip"

    def __post_init__(self):
        if not 0 <= self.depth < 1:
            raise ValueError(f"depth must be in [0, 1); got {self.depth!r}")

    @property
    def label(self):
        return f"Fade(depth={self.depth:.4g})"

    def sample(self, shape, rng, dtype=np.float64):
        return (1.0 - self.depth * rng.random(shape)).astype(dtype)

    def disturb(self, G, draws):
        return G * draws

    def disturb_vjp(self, G, draws, grad_G_disturbed):
        return grad_G_disturbed * draws


@pytest.fixture
def fade():
    register(Fade)
    yield Fade
    unregister(Fade)
    assert "Fade" not in registered()


def _stage(depth=0.3):
    return Stage(G_OFF, G_ON, 0.5, (ReadNoise(0.05), PF, Fade(depth), D2DLognormal(G_OFF, G_ON, 0.05, 0.5)))


def test_registered_class_joins_its_phase_and_runs_in_a_stage(fade, rng):
    assert pipeline.classes("drift") == ("Drift", "Fade")
    stage = _stage()
    assert list(stage.phases) == ["programming", "drift", "read_noise", "currents"]
    # Not a class the fused loops run (no fused() record): phase by phase, nothing fused.
    assert not stage.fused_conductances and stage.draw_plan is None and stage.random
    V, G = crossbar_inputs(rng)
    crossbar = CrossbarPass(stage, "numpy")
    I = crossbar.forward(V, G, np.random.default_rng(3))
    draws = crossbar.draws
    assert set(draws) == {"programming", "drift", "read_noise", "currents"}
    assert draws["drift"].min() >= 0.7 and draws["drift"].max() <= 1.0
    d2d = stage.phases["programming"]
    expected = d2d.disturb(G, draws["programming"]) * draws["drift"] * draws["read_noise"]
    np.testing.assert_allclose(crossbar.read_conductances, expected, rtol=1e-14)
    c, d_eps = PF.device_parameters(expected, draws["currents"])
    np.testing.assert_allclose(I, crossbar.backend.pf_currents(V, c, d_eps), rtol=1e-14)
    # Exact gradients with the same draws, against float64 finite differences.
    R = rng.normal(size=I.shape)
    replay = CrossbarPass(stage, "numpy")
    loss = lambda: float(np.sum(R * replay.forward(V, G, None, draws)))  # noqa: E731
    loss()
    grad_V, grad_G = replay.backward(R.copy())
    assert relative_error(grad_G, numerical_gradient(loss, G)) < 1e-6
    assert relative_error(grad_V, numerical_gradient(loss, V)) < 1e-6


def test_registered_class_round_trips_through_json_and_the_preset_schema(fade):
    stage = _stage(0.25)
    data = stage.to_dict()
    assert {"type": "Fade", "depth": 0.25, "bias": 0.0} in data["nonidealities"]
    assert data["pipeline"] == ["programming", "drift", "read_noise", "currents"]
    assert Stage.from_json(stage.to_json()) == stage
    assert nonideality_from_dict({"type": "Fade", "depth": 0.5}) == Fade(0.5)
    validate_stage_dict(data)          # the presets' schema comes from the registered classes
    data["nonidealities"] = [{"type": "Fade", "bias": 0.0}]
    with pytest.raises(ValueError, match="Fade.*missing key 'depth'"):
        validate_stage_dict(data)


def test_an_unregistered_class_is_not_loadable():
    with pytest.raises(ValueError, match="nonideality type must be one of"):
        nonideality_from_dict({"type": "Fade", "depth": 0.5})
    with pytest.raises(ValueError, match="type must be one of"):
        validate_stage_dict({"G_off": G_OFF, "G_on": G_ON, "k_V": 0.5,
                             "nonidealities": [{"type": "Fade", "depth": 0.5}]})


def test_registered_class_trains(fade, rng):
    stage = Stage(G_OFF, G_ON, 0.5, (Fade(0.3), PF))
    model = Sequential([MemristiveDense(6, 3, "double", dtype="float64"), Softmax(dtype="float64")],
                       stage=stage, optimizer=SGD(lr=0.5), backend="numpy")
    model.initialize(np.random.default_rng(0))
    x, y = rng.uniform(0.05, 1, (12, 6)), rng.integers(0, 3, 12)
    before = model.evaluate(x, y, np.random.default_rng(1))["loss"]
    for _ in range(15):
        model.train_step(x, y, np.random.default_rng(1))
    assert model.evaluate(x, y, np.random.default_rng(1))["loss"] < before
    # The layer's gradient through Fade's VJP against finite differences (same draws: same seed).
    layer = model.layers[0]
    model.compute_gradients(x, y, np.random.default_rng(2))
    D = layer.params["w_pos"]
    analytic = layer.grads["w_pos"].copy()
    loss = lambda: model.evaluate(x, y, np.random.default_rng(2), batch_size=12)["loss"] * 1.0  # noqa: E731
    assert relative_error(analytic, numerical_gradient(loss, D, lower=0.0)) < 1e-5


def test_declarations_are_checked():
    @dataclasses.dataclass(frozen=True)
    class NoPhase(LinearityPreserving):
        x: float

    with pytest.raises(ValueError, match="NoPhase.phase must be one of programming, drift"):
        register(NoPhase)
    with pytest.raises(ValueError, match="nonidealities must be of a class that declares its phase"):
        Stage(G_OFF, G_ON, 0.5, (NoPhase(1.0),))

    @dataclasses.dataclass(frozen=True)
    class Drift(LinearityPreserving):     # the name of memnp's Drift
        phase = "drift"
        draws = "chip"

    with pytest.raises(ValueError, match="a nonideality named Drift is already registered"):
        register(Drift)
