"""The one-pass D2D disturbance and its VJP against the NumPy methods of D2DLognormal."""
import numpy as np
import pytest

from memnp.kernels import d2d_devices
from memnp.nonidealities import D2DLognormal

G_OFF, G_ON = 5.24841e-7, 2.6242e-6


@pytest.mark.parametrize("stds", [(0.25, 0.25), (0.05, 0.5), (0.5, 0.0)])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_disturb_and_vjp_match_numpy(rng, stds, dtype, tol):
    d2d = D2DLognormal(G_OFF, G_ON, *stds)
    # Conductances inside the range and beyond both ends (sigma clipped, its slope 0 there),
    # with the ends themselves.
    G = rng.uniform(0.5 * G_OFF, 1.5 * G_ON, (40, 30)).astype(dtype)
    G[0, :2] = G_OFF, G_ON
    eps = rng.standard_normal(G.shape).astype(dtype) * 2
    grad = rng.normal(size=G.shape).astype(dtype)
    fast, ref = d2d.disturb(G, eps), d2d.disturb_numpy(G, eps)
    assert fast.dtype == dtype and np.max(np.abs(fast / ref - 1)) < tol
    fast, ref = d2d.disturb_vjp(G, eps, grad), d2d.disturb_vjp_numpy(G, eps, grad)
    assert fast.dtype == dtype and np.max(np.abs(fast - ref)) < tol * np.max(np.abs(ref))


def test_other_arrays_take_the_numpy_path(rng):
    d2d = D2DLognormal(G_OFF, G_ON, 0.25, 0.25)
    G = rng.uniform(G_OFF, G_ON, (6, 5))
    eps = rng.standard_normal((6, 5))
    assert not d2d_devices.supported(G.T, eps.T) and not d2d_devices.supported(G, eps.astype(np.float32))
    assert np.array_equal(d2d.disturb(G.T, eps.T), d2d.disturb_numpy(G.T, eps.T))
