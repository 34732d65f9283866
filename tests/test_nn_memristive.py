"""Memristive layers: values against the mapping of docs/model.md §1, float64 finite-difference checks of
the backward pass under every kind of stage (draws replayed by reseeding), power, and errors."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.crossbar import Stage
from memnp.kernels import get_backend
from memnp.nn import Conv2D, MemristiveConv2D, MemristiveDense, PassContext, layer_from_config
from memnp.nonidealities import (D2DLognormal, IVNonlinearityPF, StuckAtGOff, StuckAtGOn,
                                 StuckDistribution)

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
HIGH_PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                           [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
TA_OFF, TA_ON = 4.36e-5, 9.78e-4
STAGES = {
    "ideal": Stage(G_OFF, G_ON, 0.5),
    "pf": Stage(G_OFF, G_ON, 0.5, (HIGH_PF,)),
    "stuck_off": Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(G_OFF, 0.25),)),
    "pf_stuck_on": Stage(G_OFF, G_ON, 0.5, (HIGH_PF, StuckAtGOn(G_ON, 0.25))),
    "kde_stuck": Stage(TA_OFF, TA_ON, 0.5, (StuckDistribution([5e-5, 1e-4, 2.2e-4, 3e-4, 6e-4], 0.3),)),
    "d2d": Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF, G_ON, 0.05, 0.5),)),
    "d2d_avg": Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF, G_ON, 0.25, 0.25),), "avg"),
}


def randomise(layer, rng):
    """Random parameters without ties or zeros (finite differences need a smooth neighbourhood)."""
    for name, value in layer.params.items():
        if layer.weights == "double":
            layer.params[name] = rng.uniform(0.1, 1.0, value.shape)
        else:
            layer.params[name] = rng.normal(size=value.shape)


def check_memristive_gradients(layer, x, stage, rng, tol=1e-6):
    """Backward of L = sum(R * forward(x)) against central differences, the draws replayed by
    reseeding the Generator for every evaluation."""
    run = lambda: layer.forward(x, PassContext(stage, np.random.default_rng(7), "numpy"))  # noqa: E731
    R = rng.normal(size=run().shape)
    loss = lambda: float(np.sum(R * run()))  # noqa: E731
    run()
    dx = layer.backward(R.copy())
    assert dx.shape == x.shape
    assert relative_error(dx, numerical_gradient(loss, x, lower=0.0)) < tol   # inputs stay in [0, 1]
    grads = {name: g.copy() for name, g in layer.grads.items()}
    assert set(grads) == set(layer.params)
    for name, theta in layer.params.items():
        assert grads[name].shape == theta.shape and grads[name].dtype == theta.dtype
        assert relative_error(grads[name], numerical_gradient(loss, theta)) < tol, name


@pytest.mark.parametrize("stage_name", list(STAGES))
@pytest.mark.parametrize("weights", ["double", "standard"])
def test_memristive_dense_gradients(rng, stage_name, weights):
    layer = MemristiveDense(4, 3, weights, dtype="float64")
    randomise(layer, rng)
    check_memristive_gradients(layer, rng.uniform(0.05, 1.0, (3, 4)), STAGES[stage_name], rng)


@pytest.mark.parametrize("stage_name", ["ideal", "pf", "pf_stuck_on", "kde_stuck", "d2d"])
def test_memristive_conv2d_gradients(rng, stage_name):
    layer = MemristiveConv2D(2, 3, (2, 2), "double", dtype="float64")
    randomise(layer, rng)
    check_memristive_gradients(layer, rng.uniform(0.05, 1.0, (2, 3, 4, 2)), STAGES[stage_name], rng)


def test_memristive_conv2d_standard_weights_under_avg_rule(rng):
    layer = MemristiveConv2D(2, 2, (2, 3), "standard", dtype="float64")
    randomise(layer, rng)
    check_memristive_gradients(layer, rng.uniform(0.05, 1.0, (2, 3, 4, 2)), STAGES["d2d_avg"], rng)


def test_pf_input_gradient_is_zero_at_zero_input(rng):
    layer = MemristiveDense(4, 3, "double", dtype="float64")
    randomise(layer, rng)
    x = rng.uniform(0.1, 1.0, (2, 4))
    x[1, 2] = 0.0
    layer.forward(x, PassContext(STAGES["pf"], rng, "numpy"))
    dx = layer.backward(np.ones((2, 3)))
    assert dx[1, 2] == 0.0 and np.all(dx[0] != 0)


def test_ideal_double_weights_compute_the_differential_weights(rng):
    layer = MemristiveDense(5, 3, "double", dtype="float64")
    randomise(layer, rng)
    p = layer.params
    x = rng.random((4, 5))
    y = layer.forward(x, PassContext(STAGES["ideal"], None, "numpy"))
    np.testing.assert_allclose(y, x @ (p["w_pos"] - p["w_neg"]) + p["b_pos"] - p["b_neg"], rtol=1e-9)


@pytest.mark.parametrize("rule", ["default", "avg"])
def test_standard_weights_ideal_stage_uses_the_digital_shortcut(rng, rule):
    layer = MemristiveDense(5, 3, "standard", dtype="float64")
    randomise(layer, rng)
    x = rng.random((4, 5))
    stage = Stage(G_OFF, G_ON, 0.5, (), rule)
    y = layer.forward(x, PassContext(stage, None, "numpy"))
    np.testing.assert_array_equal(y, x @ layer.params["W"] + layer.params["b"])
    # A stage whose only nonideality stucks nothing goes through the crossbar: same values, up to rounding.
    crossbar = Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(G_OFF, 0.0),), rule)
    np.testing.assert_allclose(layer.forward(x, PassContext(crossbar, rng, "numpy")), y, rtol=1e-9)


def test_memristive_conv2d_matches_a_digital_convolution_on_an_ideal_stage(rng):
    layer = MemristiveConv2D(3, 4, (3, 2), "double", dtype="float64")
    randomise(layer, rng)
    digital = Conv2D(3, 4, (3, 2), dtype="float64")
    digital.params["kernel"] = layer.params["w_pos"] - layer.params["w_neg"]
    digital.params["bias"] = layer.params["b_pos"] - layer.params["b_neg"]
    x = rng.random((2, 5, 4, 3))
    np.testing.assert_allclose(layer.forward(x, PassContext(STAGES["ideal"], None, "numpy")),
                               digital.forward(x), rtol=1e-9)


def test_power_of_an_ideal_crossbar_and_of_the_shortcut(rng):
    x = rng.random((6, 4))
    V = 0.5 * np.hstack([x, np.ones((6, 1))])
    double = MemristiveDense(4, 2, "double", dtype="float64")
    randomise(double, rng)
    double.forward(x, PassContext(STAGES["ideal"], None, "numpy"))
    p = double.params
    D = np.zeros((5, 4))
    D[:-1, 0::2], D[:-1, 1::2], D[-1, 0::2], D[-1, 1::2] = p["w_pos"], p["w_neg"], p["b_pos"], p["b_neg"]
    G = (G_ON - G_OFF) / D.max() * D + G_OFF
    expected = np.sum(V[:, :, None] ** 2 * G[None]) / 6
    assert double.power() == pytest.approx(expected, rel=1e-12)
    standard = MemristiveDense(4, 2, "standard", dtype="float64")
    randomise(standard, rng)
    standard.forward(x, PassContext(STAGES["ideal"], None, "numpy"))
    W = np.vstack([standard.params["W"], standard.params["b"]])
    k_G = (G_ON - G_OFF) / np.abs(W).max()
    G = np.zeros((5, 4))
    G[:, 0::2], G[:, 1::2] = np.maximum(k_G * W, 0) + G_OFF, -np.minimum(k_G * W, 0) + G_OFF
    assert standard.power() == pytest.approx(np.sum(V[:, :, None] ** 2 * G[None]) / 6, rel=1e-12)


def test_pf_power_matches_the_backend(rng):
    layer = MemristiveDense(4, 2, "double", dtype="float64")
    randomise(layer, rng)
    x = rng.random((3, 4))
    layer.forward(x, PassContext(STAGES["pf"], np.random.default_rng(3), "numpy"))
    power = layer.power()
    c, d_eps = HIGH_PF.device_parameters(np.full((5, 4), 1e-6), np.zeros((2, 5, 4)))
    assert 0 < power < 10 * np.sum(0.25 * np.max(c) * np.exp(5)) and np.isfinite(power)
    # Replaying the same draws gives the same power.
    layer.forward(x, PassContext(STAGES["pf"], np.random.default_rng(3), "numpy"))
    assert layer.power() == power


def test_float32_layer_keeps_float32(rng):
    layer = MemristiveDense(6, 3, "double")
    layer.initialize(rng)
    x = rng.random((4, 6), dtype=np.float32)
    for stage in (STAGES["ideal"], STAGES["pf"], STAGES["d2d"]):
        y = layer.forward(x, PassContext(stage, rng, "numpy"))
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_initialisers(rng):
    double = MemristiveDense(400, 300, "double")
    double.initialize(rng)
    w = double.params["w_pos"]
    assert abs(w.mean() - 0.5) < 0.01 and abs(w.std() - 1 / 20) < 0.002
    assert np.all(double.params["b_neg"] == 0.5)
    standard = MemristiveDense(400, 300, "standard")
    standard.initialize(rng)
    assert abs(standard.params["W"].std() - 1 / 20) < 0.002 and np.all(standard.params["b"] == 0)
    narrow = MemristiveDense(25, 2000, "double")
    narrow.initialize(rng)
    assert narrow.params["w_neg"].min() >= 0  # projected: N(0.5, 0.2) would have ~0.6 % negatives


def test_config_round_trip_and_errors(rng):
    for layer in (MemristiveDense(3, 2, "standard"), MemristiveConv2D(2, 4, (3, 1), "double")):
        again = layer_from_config(layer.config())
        assert again.config() == layer.config() and again.param_shapes() == layer.param_shapes()
    with pytest.raises(ValueError, match="weights must be one of"):
        MemristiveDense(3, 2, "triple")
    layer = MemristiveDense(3, 2)
    layer.initialize(rng)
    with pytest.raises(ValueError, match="needs a stage"):
        layer.forward(np.ones((1, 3), np.float32), PassContext())
    with pytest.raises(ValueError, match="rng"):
        layer.forward(np.ones((1, 3), np.float32), PassContext(STAGES["pf"], None, "numpy"))
    with pytest.raises(ValueError, match="forward pass first"):
        MemristiveDense(3, 2).power()


def test_backend_is_used_for_the_currents(rng):
    layer = MemristiveDense(4, 2, "double", dtype="float64")
    randomise(layer, rng)
    x = rng.random((3, 4))
    y = layer.forward(x, PassContext(STAGES["pf"], np.random.default_rng(5), "numpy"))
    assert layer._last.crossbar.backend is get_backend("numpy")
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("stage_name", ["pf", "pf_stuck_on", "kde_stuck", "d2d"])
def test_rows_without_voltage_are_skipped_exactly(rng, stage_name):
    """Inputs that are 0 for every example carry no current: the layer reads only the active rows,
    with the draws those devices get in a full pass. Outputs and gradients equal the full
    crossbar's for the same Generator state, and those rows' weights get exactly zero gradient."""
    from memnp.crossbar import (CrossbarPass, I_to_y, I_to_y_vjp, double_w_to_G, double_w_to_G_vjp,
                                double_weights_matrix, split_double_weights, x_to_V)
    stage = STAGES[stage_name]
    linear = stage.nonpreserving is None
    layer = MemristiveDense(6, 3, "double", dtype="float64")
    layer.needs_input_gradient = not linear
    randomise(layer, rng)
    x = rng.uniform(0.05, 1, (4, 6))
    x[:, [1, 4]] = 0.0
    x[2, 0] = 0.0  # zero for one example only: the row stays
    y = layer.forward(x, PassContext(stage, np.random.default_rng(3), "numpy", draws="all"))
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy, need_dx=not linear)
    assert layer._last.rows.tolist() == [0, 2, 3, 5, 6]
    p = layer.params
    D = double_weights_matrix(p["w_pos"], p["w_neg"], p["b_pos"], p["b_neg"])
    G, max_weight = double_w_to_G(D, stage.G_off, stage.G_on)
    crossbar = CrossbarPass(stage, "numpy")
    I = crossbar.forward(x_to_V(x, 0.5), G, np.random.default_rng(3))
    np.testing.assert_allclose(y, I_to_y(I, 0.5, max_weight, stage.G_off, stage.G_on), rtol=1e-12)
    grad_I, grad_max = I_to_y_vjp(I, dy, 0.5, max_weight, stage.G_off, stage.G_on)
    grad_V, grad_G = crossbar.backward(grad_I)
    if not linear:
        np.testing.assert_allclose(dx, 0.5 * grad_V[:, :-1], rtol=1e-12)
        assert np.all(dx[:, [1, 4]] == 0)
    expected = split_double_weights(double_w_to_G_vjp(D, grad_G, grad_max, stage.G_off, stage.G_on))
    for name, value in zip(("w_pos", "w_neg", "b_pos", "b_neg"), expected):
        np.testing.assert_allclose(layer.grads[name], value, rtol=1e-12, atol=1e-300)
    assert np.all(layer.grads["w_pos"][[1, 4]] == 0)


@pytest.mark.parametrize("stage_name", ["pf", "pf_stuck_on", "d2d"])
def test_active_draws_cover_only_the_rows_read(rng, stage_name):
    """With the default draw policy only the active rows get draws: the output equals a crossbar
    of just those rows read with the same Generator state."""
    from memnp.crossbar import CrossbarPass, I_to_y, double_w_to_G, double_weights_matrix, x_to_V
    stage = STAGES[stage_name]
    layer = MemristiveDense(6, 3, "double", dtype="float64")
    layer.needs_input_gradient = False
    randomise(layer, rng)
    x = rng.uniform(0.05, 1, (4, 6))
    x[:, [1, 4]] = 0.0
    y = layer.forward(x, PassContext(stage, np.random.default_rng(3), "numpy"))
    p = layer.params
    G, max_weight = double_w_to_G(double_weights_matrix(p["w_pos"], p["w_neg"], p["b_pos"], p["b_neg"]),
                                  stage.G_off, stage.G_on)
    rows = [0, 2, 3, 5, 6]
    I = CrossbarPass(stage, "numpy").forward(x_to_V(x, 0.5)[:, rows], G[rows], np.random.default_rng(3))
    np.testing.assert_allclose(y, I_to_y(I, 0.5, max_weight, stage.G_off, stage.G_on), rtol=1e-12)


@pytest.mark.parametrize("stage_name", ["pf_stuck_on", "kde_stuck", "d2d"])
def test_parameter_gradients_with_inactive_rows(rng, stage_name):
    layer = MemristiveDense(5, 3, "double", dtype="float64")
    layer.needs_input_gradient = False  # as the first layer of a model: linear stages skip rows too
    randomise(layer, rng)
    x = rng.uniform(0.05, 1, (3, 5))
    x[:, 2] = 0.0
    stage = STAGES[stage_name]
    run = lambda: layer.forward(x, PassContext(stage, np.random.default_rng(7), "numpy"))  # noqa: E731
    R = rng.normal(size=(3, 3))
    loss = lambda: float(np.sum(R * run()))  # noqa: E731
    run()
    assert layer._last.rows.tolist() == [0, 1, 3, 4, 5]
    layer.backward(R.copy(), need_dx=False)
    grads = {name: g.copy() for name, g in layer.grads.items()}
    for name, theta in layer.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, theta)) < 1e-6, name


@pytest.mark.parametrize("stage_name", ["stuck_off", "d2d"])
def test_linear_crossbar_input_gradient_at_zero_inputs(rng, stage_name):
    """In a linear crossbar dI/dV = G' even at V = 0, so zero rows stay unless the layer is told no
    input gradient is wanted; then asking for one is an error."""
    layer = MemristiveDense(4, 3, "double", dtype="float64")
    randomise(layer, rng)
    x = rng.uniform(0.05, 1.0, (3, 4))
    x[:, 1] = 0.0
    check_memristive_gradients(layer, x, STAGES[stage_name], rng)
    assert layer._last.rows is None
    layer.needs_input_gradient = False
    layer.forward(x, PassContext(STAGES[stage_name], rng, "numpy"))
    assert layer._last.rows.tolist() == [0, 2, 3, 4]
    layer.backward(np.ones((3, 3)), need_dx=False)
    assert np.all(layer.grads["w_neg"][1] == 0)
    with pytest.raises(ValueError, match="needs_input_gradient"):
        layer.backward(np.ones((3, 3)))
