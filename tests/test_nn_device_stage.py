"""The combined stage trained on the device (memnp.kernels.cuda_phases, memnp.kernels.cuda_read)
against the CPU's ``Sequential.train_step``, under Numba's CUDA simulator (conftest): bench/epoch.py's
case e (D2D, 2 % stuck at G_off, drift to one day, 5 % read noise, 6-bit DAC and ADC, PF) on a
20-12-10 MLP with arrays of 8 rows, so that layer 1 (21 rows) has 3 rows of arrays and layer 2
(13 rows) 2. On a GPU machine ``NUMBA_ENABLE_CUDASIM=0`` runs them on the device.

Quantisers make float64 comparisons fragile in principle (a last-bit difference can move a current
or a voltage across a rounding boundary); the device takes the CPU's operations, fused
multiply-adds included (memnp.kernels.cuda_read), and these runs agree to 1e-12 throughout.
"""
import numpy as np
import pytest

from device_guard import require_device

numba_cuda_api = require_device()

from memnp.crossbar import Stage  # noqa: E402
from memnp.kernels import conductance_chain, mapping  # noqa: E402
from memnp.kernels import cuda_step as ks  # noqa: E402
from memnp.nn import device  # noqa: E402

from test_nn_device import (G_OFF, G_ON, K_V, Copies, batches, epochs_equal_cpu, float32_steps_within_1e5,  # noqa: E402
                            mlp, no_kde, pf, pool, relative, weights)

cuda = numba_cuda_api
D2D = dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25)


#: Gaussian programming noise in D2D's place: wide enough that some devices hit the floor (eps < -1.66).
PROGRAMMING = dict(type="ProgrammingNoise", sigma_rel=0.6, sigma_abs=5e-8)


def combined(stuck=0.02, dac=6, adc=6, rows=8, full_scale="worst-case", drift=True, read=True, programming=D2D):
    """bench/epoch.py's case e with arrays of ``rows`` rows (None: no Tiles) and 6 columns;
    ``programming``: the programming phase's item (D2D, or PROGRAMMING)."""
    items = [programming, pf()]
    if stuck:
        items.append(dict(type="StuckAtGOff", G_off=G_OFF, p=stuck))
    if drift:
        items.append(dict(type="Drift", nu_mean=0.01, nu_std=0.005, t=86400.0))
    if read:
        items.append(dict(type="ReadNoise", sigma_rel=0.05))
    if dac:
        items.append(dict(type="DAC", bits=dac))
    if adc:
        items.append(dict(type="ADC", bits=adc, full_scale=full_scale))
    if rows:
        items.append(dict(type="Tiles", rows=rows, cols=6))
    return Stage(G_OFF, G_ON, K_V, tuple(items))


def run_steps(dtype, stage, steps, seed=9, tolerance=1e-12, p=8):
    """``steps`` train_steps of ``p`` examples, K = 1, CPU and device side by side: per step the
    loss within ``tolerance`` (relative) and the accuracy equal; returns (trainer, cpu model,
    device model, the two Generators)."""
    cpu, dev = mlp(dtype, stage=stage), mlp(dtype, stage=stage)
    r_cpu, r_dev = np.random.default_rng(seed), np.random.default_rng(seed)
    trainer = device.DeviceTrainer(dev, batch_size=p)
    for x, y in batches(steps, p=p, dtype=dtype):
        loss, acc = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= tolerance * abs(loss)
        assert record.accuracies[0] == acc
    trainer.sync()
    return trainer, cpu, dev, r_cpu, r_dev


def test_case_e_float64_steps_equal_the_cpu_backend():
    """20 steps of case e (batches of 4: the simulator is slow), float64: losses, accuracies and
    weights within 1e-12 of the cpu backend's; the Generator ends in the CPU's state (the same
    words)."""
    trainer, cpu, dev, r_cpu, r_dev = run_steps("float64", combined(), 20, p=4)
    assert trainer.blocks == [3, 2]
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= 1e-12
    assert relative(weights(dev)[0], weights(mlp("float64"))[0]) > 1e-2
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_clipping_adcs_stop_the_gradient_as_on_the_cpu():
    """A fixed ADC full scale (3 uA) that clips part of the currents: the straight-through
    gradient is zero there, as on the CPU (4 steps, float64, within 1e-12)."""
    trainer, cpu, dev, r_cpu, r_dev = run_steps("float64", combined(full_scale=3e-6), 4)
    inside = [a.copy_to_host()[:, :, :8] for a in trainer.inside]
    assert 0.1 < np.mean(inside[1] == 0) < 0.9          # the last layer's ADCs clip, not always
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= 1e-12
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_programming_noise_float64_steps_equal_the_cpu_backend():
    """Case e with ProgrammingNoise in D2D's place (some devices on its floor), 8 steps in float64:
    losses, accuracies and weights within 1e-12 of the cpu backend's, the same words."""
    trainer, cpu, dev, r_cpu, r_dev = run_steps("float64", combined(programming=PROGRAMMING), 8, p=4)
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= 1e-12
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


@pytest.mark.parametrize("programming", [D2D, PROGRAMMING], ids=["d2d", "programming-noise"])
def test_case_e_float32_steps_within_1e5_and_the_same_words(programming):
    """float32 (stuck uniforms from 32-bit halves of the words), per step from the same weights:
    loss and weights within 1e-5; the Generator ends in the CPU's state, the half word NumPy
    holds after the stuck draws included."""
    float32_steps_within_1e5(combined(programming=programming), 3, 8, states_each_step=True)


def test_three_members_with_different_stages_equal_their_cpu_runs():
    """K = 3: case e with arrays of 8 rows; DAC and ADC on one array per crossbar with 5 % stuck
    devices and no drift; D2D and PF only (a paper stage). One epoch of 20 examples (batches of
    8, a short last one), float64: each member equals its own CPU run, Generators included."""
    stages = [combined(), combined(rows=None, stuck=0.05, drift=False),
              combined(stuck=0, dac=0, adc=0, rows=None, drift=False, read=False)]
    cpu = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(3)]
    dev = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(3)]
    images, labels = pool(20)
    trainer = device.DeviceTrainer(dev, batch_size=8)
    assert trainer.blocks == [3, 2]
    trainer.set_data(images, labels)
    epochs_equal_cpu(trainer, dev, cpu, images, labels, 30, 8)


def test_copies_per_epoch_do_not_grow_with_the_steps(monkeypatch):
    """Case e: one array in and one out per epoch, for 1 and 2 steps."""
    images, labels = pool(16)
    counts = []
    for n in (8, 16):
        trainer = device.DeviceTrainer(mlp("float32", stage=combined()), batch_size=8)
        trainer.set_data(images[:n], labels[:n])
        copies = Copies(monkeypatch)
        trainer.train_epoch(np.random.default_rng(1), batch_size=8)
        counts.append((copies.to_device, copies.to_host))
        monkeypatch.undo()
    assert counts == [(1, 1), (1, 1)]


def test_devices_kernel_equals_the_phases_one_by_one():
    """stats_scan + devices on case e (float64): the read conductances, the draws and the PF
    parameters of the driven rows equal the phases' own ``sample`` in physical order from the
    same Generator, then memnp.kernels.conductance_chain.apply_numpy and the PF model's NumPy
    device parameters; the words used are the CPU's count."""
    stage = combined()
    model = mlp("float64", stage=stage)
    D = model.memristive_layers[0]._matrix()
    x = batches(1)[0][0]
    k = ks.kernels(np.float64)
    P = cuda.to_device(device._params(model)[None])
    st = cuda.device_array((1, ks.N_STATS))
    rank = cuda.device_array((1, 21), dtype=np.int64)
    offsets = cuda.device_array(1, dtype=np.uint64)
    rng = np.random.default_rng(4)
    state = cuda.to_device(device._states([rng], np.zeros((1, 0), np.uint64)))
    arrays = [cuda.device_array((1, 21, 24)) for _ in range(8)]
    dD = cuda.to_device(D[None])
    k["stats_scan"][1, ks.RT](dD, P, st, cuda.to_device(x[None]), 8, rank, offsets, state, False, state, offsets,
                              False, False)
    k["devices"][ks.grid(21)](dD, rank, st, P, state, offsets, *arrays, *no_kde(21), state, offsets, False)
    G_read, c, d_eps, _, eps, f_drift, f_read, stuck = (a.copy_to_host()[0] for a in arrays)
    rows = np.flatnonzero(mapping.scan_inputs(x)[0])
    G = mapping.double_G_rows(D, rows, float(D.max()), G_OFF, G_ON)
    draws = {name: item.sample(G.shape, rng, np.float64) for name, item in stage.phases.items()
             if item.draws is not None}
    want = conductance_chain.apply_numpy(stage.phases, G, draws)
    np.testing.assert_allclose(G_read[rows], want, rtol=1e-14)
    np.testing.assert_allclose(eps[rows], draws["programming"], rtol=1e-15)
    np.testing.assert_allclose(f_drift[rows], draws["drift"], rtol=1e-14)
    np.testing.assert_allclose(f_read[rows], draws["read_noise"], rtol=1e-15)
    np.testing.assert_array_equal(stuck[rows] == 1, draws["stuck"][0])
    assert 0 < draws["stuck"][0].sum()
    want_c, want_d = stage.phases["currents"].device_parameters_numpy(want, draws["currents"])
    np.testing.assert_allclose(c[rows], want_c, rtol=1e-13)
    np.testing.assert_allclose(d_eps[rows], want_d, rtol=1e-13)
    assert state.copy_to_host()[0, 4] == rows.size * 24 * 7 // 2     # 3.5 words per device


@pytest.mark.parametrize("programming", [D2D, PROGRAMMING], ids=["d2d", "programming-noise"])
def test_chain_vjp_equals_the_phases_vjp(programming):
    """devices_vjp's conductance chain: dL/dD of case e (D2D, or programming noise with devices on
    its floor) equals k_G times the phases' NumPy VJPs (conductance_chain.apply_vjp_numpy) of the
    PF VJP, for one layer (no ADC clipping)."""
    from memnp.kernels import pf_devices, reference
    stage = combined(dac=0, programming=programming)
    model = mlp("float64", stage=stage)
    D = model.memristive_layers[1]._matrix()
    x = np.random.default_rng(8).random((8, 12))
    k = ks.kernels(np.float64)
    P = cuda.to_device(device._params(model)[None])
    st = cuda.device_array((1, ks.N_STATS))
    rank = cuda.device_array((1, 13), dtype=np.int64)
    rng = np.random.default_rng(2)
    state = cuda.to_device(device._states([rng], np.zeros((1, 0), np.uint64)))
    dD, dx = cuda.to_device(D[None]), cuda.to_device(x[None])
    arrays = [cuda.device_array((1, 13, 20)) for _ in range(8)]
    offsets = cuda.device_array(1, dtype=np.uint64)
    k["stats_scan"][1, ks.RT](dD, P, st, dx, 8, rank, offsets, state, False, state, offsets, False, False)
    k["devices"][ks.grid(13)](dD, rank, st, P, state, offsets, *arrays, *no_kde(13), state, offsets, False)
    G_read, c, d, KK, eps, fdr, frd, stk = arrays
    inside = cuda.to_device(np.ones((1, 2, 8, 20)))
    gI = np.random.default_rng(9).normal(0, 1e5, (1, 8, 20))
    gD, prod = cuda.device_array((1, 13, 20)), cuda.device_array((1, 13, 20))
    k["devices_vjp"][ks.grid(260)](dx, 8, rank, G_read, c, d, KK, dD, cuda.to_device(gI), st, P, gD, prod,
                                   eps, fdr, frd, stk, inside)
    G = mapping.double_G_rows(D, np.arange(13), float(D.max()), G_OFF, G_ON)
    draws = {name: item.sample(G.shape, rng, np.float64) for name, item in stage.phases.items()
             if item.draws is not None}
    Gr = conductance_chain.apply_numpy(stage.phases, G, draws)
    ch, dh = stage.phases["currents"].device_parameters_numpy(Gr, draws["currents"])
    V = mapping.voltages(x, K_V, np.arange(13))
    _, grad_c, grad_d = reference.pf_currents_vjp(V, ch, dh, gI[0])
    grad_Gr = pf_devices.device_parameters_vjp(Gr, ch, dh, grad_c, grad_d, stage.phases["currents"].slopes)
    grad_G = conductance_chain.apply_vjp_numpy(stage.phases, G, draws, grad_Gr)
    k_G = (G_ON - G_OFF) / float(D.max())
    assert relative(gD.copy_to_host()[0], k_G * grad_G) <= 1e-12
    assert np.all(gD.copy_to_host()[0][draws["stuck"][0]] == 0)
    if programming is PROGRAMMING:      # some devices on the noise's floor (their slope is the floor's)
        assert np.any(G + (0.6 * G + 5e-8) * draws["programming"] <= 1e-3 * G)


def test_unsupported_stages_name_the_nonideality():
    wires = Stage(G_OFF, G_ON, K_V, (pf(), dict(type="LineResistance", r_word=1.0, r_bit=1.0)))
    ok, reason = device.DeviceTrainer.supports(mlp("float64", stage=wires))
    assert not ok and "LineResistance (phase 'wires') is not supported" in reason
    with pytest.raises(ValueError, match="LineResistance"):
        device.DeviceTrainer(mlp("float64", stage=wires))


def test_a_generator_holding_half_a_word_is_refused_for_float32_stuck_draws():
    trainer = device.DeviceTrainer(mlp("float32", stage=combined()), batch_size=8)
    rng = np.random.default_rng(1)
    rng.random(1, dtype=np.float32)                   # NumPy now holds the word's high half
    x, y = batches(1, dtype="float32")[0]
    with pytest.raises(ValueError, match="holds half a word"):
        trainer.train_step(x, y, rng)


def test_read_kernels_with_dac_tiles_and_adcs_equal_the_numpy_reference():
    """forward and inputs_vjp of one hidden layer of 13 rows (arrays of 8 rows: 2 rows of
    arrays), 6-bit DAC and ADCs of a fixed full scale that clips some parts, float64, against
    NumPy: DAC.apply_numpy, memnp.kernels.reference's PF currents per row of arrays, ADC.apply
    and their sum; the straight-through VJP masks dL/dI where a part clipped."""
    from memnp.kernels import reference
    stage = combined(full_scale=3e-6)
    model = mlp("float64", stage=stage)
    D = model.memristive_layers[1]._matrix()
    x = np.random.default_rng(8).random((8, 12))
    x[:, 5] = 0.0
    k = ks.kernels(np.float64)
    P = cuda.to_device(device._params(model)[None])
    st = cuda.device_array((1, ks.N_STATS))
    rank = cuda.device_array((1, 13), dtype=np.int64)
    state = cuda.to_device(device._states([np.random.default_rng(2)], np.zeros((1, 0), np.uint64)))
    dD, dx = cuda.to_device(D[None]), cuda.to_device(x[None])
    arrays = [cuda.device_array((1, 13, 20)) for _ in range(8)]
    offsets = cuda.device_array(1, dtype=np.uint64)
    k["stats_scan"][1, ks.RT](dD, P, st, dx, 8, rank, offsets, state, False, state, offsets, False, False)
    k["devices"][ks.grid(13)](dD, rank, st, P, state, offsets, *arrays, *no_kde(13), state, offsets, False)
    _, c, _, KK = arrays[:4]
    adc = cuda.to_device(device.device_stage.adc_table(stage, 13, 2, np.float64)[None])
    I, y, inside = cuda.device_array((1, 8, 20)), cuda.device_array((1, 8, 10)), cuda.device_array((1, 2, 8, 20))
    k["forward"][ks.grid(80, ks.RS)](dx, 8, rank, c, KK, st, P, adc, I, y, True, inside)
    rows = np.flatnonzero(mapping.scan_inputs(x)[0])
    ch, dh = (a.copy_to_host()[0][rows] for a in (arrays[1], arrays[2]))
    V, _, _ = stage.phases["dac"].apply_numpy(mapping.voltages(x, K_V, rows), K_V)
    adc_item = stage.phases["adc"]
    parts = [rows < 8, rows >= 8]
    I_parts = np.stack([reference.pf_currents(V[:, part], ch[part], dh[part]) for part in parts])
    want = sum(adc_item.apply(part, 3e-6) for part in I_parts)
    np.testing.assert_allclose(I.copy_to_host()[0], want, rtol=1e-12)
    want_inside = (I_parts >= 0) & (I_parts <= 3e-6)
    np.testing.assert_array_equal(inside.copy_to_host()[0] == 1, want_inside)
    assert 0 < want_inside.mean() < 1
    gI = np.random.default_rng(9).normal(0, 1e5, (1, 8, 20))
    gx = cuda.device_array((1, 8, 12))
    k["inputs_vjp"][ks.grid(96)](dx, 8, rank, c, KK, cuda.to_device(gI), P, gx, inside)
    want_gV = np.zeros((8, 13))
    for t, part in enumerate(parts):
        masked = adc_item.apply_vjp(I_parts[t], 3e-6, gI[0])
        want_gV[:, rows[part]] = reference.pf_currents_vjp(V[:, part], ch[part], dh[part], masked)[0]
    want_gx = want_gV[:, :12] * K_V * x * (1 - x)
    np.testing.assert_allclose(gx.copy_to_host()[0], want_gx, rtol=1e-11, atol=1e-20)


def test_a_diverged_member_shows_nan_and_leaves_the_others_alone():
    """A NaN weight in member 0 (case e, float64): its loss is NaN, no exception (the quantisers
    keep NaN), and member 1's step is its CPU step."""
    models = [mlp("float64", stage=combined()), mlp("float64", seed=2, stage=combined())]
    trainer = device.DeviceTrainer(models, batch_size=8)
    D = trainer.D[1].copy_to_host()
    D[0, 3, 4] = np.nan
    trainer.D[1] = cuda.to_device(D)
    x, y = batches(1)[0]
    record = trainer.train_step(x, y, [np.random.default_rng(1), np.random.default_rng(2)])
    loss, _ = mlp("float64", seed=2, stage=combined()).train_step(x, y, np.random.default_rng(2))
    assert np.isnan(record.losses[0])
    assert abs(record.losses[1] - loss) <= 1e-12 * loss
