"""The fast CPU kernels (memnp.kernels.cpu) and the vectorizable exp (memnp.kernels.fastexp),
checked against the NumPy reference kernels and against float64 libm."""
import math

import numpy as np
import pytest

from memnp.kernels import cpu, fastexp, get_backend
from memnp.kernels import reference as ref
from memnp.kernels.physics import A, B, EPS

# docs/model.md §6: (G_off, G_on, s_c, b_c, s_d, b_d, Sigma) of the two SiOx regimes.
REGIMES = {
    "low": (6.9013e-4, 3.45065e-3, -1.11965, 0.62835, -1.33689, -25.9156,
            [[0.00122933, 0.00965122], [0.00965122, 0.2470822]]),
    "high": (5.24841e-7, 2.6242e-6, -1.03023, -0.250595, -0.0901078, -37.1186,
             [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]),
}
SHAPES = [(3, 7, 5), (64, 26, 20), (17, 785, 50), (1, 1, 1), (33, 40, 3)]
TOL = {np.float32: 1e-5, np.float64: 1e-10}
K_V = 0.5


def pf_devices(rng, m, n, regime):
    """PF parameters (c, d_eps), each (m, n) float64, drawn as the PF nonideality does."""
    G_off, G_on, s_c, b_c, s_d, b_d, sigma = REGIMES[regime]
    ln_R = -np.log(rng.uniform(G_off, G_on, size=(m, n)))
    e = rng.multivariate_normal([0.0, 0.0], sigma, size=(m, n))
    return np.exp(s_c * ln_R + b_c + e[..., 0]), np.exp(s_d * ln_R + b_d + e[..., 1])


def voltages(rng, p, m):
    """V (p, m) = k_V x with x in [0, 1], about 30 % exact zeros and a few negative values."""
    V = K_V * rng.random((p, m))
    V[rng.random((p, m)) < 0.3] = 0.0
    V[rng.random((p, m)) < 0.05] *= -1.0
    return V


def normwise(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return np.linalg.norm(np.asarray(actual, dtype=np.float64) - expected) / np.linalg.norm(expected)


def case(rng, shape, regime, dtype):
    p, m, n = shape
    c, d_eps = pf_devices(rng, m, n, regime)
    V = voltages(rng, p, m)
    grad_I = rng.normal(size=(p, n))
    return tuple(a.astype(dtype) for a in (V, c, d_eps, grad_I))


# --- fastexp ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, low, high, bound", [
    (np.float32, -87.0, 88.0, 2.5e-7),
    (np.float64, -708.0, 709.0, 5e-16),
])
def test_fast_exp_relative_error_over_range(dtype, low, high, bound):
    x = np.concatenate([np.linspace(low, high, 400_001), np.linspace(0.0, 10.0, 100_001)])
    x = x.astype(dtype)
    expected = np.exp(x.astype(np.float64))
    got = fastexp.exp_array(x)
    assert got.dtype == dtype
    assert np.max(np.abs(got / expected - 1.0)) <= bound


@pytest.mark.parametrize("dtype, high, bound_10, bound", [
    (np.float32, 88.0, 2e-7, 3.5e-7),
    (np.float64, 709.0, 5e-16, 5e-16),
])
def test_fast_exp_nonneg_relative_error(dtype, high, bound_10, bound):
    for top, limit in ((10.0, bound_10), (high, bound)):
        x = np.linspace(0.0, top, 400_001).astype(dtype)
        got = fastexp.exp_array(x, nonneg=True)
        assert got.dtype == dtype
        assert np.max(np.abs(got / np.exp(x.astype(np.float64)) - 1.0)) <= limit
    assert np.isnan(fastexp.exp_array(np.array([np.nan], dtype=dtype), nonneg=True)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_exp_special_values(dtype):
    got = fastexp.exp_array(np.array([0.0, 1.0, -1e4, 1e4, -1.0], dtype=dtype))
    assert abs(got[0] - 1.0) <= 2e-7 and abs(got[1] / math.e - 1.0) <= 2.5e-7
    assert np.all(np.isfinite(got)) and got[2] > 0.0          # saturates instead of inf or 0
    assert abs(got[4] * math.e - 1.0) <= 2.5e-7
    with pytest.raises(ValueError, match="x must be"):
        fastexp.exp_array(np.arange(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(dtype):
    assert np.isnan(fastexp.exp_array(np.array([np.nan], dtype=dtype))[0])
    V = np.full((2, 3), 0.3, dtype=dtype)
    c = np.full((3, 4), 1e-6, dtype=dtype)
    d_eps = np.full((3, 4), 1e-17, dtype=dtype)
    V[1, 0], c[0, 1], d_eps[1, 2] = np.nan, np.nan, np.nan
    expected = np.zeros((2, 4), dtype=bool)
    expected[1, :] = expected[:, 1] = expected[:, 2] = True
    assert np.array_equal(np.isnan(cpu.pf_currents(V, c, d_eps)), expected)
    grad_c = cpu.pf_currents_vjp(V, c, d_eps, np.ones((2, 4), dtype=dtype))[1]
    assert np.isnan(grad_c[0]).all() and np.isnan(grad_c[1, 2]) and np.isfinite(grad_c[2]).all()
    assert math.isnan(cpu.pf_power(V, c, d_eps))


def test_minimax_fit_reproduces_float32_coefficients():
    coefficients, error = fastexp.minimax_exp_coefficients(5)
    assert np.array_equal(coefficients.astype(np.float32),
                          np.array(fastexp.EXP_COEFFS_F32, dtype=np.float32))
    assert 7e-8 < error < 7.6e-8                  # equioscillation level of degree 5
    # The fitted polynomial really has that error on the reduced interval.
    r = np.linspace(-math.log(2) / 2, math.log(2) / 2, 10001)
    assert np.max(np.abs(np.polynomial.polynomial.polyval(r, coefficients) / np.exp(r) - 1)) \
        <= error * 1.001
    with pytest.raises(ValueError, match="degree"):
        fastexp.minimax_exp_coefficients(0)


# --- PF kernels against the reference ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("regime", ["low", "high"])
@pytest.mark.parametrize("shape", SHAPES)
def test_pf_kernels_match_reference(shape, regime, dtype, rng):
    V, c, d_eps, grad_I = case(rng, shape, regime, dtype)
    tol = TOL[dtype]
    # The reference on the same (rounded) inputs, in float64.
    V64, c64, d64, g64 = (a.astype(np.float64) for a in (V, c, d_eps, grad_I))

    I = cpu.pf_currents(V, c, d_eps)
    assert I.dtype == dtype and I.shape == (shape[0], shape[2])
    assert normwise(I, ref.pf_currents(V64, c64, d64)) <= tol

    grads = cpu.pf_currents_vjp(V, c, d_eps, grad_I)
    expected = ref.pf_currents_vjp(V64, c64, d64, g64)
    for name, got, want in zip(("grad_V", "grad_c", "grad_d_eps"), grads, expected):
        assert got.dtype == dtype and got.shape == want.shape, name
        assert normwise(got, want) <= tol, name
    assert np.all(grads[0][V == 0] == 0.0)

    power = cpu.pf_power(V, c, d_eps)
    assert isinstance(power, float)
    assert abs(power / ref.pf_power(V64, c64, d64) - 1.0) <= tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_V_is_zero_exactly_where_V_is_zero(dtype, rng):
    V, c, d_eps, grad_I = case(rng, (9, 30, 4), "high", dtype)
    V[:, 3] = 0.0                                  # a whole input off
    grad_V = cpu.pf_currents_vjp(V, c, d_eps, grad_I)[0]
    assert np.count_nonzero(V == 0) > 30
    assert np.all(grad_V[V == 0] == 0.0)
    assert np.all(grad_V[V != 0] != 0.0)
    # Away from 0, dI/dV tends to c (the one-sided limit) and the kernel follows it.
    tiny = np.full((1, 30), 1e-9, dtype=dtype)
    g = cpu.pf_currents_vjp(tiny, c, d_eps, np.ones((1, 4), dtype=dtype))[0]
    assert np.allclose(g[0], c.astype(np.float64).sum(axis=1), rtol=1e-3)


@pytest.mark.parametrize("regime", ["low", "high"])
def test_float32_device_currents_within_2e6_of_float64_libm(regime, rng):
    """One row per crossbar makes every column current a single device current."""
    G_off, G_on = REGIMES[regime][:2]
    c, d_eps = pf_devices(rng, 1, 4000, regime)
    c, d_eps = c.astype(np.float32), d_eps.astype(np.float32)
    V = np.concatenate([np.linspace(-K_V, K_V, 101), [1e-6, 1e-3]]).astype(np.float32)[:, None]
    got = cpu.pf_currents(V, c, d_eps).astype(np.float64)
    # float64 libm on the same float32 inputs.
    V64, c64, d64 = V.astype(np.float64), c.astype(np.float64), d_eps.astype(np.float64)
    want = np.sign(V64) * c64 * np.abs(V64) * np.exp(A * np.sqrt(B * np.abs(V64) / d64 + EPS))
    nonzero = V[:, 0] != 0
    assert np.all(got[~nonzero] == 0.0)
    assert np.max(np.abs(got[nonzero] / want[nonzero] - 1.0)) <= 2e-6


def test_float32_column_sums_of_a_large_crossbar(rng):
    """Column sums over 1025 rows, float32 vs the float64 reference: within 1e-5 normwise."""
    V, c, d_eps, _ = case(rng, (8, 1025, 6), "high", np.float32)
    want = ref.pf_currents(*(a.astype(np.float64) for a in (V, c, d_eps)))
    assert normwise(cpu.pf_currents(V, c, d_eps), want) <= 1e-6


def test_pf_kernels_accept_any_layout_and_convert_dtypes(rng):
    V, c, d_eps, grad_I = case(rng, (6, 11, 4), "low", np.float64)
    I = cpu.pf_currents(V, c, d_eps)
    # Fortran order and strided views give the same numbers.
    assert np.array_equal(cpu.pf_currents(np.asfortranarray(V), np.asfortranarray(c), d_eps), I)
    wide = np.zeros((6, 22))
    wide[:, ::2] = V
    assert np.array_equal(cpu.pf_currents(wide[:, ::2], c, d_eps), I)
    # c, d_eps and grad_I follow V's precision; non-float32 V is computed in float64.
    assert cpu.pf_currents(V.astype(np.float32), c, d_eps).dtype == np.float32
    assert cpu.pf_currents_vjp(V.astype(np.float32), c, d_eps, grad_I)[1].dtype == np.float32
    x = (V > 0.2).astype(np.int64)
    assert cpu.pf_currents(x, c, d_eps).dtype == np.float64


def test_pf_kernels_reject_bad_shapes(rng):
    V, c, d_eps, grad_I = case(rng, (4, 5, 3), "low", np.float64)
    with pytest.raises(ValueError, match="V has 5 columns"):
        cpu.pf_currents(V, c[:4], d_eps[:4])
    with pytest.raises(ValueError, match="d_eps must have shape"):
        cpu.pf_currents(V, c, d_eps[:, :2])
    with pytest.raises(ValueError, match="c must be a 2-D"):
        cpu.pf_power(V, c[0], d_eps)
    with pytest.raises(ValueError, match="grad_I must have shape"):
        cpu.pf_currents_vjp(V, c, d_eps, grad_I.T)



def test_pf_kernels_on_empty_batches_and_crossbars(rng):
    V, c, d_eps, grad_I = case(rng, (4, 5, 3), "low", np.float32)
    assert math.isnan(cpu.pf_power(V[:0], c, d_eps))        # as the reference and cuda backends
    assert cpu.pf_currents(V[:0], c, d_eps).shape == (0, 3)
    assert np.all(cpu.pf_currents(V[:, :0], c[:0], d_eps[:0]) == 0.0)
    grads = cpu.pf_currents_vjp(V, c[:, :0], d_eps[:, :0], grad_I[:, :0])
    assert np.all(grads[0] == 0.0) and grads[1].shape == grads[2].shape == (5, 0)


# --- ideal crossbar ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ideal_kernels_match_reference(dtype, rng):
    V = voltages(rng, 13, 29).astype(dtype)
    G = rng.uniform(5e-7, 3.5e-3, size=(29, 7)).astype(dtype)
    I = cpu.ideal_currents(V, G)
    assert I.dtype == dtype
    assert normwise(I, ref.ideal_currents(V.astype(np.float64), G.astype(np.float64))) \
        <= TOL[dtype]
    assert abs(cpu.ideal_power(V, G) / ref.ideal_power(V, G) - 1.0) <= 1e-12
    G_signed = G * np.where(rng.random(G.shape) < 0.3, -1.0, 1.0).astype(dtype)
    assert abs(cpu.ideal_power(V, G_signed) / ref.ideal_power(V, G_signed) - 1.0) <= 1e-12
    with pytest.raises(ValueError, match="G has 28 rows"):
        cpu.ideal_currents(V, G[:28])
    with pytest.raises(ValueError, match="G has 28 rows"):
        cpu.ideal_power(V, G[:28])


def test_cpu_is_the_default_backend(monkeypatch):
    from memnp.kernels import cpu_auto
    monkeypatch.delenv("MEMNP_BACKEND", raising=False)
    assert get_backend().kernels is cpu_auto
    assert get_backend("cpu") is get_backend() and get_backend("cpu").pf_currents is cpu_auto.pf_currents
    assert cpu_auto.ideal_currents is cpu.ideal_currents
