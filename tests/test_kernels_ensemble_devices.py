"""memnp.kernels.ensemble_devices: the K-axis PF device parameters, their VJP and the dL/dV
scatter equal the single-network loops per member bit for bit, and the NumPy formulas to rounding."""
import numpy as np
import pytest

from memnp.kernels import ensemble_devices as ed
from memnp.kernels.ensemble_layout import MemberRows

SLOPES = np.array([[-1.03023, -0.0901078], [-1.1, -0.1], [-0.9, -0.08]])
INTERCEPTS = np.array([[-0.250595, -37.1186], [-0.3, -37.0], [-0.2, -37.2]])


def _case(dtype, seed=0):
    rng = np.random.default_rng(seed)
    active = rng.random((3, 40)) < np.array([[0.3], [0.9], [1.0]])
    active[:, -1] = True
    layout = MemberRows.from_active(active)
    R, n = layout.total, 7
    G = rng.uniform(5e-7, 2.6e-6, (R, n)).astype(dtype)
    residuals = rng.normal(0, 0.3, (2, R, n)).astype(dtype)
    return rng, layout, G, residuals


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_parameters_members_equal_single_loops(dtype):
    rng, layout, G, residuals = _case(dtype)
    c, d_eps = ed.device_parameters(G, residuals, layout, SLOPES, INTERCEPTS)
    c_ref, d_ref = ed.device_parameters_reference(G, residuals, layout, SLOPES, INTERCEPTS)
    assert c.dtype == dtype and np.array_equal(c, c_ref) and np.array_equal(d_eps, d_ref)
    # The NumPy formula of docs/model.md §2, member by member, to rounding.
    for k in range(3):
        a, b = layout.offsets[k], layout.offsets[k + 1]
        ln_G = np.log(G[a:b].astype(np.float64))
        expected_c = np.exp(-SLOPES[k, 0] * ln_G + INTERCEPTS[k, 0] + residuals[0, a:b])
        expected_d = np.exp(-SLOPES[k, 1] * ln_G + INTERCEPTS[k, 1] + residuals[1, a:b])
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c[a:b], expected_c, rtol=tol)
        np.testing.assert_allclose(d_eps[a:b], expected_d, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_parameters_vjp_members_equal_single_loops(dtype):
    rng, layout, G, residuals = _case(dtype, 1)
    c, d_eps = ed.device_parameters_reference(G, residuals, layout, SLOPES, INTERCEPTS)
    grad_c = rng.normal(size=G.shape).astype(dtype)
    grad_d = rng.normal(size=G.shape).astype(dtype)
    grad_G = ed.device_parameters_vjp_members(G, c, d_eps, grad_c, grad_d, layout, SLOPES)
    assert np.array_equal(grad_G, ed.device_parameters_vjp_reference(G, c, d_eps, grad_c, grad_d, layout, SLOPES))
    for k in range(3):
        a, b = layout.offsets[k], layout.offsets[k + 1]
        expected = -(SLOPES[k, 0] * grad_c[a:b] * c[a:b] + SLOPES[k, 1] * grad_d[a:b] * d_eps[a:b]) / G[a:b]
        np.testing.assert_allclose(grad_G[a:b], expected, rtol=1e-4 if dtype == np.float32 else 1e-12)


def test_scatter_rows_places_each_members_block():
    _, layout, _, _ = _case(np.float32, 2)
    p = 5
    grad_V = np.arange(p * layout.total, dtype=np.float32) + 1
    full = ed.scatter_rows(grad_V, layout, p)
    assert full.shape == (3, p, 40)
    assert np.array_equal(full, ed.scatter_rows_reference(grad_V, layout, p))
    for k in range(3):
        unread = np.setdiff1d(np.arange(40), layout.member_rows(k))
        assert np.all(full[k][:, unread] == 0)
        assert np.array_equal(full[k][:, layout.member_rows(k)], layout.block(grad_V, k, p))


def test_bad_shapes_are_refused():
    _, layout, G, residuals = _case(np.float32)
    with pytest.raises(ValueError, match="slopes must hold one pair per member"):
        ed.device_parameters(G, residuals, layout, SLOPES[:2], INTERCEPTS)
    with pytest.raises(ValueError, match="residuals must be a C-contiguous float32"):
        ed.device_parameters(G, residuals.astype(np.float64), layout, SLOPES, INTERCEPTS)
    with pytest.raises(ValueError, match="row-packed"):
        ed.device_parameters(G[:-1], residuals[:, :-1], layout, SLOPES, INTERCEPTS)
    with pytest.raises(ValueError, match="voltage-packed"):
        ed.scatter_rows(np.zeros(7, np.float32), layout, 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draw_device_parameters_equal_member_by_member_draws(dtype):
    """Residuals drawn in the K-axis kernel from each member's PCG64 state equal random_raw's
    words member by member (pf_devices.residuals), and so do the states after them."""
    _, layout, G, _ = _case(dtype, 3)
    factors = np.array([[[0.1, 0.05], [0.3, -0.2]], [[0.2, 0.0], [0.1, 0.4]], [[0.15, 0.1], [0.0, 0.5]]])
    ours = [np.random.default_rng(40 + k) for k in range(3)]
    theirs = [np.random.default_rng(40 + k) for k in range(3)]
    drawn = np.array([True, False, True])
    residuals = np.empty((2,) + G.shape, dtype)
    states = np.zeros((3, 4), np.uint64)
    for k, rng in enumerate(ours):
        s = rng.bit_generator.state["state"]
        states[k] = (s["state"] >> 64, s["state"] & (2**64 - 1), s["inc"] >> 64, s["inc"] & (2**64 - 1))
    a, b = layout.offsets[1], layout.offsets[2]
    from memnp.kernels.pf_devices import residuals as draw
    residuals[:, a:b] = draw(ours[1], factors[1], (b - a, G.shape[1]), dtype)     # a member drawn alone
    c, d_eps, after = ed.draw_device_parameters(G, residuals, layout, states, drawn, factors, SLOPES, INTERCEPTS)
    expected_residuals = np.empty_like(residuals)
    c_ref, d_ref = ed.draw_device_parameters_reference(G, expected_residuals, layout, theirs, factors, SLOPES,
                                                       INTERCEPTS)
    assert np.array_equal(residuals, expected_residuals)
    assert np.array_equal(c, c_ref) and np.array_equal(d_eps, d_ref)
    for k in (0, 2):
        expected = theirs[k].bit_generator.state["state"]["state"]
        assert (int(after[k, 0]) << 64) | int(after[k, 1]) == expected
    assert np.all(after[1] == 0)
    _, _, none_after = ed.draw_device_parameters(G, residuals.copy(), layout, states, drawn, factors, SLOPES,
                                                 INTERCEPTS, parameters=False)
    assert np.array_equal(none_after, after)
