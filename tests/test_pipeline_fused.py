"""The fused loops of a combined stage (memnp.kernels.conductance_chain and friends) against the
phases run one by one and against their NumPy references: the same numbers, bit for bit where the
loops promise it."""
import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, Stage
from memnp.kernels import conductance_chain
from memnp.nonidealities import (D2DLognormal, Drift, ReadNoise, StuckAt, StuckAtGOff, StuckDistribution)
from pipeline_stages import G_OFF, G_ON, PF, STAGES

D2D = D2DLognormal(G_OFF, G_ON, 0.25, 0.5)
CHAINS = {
    "all four": (D2D, Drift(0.01, 0.005, 86400.0), StuckAtGOff(G_OFF, 0.1), ReadNoise(0.05)),
    "drift and read noise": (Drift(0.05, 0.02, 3600.0), ReadNoise(0.1)),
    "d2d and stuck kde": (D2D, StuckDistribution((6e-7, 8e-7, 1.5e-6), 0.2)),
    "stuck and read noise": (StuckAt(1e-6, 0.3), ReadNoise(0.02)),
}


def _phase_by_phase(stage, G, draws, grad):
    inputs, out = [], G
    for name, item in stage.conductance_phases:
        inputs.append(out)
        out = item.apply(out, draws[name])
    g = grad
    for (name, item), G_in in zip(reversed(stage.conductance_phases), reversed(inputs)):
        g = item.apply_vjp(G_in, draws[name], g)
    return out, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_conductance_chain_equals_the_phases_one_by_one(rng, name, dtype):
    stage = Stage(G_OFF, G_ON, 0.5, CHAINS[name] + (PF,))
    assert stage.fused_conductances
    G = rng.uniform(G_OFF, G_ON, (37, 23)).astype(dtype)
    # conductances outside [G_off, G_on] too (D2D's sigma is clipped there)
    G[0, :5] = np.array([0.5, 0.9, 1.1, 3.0, 9.0]) * G_OFF
    draws = CrossbarPass(stage).sample(G.shape, rng, dtype)
    grad = rng.normal(size=G.shape).astype(dtype)
    expected, expected_grad = _phase_by_phase(stage, G, draws, grad)
    phases = stage.phases
    got = conductance_chain.apply(phases, G, draws)
    got_grad = conductance_chain.apply_vjp(phases, G, draws, grad)
    assert got.dtype == dtype and got_grad.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_grad, expected_grad)
    if "stuck" in phases:
        mask, values = draws["stuck"]
        read = draws["read_noise"] if "read_noise" in phases else np.ones_like(G)
        assert mask.any() and np.all(got[mask] == (values * read)[mask]) and np.all(got_grad[mask] == 0)
    # the NumPy references (D2D's exp is NumPy's there: a few ulps apart)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(conductance_chain.apply_numpy(phases, G, draws), got, rtol=tol)
    np.testing.assert_allclose(conductance_chain.apply_vjp_numpy(phases, G, draws, grad), got_grad,
                               rtol=tol, atol=tol * np.abs(got_grad).max())


def test_chain_refuses_arrays_it_does_not_take(rng):
    stage = Stage(G_OFF, G_ON, 0.5, CHAINS["all four"])
    G = rng.uniform(G_OFF, G_ON, (6, 5))
    draws = CrossbarPass(stage).sample(G.shape, rng, np.float64)
    assert conductance_chain.apply(stage.phases, G.astype(np.float32), draws) is None
    assert conductance_chain.apply(stage.phases, np.asfortranarray(G), draws) is None
    assert conductance_chain.apply_vjp(stage.phases, G, draws, np.ones((6, 5), np.float32)) is None
    # a CrossbarPass then runs the phases one by one, with the same result
    V = rng.uniform(0, 0.5, (3, 6))
    fused = CrossbarPass(stage, "numpy")
    I = fused.forward(V, G, None, draws=draws)
    gV, gG = fused.backward(np.ones_like(I))
    expected, expected_grad = _phase_by_phase(stage, G, draws, V.T @ np.ones_like(I))
    np.testing.assert_array_equal(fused.read_conductances, expected)
    np.testing.assert_allclose(gG, expected_grad, rtol=1e-14)


def test_which_stages_fuse():
    assert STAGES["smooth"].fused_conductances and STAGES["combined"].fused_conductances
    assert not STAGES["smooth_ideal"].fused_conductances      # ProgrammingNoise: phase by phase
    assert not Stage(G_OFF, G_ON, 0.5, (D2D, PF)).fused_conductances   # paper stage
    assert not Stage(G_OFF, G_ON, 0.5, (ReadNoise(0.1), PF)).fused_conductances   # one phase
