"""The unchecked helpers the memristive layers call give exactly (bit for bit) what the public,
checked functions give, and keep their checks; the in-place PF device-parameter forms too."""
import numpy as np
import pytest

from memnp.crossbar import Stage, double_w_to_G, double_w_to_G_vjp
from memnp.crossbar.mapping import _double_G, _double_max_weight, _double_w_to_G_vjp
from memnp.nonidealities import D2DLognormal, IVNonlinearityPF

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
HIGH_PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                           [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])


def _weights(rng, dtype, shape=(7, 6)):
    D = rng.random(shape).astype(dtype)
    D[2, 3] = D[5, 0] = D.max() + 1  # two entries tie at the maximum
    D[1, 1] = 0.0
    return D


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unchecked_double_mapping_is_bitwise_equal(rng, dtype):
    D = _weights(rng, dtype)
    G, max_weight = double_w_to_G(D, G_OFF, G_ON)
    assert _double_max_weight(D) == max_weight
    fast = _double_G(D, max_weight, G_OFF, G_ON)
    assert fast.dtype == G.dtype and np.array_equal(fast, G)
    rows = [0, 2, 6]
    assert np.array_equal(_double_G(D[rows], max_weight, G_OFF, G_ON), G[rows])
    grad_G = rng.normal(size=D.shape).astype(dtype)
    expected = double_w_to_G_vjp(D, grad_G, 0.37, G_OFF, G_ON)
    got = _double_w_to_G_vjp(D, grad_G, 0.37, G_OFF, G_ON, max_weight)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    k_G = (G_ON - G_OFF) / max_weight
    shares = [float(got[i, j]) - k_G * float(grad_G[i, j]) for i, j in ((2, 3), (5, 0))]
    assert abs(shares[0]) > 0.01 and shares[0] == pytest.approx(shares[1], rel=1e-4)  # ties share


@pytest.mark.parametrize("value, match", [(np.nan, "finite"), (np.inf, "finite"), (-np.inf, "finite"),
                                          (-0.5, ">= 0"), (None, "nonzero")])
def test_unchecked_max_weight_keeps_the_checks(value, match):
    D = np.ones((3, 4), np.float32)
    if value is None:
        D[:] = 0.0
    else:
        D[1, 2] = value
    with pytest.raises(ValueError, match=match):
        _double_max_weight(D)
    with pytest.raises(ValueError, match=match):
        double_w_to_G(D, G_OFF, G_ON)
    with pytest.raises(ValueError, match="nonzero"):
        _double_max_weight(np.zeros((0, 4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pf_device_parameters_and_vjp_are_bitwise_the_formulas(rng, dtype):
    """The NumPy passes (the reference of memnp.kernels.pf_devices) are the formulas, bit for bit."""
    G = rng.uniform(G_OFF, G_ON, (5, 4)).astype(dtype)
    residuals = HIGH_PF.sample(G.shape, rng, dtype)
    c, d_eps = HIGH_PF.device_parameters_numpy(G, residuals)
    (s_c, s_d), (b_c, b_d) = HIGH_PF.slopes, HIGH_PF.intercepts
    t = dtype
    ln_R = -np.log(G)
    assert c.dtype == d_eps.dtype == dtype
    assert np.array_equal(c, np.exp(t(s_c) * ln_R + t(b_c) + residuals[0]))
    assert np.array_equal(d_eps, np.exp(t(s_d) * ln_R + t(b_d) + residuals[1]))
    grad_c, grad_d = rng.normal(size=G.shape).astype(dtype), rng.normal(size=G.shape).astype(dtype)
    expected = -(s_c * grad_c * c + s_d * grad_d * d_eps) / G
    got = HIGH_PF.device_parameters_vjp_numpy(G, c, d_eps, grad_c, grad_d)
    assert got.dtype == dtype and np.array_equal(got, expected)
    # Mixed dtypes keep NumPy's promotion of the formula.
    mixed = HIGH_PF.device_parameters_vjp_numpy(G, c, d_eps, grad_c.astype(np.float64), grad_d)
    assert mixed.dtype == np.float64
    np.testing.assert_array_equal(mixed, -(s_c * grad_c.astype(np.float64) * c + s_d * grad_d * d_eps) / G)


def test_stage_kinds_are_kept_and_stay_out_of_equality():
    d2d = D2DLognormal(G_OFF, G_ON, 0.05, 0.5)
    stage = Stage(G_OFF, G_ON, nonidealities=(d2d, HIGH_PF))
    assert stage.preserving is d2d and stage.nonpreserving is HIGH_PF
    assert stage == Stage.from_json(stage.to_json()) and "_preserving" not in repr(stage)
    ideal = Stage(G_OFF, G_ON)
    assert ideal.preserving is None and ideal.nonpreserving is None and ideal.is_ideal
