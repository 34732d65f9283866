"""Standard weights trained on the device (memnp.kernels.cuda_standard and the MAPPING column of
memnp.kernels.cuda_phases) against the CPU's ``Sequential.train_step``, under Numba's CUDA
simulator (conftest): a 20-12-10 MLP of signed weights W (two devices per weight) under a PF
stage with D2D variability, mapped by the default or the avg rule. The max-|W| path of the
mapping VJP (its tie share) and L1 on W and b are in every step.
"""
import numpy as np
import pytest

from device_guard import require_device

numba_cuda_api = require_device()

from memnp.crossbar import Stage  # noqa: E402
from memnp.nn import MemristiveDense, Sequential, Sigmoid, Softmax  # noqa: E402
from memnp.nn.optim import SGD  # noqa: E402
from memnp.nn import device  # noqa: E402

from test_nn_device import G_OFF, G_ON, K_V, batches, epochs_equal_cpu, mlp, pf, pool, relative  # noqa: E402

D2D = dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25)


def stage(rule):
    return Stage(G_OFF, G_ON, K_V, (D2D, pf()), mapping_rule=rule)


def standard_mlp(dtype, rule, seed=1):
    """A 20-12-10 standard-weight MLP (lr 0.5 and L1 1e-3, as test_nn_device's double one)."""
    layers = [MemristiveDense(20, 12, "standard", dtype), Sigmoid(dtype=dtype),
              MemristiveDense(12, 10, "standard", dtype), Softmax(dtype=dtype)]
    model = Sequential(layers, stage=stage(rule), optimizer=SGD(0.5), l1=1e-3, backend="cpu")
    return model.initialize(np.random.default_rng(seed))


def params(model):
    """W and b of every memristive layer, copied."""
    return [layer.params[name].copy() for layer in model.memristive_layers for name in ("W", "b")]


@pytest.mark.parametrize("rule", ["default", "avg"])
def test_float64_steps_equal_the_cpu_backend(rule):
    """8 steps of batches of 4 with a row no example drives: losses, accuracies, W and b within
    1e-12 of the cpu backend's; the Generator ends in the CPU's state."""
    cpu, dev = standard_mlp("float64", rule), standard_mlp("float64", rule)
    start = params(dev)
    r_cpu, r_dev = np.random.default_rng(11), np.random.default_rng(11)
    trainer = device.DeviceTrainer(dev, batch_size=4)
    assert trainer.standard
    for x, y in batches(8, p=4):
        loss, acc = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= 1e-12 * abs(loss)
        assert record.accuracies[0] == acc
    trainer.sync()
    for got, want, before in zip(params(dev), params(cpu), start):
        assert relative(got, want) <= 1e-12
        assert relative(got, before) > 1e-3          # the steps moved every array
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_float32_steps_within_1e5():
    """float32, default rule, per step from the same weights: loss, W and b within 1e-5."""
    cpu, dev = standard_mlp("float32", "default"), standard_mlp("float32", "default")
    r_cpu, r_dev = np.random.default_rng(3), np.random.default_rng(3)
    for x, y in batches(3, p=4, dtype="float32"):
        trainer = device.DeviceTrainer(dev, batch_size=4)
        loss, _ = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= 1e-5 * abs(loss)
        trainer.sync()
        for got, want in zip(params(dev), params(cpu)):
            assert relative(got, want) <= 1e-5
        for layer, source in zip(dev.memristive_layers, cpu.memristive_layers):
            for name in ("W", "b"):
                layer.params[name][...] = source.params[name]
        assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_two_members_with_different_rules_equal_their_cpu_runs():
    """K = 2 (the default and the avg rule) in one trainer, one epoch of 12 examples in batches of
    8 (a short last one), float64: each member equals its own CPU run."""
    rules = ("default", "avg")
    cpu = [standard_mlp("float64", rule, seed=k + 2) for k, rule in enumerate(rules)]
    dev = [standard_mlp("float64", rule, seed=k + 2) for k, rule in enumerate(rules)]
    images, labels = pool(12)
    trainer = device.DeviceTrainer(dev, batch_size=8)
    trainer.set_data(images, labels)
    epochs_equal_cpu(trainer, dev, cpu, images, labels, 40, 8, arrays=params)


def test_double_weights_under_the_avg_rule_train_as_on_the_cpu():
    """The mapping rule maps standard weights only: a double-weight network under an avg stage
    trains on the device, and equals its CPU run (which ignores the rule too)."""
    cpu, dev = mlp("float64", stage=stage("avg")), mlp("float64", stage=stage("avg"))
    r_cpu, r_dev = np.random.default_rng(5), np.random.default_rng(5)
    trainer = device.DeviceTrainer(dev, batch_size=4)
    assert not trainer.standard
    for x, y in batches(2, p=4):
        loss, _ = cpu.train_step(x, y, r_cpu)
        assert abs(trainer.train_step(x, y, r_dev).losses[0] - loss) <= 1e-12 * abs(loss)
    trainer.sync()
    for got, want in zip(dev.memristive_layers, cpu.memristive_layers):
        assert relative(got._matrix(), want._matrix()) <= 1e-12


def test_the_ideal_stage_trains_as_the_digital_cpu_read():
    """Standard weights under the ideal stage (the paper's ideal training), which the CPU reads
    digitally (y = x W + b, zero biases at the start): the device's exact linear crossbar with
    the digital VJP, 4 steps in float64: losses, W and b within 1e-12."""
    cpu, dev = standard_mlp("float64", "default"), standard_mlp("float64", "default")
    cpu.stage = dev.stage = Stage(G_OFF, G_ON, K_V, ())
    assert not np.any(dev.memristive_layers[0].params["b"])
    trainer = device.DeviceTrainer(dev, batch_size=4)
    r_cpu, r_dev = np.random.default_rng(2), np.random.default_rng(2)
    for x, y in batches(4, p=4):
        loss, acc = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= 1e-12 * abs(loss)
        assert record.accuracies[0] == acc
    trainer.sync()
    for got, want in zip(params(dev), params(cpu)):
        assert relative(got, want) <= 1e-12


def test_members_of_both_weight_kinds_are_refused():
    ok, reason = device.DeviceTrainer.supports([mlp("float64", stage=stage("default")),
                                                standard_mlp("float64", "default")])
    assert not ok and "member 1 has standard weights, member 0 double weights" in reason
