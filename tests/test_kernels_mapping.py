"""The mapping loops of memnp.kernels.mapping against the NumPy mapping (memnp.crossbar.mapping)."""
import numpy as np
import pytest

from memnp.crossbar.mapping import _double_G, _double_w_to_G_vjp, x_to_V
from memnp.kernels import mapping

G_OFF, G_ON = 5.24841e-7, 2.6242e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_and_voltages(rng, dtype):
    x = (rng.random((7, 30)) * (rng.random((7, 30)) < 0.3)).astype(dtype)
    x[:, 4] = 0.0
    active, finite = mapping.scan_inputs(x)
    assert finite and active.shape == (31,) and active[30]
    assert np.array_equal(active[:30], x.any(axis=0))
    rows = np.flatnonzero(active)
    V = mapping.voltages(x, 0.5, rows)
    assert V.dtype == dtype and V.flags.c_contiguous
    assert np.array_equal(V, x_to_V(x, 0.5)[:, rows])
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[3, 7] = bad
        assert mapping.scan_inputs(y)[1] is False


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_G_rows_and_the_vjp_with_ties(rng, dtype, tol):
    D = rng.uniform(0.0, 1.0, (12, 6)).astype(dtype)
    D[2, 3] = D[9, 0] = D.max() + dtype(0.5)          # a tie at the maximum
    max_weight = float(D.max())
    rows = np.array([0, 2, 5, 11])
    G = mapping.double_G_rows(D, rows, max_weight, G_OFF, G_ON)
    assert G.dtype == dtype
    assert np.allclose(G, _double_G(D[rows], max_weight, G_OFF, G_ON), rtol=tol, atol=0)
    grad_G = (rng.normal(size=(rows.size, 6)) * 1e6).astype(dtype)
    full = np.zeros(D.shape, dtype)
    full[rows] = grad_G
    want = _double_w_to_G_vjp(D, full, 0.37, G_OFF, G_ON, max_weight)
    got = mapping.double_w_to_G_vjp_rows(D, grad_G, rows, 0.37, G_OFF, G_ON, max_weight)
    assert got.dtype == dtype
    scale = np.max(np.abs(want))
    assert np.max(np.abs(got - want)) <= 10 * tol * scale
    # The tie (row 9 is not read) gets its share of the max_weight gradient all the same.
    assert got[9, 0] != 0 and np.all(got[np.setdiff1d(np.arange(12), rows)][:, 1:] == 0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_outputs_and_their_vjp(rng, dtype, tol):
    from memnp.crossbar.mapping import I_to_y, I_to_y_vjp
    I = (rng.random((9, 14)) * 1e-5).astype(dtype)
    dy = rng.normal(size=(9, 7)).astype(dtype)
    args = (0.5, 1.7, G_OFF, G_ON)
    y = mapping.outputs(I, *args)
    assert y.dtype == dtype and np.allclose(y, I_to_y(I, *args), rtol=tol, atol=0)
    grad_I, grad_max = mapping.outputs_vjp(I, dy, *args)
    ref_I, ref_max = I_to_y_vjp(I, dy, *args)
    assert grad_I.dtype == dtype and np.allclose(grad_I, ref_I, rtol=tol, atol=0)
    assert grad_max == pytest.approx(ref_max, rel=10 * tol)
    other = np.float64 if dtype == np.float32 else np.float32
    assert mapping.supported(I, dy) and not mapping.supported(I, dy.astype(other))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_double_max_weight_from_the_bits(rng, dtype):
    from memnp.crossbar.mapping import _double_max_weight
    D = rng.uniform(0.0, 2.0, (40, 12)).astype(dtype)
    D[3, 4] = 0.0
    assert mapping.double_max_weight(D) == _double_max_weight(D) == float(D.max())
    tiny = np.full((2, 3), np.finfo(dtype).tiny / 4, dtype)      # subnormal entries still order
    tiny[1, 2] *= 2
    assert mapping.double_max_weight(tiny) == float(tiny.max())
    # Anything the checks would refuse, or -0.0 (fine, but its sign bit is set), gives None.
    for bad in (-0.5, np.nan, -np.nan, np.inf, -0.0):
        E = D.copy()
        E[7, 1] = bad
        assert mapping.double_max_weight(E) is None
    assert mapping.double_max_weight(np.zeros((3, 3), dtype)) is None
    assert mapping.double_max_weight(D.T) is None                  # not C-contiguous
