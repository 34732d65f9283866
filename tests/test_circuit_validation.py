"""LineResistance against programs nobody here wrote: badcrossbar (linear devices) and ngspice
(linear and PF devices). Each test skips cleanly where its program is missing."""
import logging

import numpy as np
import pytest

import spice
from memnp.data.presets import preset_stage
from memnp.nonidealities import LineResistance

HIGH, LOW = preset_stage("siox-high"), preset_stage("siox-low")


def _case(seed, p, m, n, stage):
    rng = np.random.default_rng(seed)
    V = rng.uniform(-0.5, 0.5, (p, m))
    G = rng.uniform(stage.G_off, stage.G_on, (m, n))
    pf = stage.nonpreserving
    return V, G, pf.device_parameters(G, pf.sample(G.shape, rng, np.float64))


def _relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("shape", [(3, 1, 1), (2, 1, 4), (2, 5, 1), (3, 6, 4), (2, 20, 12)])
@pytest.mark.parametrize("r", [(1.0, 1.0), (0.5, 3.0), (0.0, 2.0), (2.0, 0.0)])
@pytest.mark.parametrize("stage", [HIGH, LOW], ids=["high-R", "low-R"])
def test_badcrossbar_linear(shape, r, stage):
    badcrossbar = pytest.importorskip("badcrossbar")
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)
    V, G, _ = _case(0, *shape, stage)
    theirs = badcrossbar.compute(V.T, 1.0 / G, r_i_word_line=r[0], r_i_bit_line=r[1],
                                 node_voltages=False, all_currents=False).currents.output
    for backend in ("cpu", "numpy") if shape[1] * shape[2] <= 200 else ("cpu",):
        I, state = LineResistance(*r).currents(V, G, None, backend)
        assert state.report.converged
        assert _relative(I, theirs) < 1e-7


@pytest.mark.skipif(spice.NGSPICE is None, reason="ngspice is not installed")
@pytest.mark.parametrize("shape", [(2, 1, 1), (1, 1, 3), (1, 4, 1), (2, 5, 4)])
@pytest.mark.parametrize("r", [(1.0, 2.0), (50.0, 20.0)])
@pytest.mark.parametrize("pf", [False, True], ids=["linear", "PF"])
@pytest.mark.parametrize("stage", [HIGH, LOW], ids=["high-R", "low-R"])
def test_ngspice(shape, r, pf, stage):
    V, G, devices = _case(1, *shape, stage)
    devices = devices if pf else None
    theirs = spice.currents(V, G, *r, devices)
    for backend in ("cpu", "numpy"):
        I, state = LineResistance(*r).currents(V, G, devices, backend)
        assert state.report.converged
        assert _relative(I, theirs) < (1e-6 if pf else 1e-7)
    # Where the wires matter (coupling r G (m + n) above 1e-3), the currents without them differ.
    if max(r) * stage.G_on * (shape[1] + shape[2]) > 1e-3:
        I0, _ = LineResistance(0.0, 0.0).currents(V, G, devices, "cpu")
        assert _relative(I0, theirs) > 1e-5


@pytest.mark.skipif(spice.NGSPICE is None, reason="ngspice is not installed")
def test_ngspice_mnist_like_tile():
    # A 16 x 10 tile of high-R PF devices, inputs in [0, k_V] with a bias row, r = 1 ohm.
    rng = np.random.default_rng(3)
    m, n = 16, 10
    G = rng.uniform(HIGH.G_off, HIGH.G_on, (m, n))
    V = 0.5 * np.concatenate([rng.uniform(0, 1, (1, m - 1)), np.ones((1, 1))], axis=1)
    pf = HIGH.nonpreserving
    devices = pf.device_parameters(G, pf.sample(G.shape, rng, np.float64))
    I, state = LineResistance(1.0, 1.0).currents(V, G, devices, "cpu")
    assert _relative(I, spice.currents(V, G, 1.0, 1.0, devices)) < 1e-6
