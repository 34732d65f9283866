"""The CUDA line-resistance solver and adjoint against the cpu ones (tiny shapes: the tests run
under Numba's CUDA simulator unless NUMBA_ENABLE_CUDASIM=0 on a GPU machine)."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
numba_cuda_api = pytest.importorskip("numba.cuda")

from memnp.circuit import cuda as cc  # noqa: E402
from memnp.data.presets import preset_stage  # noqa: E402
from memnp.nonidealities import LineResistance  # noqa: E402

if not cc.SIMULATOR and not numba_cuda_api.is_available():
    pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU", allow_module_level=True)

HIGH = preset_stage("siox-high")


@pytest.mark.parametrize("pf, r", [(False, (1.0, 2.0)), (True, (1.0, 2.0)), (True, (0.0, 3.0)),
                                   (False, (200.0, 0.0))], ids=["linear", "PF", "PF-bit", "linear-word"])
def test_cuda_matches_cpu(pf, r):
    rng = np.random.default_rng(0)
    p, m, n = 2, 3, 2
    V = rng.uniform(-0.5, 0.5, (p, m))
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (m, n)) * 300.0       # strong enough coupling to matter
    devices = HIGH.nonpreserving.device_parameters(G, HIGH.nonpreserving.sample(G.shape, rng, np.float64))
    devices = (devices[0] * 300.0, devices[1]) if pf else None
    grad_I = rng.normal(size=(p, n))
    lr = LineResistance(*r)
    out = {}
    for backend in ("cpu", "cuda"):
        I, state = lr.currents(V, G, devices, backend)
        grad_V, grad_theta = lr.currents_vjp(state, grad_I)
        out[backend] = (I, grad_V, *(grad_theta if pf else (grad_theta,)), lr.power(state)["total"])
        assert lr.report(state).converged
    I0, _ = LineResistance(0, 0).currents(V, G, devices, "cpu")
    assert np.abs(out["cpu"][0] - I0).max() > 1e-4 * np.abs(I0).max()
    for a, b in zip(out["cuda"], out["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("pf", [False, True])
def test_cuda_adjoint_checks_its_residual_and_falls_back_to_the_cpu(pf):
    """Every example's residual is checked as the cpu adjoint's; one that misses the check (here a
    CG capped at one iteration) is solved again on the cpu."""
    from memnp.circuit import adjoint
    low = preset_stage("siox-low")
    for r, max_cg, where in ((10.0, 5000, "CG (cuda)"),
                             (1e4, 1, "CG (cuda), 2 of 2 examples again on the cpu")):
        rng = np.random.default_rng(3)
        p, m, n = 2, 4, 3
        V = rng.uniform(0.0, 0.5, (p, m))
        G = rng.uniform(low.G_off, low.G_on, (m, n))
        pf_law = low.nonpreserving
        devices = (pf_law.device_parameters(G, pf_law.sample(G.shape, rng, np.float64)) if pf
                   else None)
        grad_I = rng.normal(size=(p, n))
        v, report, arrays = cc.solve(V, G, devices, r, r, 1e-10)
        assert report.converged
        want_V, want_theta, _ = adjoint.vjp(v, V, *arrays, r, r, grad_I, 1e-11)
        grad_V, theta, vjp_report = cc.vjp(v, V, *arrays, r, r, grad_I, 1e-11, max_cg=max_cg)
        assert vjp_report.converged and vjp_report.method.endswith(where)
        assert np.all(vjp_report.residual <= 1e-11)
        for a, b in zip((grad_V, *(theta if pf else (theta,))),
                        (want_V, *(want_theta if pf else (want_theta,)))):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * np.abs(b).max())
