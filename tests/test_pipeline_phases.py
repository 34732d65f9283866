"""The nonideality pipeline's phases (issue 10): exact VJPs against float64 finite differences with
fixed draws, the statistics of the draws, quantisers on their levels with straight-through
gradients, tiles, the call path of LineResistance, and chip-held against per-read draws."""
import math

import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_error
from memnp.crossbar import CrossbarPass, Stage
from memnp.crossbar.tiling import worst_case_current
from memnp.nn import MemristiveDense, PassContext
from memnp.nonidealities import ADC, DAC, Drift, ProgrammingNoise, ReadNoise, StuckAt, StuckAtGOff, Tiles
from pipeline_stages import G_OFF, G_ON, PF, STAGES, LineResistance, crossbar_inputs


@pytest.mark.parametrize("item", [ProgrammingNoise(0.1), ProgrammingNoise(0.05, 1e-7), Drift(0.05, 0.02, 86400.0),
                                  Drift(0.1, 0.0, 3600.0, 10.0), ReadNoise(0.05)])
def test_conductance_phase_vjp(rng, item):
    G = rng.uniform(G_OFF, G_ON, (5, 4))
    draws = item.sample(G.shape, rng)
    R = rng.normal(size=G.shape)
    loss = lambda: float(np.sum(R * item.apply(G, draws)) / G_ON)  # noqa: E731
    analytic = item.apply_vjp(G, draws, R / G_ON)
    assert relative_error(analytic, numerical_gradient(loss, G, 1e-7)) < 1e-8


def test_programming_noise_values_and_floor(rng):
    G = rng.uniform(G_OFF, G_ON, (50, 40))
    item = ProgrammingNoise(0.1, 2e-8)
    eps = item.sample(G.shape, np.random.default_rng(1))
    np.testing.assert_allclose(item.apply(G, eps), G + (0.1 * G + 2e-8) * eps, rtol=1e-15)
    big = ProgrammingNoise(2.0)
    eps = np.full(G.shape, -1.0)
    np.testing.assert_array_equal(big.apply(G, eps), 1e-3 * G)   # clipped at the floor
    np.testing.assert_allclose(big.apply_vjp(G, eps, np.ones_like(G)), 1e-3)


@pytest.mark.parametrize("stage_name", ["smooth", "smooth_ideal"])
def test_crossbar_pass_gradients_under_every_differentiable_phase(rng, stage_name):
    stage = STAGES[stage_name]
    V, G = crossbar_inputs(rng, m=7, n=6)
    crossbar = CrossbarPass(stage, "numpy")
    I = crossbar.forward(V, G, rng)
    draws = crossbar.draws
    R = rng.normal(size=I.shape) / np.abs(I).max()
    grad_V, grad_G = crossbar.backward(R)
    replay = CrossbarPass(stage, "numpy")
    loss = lambda: float(np.sum(R * replay.forward(V, G, None, draws=draws)))  # noqa: E731
    assert relative_error(grad_V, numerical_gradient(loss, V, 1e-7)) < 1e-6
    assert relative_error(grad_G, numerical_gradient(loss, G, 1e-7)) < 1e-6
    # stuck devices get no gradient
    assert np.all(grad_G[draws["stuck"][0]] == 0) and draws["stuck"][0].any()


@pytest.mark.parametrize("with_pf", [False, True])
def test_tiles_without_adc_leave_outputs_gradients_and_power_unchanged(rng, with_pf):
    V, G = crossbar_inputs(rng, p=4, m=11, n=9)
    base = (PF,) if with_pf else ()
    plain, tiled = Stage(G_OFF, G_ON, 0.5, base), Stage(G_OFF, G_ON, 0.5, base + (Tiles(4, 2),))
    R = rng.normal(size=(4, 9))
    out = []
    for stage in (plain, tiled):
        crossbar = CrossbarPass(stage, "numpy")
        I = crossbar.forward(V, G, np.random.default_rng(3))
        out.append((I, *crossbar.backward(R), crossbar.power()))
    for a, b in zip(out[0], out[1]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


@pytest.mark.parametrize("zeros", [0.0, 0.6])
def test_tiles_with_the_cpu_backend_in_float32(rng, zeros):
    """The stacked read of PF arrays on the cpu backend (dense kernels, and the zero-skipping
    ones when most inputs are 0) against the untiled read."""
    V, G = (a.astype(np.float32) for a in crossbar_inputs(rng, p=16, m=100, n=40))
    V[rng.random(V.shape) < zeros] = 0
    plain, tiled = Stage(G_OFF, G_ON, 0.5, (PF,)), Stage(G_OFF, G_ON, 0.5, (PF, Tiles(32, 16)))
    R = rng.normal(size=(16, 40)).astype(np.float32)
    out = []
    for stage in (plain, tiled):
        crossbar = CrossbarPass(stage, "cpu")
        I = crossbar.forward(V, G, np.random.default_rng(3))
        out.append((I, *crossbar.backward(R)))
    for a, b in zip(*out):
        assert b.dtype == np.float32 and relative_error(b, a) < 1e-6


def test_dac_levels_and_straight_through_gradient(rng):
    dac = DAC(3)
    V = 0.5 * rng.random((20, 30))
    Vq = dac.apply(V, 0.5)
    levels = np.arange(8) * (0.5 / 7)
    assert np.isin(Vq, levels).all()                       # exactly on the levels
    assert np.abs(Vq - V).max() <= 0.5 / 14 + 1e-15         # the nearest level
    grad = rng.normal(size=V.shape)
    assert dac.apply_vjp(V, 0.5, grad) is grad
    for dtype in (np.float32, np.float64):
        x = rng.random((7, 9)).astype(dtype)
        Vq = DAC(6).apply(0.5 * x, 0.5)
        assert Vq.dtype == dtype and np.isin(Vq, np.arange(64, dtype=dtype) * dtype(0.5 / 63)).all()


def test_adc_levels_clipping_and_straight_through_gradient(rng):
    adc = ADC(4)
    I = rng.uniform(-1e-6, 12e-6, (10, 8))
    Iq = adc.apply(I, 10e-6)
    assert np.isin(Iq, np.arange(16) * (10e-6 / 15)).all()
    assert Iq.min() == 0 and Iq.max() == 10e-6
    inside = (I >= 0) & (I <= 10e-6)
    assert np.abs(Iq - I)[inside].max() <= 10e-6 / 30 * (1 + 1e-12)
    grad = rng.normal(size=I.shape)
    np.testing.assert_array_equal(adc.apply_vjp(I, 10e-6, grad), np.where(inside, grad, 0))


def test_worst_case_full_scale_is_every_device_on_at_k_V():
    assert worst_case_current(128, 0.5, G_ON) == pytest.approx(128 * 0.5 * G_ON, rel=1e-15)
    # the crossbar it describes reaches exactly the top level
    stage = Stage(G_OFF, G_ON, 0.5, (ADC(5),))
    I = CrossbarPass(stage, "numpy").forward(np.full((2, 6), 0.5), np.full((6, 3), G_ON), None)
    np.testing.assert_allclose(I, 6 * 0.5 * G_ON, rtol=1e-15)
    # PF: the median device (zero residuals) at G_on and k_V, times the rows
    from memnp.kernels import reference
    c, d_eps = PF.device_parameters_numpy(np.array([[G_ON]]), np.zeros((2, 1, 1)))
    one = reference.pf_device_currents(np.array([[0.5]]), c, d_eps)[0, 0, 0]
    assert worst_case_current(7, 0.5, G_ON, PF) == pytest.approx(7 * one, rel=1e-14)


def test_each_array_has_its_own_adc(rng):
    """Under Tiles the ADC of every array quantises that array's partial currents against that
    array's full scale; the digital sum adds them."""
    V, G = crossbar_inputs(rng, p=3, m=10, n=5)
    adc, tiles = ADC(3), Tiles(4, 3)
    stage = Stage(G_OFF, G_ON, 0.5, (adc, tiles))
    I = CrossbarPass(stage, "numpy").forward(V, G, None)
    expected = np.zeros((3, 5))
    for r0, r1 in ((0, 4), (4, 8), (8, 10)):
        for c0, c1 in ((0, 3), (3, 5)):
            fs = (r1 - r0) * 0.5 * G_ON
            expected[:, c0:c1] += adc.apply(V[:, r0:r1] @ G[r0:r1, c0:c1], fs)
    np.testing.assert_allclose(I, expected, rtol=1e-14)
    # one array: the currents themselves are on the levels
    single = CrossbarPass(Stage(G_OFF, G_ON, 0.5, (adc,)), "numpy").forward(V, G, None)
    assert np.isin(single, np.arange(8) * (10 * 0.5 * G_ON / 7)).all()


def test_adc_gradient_is_straight_through_per_array(rng):
    V, G = crossbar_inputs(rng, p=3, m=6, n=4)
    stage = Stage(G_OFF, G_ON, 0.5, (ADC(4, 1.2e-6), Tiles(3, 2)))
    crossbar = CrossbarPass(stage, "numpy")
    crossbar.forward(V, G, None)
    R = rng.normal(size=(3, 4))
    grad_V, grad_G = crossbar.backward(R)
    exp_V, exp_G = np.zeros_like(V), np.zeros_like(G)
    for r0, r1 in ((0, 3), (3, 6)):
        for c0, c1 in ((0, 2), (2, 4)):
            I = V[:, r0:r1] @ G[r0:r1, c0:c1]
            g = np.where((I >= 0) & (I <= 1.2e-6), R[:, c0:c1], 0)
            exp_V[:, r0:r1] += g @ G[r0:r1, c0:c1].T
            exp_G[r0:r1, c0:c1] = V[:, r0:r1].T @ g
    assert not np.all(exp_G != 0), "some array should saturate"
    np.testing.assert_allclose(grad_V, exp_V, rtol=1e-13)
    np.testing.assert_allclose(grad_G, exp_G, rtol=1e-13)


def test_read_noise_variance_and_mean():
    factors = ReadNoise(0.05).sample((400, 500), np.random.default_rng(0))
    n = factors.size
    assert abs(factors.mean() - 1) < 4 * 0.05 / math.sqrt(n)
    # var of the sample variance of a normal: 2 sigma^4 / (n - 1)
    assert abs(factors.var(ddof=1) - 0.05 ** 2) < 4 * math.sqrt(2 / (n - 1)) * 0.05 ** 2


def test_drift_mean_follows_the_power_law():
    t, t0 = 86400.0, 1.0
    exact = Drift(0.05, 0.0, t, t0).sample((3, 4), np.random.default_rng(0))
    np.testing.assert_allclose(exact, (t / t0) ** -0.05, rtol=1e-14)
    # nu ~ N(mu, s) (clipping negligible: mu / s = 5): E[(t/t0)^-nu] = exp(-mu L + s^2 L^2 / 2)
    mu, s, L = 0.05, 0.01, math.log(t / t0)
    factors = Drift(mu, s, t, t0).sample((500, 400), np.random.default_rng(1))
    expected = math.exp(-mu * L + 0.5 * (s * L) ** 2)
    se = factors.std() / math.sqrt(factors.size)
    assert abs(factors.mean() - expected) < 4 * se
    assert abs(np.median(factors) - (t / t0) ** -mu) < 0.01 * (t / t0) ** -mu


@pytest.mark.parametrize("stuck", [StuckAtGOff(G_OFF, 0.3), StuckAt(1.5e-6, 0.3)])
def test_stuck_devices_keep_their_value_after_programming_and_drift(rng, stuck):
    stage = Stage(G_OFF, G_ON, 0.5, (ProgrammingNoise(0.2, 1e-8), Drift(0.2, 0.05, 1e6), stuck, PF))
    V, G = crossbar_inputs(rng, m=30, n=20)
    crossbar = CrossbarPass(stage, "numpy")
    crossbar.forward(V, G, rng)
    mask, values = crossbar.draws["stuck"]
    G_read = crossbar.read_conductances
    assert mask.any() and (~mask).any()
    np.testing.assert_array_equal(G_read[mask], values[mask])
    assert np.all(G_read[mask] == stuck._stuck_values(1, rng))
    # the others drifted: below their programmed value on average
    assert np.median(G_read[~mask] / G[~mask]) < 0.1


def test_line_resistance_is_called_per_array_with_its_slices(rng):
    wires = LineResistance()
    V, G = crossbar_inputs(rng, p=2, m=9, n=6)
    for base in ((), (PF,)):
        wires.calls.clear()
        plain = CrossbarPass(Stage(G_OFF, G_ON, 0.5, base), "numpy")
        wired = CrossbarPass(Stage(G_OFF, G_ON, 0.5, base + (wires, Tiles(4, 4))), "numpy")
        I0, I1 = plain.forward(V, G, np.random.default_rng(2)), wired.forward(V, G, np.random.default_rng(2))
        np.testing.assert_allclose(I1, I0, rtol=1e-13)
        assert [c[1:] for c in wires.calls] == [((2, 4), (4, 4), bool(base)), ((2, 4), (4, 2), bool(base)),
                                                ((2, 4), (4, 4), bool(base)), ((2, 4), (4, 2), bool(base)),
                                                ((2, 1), (1, 4), bool(base)), ((2, 1), (1, 2), bool(base))]
        R = rng.normal(size=I0.shape)
        for a, b in zip(plain.backward(R), wired.backward(R)):
            np.testing.assert_allclose(b, a, rtol=1e-13)
        assert sum(c[0] == "currents_vjp" for c in wires.calls) == 6
        assert wired.power() == pytest.approx(plain.power(), rel=1e-13)
        assert [r[:4] for r in wired.wire_reports()] == [(0, 4, 0, 4), (0, 4, 4, 6), (4, 8, 0, 4), (4, 8, 4, 6),
                                                         (8, 9, 0, 4), (8, 9, 4, 6)]
        assert plain.wire_reports() == []
    stage = Stage(G_OFF, G_ON, 0.5, (PF, wires))
    assert not stage.rows_separable and list(stage.phases) == ["currents", "wires"]


def test_line_resistance_makes_layers_read_every_row(rng):
    """Rows at 0 V still matter in a resistive network: with wires the layer reads them all."""
    wires = LineResistance()
    layer = MemristiveDense(5, 2, "double", dtype="float64")
    layer.initialize(rng)
    x = rng.uniform(0.1, 1, (3, 5))
    x[:, 1] = 0
    layer.forward(x, PassContext(Stage(G_OFF, G_ON, 0.5, (PF, wires)), rng, "numpy"))
    assert wires.calls[-1][2] == (6, 4) and layer._last.rows is None


# -- layers and models under the combined stage -----------------------------------------------
def _check_layer(layer, x, stage, rng):
    run = lambda: layer.forward(x, PassContext(stage, np.random.default_rng(7), "numpy"))  # noqa: E731
    R = rng.normal(size=run().shape)
    loss = lambda: float(np.sum(R * run()))  # noqa: E731
    run()
    dx = layer.backward(R.copy())
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    grads = {name: g.copy() for name, g in layer.grads.items()}
    for name, theta in layer.params.items():
        assert relative_error(grads[name], numerical_gradient(loss, theta)) < 1e-6, name


@pytest.mark.parametrize("weights", ["double", "standard"])
@pytest.mark.parametrize("stage_name", ["smooth", "smooth_ideal"])
def test_memristive_dense_gradients_under_the_pipeline(rng, weights, stage_name):
    from test_nn_memristive import randomise
    layer = MemristiveDense(6, 3, weights, dtype="float64")
    randomise(layer, rng)
    _check_layer(layer, rng.uniform(0.05, 1.0, (3, 6)), STAGES[stage_name], rng)


def test_whole_mlp_gradients_under_the_combined_stage(rng):
    from test_nn_model import check_model_gradients, small_mlp
    model = small_mlp("double", rng)
    x = rng.uniform(0.05, 1, (4, 3, 4))
    x[:, 0, 1] = 0.0   # an inactive row: read with the draws of the full crossbar
    check_model_gradients(model, x, np.array([0, 2, 1, 2]), STAGES["smooth"])


def test_mlp_runs_under_the_whole_pipeline_with_straight_through_quantisers(rng):
    from test_nn_model import small_mlp
    model = small_mlp("double", rng)
    x = np.round(rng.uniform(0, 1, (4, 3, 4)) * 63) / 63
    loss, acc = model.compute_gradients(x, np.array([0, 2, 1, 2]), np.random.default_rng(4), STAGES["combined"])
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for layer in model.memristive_layers
                                     for g in layer.grads.values())
    assert any(np.any(g != 0) for g in model.memristive_layers[0].grads.values())


# -- chip-held and per-read draws -------------------------------------------------------------
def test_chip_draws_are_held_and_read_noise_is_fresh(rng):
    """With a reseeded Generator for the chip and a running stream for reads (chip mode), the
    programming, drift, stuck and PF draws repeat batch after batch and read noise does not."""
    layer = MemristiveDense(6, 3, "double", dtype="float64")
    layer.initialize(rng)
    x = rng.uniform(0.1, 1, (4, 6))
    x[:, 2] = 0
    def read(stage, read_rng):  # noqa: E306
        layer.forward(x, PassContext(stage, np.random.default_rng(9), "numpy", "all", read_rng))
        return layer._last.crossbar
    noisy = STAGES["smooth"]
    reads = np.random.default_rng(1)
    a, b = read(noisy, reads), read(noisy, reads)
    for name in ("programming", "drift", "currents"):
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    np.testing.assert_array_equal(a.draws["stuck"][0], b.draws["stuck"][0])
    assert not np.array_equal(a.draws["read_noise"], b.draws["read_noise"])
    # without a read stream (batch mode) a reseeded Generator repeats everything
    c, d = read(noisy, None), read(noisy, None)
    np.testing.assert_array_equal(c.draws["read_noise"], d.draws["read_noise"])
    # the read stream changes no chip draw: the same as drawing everything from one Generator
    np.testing.assert_array_equal(a.draws["programming"], c.draws["programming"])


def test_chip_sampling_in_the_protocol_holds_the_chip_and_redraws_reads():
    from memnp.experiments import protocol
    from test_nn_model import small_mlp
    rng = np.random.default_rng(0)
    model = small_mlp("double", rng)
    x, y = rng.uniform(0, 1, (8, 3, 4)), rng.integers(0, 3, 8)
    seq = np.random.SeedSequence(5)
    x2, y2 = np.concatenate([x, x]), np.concatenate([y, y])
    held = protocol.evaluate(model, x2, y2, Stage(G_OFF, G_ON, 0.5, (PF, Drift(0.1, 0.02, 100.0))), seq, 8, "chip")
    once = protocol.evaluate(model, x, y, Stage(G_OFF, G_ON, 0.5, (PF, Drift(0.1, 0.02, 100.0))), seq, 8, "chip")
    assert held["loss"] == pytest.approx(once["loss"], rel=1e-12)   # both batches: the same chip
    noisy = Stage(G_OFF, G_ON, 0.5, (PF, Drift(0.1, 0.02, 100.0), ReadNoise(0.2)))
    held = protocol.evaluate(model, x2, y2, noisy, seq, 8, "chip")
    once = protocol.evaluate(model, x, y, noisy, seq, 8, "chip")
    assert held["loss"] != pytest.approx(once["loss"], rel=1e-9)    # fresh read noise per batch


def test_deterministic_periphery_needs_no_generator(rng):
    layer = MemristiveDense(4, 2, "double", dtype="float64")
    layer.initialize(rng)
    x = np.round(rng.uniform(0, 1, (3, 4)) * 15) / 15
    y = layer.forward(x, PassContext(Stage(G_OFF, G_ON, 0.5, (DAC(4), ADC(8), Tiles(3, 2))), None, "numpy"))
    assert np.all(np.isfinite(y))
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        layer.forward(x, PassContext(Stage(G_OFF, G_ON, 0.5, (ReadNoise(0.1),)), None, "numpy"))


@pytest.mark.parametrize("full_scale", ["worst-case", 4e-7])
def test_pf_arrays_read_at_once_equal_arrays_read_one_by_one(rng, full_scale):
    """PF arrays without wires are read in one stacked kernel call; with the (r = 0) wires
    stand-in they are read one by one. Same currents and, with ADCs that clip (a small full
    scale) or not, the same straight-through gradients."""
    V, G = crossbar_inputs(rng, p=4, m=10, n=5)
    V[1, 3] = 0.0
    phases = (PF, ADC(5, full_scale), Tiles(4, 3))
    stacked = CrossbarPass(Stage(G_OFF, G_ON, 0.5, phases), "numpy")
    one_by_one = CrossbarPass(Stage(G_OFF, G_ON, 0.5, phases + (LineResistance(),)), "numpy")
    I0 = stacked.forward(V, G, np.random.default_rng(2))
    I1 = one_by_one.forward(V, G, np.random.default_rng(2))
    np.testing.assert_allclose(I0, I1, rtol=1e-13)
    R = rng.normal(size=I0.shape)
    (gV0, gG0), (gV1, gG1) = stacked.backward(R), one_by_one.backward(R)
    np.testing.assert_allclose(gV0, gV1, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gG0, gG1, rtol=1e-12, atol=1e-300)
    clipped = not isinstance(full_scale, str)
    assert (np.count_nonzero(gG0) < gG0.size) == clipped


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_draw_loops_match_their_numpy_references(dtype):
    for item in (Drift(0.05, 0.02, 86400.0), Drift(0.01, 0.05, 10.0, 2.0), ReadNoise(0.05), ReadNoise(2.0)):
        for shape in ((7, 9), (6, 4)):
            fast = item.sample(shape, np.random.default_rng(3), dtype)
            slow = item.sample_numpy(shape, np.random.default_rng(3), dtype)
            assert fast.dtype == slow.dtype == dtype and fast.shape == shape
            np.testing.assert_allclose(fast, slow, rtol=4 * np.finfo(dtype).eps)
    # the same Generator consumption as standard_normal: ceil(n / 2) words
    rng = np.random.default_rng(5)
    ReadNoise(0.1).sample((3, 5), rng)
    assert rng.bit_generator.state == _after_words(5, 8)


def _after_words(seed, words):
    rng = np.random.default_rng(seed)
    rng.bit_generator.random_raw(words)
    return rng.bit_generator.state


def test_tiled_kernel_matches_its_numpy_reference(rng):
    from memnp.kernels import tiling as tiled
    V = 0.5 * rng.random((5, 40))
    V[rng.random(V.shape) < 0.5] = 0
    G = rng.uniform(G_OFF, G_ON, (40, 19))
    c, d_eps = PF.device_parameters(G, PF.sample(G.shape, rng))
    tile_of_row = np.repeat([0, 1, 2, 3], [16, 16, 5, 3])
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        args = [a.astype(dtype) for a in (V, c, d_eps)]
        fast = tiled.pf_currents_tiled(*args, tile_of_row, 4)
        assert fast.dtype == dtype and fast.shape == (4, 5, 19)
        assert relative_error(fast, tiled.pf_currents_tiled_numpy(V, c, d_eps, tile_of_row, 4)) < tol
    with pytest.raises(ValueError, match="tile indices in"):
        tiled.pf_currents_tiled(V, c, d_eps, tile_of_row, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dac_loop_matches_its_numpy_reference(rng, dtype):
    dac = DAC(5)
    V = (0.5 * rng.random((9, 13))).astype(dtype)
    V[0, :4] = [0, 0.5, 0.25, 0.5 / 62]          # exact ends and ties
    fast = dac.apply(V, 0.5)
    slow, low, high = dac.apply_numpy(V, 0.5)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, slow)
    assert low == float((V / dtype(0.5)).min()) and high <= 1


def test_combined_stage_on_the_cuda_backend(rng):
    """The whole pipeline on the cuda backend (under the CUDA simulator unless a GPU is used):
    the stacked PF read of the arrays and its VJP against the numpy backend, with clipping ADCs."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
    V, G = crossbar_inputs(rng, p=2, m=6, n=4)
    V = np.round(V / 0.5 * 63) / 63 * 0.5
    stage = Stage(G_OFF, G_ON, 0.5, STAGES["combined"].nonidealities[:-2] + (ADC(6, 6e-7), Tiles(3, 2)))
    out = []
    for backend in ("numpy", "cuda"):
        crossbar = CrossbarPass(stage, backend)
        I = crossbar.forward(V, G, np.random.default_rng(1))
        out.append((I, *crossbar.backward(np.ones_like(I)), crossbar.power()))
    for a, b in zip(*out):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adc_sum_loop_matches_the_adc_and_a_sum(rng, dtype):
    from memnp.kernels import periphery as loops
    adc = ADC(5)
    parts = rng.uniform(-0.1e-6, 2.2e-6, (3, 4, 6)).astype(dtype)
    fs = np.array([2e-6, 1e-6, 3e-6]).reshape(3, 1, 1)
    I, clipped = loops.adc_sum(parts, fs, adc.levels)
    expected = adc.apply(parts, fs)
    np.testing.assert_allclose(I, expected[0] + expected[1] + expected[2], rtol=4 * np.finfo(dtype).eps)
    assert I.dtype == dtype and clipped
    _, clipped = loops.adc_sum(np.clip(parts, 0, 0.9e-6), fs, adc.levels)
    assert not clipped


def test_cnn_gradients_under_the_combined_stage(rng):
    from test_nn_model import check_model_gradients, small_cnn
    model = small_cnn(rng)
    check_model_gradients(model, rng.uniform(0.05, 1, (2, 6, 6, 2)), np.array([2, 0]), STAGES["smooth"])
