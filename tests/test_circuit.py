"""memnp.circuit: stamps, the dense reference, the fast solver and its adjoint, LineResistance."""
import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.circuit import CONVERGED, ConvergenceError, Network, adjoint, assemble, reference, solve
from memnp.circuit.network import line_voltages
from memnp.crossbar import CrossbarPass, Stage
from memnp.data.presets import preset_stage
from memnp.kernels import reference as plain
from memnp.kernels.device_law import pf_current_slope_array
from memnp.nonidealities import (IVNonlinearityPF, LineResistance, StuckAtGOff, nonideality_from_dict,
                                 nonideality_from_json)

HIGH = preset_stage("siox-high")
PF = HIGH.nonpreserving
RS = [(1.0, 2.0), (0.0, 3.0), (2.0, 0.0)]


def _case(seed, p, m, n, low=False):
    """V (p, m), G (m, n) and PF devices; ``low``: strong coupling (G ~ 1e-3 S)."""
    rng = np.random.default_rng(seed)
    V = rng.uniform(-0.5, 0.5, (p, m))
    G = rng.uniform(1e-3, 3e-3, (m, n)) if low else rng.uniform(HIGH.G_off, HIGH.G_on, (m, n))
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    if low:
        devices = (devices[0] * 300.0, devices[1])
    return V, G, devices


def _currents(V, G, devices, r_word, r_bit, tol=1e-12, method="auto"):
    """(device currents (p, m, n), report) of the fast solver."""
    v, report = solve.solve(V, G, devices, r_word, r_bit, tol, method=method)
    return solve.currents(v, *solve.device_arrays(G, devices))[0], report


# -- stamps -------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, n", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_jacobian_stamps_entry_by_entry(m, n):
    rw, rb = 2.0, 4.0
    gw, gb = 1 / rw, 1 / rb
    s = np.arange(1.0, m * n + 1).reshape(m, n) / 1024   # exact binary fractions: sums exact
    net = Network(m, n, rw, rb)
    J = assemble.jacobian(net, s).toarray()
    k = m * n
    expected = np.zeros((2 * k, 2 * k))
    for i in range(m):
        for j in range(n):
            w, b = i * n + j, k + i * n + j
            expected[w, w] += gw + s[i, j]              # segment from the left (driver at j = 0)
            if j + 1 < n:                               # segment to the right neighbour
                expected[w, w] += gw
                expected[w, w + 1] -= gw
                expected[w + 1, w] -= gw
            expected[b, b] += gb + s[i, j]              # segment below (amplifier at i = m - 1)
            if i + 1 < m:                               # segment to the row below: node i + 1's top
                expected[b + n, b + n] += gb
                expected[b, b + n] -= gb
                expected[b + n, b] -= gb
            expected[w, b] -= s[i, j]
            expected[b, w] -= s[i, j]
    np.testing.assert_array_equal(J, expected)
    # One side at zero resistance: its nodes are known, only the device diagonal stays.
    J_bit = assemble.jacobian(Network(m, n, 0.0, rb), s).toarray()
    np.testing.assert_array_equal(J_bit, expected[k:, k:])
    J_word = assemble.jacobian(Network(m, n, rw, 0.0), s).toarray()
    np.testing.assert_array_equal(J_word, expected[:k, :k])
    assert Network(m, n, 0.0, 0.0).n_unknowns == 0


def test_one_device_closed_form():
    # V -- r_w -- device G -- r_b -- ground: I = V / (r_w + 1/G + r_b).
    V, G = np.array([[0.3], [-0.2]]), np.array([[2e-3]])
    state = reference.solve(V, G, None, 5.0, 7.0)
    np.testing.assert_allclose(state["I"][:, 0], V[:, 0] / (5.0 + 1 / 2e-3 + 7.0), rtol=1e-14)
    x = _currents(V, G, None, 5.0, 7.0, method="cg")[0]
    np.testing.assert_allclose(x.sum(axis=1)[:, 0], V[:, 0] / (5.0 + 1 / 2e-3 + 7.0), rtol=1e-14)
    # The line step solves the word line by corrections, to its tolerance (1e-12 asked).
    x = _currents(V, G, None, 5.0, 7.0, method="line")[0]
    np.testing.assert_allclose(x.sum(axis=1)[:, 0], V[:, 0] / (5.0 + 1 / 2e-3 + 7.0), rtol=1e-12)


def test_driver_and_residual_at_the_reference_solution():
    V, G, _ = _case(0, 2, 3, 4, low=True)
    state = reference.solve(V, G, None, 1.0, 2.0)
    net = state["net"]
    y = assemble.unknowns(net, state["U"], state["W"])
    F = assemble.residual(net, y, V, state["I_d"])
    assert np.abs(F).max() < 1e-14
    # The current-formulation voltages agree with the nodal solution.
    U, W, _, _ = line_voltages(net, state["I_d"], V)
    np.testing.assert_allclose(U, state["U"], atol=1e-14)
    np.testing.assert_allclose(W, state["W"], atol=1e-14)


# -- fast solver against the dense reference -------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 1, 1), (2, 1, 3), (2, 4, 1), (3, 5, 4), (2, 9, 6)])
@pytest.mark.parametrize("r", RS)
@pytest.mark.parametrize("pf", [False, True])
@pytest.mark.parametrize("low", [False, True])
@pytest.mark.parametrize("method", ["cg", "line"])
def test_solver_matches_reference(shape, r, pf, low, method):
    V, G, devices = _case(1, *shape, low=low)
    devices = devices if pf else None
    ref = reference.solve(V, G, devices, *r)
    x, report = _currents(V, G, devices, *r, 1e-11, method=method)
    assert np.all(report.status == CONVERGED) and np.all(ref["report"].status == CONVERGED)
    assert report.residual.max() <= 1e-11
    np.testing.assert_allclose(x, ref["I_d"], rtol=1e-9, atol=1e-9 * np.abs(ref["I_d"]).max())
    np.testing.assert_allclose(x.sum(axis=1), ref["I"], rtol=1e-9, atol=1e-10 * np.abs(ref["I"]).max())


@pytest.mark.parametrize("pf", [False, True])
def test_zero_resistance_equals_plain_currents(pf):
    V, G, devices = _case(2, 4, 6, 5)
    lr = LineResistance(0.0, 0.0)
    for backend in ("numpy", "cpu"):
        I, state = lr.currents(V, G, devices if pf else None, backend)
        expected = plain.pf_currents(V, *devices) if pf else V @ G
        np.testing.assert_array_equal(I, expected) if backend == "numpy" else \
            np.testing.assert_allclose(I, expected, rtol=1e-12)
        assert lr.power(state)["wires"] == 0.0
    # r -> 0: the solve tends to the plain currents (relative change ~ r G m).
    for r in (1e-3, 1e-6):
        x, _ = _currents(V, G, devices if pf else None, r, r)
        assert relative_error(x.sum(axis=1), expected) < 1e3 * r * G.max() * 6 + 1e-12


def test_insulating_devices_and_lines():
    V, G, devices = _case(3, 2, 4, 3)
    G = G.copy()
    G[1] = 0.0                      # a row of insulating devices
    G[:, 2] = 0.0                   # a column
    for r in RS:
        ref = reference.solve(V, G, None, *r)
        x, report = _currents(V, G, None, *r)
        assert np.all(report.status == CONVERGED)
        assert np.all(x[:, 1] == 0) and np.all(x[:, :, 2] == 0)
        np.testing.assert_allclose(x.sum(axis=1), ref["I"], rtol=1e-10, atol=1e-22)
    # All devices insulating: no current, converged at once.
    x, report = _currents(V, np.zeros_like(G), None, 1.0, 1.0)
    assert np.all(x == 0) and np.all(report.status == CONVERGED) and np.all(report.iterations == 0)


# -- adjoint --------------------------------------------------------------------------------------

@pytest.mark.parametrize("r", RS)
@pytest.mark.parametrize("pf", [False, True])
@pytest.mark.parametrize("low", [False, True])
@pytest.mark.parametrize("method", ["auto", "cg", "line"])
def test_adjoint_matches_reference_transposed_solve(r, pf, low, method):
    V, G, devices = _case(4, 3, 5, 4, low=low)
    devices = devices if pf else None
    grad_I = np.random.default_rng(5).normal(size=(3, 4))
    ref = reference.solve(V, G, devices, *r)
    ref_V, ref_theta = reference.vjp(ref, grad_I)
    v, _ = solve.solve(V, G, devices, *r, 1e-12)
    c, K, is_pf = solve.device_arrays(G, devices)
    grad_V, grad_theta, _ = adjoint.vjp(v, V, c, K, is_pf, *r, grad_I, 1e-12, method=method)
    assert relative_error(grad_V, ref_V) < 1e-9
    for got, want in zip(*((grad_theta, ref_theta) if pf else ((grad_theta,), (ref_theta,)))):
        assert relative_error(got, want) < 1e-9


@pytest.mark.parametrize("pf", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_line_resistance_vjp_against_finite_differences(pf, backend):
    V, G, devices = _case(6, 2, 4, 3, low=True)
    lr = LineResistance(1.5, 2.5)
    w = np.random.default_rng(7).normal(size=(2, 3))
    params = {"V": V.copy(), "G": G.copy(), "c": devices[0].copy(), "d_eps": devices[1].copy()}

    def loss():
        dev = (params["c"], params["d_eps"]) if pf else None
        I, _ = lr.currents(params["V"], params["G"], dev, backend)
        return float((I * w).sum())

    I, state = lr.currents(V, G, (devices if pf else None), backend)
    grad_V, grad_theta = lr.currents_vjp(state, w)
    assert relative_error(grad_V, numerical_gradient(loss, params["V"])) < 1e-6
    if pf:
        assert relative_error(grad_theta[0], numerical_gradient(loss, params["c"])) < 1e-6
        assert relative_error(grad_theta[1], numerical_gradient(loss, params["d_eps"], 1e-5)) < 1e-5
    else:
        assert relative_error(grad_theta, numerical_gradient(loss, params["G"])) < 1e-6
    assert lr.currents_vjp(state, w, need_V=False)[0] is None


# -- LineResistance and the crossbar pass ----------------------------------------------------------

def test_line_resistance_object():
    lr = LineResistance(1, 0.5)
    assert lr.label == "LineResistance(r_word=1,r_bit=0.5)"
    assert nonideality_from_json(lr.to_json()) == lr
    assert nonideality_from_dict({"type": "LineResistance", "r_word": 0, "r_bit": 2.0}).r_bit == 2.0
    for bad in (-1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match="r_word"):
            LineResistance(bad, 1.0)
        with pytest.raises(ValueError, match="r_bit"):
            LineResistance(1.0, bad)
    with pytest.raises(ValueError, match="G must"):
        lr.currents(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="G must contain"):
        lr.currents(np.zeros((2, 3)), -np.ones((3, 2)))
    with pytest.raises(ValueError, match="V must contain"):
        lr.currents(np.full((2, 3), np.nan), np.ones((3, 2)))
    with pytest.raises(ValueError, match="d_eps"):
        lr.currents(np.zeros((2, 3)), np.ones((3, 2)), (np.ones((3, 2)), np.zeros((3, 2))))


def test_non_convergence_raises_naming_size_and_r():
    V, G, devices = _case(8, 2, 30, 20, low=True)
    lr = LineResistance(1.0, 1.0)
    _, report = solve.solve(V, G, devices, 1.0, 1.0, 1e-10, max_newton=1)
    assert np.all(report.status != CONVERGED)
    with pytest.raises(ConvergenceError, match=r"30 x 20 array with r_word=1 ohm, r_bit=1 ohm.*residual"):
        report.raise_unless_converged(lr.describe(30, 20))


def test_line_resistance_raises_instead_of_returning_an_unconverged_answer(monkeypatch):
    V, G, devices = _case(8, 2, 12, 9, low=True)
    monkeypatch.setattr(solve, "MAX_NEWTON", 1)
    with pytest.raises(ConvergenceError, match=r"12 x 9 array with r_word=2 ohm, r_bit=3 ohm.*MAX_ITER"):
        LineResistance(2.0, 3.0).currents(V, G, devices, "cpu")
    # A pass takes G inside its stage's range: a stage on the range of the strongly coupled G * 300.
    strong = G * 300
    stage = Stage(float(strong.min()), float(strong.max()), 0.5, (PF, LineResistance(2.0, 3.0)))
    with pytest.raises(ConvergenceError):
        CrossbarPass(stage, "cpu").forward(V, strong, np.random.default_rng(0))


def test_float32_meets_its_tolerance_on_an_mnist_sized_tile():
    rng = np.random.default_rng(13)
    V = 0.5 * rng.uniform(0, 1, (4, 128))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (128, 50))
    devices = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    lr = LineResistance(1.0, 1.0)
    I64, s64 = lr.currents(V, G, devices, "cpu")
    I32, s32 = lr.currents(V.astype(np.float32), G.astype(np.float32),
                           tuple(d.astype(np.float32) for d in devices), "cpu")
    assert I32.dtype == np.float32 and lr.report(s32).max_residual <= 1e-6
    assert lr.report(s64).max_residual <= 1e-10
    assert relative_error(I32, I64) < 1e-5


def test_power_device_plus_wires_is_the_supplied_power():
    V, G, devices = _case(9, 3, 6, 5, low=True)
    lr = LineResistance(1.0, 2.0)
    for dev in (None, devices):
        for backend in ("numpy", "cpu"):
            I, state = lr.currents(V, G, dev, backend)
            power = lr.power(state)
            x = (solve.currents(state.v, *state.arrays)[0] if backend == "cpu"
                 else state.reference["I_d"])
            supplied = float((V * x.sum(axis=2)).sum() / V.shape[0])   # V[i] times its driver current
            assert power["wires"] > 0 and power["device"] > 0
            assert power["total"] == pytest.approx(supplied, rel=1e-10)
            assert power["total"] == pytest.approx(power["device"] + power["wires"], rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stage_and_crossbar_pass_with_wires(dtype):
    lr = LineResistance(1.0, 1.0)
    stages = [Stage(HIGH.G_off, HIGH.G_on, 0.5, (lr,)),
              Stage(HIGH.G_off, HIGH.G_on, 0.5, (PF, lr)),
              Stage(HIGH.G_off, HIGH.G_on, 0.5, (StuckAtGOff(HIGH.G_off, 0.2), PF, lr))]
    for stage in stages:
        assert Stage.from_json(stage.to_json()) == stage and stage.wires == lr
        rng = np.random.default_rng(10)
        G = rng.uniform(HIGH.G_off, HIGH.G_on, (7, 5)).astype(dtype)
        V = rng.uniform(0, 0.5, (3, 7)).astype(dtype)
        out = {}
        for backend in ("numpy", "cpu"):
            crossbar = CrossbarPass(stage, backend)
            I = crossbar.forward(V, G, np.random.default_rng(11))
            grad_V, grad_G = crossbar.backward(np.ones_like(I))
            assert I.dtype == grad_V.dtype == grad_G.dtype == dtype
            out[backend] = (I, grad_V, grad_G, crossbar.power(), crossbar.power_parts())
            assert crossbar.solve_report.converged
        tol = 1e-5 if dtype == np.float32 else 1e-9
        for a, b in zip(out["numpy"][:4], out["cpu"][:4]):
            np.testing.assert_allclose(a, b, rtol=tol)
        # The wires lower the currents of the same draws without them.
        plain_stage = Stage(stage.G_off, stage.G_on, 0.5, stage.nonidealities[:-1])
        I_plain = CrossbarPass(plain_stage, "cpu").forward(V, G, np.random.default_rng(11))
        assert np.all(out["cpu"][0] < I_plain)
        assert out["cpu"][4]["wires"] > 0


def test_stage_accepts_one_line_resistance():
    with pytest.raises(ValueError, match="at most one nonideality per phase"):
        Stage(HIGH.G_off, HIGH.G_on, 0.5, (LineResistance(1, 1), LineResistance(2, 2)))


def test_memristive_dense_reads_through_the_wires():
    from memnp.nn.memristive import MemristiveDense
    from memnp.nn import PassContext as Context

    stage = Stage(HIGH.G_off, HIGH.G_on, 0.5, (PF, LineResistance(1.0, 1.0)))
    layer = MemristiveDense(6, 3, dtype="float64")
    layer.initialize(np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(0, 1, (4, 6))
    x[:, 2] = 0.0                                   # an inactive row still conducts with wires
    ctx = Context(stage=stage, rng=np.random.default_rng(2), draws="all")
    y = layer.forward(x, ctx)
    assert layer._last.rows is None                   # every row read
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.all(np.isfinite(dx)) and abs(dx[:, 2]).max() > 0
    # Compared with the same draws without wires, the outputs differ (slightly: high-R devices).
    ctx2 = Context(stage=Stage(HIGH.G_off, HIGH.G_on, 0.5, (PF,)), rng=np.random.default_rng(2),
                   draws="all")
    y2 = layer.forward(x, ctx2)
    assert 0 < np.abs(y - y2).max() < 0.05 * np.abs(y2).max()


@pytest.mark.parametrize("m, n", [(1, 1), (1, 3), (4, 1), (5, 3)])
@pytest.mark.parametrize("pdir", [1, 2])
def test_line_preconditioner_is_the_exact_inverse_of_its_direction(m, n, pdir):
    from memnp.circuit import precond
    rng = np.random.default_rng(12)
    r_word, r_bit = (0.0, 2.0) if pdir == precond.BIT else (3.0, 0.0)
    s = rng.uniform(0.1, 1.0, (m, n))
    sq, y = np.sqrt(s), rng.normal(size=(m, n))
    # M = I + S^1/2 A S^1/2 column by column, with only this direction's wires.
    M = np.zeros((m * n, m * n))
    out, buf_p, buf_q = np.empty((m, n)), np.empty(n), np.empty(n)
    for k in range(m * n):
        e = np.zeros(m * n)
        e[k] = 1.0
        e = e.reshape(m, n)
        solve.apply_A(sq * e, r_word, r_bit, out, buf_p, buf_q)
        M[:, k] = (e + sq * out).ravel()
    g = 1.0 / (r_bit if pdir == precond.BIT else r_word)
    winv = np.empty((m, n))
    precond.factor(s, g, pdir, winv)
    got = np.empty((m, n))
    precond.apply(y, sq, g, pdir, winv, got)
    np.testing.assert_allclose(got.ravel(), np.linalg.solve(M, y.ravel()), rtol=1e-12, atol=1e-14)
    # With one side of zero resistance the preconditioned CG ends after one iteration.
    assert precond.direction(m, n, r_word, r_bit) == pdir
    # The fused Newton right-hand side and factorisation give the same pivots, S^1/2 and S^1/2 y.
    winv2, sq2, rhs = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    bb = precond.factor_rhs(s, y, True, g, pdir, winv2, sq2, rhs)
    np.testing.assert_allclose(winv2, winv, rtol=1e-14)
    np.testing.assert_allclose(sq2, sq, rtol=1e-15)
    np.testing.assert_allclose(rhs, sq * y, rtol=1e-15)
    assert bb == pytest.approx(np.sum((sq * y) ** 2), rel=1e-12)
    # The fused CG building blocks: P^-1 y with y . P^-1 y and S^1/2 P^-1 y; M p with p.Mp, p.p.
    t = np.empty((m, n))
    dot = precond.apply_dot(y, sq, g, pdir, winv, got, t, True)
    np.testing.assert_allclose(t, sq * got, rtol=1e-14)
    assert dot == pytest.approx(np.dot(y.ravel(), got.ravel()), rel=1e-12)
    from memnp.circuit import lines
    q = np.empty((m, n))
    pq, pp = lines.apply_M(sq * y, y, sq, r_word, r_bit, q, buf_p, buf_q)
    np.testing.assert_allclose(q.ravel(), M @ y.ravel(), rtol=1e-12, atol=1e-14)
    assert pq == pytest.approx(y.ravel() @ M @ y.ravel(), rel=1e-12)
    assert pp == pytest.approx(np.sum(y * y), rel=1e-12)
    b = np.empty((m, n))
    lines.apply_A_scaled(sq, y, b, r_word, r_bit, q, buf_p, buf_q)
    solve.apply_A(sq * y, r_word, r_bit, out, buf_p, buf_q)
    np.testing.assert_allclose(b, sq * y, rtol=1e-15)
    np.testing.assert_allclose(q, out, rtol=1e-14, atol=1e-15)
    # Both directions with resistance: M p = p + S^1/2 A S^1/2 p (A as applied by apply_A).
    solve.apply_A(sq * y, 1.5, 2.5, out, buf_p, buf_q)
    lines.apply_M(sq * y, y, sq, 1.5, 2.5, q, buf_p, buf_q)
    np.testing.assert_allclose(q, y + sq * out, rtol=1e-13, atol=1e-15)


def test_memristive_conv2d_reads_through_the_wires():
    from memnp.nn import PassContext
    from memnp.nn.memristive import MemristiveConv2D

    stage = Stage(HIGH.G_off, HIGH.G_on, 0.5, (LineResistance(2.0, 2.0),))
    layer = MemristiveConv2D(1, 2, (2, 2), dtype="float64")
    layer.initialize(np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 3, 1))
    y = layer.forward(x, PassContext(stage, np.random.default_rng(2), "cpu"))
    assert y.shape == (2, 2, 2, 2)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))
    assert layer.power() > 0


@pytest.mark.parametrize("pf", [False, True])
@pytest.mark.parametrize("r", [(1.5, 2.5), (0.0, 2.0), (3.0, 0.0)])
def test_gradient_with_respect_to_r_against_finite_differences(pf, r):
    V, G, devices = _case(14, 2, 4, 3, low=True)
    devices = devices if pf else None
    w = np.random.default_rng(15).normal(size=(2, 3))
    lr = LineResistance(*r)
    _, state = lr.currents(V, G, devices, "cpu")
    grad_r = lr.r_vjp(state, w)

    def loss(r_word, r_bit):
        return float((reference.solve(V, G, devices, r_word, r_bit)["I"] * w).sum())

    h = 1e-5
    for k, (rw, rb) in enumerate([(h, 0.0), (0.0, h)]):
        if r[k] == 0:                   # one-sided at r = 0
            fd = (loss(r[0] + rw, r[1] + rb) - loss(*r)) / h
            assert grad_r[k] == pytest.approx(fd, rel=1e-3)
        else:
            fd = (loss(r[0] + rw, r[1] + rb) - loss(r[0] - rw, r[1] - rb)) / (2 * h)
            assert grad_r[k] == pytest.approx(fd, rel=1e-6)


def test_preset_records_accept_line_resistance():
    from memnp.data.presets import validate_stage_dict
    stage = Stage(HIGH.G_off, HIGH.G_on, 0.5, (PF, LineResistance(1.0, 0.5)))
    validate_stage_dict(stage.to_dict())
    with pytest.raises(ValueError, match="r_bit"):
        validate_stage_dict({**stage.to_dict(), "nonidealities": [{"type": "LineResistance", "r_word": 1}]})
