"""Nonidealities (docs/model.md §2): samplers, disturbances and their VJPs, parameter validation."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.nonidealities import (D2DLognormal, IVNonlinearityPF, StuckAt, StuckAtGOff, StuckAtGOn,
                                 StuckDistribution, nonideality_from_dict, nonideality_from_json,
                                 scott_bandwidth)

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
HIGH_PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                           [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
LOW_PF = IVNonlinearityPF(0.5, (-1.11965, -1.33689), (0.62835, -25.9156),
                          [[0.00122933, 0.00965122], [0.00965122, 0.2470822]])
ALL = [HIGH_PF, StuckAt(1e-6, 0.1), StuckAtGOff(G_OFF, 0.05), StuckAtGOn(G_ON, 0.05),
       StuckDistribution([1e-5, 3e-5, 4e-5, 8e-5, 1.2e-4], 0.101), D2DLognormal(G_OFF, G_ON, 0.05, 0.5)]


@pytest.mark.parametrize("item", ALL, ids=lambda n: type(n).__name__)
def test_json_round_trip_and_label(item):
    again = nonideality_from_json(item.to_json())
    assert again == item and again.label == item.label and type(again) is type(item)


@pytest.mark.parametrize("pf, G_off, G_on", [(HIGH_PF, G_OFF, G_ON), (LOW_PF, 6.9013e-4, 3.45065e-3)])
def test_pf_vjp_matches_finite_differences(rng, pf, G_off, G_on):
    V = 0.5 * rng.random((3, 4))
    V[0, 1] = 0.0
    G = rng.uniform(G_off, G_on, (4, 5))
    residuals = pf.sample(G.shape, rng)
    R = rng.normal(size=(3, 5))
    scale = 1.0 / np.abs(pf.currents(V, G, residuals, "numpy")).max()
    loss = lambda: float(np.sum(R * pf.currents(V, G, residuals, "numpy")) * scale)  # noqa: E731
    grad_V, grad_G = pf.currents_vjp(V, G, residuals, R * scale, "numpy")
    numeric_V = numerical_gradient(loss, V, 1e-7)
    numeric_V[0, 1] = 0.0  # the reference's gradient at V = 0 exactly is 0 (not the one-sided limit)
    assert grad_V[0, 1] == 0.0
    assert relative_error(grad_V, numeric_V) < 1e-6
    assert relative_error(grad_G, numerical_gradient(loss, G, 1e-7)) < 1e-6


def test_pf_residuals_have_the_covariance(rng):
    residuals = HIGH_PF.sample((200, 500), rng)
    np.testing.assert_allclose(np.cov(residuals.reshape(2, -1)), HIGH_PF.covariance, rtol=0.03, atol=1e-4)


def test_pf_zero_and_singular_covariance_are_valid(rng):
    zero = IVNonlinearityPF(0.5, (-1.0, -0.1), (0.0, -37.0), [[0.0, 0.0], [0.0, 0.0]])
    assert np.all(zero.sample((3, 4), rng) == 0.0)
    singular = IVNonlinearityPF(0.5, (-1.0, -0.1), (0.0, -37.0), [[1.0, 2.0], [2.0, 4.0]])
    e_c, e_d = singular.sample((50_000,), rng)
    np.testing.assert_allclose(e_d, 2.0 * e_c, atol=1e-9)
    assert abs(np.var(e_c) - 1.0) < 0.03


def test_pf_device_parameters_follow_the_regressions():
    G = np.array([[1e-6, 2e-6]])
    c, d_eps = HIGH_PF.device_parameters(G, np.zeros((2, 1, 2)))
    np.testing.assert_allclose(np.log(c), -1.03023 * np.log(1 / G) - 0.250595)
    np.testing.assert_allclose(np.log(d_eps), -0.0901078 * np.log(1 / G) - 37.1186)


@pytest.mark.parametrize("item", [StuckAtGOff(G_OFF, 0.05), StuckAtGOn(G_ON, 0.3), StuckAt(1e-6, 0.9)])
def test_stuck_fraction_within_five_sigma(rng, item):
    n = 200 * 300
    mask, _ = item.sample((200, 300), rng)
    sigma = np.sqrt(n * item.p * (1 - item.p))
    assert abs(np.count_nonzero(mask) - n * item.p) < 5 * sigma


def test_stuck_values_and_zero_gradient(rng):
    item = StuckAtGOn(G_ON, 0.3)
    G = rng.uniform(G_OFF, G_ON, (20, 30))
    draws = item.sample(G.shape, rng)
    mask = draws[0]
    disturbed = item.disturb(G, draws)
    np.testing.assert_array_equal(disturbed[mask], G_ON)
    np.testing.assert_array_equal(disturbed[~mask], G[~mask])
    grad = item.disturb_vjp(G, draws, np.ones_like(G))
    np.testing.assert_array_equal(grad[mask], 0.0)
    np.testing.assert_array_equal(grad[~mask], 1.0)


def test_stuck_p_edges(rng):
    G = np.full((10, 10), 1e-6)
    assert not StuckAtGOff(G_OFF, 0.0).sample(G.shape, rng)[0].any()
    assert StuckAtGOff(G_OFF, 1.0).sample(G.shape, rng)[0].all()


def test_scott_bandwidth_formula():
    mu = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    q75, q25 = np.percentile(mu, [75, 25])
    expected = min(np.std(mu, ddof=1), (q75 - q25) / 1.3489795) * 5 ** (-0.2)
    assert scott_bandwidth(mu) == pytest.approx(expected, rel=1e-15)
    assert expected == pytest.approx(2.0 / 1.3489795 * 5 ** (-0.2))  # the IQR branch wins here


def test_kde_samples_non_negative_and_mean_matches(rng):
    # Means near 0 so that reflected components exist.
    item = StuckDistribution([0.0, 2e-6, 5e-6, 1.5e-5, 3e-5, 6e-5], 1.0)
    _, values = item.sample((400, 500), rng)
    assert values.min() >= 0.0
    standard_error = values.std() / np.sqrt(values.size)
    assert abs(values.mean() - item.mixture_mean()) < 5 * standard_error
    # The reflected mass pushes the mean above the plain average of the measured values.
    assert item.mixture_mean() > np.mean(item.means)


def test_kde_stuck_gradient_is_zero_where_stuck(rng):
    item = StuckDistribution([1e-5, 3e-5, 4e-5, 8e-5], 0.5)
    G = rng.uniform(G_OFF, G_ON, (10, 10))
    draws = item.sample(G.shape, rng)
    grad = item.disturb_vjp(G, draws, np.full(G.shape, 2.0))
    np.testing.assert_array_equal(grad, np.where(draws[0], 0.0, 2.0))


def test_d2d_preserves_mean_resistance(rng):
    item = D2DLognormal(G_OFF, G_ON, 0.5, 0.5)
    G = np.full((400, 500), 1e-6)
    R = 1.0 / item.disturb(G, item.sample(G.shape, rng))
    sigma = 0.5
    standard_error = 1e-6 ** -1 * np.sqrt(np.exp(sigma ** 2) - 1) / np.sqrt(R.size)
    assert abs(R.mean() - 1e6) < 5 * standard_error
    assert abs(np.std(np.log(R)) - sigma) < 0.01


def test_d2d_sigma_interpolates_and_saturates():
    item = D2DLognormal(1e-6, 1e-5, 0.1, 0.5)
    sigma, slope = item._sigma(np.array([1e4, 1e5, 5.5e5, 1e6, 1e7]))
    np.testing.assert_allclose(sigma, [0.1, 0.1, 0.3, 0.5, 0.5])
    np.testing.assert_allclose(slope, [0.0, 0.4 / 9e5, 0.4 / 9e5, 0.4 / 9e5, 0.0])


def test_d2d_vjp_with_replayed_draw(rng):
    item = D2DLognormal(G_OFF, G_ON, 0.05, 0.5)
    G = rng.uniform(G_OFF, G_ON, (4, 6))
    draws = item.sample(G.shape, rng)
    R = rng.normal(size=G.shape)
    loss = lambda: float(np.sum(R * item.disturb(G, draws)) / G_ON)  # noqa: E731
    analytic = item.disturb_vjp(G, draws, R / G_ON)
    assert relative_error(analytic, numerical_gradient(loss, G, 1e-7)) < 1e-6


@pytest.mark.parametrize("make, match", [
    (lambda: StuckAtGOff(G_OFF, 1.5), "p"),
    (lambda: StuckAtGOn(G_ON, -0.1), "p"),
    (lambda: StuckAt(0.0, 0.1), "value"),
    (lambda: StuckAtGOff(-1.0, 0.1), "G_off"),
    (lambda: StuckDistribution([1e-5, np.nan], 0.1), "means"),
    (lambda: StuckDistribution([1e-5, -1e-6, 3e-5], 0.1), "means"),
    (lambda: StuckDistribution([1e-5, 1e-5], 0.1), "means"),
    (lambda: D2DLognormal(G_ON, G_OFF, 0.1, 0.1), "G_off"),
    (lambda: D2DLognormal(G_OFF, G_ON, -0.1, 0.1), "R_on_log_std"),
    (lambda: IVNonlinearityPF(0.0, (1, 1), (1, 1), np.eye(2)), "k_V"),
    (lambda: IVNonlinearityPF(0.5, (1, np.inf), (1, 1), np.eye(2)), "slopes"),
    (lambda: IVNonlinearityPF(0.5, (1, 1), (1, 1, 1), np.eye(2)), "intercepts"),
    (lambda: IVNonlinearityPF(0.5, (1, 1), (1, 1), np.eye(3)), "covariance"),
    (lambda: IVNonlinearityPF(0.5, (1, 1), (1, 1), [[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
    (lambda: IVNonlinearityPF(0.5, (1, 1), (1, 1), [[1.0, 2.0], [2.0, 1.0]]), "semi-definite"),
    (lambda: IVNonlinearityPF(0.5, (1, 1), (1, 1), [[np.nan, 0], [0, 1.0]]), "covariance"),
    (lambda: nonideality_from_dict({"type": "Heat"}), "type"),
    (lambda: nonideality_from_dict({"type": "StuckAtGOff", "G_of": 1.0, "p": 0.1}), "StuckAtGOff"),
])
def test_bad_parameters_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_kde_pdf_integrates_to_one_and_matches_samples(rng):
    item = StuckDistribution([0.0, 2e-6, 5e-6, 1.5e-5, 3e-5, 6e-5], 1.0)
    grid = np.linspace(0.0, 2e-4, 20001)
    density = item.pdf(grid)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-4)
    assert np.trapezoid(grid * density, grid) == pytest.approx(item.mixture_mean(), rel=1e-4)
    assert item.pdf(np.array([-1e-6]))[0] == 0.0


def test_d2d_float32_matches_float64(rng):
    item = D2DLognormal(G_OFF, G_ON, 0.05, 0.5)
    G = rng.uniform(0.5 * G_OFF, 1.5 * G_ON, (40, 30))  # inside and outside the interpolated range
    draws = item.sample(G.shape, rng)
    grad = rng.normal(size=G.shape)
    G32, draws32, grad32 = G.astype(np.float32), draws.astype(np.float32), grad.astype(np.float32)
    disturbed = item.disturb(G32, draws32)
    assert disturbed.dtype == np.float32
    assert relative_error(disturbed, item.disturb(G32.astype(np.float64), draws32.astype(np.float64))) < 1e-6
    vjp = item.disturb_vjp(G32, draws32, grad32)
    assert vjp.dtype == np.float32
    expected = item.disturb_vjp(G32.astype(np.float64), draws32.astype(np.float64), grad32.astype(np.float64))
    assert relative_error(vjp, expected) < 1e-6
