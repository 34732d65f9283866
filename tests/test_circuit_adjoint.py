"""The line-resistance adjoint on strongly coupled arrays: its residual check, refinement, the
sparse direct fallback (memnp.circuit.direct), its report and ConvergenceError."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.circuit import CONVERGED, MAX_ITER, ConvergenceError, adjoint, direct, reference, solve
from memnp.circuit.lines import apply_A
from memnp.circuit.network import Network
from memnp.data.presets import preset_stage
from memnp.nonidealities import LineResistance

LOW = preset_stage("siox-low")
RS = [(1.0, 2.0), (0.0, 3.0), (2.0, 0.0)]


def _low(seed, p, m, n, pf=False):
    """V (p, m) in [0, 0.5] V, linear low-R SiOx devices G (m, n) (or PF devices), dL/dI (p, n)."""
    rng = np.random.default_rng(seed)
    G = rng.uniform(LOW.G_off, LOW.G_on, (m, n))
    V = rng.uniform(0.0, 0.5, (p, m))
    grad_I = rng.standard_normal((p, n))
    pf_law = LOW.nonpreserving
    devices = pf_law.device_parameters(G, pf_law.sample(G.shape, rng, np.float64)) if pf else None
    return V, G, devices, grad_I


def _reference(V, G, devices, r, grad_I):
    ref = reference.solve(V, G, devices, r, r)
    assert ref["report"].converged
    grad_V, theta = reference.vjp(ref, grad_I)
    return ref, grad_V, (theta if devices is not None else (theta,))


def _theta(theta, pf):
    return theta if pf else (theta,)


# -- the sparse direct solve of J = I + A S --------------------------------------------------------

@pytest.mark.parametrize("r", RS)
def test_newton_matrix_solve_inverts_I_plus_A_S(r):
    m, n = 3, 4
    rng = np.random.default_rng(1)
    s = rng.uniform(0.0, 2.0, (m, n))
    s[0, 1] = 0.0                                   # an insulating device: no division by s
    A = np.empty((m * n, m * n))                    # A column by column, by the running sums
    for k in range(m * n):
        e = np.zeros((m, n))
        e.reshape(-1)[k] = 1.0
        out = np.empty((m, n))
        apply_A(e, *r, out, np.empty(n), np.empty(n))
        A[:, k] = out.reshape(-1)
    J = np.eye(m * n) + A * s.reshape(1, -1)
    y = rng.standard_normal((2, m, n))
    x = direct.NewtonMatrix(Network(m, n, *r), s).solve(y)
    want = np.linalg.solve(J, y.reshape(2, -1).T).T.reshape(2, m, n)
    np.testing.assert_allclose(x, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("m, n", [(1, 1), (1, 7), (9, 1), (5, 4), (17, 33), (64, 64)])
def test_grid_order_is_a_permutation(m, n):
    order = direct._grid_order(m, n)
    assert np.array_equal(np.sort(order), np.arange(m * n))


# -- the residual check and refinement ------------------------------------------------------------

@pytest.mark.parametrize("pf", [False, True])
def test_strongly_coupled_adjoint_is_refined_to_the_reference(pf):
    """16 x 16 low-R devices at r = 1e5 ohm: one CG solve to its own tolerance leaves gradients
    wrong by ~1e-8 (the S-weighted residual ~1e-4); the check sees it and refinement fixes it."""
    r = 1e5
    V, G, devices, grad_I = _low(16, 2, 16, 16, pf)
    _, ref_V, ref_theta = _reference(V, G, devices, r, grad_I)
    v, report = solve.solve(V, G, devices, r, r, 1e-10, method="cg")
    assert report.converged
    arrays = solve.device_arrays(G, devices)
    # Without the check (anything accepted): the silent error of the old adjoint.
    grad_V, _, loose = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11, method="cg", check_tol=1.0)
    assert np.all(loose.iterations == 0) and loose.max_residual > 1e-6
    assert relative_error(grad_V, ref_V) > 1e-9
    grad_V, theta, checked = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11, method="cg")
    assert checked.converged and np.all(checked.iterations >= 1) and checked.max_residual <= 1e-11
    assert "CG" in checked.method and "direct" not in checked.method
    assert relative_error(grad_V, ref_V) < 1e-11
    for got, want in zip(_theta(theta, pf), ref_theta):
        assert relative_error(got, want) < 1e-11


@pytest.mark.parametrize("pf", [False, True])
def test_crawling_cg_falls_back_to_the_sparse_direct_solve(pf):
    r = 1e5
    V, G, devices, grad_I = _low(17, 2, 16, 16, pf)
    _, ref_V, ref_theta = _reference(V, G, devices, r, grad_I)
    v, _ = solve.solve(V, G, devices, r, r, 1e-10)
    arrays = solve.device_arrays(G, devices)
    grad_V, theta, report, grad_r = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11, max_cg=1,
                                                method="cg", need_r=True)
    assert report.converged and "2 of 2 examples sparse direct" in report.method
    assert relative_error(grad_V, ref_V) < 1e-11
    for got, want in zip(_theta(theta, pf), ref_theta):
        assert relative_error(got, want) < 1e-11
    # dL/dr from the direct lambdas equals the iterative one's.
    *_, grad_r_cg = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11, method="cg", need_r=True)
    np.testing.assert_allclose(grad_r, grad_r_cg, rtol=1e-9)


@pytest.mark.parametrize("r", RS)
@pytest.mark.parametrize("pf", [False, True])
def test_direct_method_forward_and_adjoint_match_the_reference(r, pf):
    V, G, devices, grad_I = _low(3, 3, 5, 4, pf)
    G, devices = G * 30, (None if not pf else (devices[0] * 30, devices[1]))
    ref = reference.solve(V, G, devices, *r)
    ref_V, ref_theta = reference.vjp(ref, grad_I)
    arrays = solve.device_arrays(G, devices)
    v, report, I = solve.solve_with_currents(V, G, devices, *r, 1e-12, method="direct")
    assert report.converged and "direct" in report.method
    assert relative_error(I, ref["I"]) < 1e-12
    grad_V, theta, vjp_report = adjoint.vjp(v, V, *arrays, *r, grad_I, 1e-12, method="direct")
    assert vjp_report.converged and "sparse direct" in vjp_report.method
    assert relative_error(grad_V, ref_V) < 1e-10
    for got, want in zip(_theta(theta, pf), _theta(ref_theta, pf)):
        assert relative_error(got, want) < 1e-10


def test_auto_solves_directly_where_cg_would_crawl():
    r = 1e6
    V, G, _, grad_I = _low(5, 2, 16, 16)
    c, K, pf = solve.device_arrays(G, None)
    assert direct.crawls(V, c, K, pf, r, r, 1e-10)
    assert solve.resolve_method("auto", V, c, K, pf, r, r) == "direct"
    # The MNIST first layer (high-R devices, r = 1 ohm) and one-sided wires never do.
    high = preset_stage("siox-high")
    assert not direct.crawls(V, np.full((785, 50), high.G_on), K, False, 1.0, 1.0, 1e-10)
    assert not direct.crawls(V, c, K, pf, 0.0, r, 1e-10)
    lr = LineResistance(r, r)
    I_ref, state_ref = lr.currents(V, G, None, "numpy")
    I, state = lr.currents(V, G, None, "cpu")
    assert state.method == "direct" and "direct" in state.report.method
    assert relative_error(I, I_ref) < 1e-12
    grad_V, grad_G = lr.currents_vjp(state, grad_I)
    ref_V, ref_G = lr.currents_vjp(state_ref, grad_I)
    assert state.vjp_report.converged and "sparse direct" in state.vjp_report.method
    assert relative_error(grad_V, ref_V) < 1e-10 and relative_error(grad_G, ref_G) < 1e-10


def test_strongly_coupled_vjp_against_finite_differences():
    r = 1e5
    V, G, _, w = _low(9, 2, 6, 5)
    lr = LineResistance(r, 0.5 * r)
    params = {"V": V.copy(), "G": G.copy()}

    def loss():
        I, _ = lr.currents(params["V"], params["G"], None, "cpu")
        return float((I * w).sum())

    _, state = lr.currents(V, G, None, "cpu")
    grad_V, grad_G = lr.currents_vjp(state, w)
    assert state.vjp_report.converged
    assert relative_error(grad_V, numerical_gradient(loss, params["V"])) < 1e-6
    assert relative_error(grad_G, numerical_gradient(loss, params["G"])) < 1e-6


# -- the report and the error ----------------------------------------------------------------------

def test_vjp_report_is_kept_on_the_state():
    V, G, _, grad_I = _low(2, 3, 8, 6)
    lr = LineResistance(1.0, 1.0)
    _, state = lr.currents(V, G, None, "cpu")
    assert state.vjp_report is None
    lr.currents_vjp(state, grad_I)
    report = state.vjp_report
    assert report.converged and report.status.shape == (3,)
    assert report.tolerance == 1e-10             # the forward's: its residual in the same norm
    assert np.all(report.residual <= 1e-10) and np.all(report.inner_iterations >= 1)
    assert np.all(report.iterations == 0)           # weakly coupled: the first solve passes
    assert "refinement solves <= 0" in report.summary(adjoint.STEPS)


def test_an_adjoint_that_cannot_meet_its_check_raises():
    """A residual check no solve can meet (1e-30): refinement stalls, the direct solve misses it
    too, and the VJP raises instead of returning a gradient."""
    r = 1e5
    V, G, _, grad_I = _low(4, 2, 12, 10)
    arrays = solve.device_arrays(G, None)
    v, _ = solve.solve(V, G, None, r, r, 1e-10)
    grad_V, grad_G, report = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11, check_tol=1e-30)
    assert np.all(report.status == MAX_ITER) and not np.any(report.status == CONVERGED)
    assert "sparse direct" in report.method and np.all(grad_V == 0) and np.all(grad_G == 0)
    lr = LineResistance(r, r)
    _, state = lr.currents(V, G, None, "cpu")
    state.tolerance = 1e-30                         # asks the VJP for what no solve can reach
    match = (r"adjoint \(VJP\) solve did not converge for a 12 x 10 array with r_word=100000 ohm, "
             r"r_bit=100000 ohm: 2 of 2 examples.*MAX_ITER.*relative residual")
    with pytest.raises(ConvergenceError, match=match):
        lr.currents_vjp(state, grad_I)
    assert not state.vjp_report.converged
    with pytest.raises(ConvergenceError, match=match):
        lr.r_vjp(state, grad_I)
