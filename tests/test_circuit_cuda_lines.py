"""The CUDA line-resistance solver's two kinds of Newton step (line steps and CG steps) and its
adjoint, against the cpu solver and the dense reference; its choice of method and its
convergence failures as the cpu's. Small arrays: the tests run under Numba's CUDA simulator
unless NUMBA_ENABLE_CUDASIM=0 on a GPU machine."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
numba_cuda_api = pytest.importorskip("numba.cuda")

from memnp.circuit import ConvergenceError, adjoint, reference, solve  # noqa: E402
from memnp.circuit import cuda as cc  # noqa: E402
from memnp.data.presets import preset_stage  # noqa: E402
from memnp.nonidealities import LineResistance  # noqa: E402

if not cc.SIMULATOR and not numba_cuda_api.is_available():
    pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU", allow_module_level=True)

HIGH = preset_stage("siox-high")
PF = HIGH.nonpreserving
R_W, R_B = 1.0, 2.0                      # ohm per segment (r_bit != 1: g = 1 / r_bit is not g^2)


def _case(m, n, scale, seed=0, p=2):
    """V (p, m), G (m, n), PF devices (c scaled by ``scale``) and dL/dI (p, n)."""
    rng = np.random.default_rng(seed)
    V = rng.uniform(0.0, 0.5, (p, m))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (m, n)) * scale
    c, d_eps = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    return V, G, (c, d_eps), rng.normal(size=(p, n))


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("method", ["line", "cg"])
@pytest.mark.parametrize("pf", [False, True], ids=["linear", "PF"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_steps_match_cpu_and_reference(method, pf, dtype):
    # 12 x 4 tall array, coupling strong enough for word-line corrections in every line step.
    V, G, devices, grad_I = _case(12, 4, 1000.0)
    V = V.astype(dtype)
    devices = devices if pf else None
    tol = solve.TOLERANCE[np.dtype(dtype)]
    adj_tol = tol if dtype == np.float32 else 0.1 * tol        # as circuit.dispatch
    assert solve.resolve_method("auto", V, *solve.device_arrays(G, devices), R_W, R_B) == "line"
    v, report, arrays = cc.solve(V, G, devices, R_W, R_B, tol, method=method)
    assert report.converged and report.max_residual <= tol
    steps = "Newton, line steps (" if method == "line" else "Newton-CG"
    assert report.method.startswith(steps) and report.method.endswith("(cuda)")
    v_cpu, report_cpu, I_cpu = solve.solve_with_currents(V, G, devices, R_W, R_B, tol, method=method)
    if method == "line":                # the same algorithm: the same steps and corrections
        np.testing.assert_array_equal(report.iterations, report_cpu.iterations)
        np.testing.assert_array_equal(report.inner_iterations, report_cpu.inner_iterations)
        assert np.all(report.inner_iterations >= report.iterations)     # corrections were made
    I = solve.currents(v, *arrays)[1]
    ref = reference.solve(V.astype(np.float64), G, devices, R_W, R_B, tol=1e-13)
    I0, _ = LineResistance(0, 0).currents(V.astype(np.float64), G, devices, "cpu")
    assert _rel(ref["I"], I0) > 1e-3                     # the wires matter
    scale = 10.0 * tol
    assert _rel(I, ref["I"]) <= scale and _rel(I, I_cpu) <= scale
    grad_V, theta = cc.vjp(v, V, *arrays, R_W, R_B, grad_I, adj_tol, method=method)[:2]
    grad_V_cpu, theta_cpu, _ = adjoint.vjp(v_cpu, V, *arrays, R_W, R_B, grad_I, adj_tol,
                                           method=method)
    grad_V_ref, theta_ref = reference.vjp(ref, grad_I)
    got = (grad_V, *(theta if pf else (theta,)))
    cpu = (grad_V_cpu, *(theta_cpu if pf else (theta_cpu,)))
    want = (grad_V_ref, *(theta_ref if pf else (theta_ref,)))
    for a, b, c in zip(got, cpu, want):
        assert _rel(a, c) <= 100 * tol and _rel(a, b) <= 100 * tol


def test_cuda_auto_takes_line_steps_through_line_resistance():
    V, G, devices, grad_I = _case(12, 4, 1000.0, seed=1)
    lr = LineResistance(R_W, R_B)
    out = {}
    for backend in ("cpu", "cuda"):
        I, state = lr.currents(V, G, devices, backend)
        assert state.report.converged
        assert state.report.method.startswith("Newton, line steps (")
        grad_V, (grad_c, grad_d) = lr.currents_vjp(state, grad_I)
        out[backend] = (I, grad_V, grad_c, grad_d)
    for a, b in zip(out["cuda"], out["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())


def test_cuda_line_steps_give_way_to_cg_on_strong_word_coupling():
    # 8 x 8, word-line coupling bound ~ 13: auto takes CG steps; forced line steps give way to CG
    # (their corrections stop contracting) and still meet the tolerance.
    V, G, (c, d_eps), _ = _case(8, 8, 1.0)
    devices = (c * 3e4, d_eps)
    assert solve.resolve_method("auto", V, *solve.device_arrays(G, devices), R_W, R_B) == "cg"
    v, report, arrays = cc.solve(V, G, devices, R_W, R_B, 1e-10, method="line")
    assert report.converged and report.max_residual <= 1e-10
    assert report.method == "Newton-CG on the device voltages (cuda)"
    ref = reference.solve(V, G, devices, R_W, R_B, tol=1e-13)
    assert _rel(solve.currents(v, *arrays)[1], ref["I"]) <= 1e-9


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")    # the simulator's numpy
def test_cuda_reports_convergence_failure_as_the_cpu(monkeypatch):
    lr = LineResistance(2.0, 3.0)
    rng = np.random.default_rng(8)
    V = rng.uniform(-0.5, 0.5, (2, 12))
    G = rng.uniform(1e-3, 3e-3, (12, 9))                     # low-resistance: strong coupling
    c, d_eps = PF.device_parameters(G, PF.sample(G.shape, rng, np.float64))
    devices = (c * 300.0, d_eps)
    monkeypatch.setattr(solve, "MAX_NEWTON", 1)              # read by both backends at the call
    for backend in ("cpu", "cuda"):
        with pytest.raises(ConvergenceError, match=r"12 x 9 array with r_word=2 ohm, r_bit=3 ohm.*"
                                                   r"MAX_ITER after 1 Newton iterations, relative "
                                                   r"residual .* against the tolerance 1e-10"):
            lr.currents(V, G, devices, backend)
    # Overflowing devices: NON_FINITE, with the same report and the same message as the cpu's.
    V, G, devices, _ = _case(6, 4, 1.0)
    V = np.full_like(V, 1e4)
    messages, reports = [], []
    for backend in ("cpu", "cuda"):
        with pytest.raises(ConvergenceError, match="NON_FINITE") as info:
            lr.currents(V, G, devices, backend)
        messages.append(str(info.value))
        reports.append(cc.solve(V, G, devices, 2.0, 3.0, 1e-10)[1] if backend == "cuda"
                       else solve.solve(V, G, devices, 2.0, 3.0, 1e-10)[1])
    assert messages[0] == messages[1] and "6 x 4 array with r_word=2 ohm, r_bit=3 ohm" in messages[0]
    for field in ("status", "iterations", "inner_iterations", "residual", "step"):
        np.testing.assert_array_equal(getattr(reports[1], field), getattr(reports[0], field))
    np.testing.assert_allclose(reports[1].residual_A, reports[0].residual_A, rtol=1e-12)
