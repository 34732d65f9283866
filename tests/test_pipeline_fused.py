"""The fused loops of a combined stage (memnp.kernels.conductance_chain and friends) against the
phases run one by one and against their NumPy references: the same numbers, bit for bit where the
loops promise it."""
import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, Stage
from memnp.crossbar import tiling as tiling_reads
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled_read_with_adcs_in_one_pass_equals_parts_then_adc_sum(rng, dtype):
    from memnp.kernels import periphery, tiling
    V = 0.5 * rng.random((9, 300))
    V[rng.random(V.shape) < 0.6] = 0
    V[3] = 0                                               # an example with no current at all
    V[4, :128] = 0                                         # ... and one that skips an array
    G = rng.uniform(G_OFF, G_ON, (300, 21))
    c, d_eps = PF.device_parameters(G, PF.sample(G.shape, rng))
    tile_of_row = np.repeat([0, 1, 2], [128, 128, 44])
    V, c, d_eps = (a.astype(dtype) for a in (V, c, d_eps))
    top = tiling.pf_currents_tiled(V, c, d_eps, tile_of_row, 3).max(axis=(1, 2)).astype(np.float64)
    wide, narrow = 1.5 * top, np.array([1.5, 0.5, 1.5]) * top
    for fs in (wide, narrow):   # no ADC clips, or the second row of arrays' ADCs clip
        parts = tiling.pf_currents_tiled(V, c, d_eps, tile_of_row, 3)
        expected, expected_clipped = periphery.adc_sum(parts, fs.reshape(-1, 1, 1), 63)
        I, clipped = tiling.pf_currents_tiled_adc(V, c, d_eps, tile_of_row, 3, fs, 63)
        assert I.dtype == dtype and I.shape == (9, 21)
        np.testing.assert_array_equal(I, expected)
        with_constants = periphery.adc_sum_with(parts, tiling.adc_constants(fs, 63, dtype))
        np.testing.assert_array_equal(with_constants[0], expected)
        assert with_constants[1] == expected_clipped
        assert clipped == expected_clipped == (fs is narrow)
        # against the NumPy reference: parts from the reference, then ADC.apply and a sum (an
        # ADC level may flip where a part lies within rounding of a level boundary)
        reference = tiling.pf_currents_tiled_numpy(V, c, d_eps, tile_of_row, 3)
        levels = np.rint(reference / fs.reshape(-1, 1, 1) * 63).clip(0, 63) * (fs.reshape(-1, 1, 1) / 63)
        assert np.mean(np.isclose(I, levels.sum(axis=0), rtol=1e-6, atol=0)) > 0.95
    with pytest.raises(ValueError, match="non-decreasing"):
        tiling.pf_currents_tiled_adc(V, c, d_eps, tile_of_row[::-1].copy(), 3, fs, 63)
    with pytest.raises(ValueError, match="one current per row of arrays"):
        tiling.pf_currents_tiled_adc(V, c, d_eps, tile_of_row, 3, fs[:2], 63)


@pytest.mark.parametrize("full_scale", ["worst-case", 2.5e-6])
def test_cpu_tiled_read_with_adcs_against_the_numpy_backend(rng, full_scale):
    """The combined stage on the cpu backend (the one-pass tiled read with its ADCs, the fused
    conductance phases) against the numpy backend in float64, with ADCs that clip or not: the
    same currents and straight-through gradients."""
    from memnp.nonidealities import ADC, Tiles
    stage = Stage(G_OFF, G_ON, 0.5, STAGES["combined"].nonidealities[:-2] + (ADC(6, full_scale), Tiles(16, 8)))
    from pipeline_stages import crossbar_inputs
    V, G = crossbar_inputs(rng, p=6, m=40, n=11)
    V = np.round(V / 0.5 * 63) / 63 * 0.5
    V[:, 5:9] = 0
    out = []
    for backend in ("numpy", "cpu"):
        crossbar = CrossbarPass(stage, backend)
        I = crossbar.forward(V, G, np.random.default_rng(1))
        out.append((I, *crossbar.backward(np.ones_like(I) / np.abs(I).max())))
    for a, b in zip(*out):
        # ADC levels may differ where a part lies within rounding of a level boundary
        assert np.mean(np.isclose(b, a, rtol=1e-9, atol=1e-300)) > 0.97
    state = crossbar._cache.tiles       # the cpu read's state: a StackedRead
    assert isinstance(state, tiling_reads.StackedRead) and state.clipped == (not isinstance(full_scale, str))


def _draws_one_by_one(stage, shape, rng, read_rng, dtype):
    out = {}
    for name, item in stage.phases.items():
        if name in ("dac", "adc", "tiles"):
            continue
        source = read_rng if name == "read_noise" and read_rng is not None else rng
        out[name] = item.sample(shape, source, dtype)
    return out


def _assert_same_draws(a, b):
    assert list(a) == list(b)
    for name in a:
        for x, y in zip(*((v if isinstance(v, tuple) else (v,)) for v in (a[name], b[name]))):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("separate_reads", [False, True])
@pytest.mark.parametrize("shape", [(30, 16), (7, 5), (1, 1)])
@pytest.mark.parametrize("held", [False, True])
def test_stage_draws_in_one_block_equal_the_phases_one_by_one(dtype, separate_reads, shape, held):
    from memnp.kernels import stage_draws
    stage = STAGES["combined"]
    rngs = [np.random.default_rng(4) for _ in range(2)]
    if held:      # NumPy holds half a word for the next float32 uniform (as after a permutation)
        for rng in rngs:
            rng.random(3, dtype=np.float32)
        assert rngs[0].bit_generator.state["has_uint32"] == 1
    reads = [np.random.default_rng(5) if separate_reads else None for _ in range(2)]
    expected = _draws_one_by_one(stage, shape, rngs[0], reads[0], dtype)
    got = CrossbarPass(stage).sample(shape, rngs[1], dtype, reads[1])
    _assert_same_draws(got, expected)
    # the Generators end exactly where the phases one by one leave them
    assert rngs[1].bit_generator.state == rngs[0].bit_generator.state
    if separate_reads:
        assert reads[1].bit_generator.state == reads[0].bit_generator.state
    np.testing.assert_array_equal(rngs[1].random(5, dtype=np.float32), rngs[0].random(5, dtype=np.float32))
    if shape == (30, 16):
        mask = got["stuck"][0]
        assert mask.any() and not mask.all()
    assert stage_draws.sample(stage.phases, shape, np.random.default_rng(4), None, dtype) is not None


def test_stage_draws_fall_back_where_the_stream_would_differ():
    from memnp.kernels import stage_draws
    phases = STAGES["combined"].phases
    assert stage_draws.sample(phases, (4, 6), np.random.Generator(np.random.MT19937(1)), dtype=np.float32) is None
    assert stage_draws.sample(STAGES["smooth_ideal"].phases, (4, 6), np.random.default_rng(1)) is None
    assert stage_draws.sample(phases, (4, 6), np.random.default_rng(1), dtype=np.float16) is None
    # and the CrossbarPass then draws phase by phase: the same numbers
    rng_a, rng_b = (np.random.Generator(np.random.MT19937(2)) for _ in range(2))
    _assert_same_draws(CrossbarPass(STAGES["combined"]).sample((4, 6), rng_a, np.float32),
                       _draws_one_by_one(STAGES["combined"], (4, 6), rng_b, None, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniforms_from_words_are_numpys(dtype):
    from memnp.kernels import uniforms
    words = np.random.default_rng(8).bit_generator.random_raw(500)
    expected = np.random.default_rng(8).random(1000 if dtype == np.float32 else 500, dtype=dtype)
    np.testing.assert_array_equal(uniforms.uniforms_numpy(words, dtype), expected)
    # the loops' mask against the reference's uniforms
    mask = np.empty(expected.size, np.bool_)
    values = np.empty(expected.size, dtype)
    if dtype == np.float32:
        uniforms._stuck_f32(words, 0, np.uint64(0), dtype(0.3), dtype(2e-6), mask, values)
    else:
        uniforms._stuck_f64(words, dtype(0.3), dtype(2e-6), mask, values)
    np.testing.assert_array_equal(mask, expected < dtype(0.3))
    np.testing.assert_array_equal(values, np.where(mask, dtype(2e-6), 0))
    if dtype == np.float32:       # a held half word first, then the words' halves (an odd count)
        held = np.uint64(0xABCDEF12)
        mask = np.empty(999, np.bool_)
        values = np.empty(999, dtype)
        uniforms._stuck_f32(words, 1, held, dtype(0.3), dtype(2e-6), mask, values)
        u = np.concatenate([uniforms.uniforms_numpy(np.array([held << np.uint64(32)]), dtype)[1:],
                            uniforms.uniforms_numpy(words, dtype)[:998]])
        np.testing.assert_array_equal(mask, u < dtype(0.3))


@pytest.mark.parametrize("count", [1, 3, 4, 5, 2047, 2048, 2051, 30001])
def test_pcg64_loop_gives_numpys_words_and_state(count):
    from memnp.kernels import pcg64
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    for rng in (a, b):
        rng.random(3, dtype=np.float32)          # a held half word travels with the state
    np.testing.assert_array_equal(pcg64.raw_words(a.bit_generator, count), pcg64.raw_words_numpy(b.bit_generator, count))
    assert a.bit_generator.state == b.bit_generator.state
    state = np.random.default_rng(12).bit_generator.state["state"]
    words, after = pcg64.words_from(state["state"], state["inc"], count)
    reference = np.random.default_rng(12)
    np.testing.assert_array_equal(words, reference.bit_generator.random_raw(count))
    assert after == reference.bit_generator.state["state"]["state"]
    # other bit generators: their own random_raw
    mt = np.random.MT19937(3)
    np.testing.assert_array_equal(pcg64.raw_words(mt, 4000), np.random.MT19937(3).random_raw(4000))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dac_of_a_checked_pass_skips_only_the_range_scan(rng, dtype):
    from memnp.nonidealities import DAC
    V = (0.5 * rng.random((6, 40))).astype(dtype)
    dac = DAC(6)
    np.testing.assert_array_equal(dac.apply(V, 0.5, checked=True), dac.apply(V, 0.5))
    with pytest.raises(ValueError, match=r"DAC inputs x = V / k_V must be in \[0, 1\]"):
        dac.apply(-V, 0.5)
    # a memristive layer marks its passes checked, and its own input scan refuses x outside [0, 1]
    from memnp.nn import MemristiveDense, PassContext
    layer = MemristiveDense(40, 3, "double", dtype=np.dtype(dtype).name)
    layer.initialize(rng)
    ctx = PassContext(STAGES["combined"], np.random.default_rng(1), "cpu")
    layer.forward(V.astype(dtype) * 2, ctx)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        layer.forward(-V, ctx)


def test_stage_draws_of_a_large_crossbar_and_without_stuck_devices():
    """From 2**18 devices on the phases' own (parallel) loops take the slices; a stage without
    stuck devices takes any bit generator."""
    stage = STAGES["combined"]
    shape = (520, 512)
    a, b = np.random.default_rng(6), np.random.default_rng(6)
    _assert_same_draws(CrossbarPass(stage).sample(shape, a, np.float32),
                       _draws_one_by_one(stage, shape, b, None, np.float32))
    assert a.bit_generator.state == b.bit_generator.state
    no_stuck = Stage(G_OFF, G_ON, 0.5, tuple(i for i in stage.nonidealities if type(i).__name__ != "StuckAtGOff"))
    for make in (np.random.MT19937, np.random.PCG64):
        a, b = np.random.Generator(make(7)), np.random.Generator(make(7))
        from memnp.kernels import stage_draws
        assert stage_draws.sample(no_stuck.phases, (9, 8), a, None, np.float64) is not None
        a = np.random.Generator(make(7))
        _assert_same_draws(CrossbarPass(no_stuck).sample((9, 8), a, np.float64),
                           _draws_one_by_one(no_stuck, (9, 8), b, None, np.float64))
        np.testing.assert_array_equal(a.bit_generator.random_raw(4), b.bit_generator.random_raw(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("separate_reads", [False, True])
def test_draws_conductances_and_pf_parameters_in_one_call(rng, dtype, separate_reads):
    from memnp.kernels import stage_draws
    stage = STAGES["combined"]
    G = rng.uniform(G_OFF, G_ON, (33, 14)).astype(dtype)
    a, b = np.random.default_rng(21), np.random.default_rng(21)
    read_a, read_b = (np.random.default_rng(22), np.random.default_rng(22)) if separate_reads else (None, None)
    for held in (False, True):
        if held:
            a.random(1, dtype=np.float32)
            b.random(1, dtype=np.float32)
        draws, G_read, devices, vjp_args = stage_draws.sample_and_apply(stage.phases, stage.draw_plan, G, a, read_a)
        expected_draws = _draws_one_by_one(stage, G.shape, b, read_b, dtype)
        _assert_same_draws(draws, expected_draws)
        grad = rng.normal(size=G.shape).astype(dtype)
        expected, expected_grad = _phase_by_phase(stage, G, expected_draws, grad)
        np.testing.assert_array_equal(G_read, expected)
        np.testing.assert_array_equal(conductance_chain.apply_vjp_with(vjp_args, G, grad), expected_grad)
        assert conductance_chain.apply_vjp_with(vjp_args, G, grad.astype(np.float16)) is None
        if dtype == np.float32:
            for x, y in zip(devices, PF.device_parameters(expected, expected_draws["currents"])):
                np.testing.assert_array_equal(x, y)
        else:
            assert devices is None          # float64: NumPy's PF parameters, by the caller
        assert a.bit_generator.state == b.bit_generator.state
    # a CrossbarPass takes this path for fresh draws: the same currents as replaying them
    fresh = CrossbarPass(stage, "cpu")
    V = np.round(rng.uniform(0, 1, (4, 33)) * 63).astype(dtype) / dtype(63) * dtype(0.5)
    I = fresh.forward(V, G, np.random.default_rng(5))
    replay = CrossbarPass(stage, "cpu")
    np.testing.assert_array_equal(replay.forward(V, G, None, draws=fresh.draws), I)
    np.testing.assert_array_equal(replay.read_conductances, fresh.read_conductances)
    assert stage_draws.sample_and_apply(stage.phases, None, G, a) is None
    assert stage_draws.sample_and_apply(stage.phases, stage.draw_plan, np.asfortranarray(G), a) is None
