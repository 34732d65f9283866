"""The sparse CPU kernels (memnp.kernels.sparse), which skip zero voltages per (example, row),
checked against the NumPy reference and the dense CPU kernels, and their dispatch rule."""
from pathlib import Path

import numba
import numpy as np
import pytest

from memnp.kernels import cpu, cpu_auto, sparse
from memnp.kernels import reference as ref

# docs/model.md §6: (G_off, G_on, s_c, b_c, s_d, b_d, Sigma) of the two SiOx regimes.
REGIMES = {
    "low": (6.9013e-4, 3.45065e-3, -1.11965, 0.62835, -1.33689, -25.9156,
            [[0.00122933, 0.00965122], [0.00965122, 0.2470822]]),
    "high": (5.24841e-7, 2.6242e-6, -1.03023, -0.250595, -0.0901078, -37.1186,
             [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]),
}
TOL = {np.float32: 1e-5, np.float64: 1e-10}
K_V = 0.5
MNIST = Path(sparse.__file__).resolve().parents[1] / "data" / "mnist-10k.npz"


def pf_devices(rng, m, n, regime):
    """PF parameters (c, d_eps), each (m, n) float64: c = exp(s_c ln R + b_c + noise), d_eps =
    exp(s_d ln R + b_d + noise), R = 1 / G with G uniform in [G_off, G_on]."""
    G_off, G_on, s_c, b_c, s_d, b_d, sigma = REGIMES[regime]
    ln_R = -np.log(rng.uniform(G_off, G_on, size=(m, n)))
    e = rng.multivariate_normal([0.0, 0.0], sigma, size=(m, n))
    return np.exp(s_c * ln_R + b_c + e[..., 0]), np.exp(s_d * ln_R + b_d + e[..., 1])


def voltages(rng, p, m, zeros):
    """V (p, m) = k_V x, x uniform in [0, 1], a fraction ``zeros`` exactly 0, 10 % negated."""
    V = K_V * rng.random((p, m))
    V[rng.random((p, m)) < zeros] = 0.0
    V[rng.random((p, m)) < 0.1] *= -1.0
    return V


def normwise(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return np.linalg.norm(np.asarray(actual, dtype=np.float64) - expected) / np.linalg.norm(expected)


def check_against_reference(V, c, d_eps, grad_I, dtype):
    """All three sparse kernels on inputs of dtype vs the float64 reference on the same values."""
    V, c, d_eps, grad_I = (np.asarray(a, dtype=dtype) for a in (V, c, d_eps, grad_I))
    V64, c64, d64, g64 = (a.astype(np.float64) for a in (V, c, d_eps, grad_I))
    tol = TOL[dtype]
    I = sparse.pf_currents(V, c, d_eps)
    assert I.dtype == dtype and I.shape == (V.shape[0], c.shape[1])
    assert normwise(I, ref.pf_currents(V64, c64, d64)) <= tol
    grads = sparse.pf_currents_vjp(V, c, d_eps, grad_I)
    for name, got, want in zip(("grad_V", "grad_c", "grad_d_eps"), grads,
                               ref.pf_currents_vjp(V64, c64, d64, g64)):
        assert got.dtype == dtype and got.shape == want.shape, name
        assert normwise(got, want) <= tol, name
    assert np.all(grads[0][V == 0] == 0.0)
    power = sparse.pf_power(V, c, d_eps)
    assert isinstance(power, float)
    assert abs(power / ref.pf_power(V64, c64, d64) - 1.0) <= tol
    return I, grads, power


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("regime", ["low", "high"])
@pytest.mark.parametrize("shape, zeros", [
    ((3, 7, 5), 0.5), ((17, 785, 50), 0.4), ((64, 26, 20), 0.6), ((5, 9, 16), 0.3),
    ((5, 9, 17), 0.3), ((2, 3, 1), 0.0), ((300, 5, 3), 0.2),
])
def test_sparse_kernels_match_reference(shape, zeros, regime, dtype, rng):
    # 17 x 785 (about 470 nonzero rows per example) and 300 examples exceed BLOCK, so the
    # float64 block sums are exercised; n = 1, 5, 16, 17, 50 cover the column padding.
    p, m, n = shape
    c, d_eps = pf_devices(rng, m, n, regime)
    check_against_reference(voltages(rng, p, m, zeros), c, d_eps, rng.normal(size=(p, n)),
                            dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_zeros_whole_zero_rows_and_examples(dtype, rng):
    p, m, n = 12, 40, 20
    c, d_eps = pf_devices(rng, m, n, "high")
    V = voltages(rng, p, m, 0.9)
    V[:, 5:15] = 0.0            # inputs off for the whole batch
    V[3] = 0.0                  # an example with no input at all
    V[7, :] = 0.0
    V[7, 20] = -0.3             # an example with one (negative) input
    grad_I = rng.normal(size=(p, n))
    I, (grad_V, grad_c, grad_d_eps), _ = check_against_reference(V, c, d_eps, grad_I, dtype)
    assert np.all(I[3] == 0.0) and np.all(I[7] != 0.0)
    assert np.all(grad_c[5:15] == 0.0) and np.all(grad_d_eps[5:15] == 0.0)
    assert np.all(grad_V[V.astype(dtype) != 0] != 0.0)
    # The single device current of example 7 is -c |V| e exactly as in the reference.
    want = ref.pf_device_currents(V[7:8].astype(np.float64), c, d_eps)[0, 20]
    assert np.allclose(I[7], want, rtol=TOL[dtype], atol=0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_zero_voltages(dtype, rng):
    c, d_eps = pf_devices(rng, 6, 4, "low")
    V = np.zeros((3, 6), dtype=dtype)
    I = sparse.pf_currents(V, c, d_eps)
    assert I.dtype == dtype and np.all(I == 0.0)
    for g in sparse.pf_currents_vjp(V, c, d_eps, np.ones((3, 4))):
        assert g.dtype == dtype and np.all(g == 0.0)
    assert sparse.pf_power(V, c, d_eps) == 0.0
    assert np.isnan(sparse.pf_power(np.zeros((0, 6)), c, d_eps))
    assert sparse.pf_currents(np.zeros((0, 6)), c, d_eps).shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mnist_digits_match_dense_and_reference(dtype, rng):
    """V = k_V [x / 255, 1] for 16 embedded digits (about 80 % zeros), 785 x 50 high regime."""
    with np.load(MNIST, allow_pickle=False) as data:
        images = data["images"][:16].reshape(16, -1) / 255.0
    V = K_V * np.concatenate([images, np.ones((16, 1))], axis=1)
    assert 0.7 < 1.0 - np.count_nonzero(V) / V.size < 0.9
    c, d_eps = pf_devices(rng, 785, 50, "high")
    grad_I = rng.normal(size=(16, 50))
    I, grads, power = check_against_reference(V, c, d_eps, grad_I, dtype)
    # The dense kernels agree to the precision's rounding.
    args = tuple(a.astype(dtype) for a in (V, c, d_eps))
    close = 1e-6 if dtype == np.float32 else 1e-13
    assert normwise(I, cpu.pf_currents(*args)) <= close
    for got, want in zip(grads, cpu.pf_currents_vjp(*args, grad_I.astype(dtype))):
        assert normwise(got, want) <= close
    assert abs(power / cpu.pf_power(*args) - 1.0) <= close


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_results_do_not_depend_on_thread_count(rng):
    c, d_eps = pf_devices(rng, 50, 20, "high")
    V = voltages(rng, 9, 50, 0.6).astype(np.float32)
    grad_I = rng.normal(size=(9, 20)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append((sparse.pf_currents(V, c, d_eps),
                            *sparse.pf_currents_vjp(V, c, d_eps, grad_I)))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_nan_voltage_propagates():
    V = np.array([[0.3, np.nan, 0.0], [0.2, 0.0, 0.1]])
    c = np.full((3, 2), 1e-6)
    d_eps = np.full((3, 2), 1e-17)
    I = sparse.pf_currents(V, c, d_eps)
    assert np.isnan(I[0]).all() and np.isfinite(I[1]).all()
    grad_V, grad_c, _ = sparse.pf_currents_vjp(V, c, d_eps, np.ones((2, 2)))
    assert np.isnan(grad_c[1]).all() and np.isfinite(grad_c[0]).all() and grad_V[1, 1] == 0.0


def test_inputs_convert_like_the_dense_kernels(rng):
    c, d_eps = pf_devices(rng, 11, 4, "low")
    V = voltages(rng, 6, 11, 0.5)
    I = sparse.pf_currents(V, c, d_eps)
    assert np.array_equal(sparse.pf_currents(np.asfortranarray(V), c, np.asfortranarray(d_eps)), I)
    assert sparse.pf_currents(V.astype(np.float32), c, d_eps).dtype == np.float32
    assert sparse.pf_currents((V > 0.2).astype(np.int64), c, d_eps).dtype == np.float64
    with pytest.raises(ValueError, match="V has 11 columns"):
        sparse.pf_currents(V, c[:5], d_eps[:5])
    with pytest.raises(ValueError, match="grad_I must have shape"):
        sparse.pf_currents_vjp(V, c, d_eps, np.ones((6, 3)))
    with pytest.raises(ValueError, match="d_eps must have shape"):
        sparse.pf_power(V, c, d_eps[:, :2])


def test_zero_fraction_and_choice(rng):
    V = voltages(rng, 64, 785, 0.0)
    assert sparse.zero_fraction(V) == 0.0
    V[:, :600] = 0.0
    assert sparse.zero_fraction(V) == pytest.approx(600 / 785)
    assert sparse.zero_fraction(V.astype(np.float32).T) == pytest.approx(600 / 785)
    assert sparse.zero_fraction(np.zeros((0, 3))) == 0.0
    assert cpu_auto.plan(V, 50)[0] is sparse and cpu_auto.plan(V, 20)[0] is sparse
    V[:, 600:650] = 0.0
    V[:, 200:400] = 1.0
    frac = sparse.zero_fraction(V)                       # 0.5: wide crossbars only
    assert sparse.min_zeros(20) > frac >= sparse.min_zeros(50)
    assert cpu_auto.plan(V, 50)[0] is sparse and cpu_auto.plan(V, 20)[0] is cpu
    assert cpu_auto.plan(np.ones((64, 785)), 50)[0] is cpu
    assert cpu_auto.plan(np.zeros((64, 26)), 20)[0] is cpu  # too small a crossbar to pay
    # The cpu backend's dispatcher gives the chosen module's results.
    c, d_eps = pf_devices(rng, 785, 50, "high")
    grad_I = rng.normal(size=(64, 50))
    V = V[:4].astype(np.float32)
    assert np.array_equal(cpu_auto.pf_currents(V, c, d_eps), sparse.pf_currents(V, c, d_eps))
    for a, b in zip(cpu_auto.pf_currents_vjp(V, c, d_eps, grad_I[:4]),
                    sparse.pf_currents_vjp(V, c, d_eps, grad_I[:4])):
        assert np.array_equal(a, b)
    assert cpu_auto.pf_power(V, c, d_eps) == sparse.pf_power(V, c, d_eps)
    dense = np.full((4, 785), 0.25, dtype=np.float32)
    assert np.array_equal(cpu_auto.pf_currents(dense, c, d_eps), cpu.pf_currents(dense, c, d_eps))
