"""memnp.circuit.linestep: the line step (bit lines exact, word lines by corrections) against
dense matrices, and the solver's choice between line steps and CG steps."""
import numpy as np
import pytest

from memnp.circuit import CONVERGED, linestep, reference, solve
from memnp.data.presets import preset_stage

HIGH = preset_stage("siox-high")
PF = HIGH.nonpreserving


def _operator(m, n, r_word, r_bit):
    """The wire operator A (m n, m n) as a dense matrix, column by column from apply_A."""
    A = np.zeros((m * n, m * n))
    out, buf_p, buf_q = np.empty((m, n)), np.empty(n), np.empty(n)
    for k in range(m * n):
        e = np.zeros(m * n)
        e[k] = 1.0
        solve.apply_A(e.reshape(m, n), r_word, r_bit, out, buf_p, buf_q)
        A[:, k] = out.ravel()
    return A


def _pivots(s, g):
    winv = np.empty_like(s)
    from memnp.circuit import precond
    precond.factor(s, g, precond.BIT, winv)
    return winv


@pytest.mark.parametrize("m, n", [(1, 1), (1, 4), (5, 1), (6, 4), (40, 9)])
@pytest.mark.parametrize("has_u, factor", [(False, False), (False, True), (True, False)])
def test_line_solve_inverts_the_bit_line_jacobian(m, n, has_u, factor):
    rng = np.random.default_rng(1)
    r_bit = 2.0
    s = rng.uniform(0.01, 0.5, (m, n))
    R, u = rng.normal(size=(m, n)), rng.normal(size=(m, n))
    J_bit = np.eye(m * n) + _operator(m, n, 0.0, r_bit) * s.ravel()[None, :]
    winv = _pivots(s, 1 / r_bit)
    out, w = np.empty((m, n)), (np.full_like(s, np.nan) if factor else winv.copy())
    linestep.line_solve(R, u, has_u, s, 1 / r_bit, w, factor, np.empty(n), out)
    rhs = -R - u if has_u else -R
    np.testing.assert_allclose(out.ravel(), np.linalg.solve(J_bit, rhs.ravel()), rtol=1e-11,
                               atol=1e-13)
    np.testing.assert_allclose(w, winv, rtol=1e-14)        # the pivots it factored (or was given)


def test_line_solve_factors_only_on_a_first_solve():
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="factors only on the first solve"):
        linestep.line_solve(z, z, True, z + 1, 1.0, z.copy(), True, np.empty(2), z.copy())


@pytest.mark.parametrize("m, n", [(1, 1), (3, 1), (4, 5), (7, 6), (9, 3)])
def test_word_drop_is_the_word_line_operator_and_its_residual(m, n):
    rng = np.random.default_rng(2)
    s, dv = rng.uniform(0.0, 1.0, (m, n)), rng.normal(size=(m, n))
    A_word = _operator(m, n, 1.7, 0.0)
    expected = (A_word @ (s * dv).ravel()).reshape(m, n)
    u = np.full((m, n), np.nan)
    norm = linestep.word_drop(s, dv, 1.7, u, True)          # first: u is not read
    np.testing.assert_allclose(u, expected, rtol=1e-12, atol=1e-14)
    assert norm == pytest.approx(np.sum((s * expected) ** 2), rel=1e-12)
    old = rng.normal(size=(m, n))
    u = old.copy()
    norm = linestep.word_drop(s, dv, 1.7, u, False)
    np.testing.assert_allclose(u, expected, rtol=1e-12, atol=1e-14)
    assert norm == pytest.approx(np.sum((s * (expected - old)) ** 2), rel=1e-12)


@pytest.mark.parametrize("rho_scale", [0.02, 0.3])
def test_step_meets_its_linear_residual_target(rho_scale):
    # J dv = -R with J = I + A S; the step's residual in the S-weighted norm is below target.
    rng = np.random.default_rng(3)
    m, n, r_word, r_bit = 8, 6, 1.0, 2.0
    s = rng.uniform(0.5, 1.0, (m, n)) * rho_scale / (r_word * linestep.word_kernel_norm(n))
    R = rng.normal(size=(m, n))
    J = np.eye(m * n) + _operator(m, n, r_word, r_bit) * s.ravel()[None, :]
    target = 1e-9 * np.linalg.norm(s * R)
    dv, u, winv = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    k = linestep.step(R, s, 1 / r_bit, winv, True, r_word, target, 30, dv, u, np.empty(n))
    assert k > 0
    residual = (J @ dv.ravel() + R.ravel()).reshape(m, n)
    assert np.linalg.norm(s * residual) <= target
    np.testing.assert_allclose(dv.ravel(), np.linalg.solve(J, -R.ravel()), rtol=1e-7, atol=1e-12)
    # Each correction contracts by at most rho_word (<= the bound): few corrections.
    assert k <= int(np.ceil(np.log(1e-9) / np.log(rho_scale))) + 1


def test_step_gives_way_when_the_word_lines_are_strongly_coupled():
    rng = np.random.default_rng(4)
    m, n = 3, 40
    s = rng.uniform(0.5, 1.0, (m, n)) * 5.0 / linestep.word_kernel_norm(n)   # rho ~ 4
    R = rng.normal(size=(m, n))
    dv, u, winv = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    assert linestep.step(R, s, 1.0, winv, True, 1.0, 1e-12, 30, dv, u, np.empty(n)) == -1


def test_word_kernel_norm_is_the_largest_eigenvalue():
    for n in (1, 2, 7, 50):
        W = np.minimum.outer(np.arange(n), np.arange(n)) + 1.0
        assert linestep.word_kernel_norm(n) == pytest.approx(np.linalg.eigvalsh(W).max(), rel=1e-12)


@pytest.mark.parametrize("pf", [False, True])
def test_word_coupling_bound_holds_at_the_solution(pf):
    rng = np.random.default_rng(5)
    m, n, r_word, r_bit = 12, 9, 3.0, 1.0
    V = rng.uniform(0.0, 0.5, (3, m))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (m, n)) * 50
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64)) if pf else None
    c, K, is_pf = solve.device_arrays(G, devices)
    bound = linestep.word_coupling_bound(V, c, K, is_pf, r_word)
    v, report = solve.solve(V, G, devices, r_word, r_bit, 1e-12)
    assert report.converged
    A_word = _operator(m, n, r_word, 0.0)
    for e in range(V.shape[0]):
        if pf:
            from memnp.kernels.device_law import pf_current_slope_array
            s = pf_current_slope_array(v[e], *devices)[1]
        else:
            s = G
        sq = np.sqrt(s.ravel())
        rho = np.linalg.eigvalsh(sq[:, None] * A_word * sq[None, :]).max()
        assert 0 < rho <= bound


def test_auto_takes_line_steps_on_weak_coupling_and_cg_on_strong():
    rng = np.random.default_rng(6)
    V = rng.uniform(0.0, 0.5, (2, 40))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (40, 8))
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    _, weak = solve.solve(V, G, devices, 1.0, 1.0, 1e-10)
    assert weak.converged and weak.method.startswith("Newton, line steps (")
    strong_devices = (devices[0] * 3e4, devices[1])
    _, strong = solve.solve(V, G, strong_devices, 1.0, 1.0, 1e-10)
    assert strong.converged and strong.method.startswith("Newton-CG")
    # Forced line steps on the strong case give way to CG and still meet the tolerance.
    v, forced = solve.solve(V, G, strong_devices, 1.0, 1.0, 1e-10, method="line")
    assert forced.converged and forced.max_residual <= 1e-10
    ref = reference.solve(V, G, strong_devices, 1.0, 1.0, tol=1e-12)
    I = solve.currents(v, *solve.device_arrays(G, strong_devices))[1]
    np.testing.assert_allclose(I, ref["I"], rtol=1e-8)
    # Bit lines without resistance: the word lines are the preconditioned direction, CG steps.
    _, word = solve.solve(V, G, devices, 1.0, 0.0, 1e-10)
    assert word.converged and word.method.startswith("Newton-CG")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_line_and_cg_steps_agree_on_an_mnist_sized_tile(dtype):
    rng = np.random.default_rng(7)
    V = 0.5 * rng.uniform(0, 1, (3, 128)).astype(dtype)
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (128, 50))
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    tol = solve.TOLERANCE[np.dtype(dtype)]
    out = {}
    for method in ("cg", "line"):
        _, report, I = solve.solve_with_currents(V, G, devices, 1.0, 1.0, tol, method=method)
        assert np.all(report.status == CONVERGED) and report.max_residual <= tol
        out[method] = I
    assert np.abs(out["cg"] - out["line"]).max() <= 10 * tol * np.abs(out["cg"]).max()


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        solve.solve(np.zeros((1, 2)), np.ones((2, 2)) * 1e-6, None, 1.0, 1.0, 1e-10, method="gmres")


def test_results_do_not_depend_on_the_thread_count():
    # Work arrays are reused per chunk of examples, and the VJP's sums run in fixed chunks.
    import numba

    from memnp.circuit import adjoint
    rng = np.random.default_rng(8)
    V = rng.uniform(0.0, 0.5, (11, 30))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (30, 7))
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    grad_I = rng.normal(size=(11, 7))
    arrays = solve.device_arrays(G, devices)
    before = numba.get_num_threads()
    out = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            v, _, I = solve.solve_with_currents(V, G, devices, 1.0, 2.0, 1e-10)
            grad_V, (g_c, g_d), _ = adjoint.vjp(v, V, *arrays, 1.0, 2.0, grad_I, 1e-11)
            out.append((v, I, grad_V, g_c, g_d))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(out[0], out[-1]):
        np.testing.assert_array_equal(a, b)
