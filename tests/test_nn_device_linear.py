"""Linear (ideal I-V) crossbars trained on the device (memnp.kernels.cuda_phases, cuda_read and
cuda_eval with P[k, IS_PF] = 0) against the CPU's ``Sequential.train_step`` and
``Sequential.evaluate``, under Numba's CUDA simulator (conftest) on the 20-12-10 MLP of
tests/test_nn_device.py: the ideal stage, and a linear stage with D2D, 2 % stuck at G_off, drift,
read noise, 6-bit DAC and ADCs and arrays of 8 rows (layer 1: 3 rows of arrays, layer 2: 2). A
linear stage draws no PF residuals, and its second layer reads (and draws) every row, as the
CPU's layers do; the host Generators must end in the CPU's states. On a GPU machine
``NUMBA_ENABLE_CUDASIM=0`` runs them on the device.
"""
import numpy as np
import pytest

from device_guard import require_device

numba_cuda_api = require_device()

from memnp.crossbar import Stage  # noqa: E402
from memnp.kernels import reference  # noqa: E402
from memnp.kernels import cuda_eval  # noqa: E402
from memnp.kernels import cuda_step as ks  # noqa: E402
from memnp.nn import device, device_eval  # noqa: E402

from test_nn_device import (G_OFF, G_ON, K_V, batches, epochs_equal_cpu, float32_steps_within_1e5, mlp,  # noqa: E402
                            pool, relative, weights)
from test_nn_device_stage import combined  # noqa: E402

cuda = numba_cuda_api
IDEAL = Stage(G_OFF, G_ON, K_V, ())


def linear(stuck=0.02, dac=6, adc=6, rows=8):
    """The combined stage of tests/test_nn_device_stage.py without PF (a linear read)."""
    items = [dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25),
             dict(type="Drift", nu_mean=0.01, nu_std=0.005, t=86400.0), dict(type="ReadNoise", sigma_rel=0.05)]
    if stuck:
        items.append(dict(type="StuckAtGOff", G_off=G_OFF, p=stuck))
    if dac:
        items.append(dict(type="DAC", bits=dac))
    if adc:
        items.append(dict(type="ADC", bits=adc))
    if rows:
        items.append(dict(type="Tiles", rows=rows, cols=6))
    return Stage(G_OFF, G_ON, K_V, tuple(items))


def run_steps(dtype, stage, steps, seed=9, p=4, tolerance=1e-12):
    """``steps`` train_steps, K = 1, CPU and device side by side (losses within ``tolerance``,
    accuracies equal); returns (cpu model, device model, the two Generators)."""
    cpu, dev = mlp(dtype, stage=stage), mlp(dtype, stage=stage)
    r_cpu, r_dev = np.random.default_rng(seed), np.random.default_rng(seed)
    trainer = device.DeviceTrainer(dev, batch_size=p)
    for x, y in batches(steps, p=p, dtype=dtype):
        loss, acc = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= tolerance * abs(loss)
        assert record.accuracies[0] == acc
    trainer.sync()
    return cpu, dev, r_cpu, r_dev


@pytest.mark.parametrize("stage, steps", [(IDEAL, 3), (linear(), 4)], ids=["ideal", "d2d-stuck-dac-adc-tiles"])
def test_linear_float64_steps_equal_the_cpu_backend(stage, steps):
    """3 or 4 steps of 4 examples (the simulator is slow), float64: losses, accuracies and weights
    within 1e-12 of the cpu backend's, and the Generator in the CPU's state (the ideal stage uses
    no words)."""
    cpu, dev, r_cpu, r_dev = run_steps("float64", stage, steps)
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= 1e-12
    assert relative(weights(dev)[0], weights(mlp("float64"))[0]) > 1e-2     # training moved them
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state
    if stage is IDEAL:
        assert r_dev.bit_generator.state == np.random.default_rng(9).bit_generator.state


def test_linear_float32_steps_within_1e5_and_the_same_words():
    """float32 (stuck uniforms from 32-bit halves), per step from the same weights: loss and
    weights within 1e-5; the Generator in the CPU's state, its held half word included."""
    float32_steps_within_1e5(linear(), 1, 4, states_each_step=True)


def test_a_pf_and_a_linear_member_train_together():
    """K = 2 in one trainer (P's IS_PF column per member): D2D and PF, and the linear stage with
    D2D, stuck devices, drift, read noise, DAC, ADC and tiles; one epoch of 8 examples in batches
    of 4, float64: each member equals its own CPU run."""
    stages = [combined(stuck=0, dac=0, adc=0, rows=None, drift=False, read=False), linear()]
    cpu = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(2)]
    dev = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(2)]
    images, labels = pool(8)
    trainer = device.DeviceTrainer(dev, batch_size=4)
    trainer.set_data(images, labels)
    epochs_equal_cpu(trainer, dev, cpu, images, labels, 30, 4)


def test_linear_power_kernel_equals_the_reference():
    """power_terms on a linear stage with a 4-bit DAC: reference.ideal_power of the DAC's
    voltages and G'' over each member's driven rows (float64)."""
    rng = np.random.default_rng(4)
    K, p, m, c = 2, 5, 7, 6
    x = rng.random((K, p, m - 1)) * (rng.random((K, p, m - 1)) < 0.6)
    x[:, :, 2] = 0.0
    rank = np.where((x != 0).any(axis=1), 0, -1)
    rank = np.concatenate([rank, np.zeros((K, 1), dtype=rank.dtype)], axis=1).astype(np.int64)
    G = rng.random((K, m, c)) * 1e-6
    stage = Stage(G_OFF, G_ON, K_V, (dict(type="DAC", bits=4),))
    P = np.tile(device._params(mlp("float64", stage=stage)), (K, 1))
    assert P[0, ks.IS_PF] == 0 and P[0, device.cuda_phases.DAC_L] == 15
    kern = cuda_eval.kernels(np.float64)
    terms = cuda.device_array((K, p, c), dtype=np.float64)
    record = cuda.to_device(np.zeros((K, 1)))
    kern["power_terms"][ks.grid(K * p * c)](cuda.to_device(x), p, cuda.to_device(rank), cuda.to_device(G),
                                            cuda.to_device(np.zeros_like(G)), cuda.to_device(P), terms)
    kern["power_sum"][K, ks.RT](terms, p, record, 0, False)
    got = record.copy_to_host()
    for k in range(K):
        driven = rank[k] >= 0
        V = np.concatenate([K_V * x[k], np.full((p, 1), K_V)], axis=1)
        V = stage.phases["dac"].apply_numpy(V, K_V)[0][:, driven]
        want = reference.ideal_power(V, G[k][driven])
        assert abs(got[k, 0] - want) <= 1e-12 * want


def test_linear_evaluation_power_equals_sequential_evaluate():
    """DeviceEvaluator with power on a linear stage (stage_supported(power=True) allows it now):
    the tahfo2 stage's StuckDistribution and a 6-bit DAC; loss, accuracy and power of 10 examples
    in batches of 4 equal ``Sequential.evaluate``'s (float64, 1e-12), the Generator moved on as
    the CPU's."""
    from memnp.experiments import registry
    tahfo2 = registry.device_stage("tahfo2")
    stage = Stage(tahfo2.G_off, tahfo2.G_on, tahfo2.k_V, tahfo2.nonidealities + (dict(type="DAC", bits=6),))
    assert device_eval.stage_supported(stage, power=True) is None
    model = mlp("float64", stage=stage)
    images, labels = pool(10)
    trainer = device_eval.PixelTrainer([model], batch_size=4)
    evaluator = device_eval.DeviceEvaluator.of(trainer)
    data = evaluator.upload(images, labels)
    r_cpu, r_dev = np.random.default_rng(5), np.random.default_rng(5)
    got = evaluator.evaluate(trainer.D, [device_eval.EvalMember(0, stage, r_dev, model.l1, power=True)], data, 4)[0]
    x = (images.astype(np.float32) / np.float32(255.0)).astype(np.float64)
    want = model.evaluate(x, labels, r_cpu, batch_size=4, power=True)
    for name in ("loss", "accuracy", "power"):
        assert abs(got[name] - want[name]) <= 1e-12 * abs(want[name]), name
    assert want["power"] > 0
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_linear_stages_are_supported():
    ok, reason = device.DeviceTrainer.supports(mlp("float64", stage=IDEAL))
    assert ok and reason == ""
    assert device.DeviceTrainer.supports(mlp("float64", stage=linear()))[0]


def test_a_linear_stage_ranks_every_row_after_the_first_layer():
    """stats_scan with ``every_row`` (layers after the first): on a linear stage every row is
    driven (the CPU reads every row of a linear crossbar whose input gradient is wanted), row 3
    with zero inputs included, and the words of every row are used; on a PF stage, and in the
    first layer, only the rows some input drives."""
    x = np.random.default_rng(8).random((1, 4, 12))
    x[..., 3] = 0.0
    k = ks.kernels(np.float64)
    for stage, every_row, driven in [(linear(stuck=0, dac=0, adc=0, rows=None), True, 13),
                                     (linear(stuck=0, dac=0, adc=0, rows=None), False, 12),
                                     (combined(stuck=0, dac=0, adc=0, rows=None, drift=False, read=False), True, 12)]:
        model = mlp("float64", stage=stage)
        D = model.memristive_layers[1]._matrix()
        P = cuda.to_device(device._params(model)[None])
        st, rank = cuda.device_array((1, ks.N_STATS)), cuda.device_array((1, 13), dtype=np.int64)
        state = cuda.to_device(device._states([np.random.default_rng(1)], np.zeros((1, 0), np.uint64)))
        offsets = cuda.device_array(1, dtype=np.uint64)
        k["stats_scan"][1, ks.RT](cuda.to_device(D[None]), P, st, cuda.to_device(x), 4, rank, offsets, state,
                                  every_row, state, offsets, False, False)
        ranks = rank.copy_to_host()[0]
        assert ranks[12] == driven - 1 and (ranks[3] >= 0) == (driven == 13)
        # linear: D2D, drift and read noise (half a word each); PF: D2D and the residuals (one word)
        assert state.copy_to_host()[0, 4] == driven * 20 * 1.5


def test_the_avg_mapping_rule_trains_as_on_the_cpu():
    """Double weights map as G = k_G D + G_off whatever the stage's mapping rule (the CPU passes
    the rule to standard weights only), so avg stages run on the device: K = 2 (PF, and linear
    D2D), both with mapping_rule "avg", one step, float64: each member equals its CPU run."""
    from test_nn_device import pf
    items = [(pf(),), linear(stuck=0, dac=0, adc=0, rows=None).nonidealities[:1]]
    stages = [Stage(G_OFF, G_ON, K_V, item, mapping_rule="avg") for item in items]
    cpu = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(2)]
    dev = [mlp("float64", seed=k + 1, stage=stages[k]) for k in range(2)]
    assert device.DeviceTrainer.supports(dev) == (True, "")
    r_cpu = [np.random.default_rng(40 + k) for k in range(2)]
    r_dev = [np.random.default_rng(40 + k) for k in range(2)]
    trainer = device.DeviceTrainer(dev, batch_size=4)
    for x, y in batches(1, p=4):
        record = trainer.train_step(x, y, r_dev)
        for k in range(2):
            loss, acc = cpu[k].train_step(x, y, r_cpu[k])
            assert abs(record.losses[k] - loss) <= 1e-12 * loss and record.accuracies[k] == acc
    trainer.sync()
    for k in range(2):
        for got, want in zip(weights(dev[k]), weights(cpu[k])):
            assert relative(got, want) <= 1e-12
        assert r_dev[k].bit_generator.state == r_cpu[k].bit_generator.state


def test_ndtri_equals_scipy_and_the_device_its_numpy_twin():
    """memnp.kernels.cuda_stuck's ndtri: its NumPy twin within 1e-13 (absolute) of
    scipy.special.ndtri over (0, 1) and both tails, the device's too (its own erfc and exp)."""
    from scipy import special
    from memnp.kernels import cuda_stuck
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(200), np.logspace(-300, -1, 40), 1 - np.logspace(-16, -1, 40), [0.5, 1e-3]])
    want = cuda_stuck.ndtri_numpy(p)
    assert np.max(np.abs(want - special.ndtri(p))) <= 1e-13
    out = cuda.device_array(p.size)

    @cuda.jit
    def run(p, out):       # a grid-stride loop: ks.grid caps the blocks (4 of 8 threads in the simulator)
        for t in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            out[t] = cuda_stuck.ndtri(p[t])
    run[ks.grid(p.size)](cuda.to_device(p), out)
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=0, atol=1e-13)      # another libm


@pytest.mark.parametrize("dtype, steps", [("float64", 2), ("float32", 1)])
def test_stuck_distribution_trains_as_on_the_cpu(dtype, steps):
    """The registry's tahfo2 stage (StuckDistribution alone: 10 % of the devices stuck at values
    drawn from a KDE of measured ones, a linear read): float64 within 1e-12, float32 within 1e-5,
    of the cpu backend's steps, and the Generator in the CPU's state (the mask's words, then two
    words per stuck device, layer by layer)."""
    from memnp.experiments import registry
    stage = registry.device_stage("tahfo2")
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    cpu, dev, r_cpu, r_dev = run_steps(dtype, stage, steps, tolerance=tolerance)
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= tolerance
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state
    assert device_eval.stage_supported(stage, power=True) is None
