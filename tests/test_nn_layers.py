"""Digital layers: forward values, float64 finite-difference checks of every backward pass (inputs
and parameters), configs and argument checks."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.nn import (Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Softmax, layer_from_config)
from memnp.nn.layers import col2im, im2col


def check_layer_gradients(layer, x, rng, tol=1e-6):
    """Compare the layer's backward (inputs and every parameter) with central differences of
    L = sum(R * forward(x))."""
    R = rng.normal(size=layer.forward(x).shape)
    loss = lambda: float(np.sum(R * layer.forward(x)))  # noqa: E731
    layer.forward(x)
    dx = layer.backward(R.copy())
    assert dx.shape == x.shape and dx.dtype == np.float64
    assert relative_error(dx, numerical_gradient(loss, x)) < tol
    grads = {name: g.copy() for name, g in layer.grads.items()}
    assert set(grads) == set(layer.params)
    for name, theta in layer.params.items():
        assert grads[name].shape == theta.shape
        assert relative_error(grads[name], numerical_gradient(loss, theta)) < tol, name


def test_dense_forward_and_gradients(rng):
    layer = Dense(4, 3, dtype="float64")
    layer.initialize(rng)
    layer.params["b"] = rng.normal(size=3)
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["W"] + layer.params["b"])
    check_layer_gradients(layer, x, rng)


def direct_convolution(x, kernel, bias):
    N, H, W, _ = x.shape
    kh, kw, _, c_out = kernel.shape
    y = np.zeros((N, H - kh + 1, W - kw + 1, c_out))
    for a in range(H - kh + 1):
        for b in range(W - kw + 1):
            y[:, a, b, :] = np.einsum("nijc,ijco->no", x[:, a:a + kh, b:b + kw, :], kernel)
    return y + bias


def test_conv2d_matches_direct_convolution_and_gradients(rng):
    layer = Conv2D(2, 3, (2, 3), dtype="float64")
    layer.initialize(rng)
    layer.params["bias"] = rng.normal(size=3)
    x = rng.normal(size=(2, 5, 6, 2))
    y = layer.forward(x)
    assert y.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(y, direct_convolution(x, layer.params["kernel"], layer.params["bias"]),
                               rtol=1e-12, atol=1e-12)
    check_layer_gradients(layer, x, rng)


def test_conv2d_glorot_uniform_initialiser(rng):
    layer = Conv2D(16, 32, 3)
    layer.initialize(rng)
    limit = np.sqrt(6 / (9 * 16 + 9 * 32))
    kernel = layer.params["kernel"]
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.02 * limit
    assert np.all(layer.params["bias"] == 0)


def test_im2col_and_col2im_are_adjoint(rng):
    x = rng.normal(size=(2, 4, 5, 3))
    cols = im2col(x, 2, 3)
    assert cols.shape == (2 * 3 * 3, 2 * 3 * 3)
    c = rng.normal(size=cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * col2im(c, x.shape, 2, 3)))
    # Row (n, a, b) holds x[n, a + i, b + j, ch] at column (i * kw + j) * C + ch.
    assert cols[1 * 3 + 2, (1 * 3 + 2) * 3 + 1] == x[0, 1 + 1, 2 + 2, 1]


def test_maxpool_forward_gradients_and_odd_sizes(rng):
    layer = MaxPool2D()
    x = rng.normal(size=(2, 5, 7, 3))
    y = layer.forward(x)
    assert y.shape == (2, 2, 3, 3)
    assert y[1, 1, 2, 0] == x[1, 2:4, 4:6, 0].max()
    check_layer_gradients(layer, x, rng)


def test_maxpool_gradient_goes_to_the_first_maximum_of_a_tie():
    layer = MaxPool2D()
    x = np.zeros((1, 2, 2, 1))
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_flatten_sigmoid_softmax_gradients(rng):
    x = rng.normal(size=(3, 2, 4))
    check_layer_gradients(Flatten(), x, rng)
    check_layer_gradients(Sigmoid(), rng.normal(size=(3, 4)), rng)
    check_layer_gradients(Softmax(), rng.normal(size=(3, 4)), rng)


def test_sigmoid_and_softmax_values():
    z = np.array([[0.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(Sigmoid().forward(z), [[0.5, 1.0, 0.0]])
    p = Softmax().forward(np.array([[1.0, 2.0, 3.0], [100.0, -100.0, 0.0]]))
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1)


@pytest.mark.parametrize("max_value", [None, 1.0])
def test_relu_values_and_gradients(rng, max_value):
    layer = ReLU(max_value)
    x = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]])
    expected = [0.0, 0.0, 0.5, 1.0, 2.0] if max_value is None else [0.0, 0.0, 0.5, 1.0, 1.0]
    np.testing.assert_array_equal(layer.forward(x), [expected])
    grad = layer.backward(np.ones_like(x))
    # TensorFlow: relu passes nothing at 0; clip_by_value passes the gradient at the cap itself.
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 1.0, 1.0, 1.0 if max_value is None else 0.0]])
    check_layer_gradients(layer, rng.uniform(-2, 2, size=(4, 6)), rng)


@pytest.mark.parametrize("layer", [Dense(3, 2), Conv2D(3, 4, (2, 3)), MaxPool2D(), Flatten(), Sigmoid(),
                                   ReLU(), ReLU(max_value=1.0), Softmax()], ids=repr)
def test_config_round_trip(layer):
    again = layer_from_config(layer.config())
    assert type(again) is type(layer) and again.config() == layer.config()
    assert again.param_shapes() == layer.param_shapes()


def test_float32_layers_stay_float32(rng):
    x = rng.random((2, 6, 6, 3), dtype=np.float32)
    for layer in [Conv2D(3, 4, 3), ReLU(1.0), MaxPool2D(), Flatten(), Dense(16, 5), Sigmoid(), Softmax()]:
        layer.initialize(rng)
        x = layer.forward(x)
        assert x.dtype == np.float32, type(layer).__name__


@pytest.mark.parametrize("make, message", [
    (lambda: Dense(0, 3), "n_in"), (lambda: Dense(3, 2.5), "n_out"), (lambda: Conv2D(3, 4, 0), "kernel_size"),
    (lambda: ReLU(max_value=-1), "max_value"), (lambda: Dense(3, 2, dtype="int32"), "dtype"),
    (lambda: layer_from_config({"type": "Nope"}), "layer type"),
    (lambda: layer_from_config({"type": "Dense", "n_in": 3}), "bad fields"),
])
def test_bad_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_output_shapes():
    assert Conv2D(3, 32, 3).output_shape((32, 32, 3)) == (30, 30, 32)
    assert MaxPool2D().output_shape((13, 13, 64)) == (6, 6, 64)
    assert Flatten().output_shape((4, 4, 64)) == (1024,)
    with pytest.raises(ValueError, match="expects inputs"):
        Conv2D(3, 32, 3).output_shape((32, 32, 1))
