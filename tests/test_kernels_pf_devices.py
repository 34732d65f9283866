"""The one-pass PF device-parameter loops against the NumPy reference (IVNonlinearityPF's own
NumPy methods), and the routing between them."""
import numpy as np
import pytest

from memnp.crossbar.nonidealities import IVNonlinearityPF
from memnp.kernels import pf_devices

# The high-resistance SiOx fit (docs/model.md §6) and a steeper, made-up device.
HIGH = IVNonlinearityPF(k_V=0.5, slopes=(-1.03023, -0.0901078), intercepts=(-0.250595, -37.1186),
                        covariance=((0.03208284, 0.09272695), (0.09272695, 0.32510818)))
STEEP = IVNonlinearityPF(k_V=0.5, slopes=(-1.29067, -0.0650009), intercepts=(-4.00723, -39.9301),
                       covariance=((0.0102, 0.0108), (0.0108, 0.3)))


def _devices(rng, dtype, shape=(37, 23)):
    """Conductances over three decades around the SiOx ranges, and residuals up to about 6 sigma."""
    G = np.exp(rng.uniform(np.log(1e-7), np.log(1e-4), shape)).astype(dtype)
    residuals = (rng.standard_normal((2,) + shape) * [[[0.5]], [[1.5]]]).astype(dtype)
    return G, residuals


@pytest.mark.parametrize("pf", [HIGH, STEEP], ids=["siox-high", "steep"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-5)])
def test_parameters_match_numpy(rng, pf, dtype, tol):
    G, residuals = _devices(rng, dtype)
    c, d_eps = pf_devices.device_parameters(G, residuals, pf.slopes, pf.intercepts)
    c_ref, d_ref = pf.device_parameters_numpy(G, residuals)
    assert c.dtype == d_eps.dtype == dtype and c.shape == G.shape
    # float32: ln c and ln d_eps are about -15 and -36, so one float32 rounding of the exponent
    # (ulp 2e-6 and 4e-6) is the relative error of either path against exact arithmetic.
    exact_c = np.exp(-pf.slopes[0] * np.log(G.astype(np.float64)) + pf.intercepts[0] + residuals[0])
    exact_d = np.exp(-pf.slopes[1] * np.log(G.astype(np.float64)) + pf.intercepts[1] + residuals[1])
    for fast, ref, exact in ((c, c_ref, exact_c), (d_eps, d_ref, exact_d)):
        assert np.max(np.abs(fast / exact - 1)) < tol
        assert np.max(np.abs(ref / exact - 1)) < tol


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_vjp_matches_numpy(rng, dtype, tol):
    G, residuals = _devices(rng, dtype)
    c, d_eps = HIGH.device_parameters_numpy(G, residuals)
    grad_c = rng.normal(size=G.shape).astype(dtype) * 1e5
    grad_d = rng.normal(size=G.shape).astype(dtype) * 1e22
    fast = pf_devices.device_parameters_vjp(G, c, d_eps, grad_c, grad_d, HIGH.slopes)
    ref = HIGH.device_parameters_vjp_numpy(G, c, d_eps, grad_c, grad_d)
    assert fast.dtype == dtype
    assert np.max(np.abs(fast - ref)) <= tol * np.max(np.abs(ref))


def test_routing_float32_loops_and_everything_else_numpy(rng):
    G, residuals = _devices(rng, np.float32)
    loop = pf_devices.device_parameters(G, residuals, HIGH.slopes, HIGH.intercepts)
    assert all(np.array_equal(a, b) for a, b in zip(HIGH.device_parameters(G, residuals), loop))
    G64, residuals64 = G.astype(np.float64), residuals.astype(np.float64)
    numpy_path = HIGH.device_parameters_numpy(G64, residuals64)
    assert all(np.array_equal(a, b) for a, b in zip(HIGH.device_parameters(G64, residuals64), numpy_path))
    # Non-contiguous or mixed inputs take the NumPy path and give the same values.
    strided = HIGH.device_parameters(G.T, residuals.transpose(0, 2, 1))
    assert np.allclose(strided[0], loop[0].T, rtol=2e-6) and np.allclose(strided[1], loop[1].T, rtol=5e-6)
    assert not pf_devices.supported(G, G.astype(np.float64))
    assert not pf_devices.supported(G, G[:, :5])
    assert not pf_devices.supported(G.T, G.T)


@pytest.mark.parametrize("pf", [HIGH, STEEP], ids=["siox-high", "steep"])
def test_residuals_are_the_factor_times_each_words_box_muller_pair(pf):
    from memnp.kernels import reference
    shape = (31, 17)
    rng = np.random.default_rng(11)
    words = np.random.default_rng(11).bit_generator.random_raw(31 * 17)
    e = pf.sample(shape, rng)
    assert e.shape == (2,) + shape and e.dtype == np.float64
    # One word per device, nothing else taken from the Generator.
    assert rng.bit_generator.random_raw() == np.random.default_rng(11).bit_generator.random_raw(31 * 17 + 1)[-1]
    z = reference.box_muller(words)
    expected = pf._factor @ np.stack([z[0::2], z[1::2]])
    assert np.max(np.abs(e.reshape(2, -1) - expected)) < 1e-13
    e32 = pf.sample(shape, np.random.default_rng(11), np.float32)
    assert e32.dtype == np.float32 and np.array_equal(e32, e.astype(np.float32))
    # Statistics: the covariance of many draws is the device's.
    many = pf.sample((400_000,), np.random.default_rng(5))
    assert np.allclose(np.cov(many), np.array(pf.covariance), rtol=0.02, atol=1e-4)
    assert np.all(np.abs(many.mean(axis=1)) < 5 * np.sqrt(np.diag(pf.covariance) / 400_000))
