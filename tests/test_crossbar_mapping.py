"""Mapping weights to conductances and currents to outputs (docs/model.md §1): values and VJPs."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.crossbar import (I_to_y, I_to_y_vjp, double_w_to_G, double_w_to_G_vjp, double_weights_matrix,
                            split_double_weights, w_to_G, w_to_G_vjp, x_to_V, x_to_V_vjp)

G_OFF, G_ON, K_V = 5.24841e-7, 2.6242e-6, 0.5


def test_x_to_V_appends_bias_and_scales():
    V = x_to_V(np.array([[0.0, 0.5, 1.0]]), 0.5)
    np.testing.assert_array_equal(V, [[0.0, 0.25, 0.5, 0.5]])
    np.testing.assert_array_equal(x_to_V_vjp(np.array([[1.0, 2.0, 3.0, 4.0]]), 0.5), [[0.5, 1.0, 1.5]])


def test_default_rule_values():
    W = np.array([[2.0, -1.0], [0.0, 0.5]])
    G, max_weight = w_to_G(W, 1.0, 3.0)
    assert max_weight == 2.0
    # k_G = (3 - 1) / 2 = 1: G+ = max(W, 0) + 1, G- = -min(W, 0) + 1.
    np.testing.assert_allclose(G, [[3.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.5, 1.0]])


def test_avg_rule_values():
    W = np.array([[2.0, -1.0]])
    G, _ = w_to_G(W, 1.0, 3.0, rule="avg")
    np.testing.assert_allclose(G, [[3.0, 1.0, 1.5, 2.5]])


def test_double_weights_values_and_layout():
    w_pos, w_neg = np.array([[1.0, 0.0]]), np.array([[0.5, 2.0]])
    D = double_weights_matrix(w_pos, w_neg, np.array([0.25, 0.0]), np.array([0.0, 1.0]))
    np.testing.assert_array_equal(D, [[1.0, 0.5, 0.0, 2.0], [0.25, 0.0, 0.0, 1.0]])
    G, max_weight = double_w_to_G(D, 1.0, 5.0)
    assert max_weight == 2.0
    np.testing.assert_allclose(G, 2.0 * D + 1.0)
    parts = split_double_weights(D)
    for part, original in zip(parts, (w_pos, w_neg, [0.25, 0.0], [0.0, 1.0])):
        np.testing.assert_array_equal(part, np.reshape(original, part.shape))


@pytest.mark.parametrize("rule", ["default", "avg"])
def test_ideal_crossbar_gives_x_W(rng, rule):
    x = rng.random((6, 5))
    W = rng.normal(size=(6, 3))
    G, max_weight = w_to_G(W, G_OFF, G_ON, rule)
    y = I_to_y(x_to_V(x, K_V) @ G, K_V, max_weight, G_OFF, G_ON)
    np.testing.assert_allclose(y, np.hstack([x, np.ones((6, 1))]) @ W, rtol=1e-12, atol=1e-12)


def test_ideal_crossbar_gives_x_W_for_double_weights(rng):
    x = rng.random((6, 5))
    w_pos, w_neg = rng.random((5, 3)), rng.random((5, 3))
    b_pos, b_neg = rng.random(3), rng.random(3)
    G, max_weight = double_w_to_G(double_weights_matrix(w_pos, w_neg, b_pos, b_neg), G_OFF, G_ON)
    y = I_to_y(x_to_V(x, K_V) @ G, K_V, max_weight, G_OFF, G_ON)
    np.testing.assert_allclose(y, x @ (w_pos - w_neg) + (b_pos - b_neg), rtol=1e-11, atol=1e-12)


def _check_w_to_G_vjp(W, rule, rng):
    R = rng.normal(size=(W.shape[0], 2 * W.shape[1]))
    r_max = 0.7

    def loss():
        G, max_weight = w_to_G(W, G_OFF, G_ON, rule)
        return float(np.sum(R * G) / G_ON + r_max * max_weight)

    analytic = w_to_G_vjp(W, R / G_ON, r_max, G_OFF, G_ON, rule)
    assert relative_error(analytic, numerical_gradient(loss, W, 1e-7)) < 1e-6


@pytest.mark.parametrize("rule", ["default", "avg"])
def test_w_to_G_vjp_matches_finite_differences(rng, rule):
    _check_w_to_G_vjp(rng.normal(size=(5, 4)), rule, rng)


def test_double_w_to_G_vjp_matches_finite_differences(rng):
    D = rng.random((5, 6))
    R = rng.normal(size=D.shape)

    def loss():
        G, max_weight = double_w_to_G(D, G_OFF, G_ON)
        return float(np.sum(R * G) / G_ON - 0.3 * max_weight)

    analytic = double_w_to_G_vjp(D, R / G_ON, -0.3, G_OFF, G_ON)
    assert relative_error(analytic, numerical_gradient(loss, D, 1e-7)) < 1e-6


def test_I_to_y_vjp_matches_finite_differences(rng):
    I = rng.normal(size=(4, 6)) * 1e-6
    R = rng.normal(size=(4, 3))
    max_weight = np.array([1.3])
    grad_I, grad_max = I_to_y_vjp(I, R, K_V, max_weight[0], G_OFF, G_ON)
    loss_I = lambda: float(np.sum(R * I_to_y(I, K_V, max_weight[0], G_OFF, G_ON)))  # noqa: E731
    assert relative_error(grad_I, numerical_gradient(loss_I, I, 1e-6)) < 1e-6
    assert relative_error(grad_max, numerical_gradient(loss_I, max_weight, 1e-7)) < 1e-6


def test_max_weight_gradient_splits_ties_and_takes_sign():
    W = np.array([[2.0, -2.0], [1.0, 0.5]])
    grad = w_to_G_vjp(W, np.zeros((2, 4)), 1.0, G_OFF, G_ON)
    np.testing.assert_allclose(grad, [[0.5, -0.5], [0.0, 0.0]])
    D = np.array([[3.0, 1.0], [3.0, 3.0]])
    np.testing.assert_allclose(double_w_to_G_vjp(D, np.zeros((2, 2)), 1.5, G_OFF, G_ON),
                               [[0.5, 0.0], [0.5, 0.5]])


def test_default_rule_passes_both_branches_at_exact_zero():
    W = np.array([[0.0, 1.0]])
    grad_G = np.array([[1.0, 10.0, 0.0, 0.0]])
    k_G = (G_ON - G_OFF) / 1.0
    # At W = 0, G+ and G- both depend on z with slopes +1 and -1: dL/dz = 1 - 10.
    np.testing.assert_allclose(w_to_G_vjp(W, grad_G, 0.0, G_OFF, G_ON)[0, 0], k_G * (1.0 - 10.0))


def test_ideal_chain_max_weight_terms_cancel(rng):
    """With an ideal crossbar y = [x, 1] W, so dL/dW = [x, 1]^T dL/dy exactly, max_weight path included."""
    x, W, R = rng.random((4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    V = x_to_V(x, K_V)
    G, max_weight = w_to_G(W, G_OFF, G_ON)
    I = V @ G
    grad_I, grad_max = I_to_y_vjp(I, R, K_V, max_weight, G_OFF, G_ON)
    grad_W = w_to_G_vjp(W, V.T @ grad_I, grad_max, G_OFF, G_ON)
    np.testing.assert_allclose(grad_W, np.hstack([x, np.ones((4, 1))]).T @ R, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: w_to_G(np.ones((2, 2)), 1e-6, 1e-6), "G_off"),
    (lambda: w_to_G(np.ones((2, 2)), 2e-6, 1e-6), "G_off"),
    (lambda: w_to_G(np.ones((2, 2)), -1e-6, 1e-6), "G_off"),
    (lambda: w_to_G(np.ones((2, 2)), 1e-6, 0.0), "G_on"),
    (lambda: w_to_G(np.ones((2, 2)), 1e-7, 1e-6, rule="max"), "rule"),
    (lambda: w_to_G(np.array([[1.0, np.nan]]), 1e-7, 1e-6), "W"),
    (lambda: w_to_G(np.ones(3), 1e-7, 1e-6), "W"),
    (lambda: w_to_G(np.zeros((2, 2)), 1e-7, 1e-6), "W"),
    (lambda: double_w_to_G(-np.ones((2, 2)), 1e-7, 1e-6), "D"),
    (lambda: double_w_to_G(np.array([[1.0, np.inf]]), 1e-7, 1e-6), "D"),
    (lambda: x_to_V(np.ones((2, 2)), 0.0), "k_V"),
    (lambda: x_to_V(np.array([[np.nan]]), 0.5), "x"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
