"""Sequential model: whole-network finite-difference checks under every kind of stage, the fused
softmax loss, L1, NonNeg, SGD, evaluation and power, model files, and the paper's architectures."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.nn import (SGD, Conv2D, Dense, Flatten, MaxPool2D, MemristiveConv2D, MemristiveDense,
                      Sequential, Sigmoid, Softmax, cifar_cnn, cross_entropy_from_logits,
                      cross_entropy_from_probabilities, mnist_mlp, synapse_count)
from test_nn_memristive import STAGES, randomise

STAGE_NAMES = ["ideal", "pf", "stuck_off", "kde_stuck", "d2d"]


def small_mlp(weights, rng, **options):
    layers = [Flatten(dtype="float64"), MemristiveDense(12, 5, weights, "float64"), Sigmoid(dtype="float64"),
              MemristiveDense(5, 3, weights, "float64"), Softmax(dtype="float64")]
    model = Sequential(layers, input_shape=(3, 4), backend="numpy", **options)
    for layer in model.memristive_layers:
        randomise(layer, rng)
    return model


def small_cnn(rng, **options):
    f = "float64"
    layers = [Conv2D(2, 3, 2, f), Sigmoid(dtype=f), MemristiveConv2D(3, 4, 2, "double", f), Sigmoid(dtype=f),
              MaxPool2D(dtype=f), Flatten(dtype=f), MemristiveDense(16, 3, "double", f), Softmax(dtype=f)]
    model = Sequential(layers, input_shape=(6, 6, 2), backend="numpy", **options)
    model.initialize(rng)
    for layer in model.memristive_layers:
        randomise(layer, rng)
    layers[0].params["bias"] = rng.normal(size=3)
    return model


def check_model_gradients(model, x, y, stage, tol=1e-6):
    """Every parameter's gradient against central differences of the loss; draws replayed by
    reseeding the Generator for every evaluation."""
    loss = lambda: model.evaluate(x, y, np.random.default_rng(11), stage, batch_size=len(x))["loss"]  # noqa
    value, _ = model.compute_gradients(x, y, np.random.default_rng(11), stage)
    assert value == pytest.approx(loss(), rel=1e-12)
    for key, layer, name in model.parameters():
        analytic = layer.grads[name].copy()
        assert relative_error(analytic, numerical_gradient(loss, layer.params[name])) < tol, key


@pytest.mark.parametrize("stage_name", STAGE_NAMES)
def test_mlp_gradients(rng, stage_name):
    model = small_mlp("double", rng)
    check_model_gradients(model, rng.uniform(0.05, 1, (4, 3, 4)), np.array([0, 2, 1, 2]), STAGES[stage_name])


@pytest.mark.parametrize("stage_name", ["pf", "d2d_avg"])
def test_standard_weight_mlp_gradients_with_l1(rng, stage_name):
    model = small_mlp("standard", rng, l1=0.01)
    check_model_gradients(model, rng.uniform(0.05, 1, (4, 3, 4)), np.array([0, 2, 1, 1]), STAGES[stage_name])


@pytest.mark.parametrize("stage_name", STAGE_NAMES)
def test_cnn_gradients(rng, stage_name):
    model = small_cnn(rng)
    check_model_gradients(model, rng.uniform(0.05, 1, (2, 6, 6, 2)), np.array([2, 0]), STAGES[stage_name])


def test_loss_from_logits_is_exact_at_extreme_logits():
    for dtype in (np.float32, np.float64):
        logits = np.array([[100, -100, 0], [100, -100, 0], [-100, 100, 100]], dtype=dtype)
        loss, grad = cross_entropy_from_logits(logits, np.array([0, 1, 0]))
        # Per example: ~0, 200 (+ e^-100), 200 + log 2.
        assert np.isfinite(loss) and loss == pytest.approx((0 + 200 + 200 + np.log(2)) / 3, rel=1e-6)
        assert grad.dtype == dtype and np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad * 3, [[0, 0, 0], [1, -1, 0], [-1, 0.5, 0.5]], atol=1e-6)


def test_model_ending_in_softmax_takes_the_loss_from_the_logits(rng):
    model = Sequential([Dense(2, 3, dtype="float64"), Softmax(dtype="float64")])
    model.layers[0].params["W"] = np.array([[100.0, -100.0, 0.0], [0.0, 0.0, 0.0]])
    x = np.array([[1.0, 0.0]])
    assert model.evaluate(x, np.array([1]))["loss"] == pytest.approx(200.0, rel=1e-12)
    np.testing.assert_allclose(model.predict(x)[0], [1.0, 0.0, 0.0], atol=1e-40)


def test_loss_from_probabilities_clips_as_keras(rng):
    probs = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    loss, grad = cross_entropy_from_probabilities(probs, np.array([1, 1]))
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    expected = -np.log(clipped[:, 1] / clipped.sum(axis=1)).mean()
    assert loss == pytest.approx(expected) and np.isfinite(loss)
    assert grad[1, 1] == 0 and grad[0, 1] < 0
    with pytest.raises(ValueError, match="labels"):
        cross_entropy_from_logits(np.zeros((2, 3)), np.array([0, 3]))


def test_l1_adds_gamma_sum_abs_and_gamma_sign(rng):
    x, y = rng.uniform(0.05, 1, (4, 3, 4)), np.array([0, 1, 2, 0])
    plain = small_mlp("standard", rng)
    regularised = Sequential(plain.layers, input_shape=(3, 4), backend="numpy", l1=1e-4)
    gamma = 1e-4
    loss0, _ = plain.compute_gradients(x, y, np.random.default_rng(1), STAGES["pf"])
    grads0 = {key: layer.grads[name].copy() for key, layer, name in plain.parameters()}
    loss1, _ = regularised.compute_gradients(x, y, np.random.default_rng(1), STAGES["pf"])
    total = sum(np.abs(v).sum() for layer in plain.memristive_layers for v in layer.params.values())
    assert loss1 - loss0 == pytest.approx(gamma * total, rel=1e-9)
    for key, layer, name in plain.parameters():
        np.testing.assert_allclose(layer.grads[name] - grads0[key], gamma * np.sign(layer.params[name]),
                                   rtol=1e-9, atol=1e-15)


def test_l1_skips_digital_layers(rng):
    model = Sequential([Dense(3, 2, dtype="float64"), Softmax(dtype="float64")], l1=1.0)
    model.initialize(rng)
    x, y = rng.random((4, 3)), np.array([0, 1, 1, 0])
    loss, _ = model.compute_gradients(x, y)
    assert loss == pytest.approx(cross_entropy_from_logits(model.layers[0].forward(x), y)[0])


def test_non_negative_projection_keeps_double_weights_non_negative(rng):
    model = mnist_mlp(rng, "double", stage=STAGES["pf"], optimizer=SGD(lr=50.0), backend="numpy")
    x, y = rng.random((16, 28, 28), dtype=np.float32), rng.integers(0, 10, 16)
    for _ in range(3):
        model.train_step(x, y, rng)
    values = np.concatenate([v.ravel() for layer in model.memristive_layers for v in layer.params.values()])
    assert values.min() >= 0 and np.count_nonzero(values == 0) > 10


def test_sgd_plain_and_momentum():
    theta, grad = np.array([1.0, -2.0]), np.array([0.5, 1.0])
    SGD(lr=0.1).step([("a", theta, grad)])
    np.testing.assert_allclose(theta, [0.95, -2.1])
    opt, theta = SGD(lr=0.1, momentum=0.9), np.array([1.0])
    opt.step([("a", theta, np.array([1.0]))])
    opt.step([("a", theta, np.array([1.0]))])
    np.testing.assert_allclose(theta, [1.0 - 0.1 - (0.09 + 0.1)])
    for bad in (dict(lr=0), dict(lr=float("nan")), dict(momentum=1.0)):
        with pytest.raises(ValueError):
            SGD(**bad)


def test_train_step_descends_and_uses_the_given_stage(rng):
    model = small_mlp("double", rng, optimizer=SGD(lr=0.5))
    x, y = rng.uniform(0.05, 1, (8, 3, 4)), rng.integers(0, 3, 8)
    before = model.evaluate(x, y, np.random.default_rng(0), STAGES["d2d"])["loss"]
    for _ in range(20):
        model.train_step(x, y, np.random.default_rng(0), STAGES["d2d"])
    assert model.evaluate(x, y, np.random.default_rng(0), STAGES["d2d"])["loss"] < before
    assert model.stage is None
    with pytest.raises(ValueError, match="needs a stage"):
        model.train_step(x, y, rng)


def test_stage_per_call_and_power_report(rng):
    model = mnist_mlp(rng, "standard", stage=STAGES["ideal"], backend="numpy")
    x, y = rng.random((30, 28, 28)), rng.integers(0, 10, 30)
    ideal = model.predict(x)
    pf = model.predict(x, np.random.default_rng(0), STAGES["pf"])
    assert pf.shape == ideal.shape == (30, 10) and not np.allclose(pf, ideal)
    np.testing.assert_array_equal(model.predict(x, np.random.default_rng(0), STAGES["pf"], batch_size=30), pf)
    result = model.evaluate(x, y, np.random.default_rng(0), STAGES["pf"], batch_size=10, power=True)
    powers = []
    again = np.random.default_rng(0)
    for i in range(0, 30, 10):
        model.predict(x[i:i + 10], again, STAGES["pf"])
        powers.append(sum(model.layer_powers()))
    assert result["power"] == pytest.approx(np.mean(powers), rel=1e-6)
    assert 1e-5 < result["power"] < 1e-2  # a high-resistance SiOx network dissipates about a milliwatt
    assert model.evaluate(x, y)["power"] is None


def test_save_and_load_predict_identically(rng, tmp_path):
    model = small_cnn(rng, stage=STAGES["pf"], l1=1e-4)
    x = rng.uniform(0, 1, (3, 6, 6, 2))
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = Sequential.load(path, backend="numpy")
    assert loaded.stage == model.stage and loaded.l1 == model.l1 and loaded.dtype == np.float64
    assert loaded.architecture() == model.architecture()
    np.testing.assert_array_equal(loaded.predict(x, np.random.default_rng(4)),
                                  model.predict(x, np.random.default_rng(4)))
    with np.load(path, allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def test_loading_a_file_that_does_not_fit_is_a_clear_error(rng, tmp_path):
    model = mnist_mlp(rng, "double")
    path = tmp_path / "mlp.npz"
    model.save(path)
    other = mnist_mlp(rng, "double", hidden=30)
    with pytest.raises(ValueError, match="different architecture"):
        other.load_weights(path)
    model.load_weights(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["layer1.w_pos"] = arrays["layer1.w_pos"][:, :20]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"layer1.w_pos .*shape \(784, 20\).*needs \(784, 25\)"):
        Sequential.load(tmp_path / "bad.npz")
    del arrays["layer1.w_pos"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing parameters.*layer1.w_pos"):
        Sequential.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a memnp model file"):
        Sequential.load(tmp_path / "plain.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        Sequential.load(tmp_path / "junk.npz")


def test_paper_architectures(rng):
    mlp = mnist_mlp(rng, "double")
    assert synapse_count(mlp) == 19_885 and mlp.output_shape() == (10,)
    assert mlp.dtype == np.float32 and all(v.dtype == np.float32 for layer in mlp.layers
                                           for v in layer.params.values())
    assert abs(mlp.layers[1].params["w_pos"].std() - 1 / 28) < 0.002
    cnn = cifar_cnn(rng, "standard", stage=STAGES["pf"], backend="numpy")
    assert cnn.output_shape() == (10,) and cnn.layers[9].n_in == 1024
    assert cnn.layers[7].max_value == 1.0
    x, y = rng.random((2, 32, 32, 3), dtype=np.float32), np.array([1, 2])
    loss, acc = cnn.train_step(x, y, rng)
    assert np.isfinite(loss) and cnn.layers[0].grads["kernel"].dtype == np.float32
    with pytest.raises(ValueError, match="x must have shape"):
        cnn.predict(np.zeros((2, 28, 28, 3)))
    with pytest.raises(ValueError, match="does not fit its input"):
        Sequential([Flatten(), MemristiveDense(100, 10)], input_shape=(28, 28))
    with pytest.raises(ValueError, match="l1"):
        Sequential([Flatten()], l1=-1)
    with pytest.raises(ValueError, match="batch_size"):
        mlp.evaluate(np.zeros((2, 28, 28)), np.zeros(2, int), batch_size=0)


def test_same_seed_same_training(rng):
    runs = []
    for _ in range(2):
        model = mnist_mlp(np.random.default_rng(3), "double", stage=STAGES["pf"], backend="numpy")
        gen = np.random.default_rng(9)
        x, y = gen.random((8, 28, 28), dtype=np.float32), gen.integers(0, 10, 8)
        model.train_step(x, y, gen)
        model.train_step(x, y, gen)
        runs.append(model.layers[3].params["w_pos"].copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_first_layer_input_gradient_is_not_computed(rng):
    model = small_mlp("double", rng)
    calls = []
    original = model.layers[1].backward
    model.layers[1].backward = lambda dy, need_dx=True: calls.append(need_dx) or original(dy, need_dx)
    model.compute_gradients(rng.random((2, 3, 4)), np.array([0, 1]), rng, STAGES["ideal"])
    assert calls == [False]


def test_only_the_first_trainable_layer_skips_its_input_gradient(rng):
    model = small_cnn(rng)
    flags = [layer.needs_input_gradient for layer in model.memristive_layers]
    assert flags == [True, True]
    model = small_mlp("double", rng)
    assert [layer.needs_input_gradient for layer in model.memristive_layers] == [False, True]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_double_weights_update_in_the_crossbar_layout_as_per_parameter(rng, momentum):
    """A double-weight layer's params are views of its D, the optimiser updates D in one group,
    and the result equals updating the four parameters one by one."""
    from memnp.nn import SGD
    from memnp.nn.layers import Layer
    x, y = rng.uniform(0, 1, (6, 3, 4)), rng.integers(0, 3, 6)
    stage = STAGES["pf"]
    grouped = small_mlp("double", rng, stage=stage, optimizer=SGD(0.5, momentum), l1=1e-3)
    per_parameter = small_mlp("double", rng, stage=stage, optimizer=SGD(0.5, momentum), l1=1e-3)
    for a, b in zip(grouped.layers, per_parameter.layers):
        for name in a.params:
            b.params[name] = a.params[name].copy()
        if a.params and a.weights == "double":
            b.update_groups = lambda layer=b: Layer.update_groups(layer)  # one group per parameter
    layer = grouped.layers[1]
    for step in range(3):
        grouped.train_step(x, y, np.random.default_rng(step))
        per_parameter.train_step(x, y, np.random.default_rng(step))
        assert [group[0] for group in layer.update_groups()] == ["D"]
        assert all(np.shares_memory(layer.params[name], layer._D) for name in layer.params)
    for a, b in zip(grouped.layers, per_parameter.layers):
        for name in a.params:
            assert np.allclose(a.params[name], b.params[name], rtol=1e-12, atol=0), name
    # Replacing a parameter array is seen by the next read: D is rebuilt from the new values.
    layer.params["b_pos"] = np.full(layer.n_out, 0.25)
    grouped.forward(x, np.random.default_rng(0))
    assert np.shares_memory(layer.params["b_pos"], layer._D) and np.all(layer._D[-1, 0::2] == 0.25)
    assert [group[0] for group in layer.update_groups()] != ["D"]  # grads are not D's until a backward


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_one_pass_loss_matches_the_numpy_reference(rng, dtype, tol):
    from memnp.nn.losses import (accuracy, cross_entropy_and_accuracy_from_logits,
                                 cross_entropy_from_logits_numpy)
    for scale in (1.0, 30.0, 1e4):
        logits = (rng.normal(size=(37, 10)) * scale).astype(dtype)
        logits[3, [2, 7]] = logits[3].max() + 1          # a tie: argmax takes the first
        labels = rng.integers(0, 10, 37)
        labels[3] = 7
        loss, acc, grad = cross_entropy_and_accuracy_from_logits(logits, labels)
        ref_loss, ref_grad = cross_entropy_from_logits_numpy(logits, labels)
        assert grad.dtype == dtype and np.isfinite(loss)
        assert loss == pytest.approx(ref_loss, rel=tol, abs=tol)
        assert np.max(np.abs(grad - ref_grad)) <= tol
        assert acc == accuracy(logits, labels)
        # The non-contiguous path is the reference itself.
        strided = np.asfortranarray(logits)
        assert cross_entropy_and_accuracy_from_logits(strided, labels)[0] == pytest.approx(ref_loss, rel=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_loop_equals_the_numpy_update_and_projection(rng, dtype):
    from memnp.kernels import sgd
    from memnp.nn.optim import non_negative_
    theta = rng.normal(size=(30, 7)).astype(dtype)
    theta[0, 0] = np.nan
    grad = rng.normal(size=(30, 7)).astype(dtype)
    for non_negative in (False, True):
        want = theta.copy()
        want -= 0.37 * grad
        if non_negative:
            non_negative_(want)
        got = sgd.step(theta.copy(), grad, 0.37, non_negative)
        assert np.array_equal(got, want, equal_nan=True)
        assert np.isnan(got[0, 0]) and (not non_negative or np.nanmin(got) >= 0)
    # Through SGD.step, with the 4-tuple items; strided parameters take the NumPy path.
    a, b = theta.copy(), np.asfortranarray(theta)
    SGD(0.37).step([("a", a, grad, True), ("b", b, np.asfortranarray(grad), True)])
    assert np.array_equal(a, b, equal_nan=True)
