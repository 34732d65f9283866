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
