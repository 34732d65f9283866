"""Device-resident training (memnp.nn.device, memnp.kernels.cuda_step) against the CPU's
``Sequential.train_step``, under Numba's CUDA simulator (conftest) on small shapes: a 20-12-10 MLP
of double-weight MemristiveDense layers on a PF stage, batches of 8, K = 1 and 3 members. On a GPU
machine ``NUMBA_ENABLE_CUDASIM=0`` runs them on the device.
"""
import re

import numpy as np
import pytest

from device_guard import require_device

numba_cuda_api = require_device()

from memnp.crossbar import Stage  # noqa: E402
from memnp.kernels import mapping, pf_devices, softmax  # noqa: E402
from memnp.nn import (SGD, Flatten, MemristiveConv2D, MemristiveDense, Sequential, Sigmoid,  # noqa: E402
                      Softmax)

from memnp.kernels import cuda_step as ks  # noqa: E402
from memnp.nn import device  # noqa: E402

cuda = numba_cuda_api
G_OFF, G_ON, K_V = 5.24841e-7, 2.6242e-6, 0.5


def pf(intercept_c=-0.250595, covariance=((0.03208284, 0.09272695), (0.09272695, 0.32510818))):
    """The high-R SiOx PF model (bench/epoch.py's case c), optionally another b_c and covariance."""
    return dict(type="IVNonlinearityPF", k_V=K_V, slopes=[-1.03023, -0.0901078],
                intercepts=[intercept_c, -37.1186], covariance=[list(row) for row in covariance])


def mlp(dtype, seed=1, lr=0.5, l1=1e-3, stage=None, flatten=False):
    """A 20-12-10 double-weight MLP (a large lr so that 20 steps move the weights a lot)."""
    stage = stage or Stage(G_OFF, G_ON, K_V, (pf(),))
    layers = [MemristiveDense(20, 12, "double", dtype), Sigmoid(dtype=dtype),
              MemristiveDense(12, 10, "double", dtype), Softmax(dtype=dtype)]
    if flatten:
        layers = [Flatten(dtype=dtype)] + layers
    model = Sequential(layers, input_shape=(4, 5) if flatten else None, stage=stage, optimizer=SGD(lr), l1=l1,
                       backend="cpu")
    return model.initialize(np.random.default_rng(seed))


def batches(steps, p=8, seed=5, dtype="float64"):
    """(x (p, 20) in [0, 1], about half zeros, column 3 always 0 (a row not driven); y (p,))."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.random((p, 20)) * (rng.random((p, 20)) < 0.5)
        x[:, 3] = 0.0
        out.append((x.astype(dtype), rng.integers(0, 10, p)))
    return out


def pool(n, seed=7):
    """uint8 images (n, 20) with MNIST-like zeros and labels (n,)."""
    rng = np.random.default_rng(seed)
    images = (rng.integers(0, 256, (n, 20)) * (rng.random((n, 20)) < 0.4)).astype(np.uint8)
    images[:, 3] = 0
    return images, rng.integers(0, 10, n)


def no_kde(m):
    """The devices kernel's StuckDistribution arguments for a stage without one (m rows)."""
    return cuda.device_array((1, m + 1), dtype=np.int64), cuda.to_device(np.zeros((1, 1, 3)))


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


def weights(model):
    return [layer._matrix().copy() for layer in model.memristive_layers]


def cpu_epoch(model, images, labels, rng, batch, dtype, order=None):
    """The CPU path of DeviceTrainer.train_epoch: (losses, accuracies)."""
    order = rng.permutation(len(images)) if order is None else order
    scale = np.asarray(1 / 255, dtype=dtype)
    out = [model.train_step(np.multiply(images[idx], scale, dtype=dtype), labels[idx], rng)
           for idx in (order[i:i + batch] for i in range(0, len(images), batch))]
    return np.array(out).T


def epochs_equal_cpu(trainer, dev, cpu, images, labels, seed, batch, epochs=1, arrays=weights):
    """``epochs`` of ``trainer`` (its members ``dev``, its data set) against each CPU model's own run
    from default_rng(seed + k), float64: per epoch the losses within 1e-12 and the accuracies
    equal; after, ``arrays`` of each member within 1e-12 and its Generator in the CPU's state."""
    K = len(dev)
    r_cpu = [np.random.default_rng(seed + k) for k in range(K)]
    r_dev = [np.random.default_rng(seed + k) for k in range(K)]
    for _ in range(epochs):
        record = trainer.train_epoch(r_dev, batch_size=batch)
        for k in range(K):
            losses, accs = cpu_epoch(cpu[k], images, labels, r_cpu[k], batch, "float64")
            assert relative(record.losses[k], losses) <= 1e-12
            np.testing.assert_array_equal(record.accuracies[k], accs)
    trainer.sync()
    for k in range(K):
        for got, want in zip(arrays(dev[k]), arrays(cpu[k])):
            assert relative(got, want) <= 1e-12
        assert r_dev[k].bit_generator.state == r_cpu[k].bit_generator.state


def test_float64_steps_equal_the_cpu_backend():
    """20 train_steps, K = 1, with L1 and a row no example drives: losses, accuracies and weights
    within 1e-12 (relative) of the cpu backend's, and the Generator in the same state after."""
    cpu, dev = mlp("float64"), mlp("float64")
    r_cpu, r_dev = np.random.default_rng(9), np.random.default_rng(9)
    trainer = device.DeviceTrainer(dev, batch_size=8)
    for x, y in batches(20):
        loss, acc = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= 1e-12 * abs(loss)
        assert record.accuracies[0] == acc
    trainer.sync()
    for got, want in zip(weights(dev), weights(cpu)):
        assert relative(got, want) <= 1e-12
    assert relative(weights(dev)[0], weights(mlp("float64"))[0]) > 1e-2     # training moved them
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def float32_steps_within_1e5(stage, steps, p, states_each_step):
    """float32 steps of a device trainer against the CPU's, each from the same weights (a fresh
    trainer on the CPU's weights): loss and weights within 1e-5 (relative); the Generators in one
    state after every step (``states_each_step``) or at the end."""
    cpu, dev = mlp("float32", stage=stage), mlp("float32", stage=stage)
    r_cpu, r_dev = np.random.default_rng(3), np.random.default_rng(3)
    for x, y in batches(steps, p=p, dtype="float32"):
        trainer = device.DeviceTrainer(dev, batch_size=p)
        loss, _ = cpu.train_step(x, y, r_cpu)
        record = trainer.train_step(x, y, r_dev)
        assert abs(record.losses[0] - loss) <= 1e-5 * abs(loss)
        trainer.sync()
        for got, want in zip(weights(dev), weights(cpu)):
            assert relative(got, want) <= 1e-5
        for layer, D in zip(cpu.memristive_layers, weights(dev)):   # the next step starts from the same weights
            layer._matrix()[...] = D
        if states_each_step:
            assert r_dev.bit_generator.state == r_cpu.bit_generator.state
    assert r_dev.bit_generator.state == r_cpu.bit_generator.state


def test_float32_steps_within_1e5_of_the_cpu_backend():
    """float32, per step from the same weights: loss and weights within 1e-5 (relative)."""
    float32_steps_within_1e5(None, 4, 8, states_each_step=False)


def test_three_members_epochs_equal_their_cpu_runs():
    """K = 3 members differing in PF parameters, lr, L1, Generator and data order, two epochs of
    40 examples in batches of 8 (with a flattening first layer and a short last batch: 37
    examples), float64: each member equals its own CPU run."""
    stages = [Stage(G_OFF, G_ON, K_V, (pf(),)), Stage(G_OFF, G_ON, K_V, (pf(-0.3, ((0.02, 0.05), (0.05, 0.3))),)),
              Stage(G_OFF, G_ON, K_V, (pf(),))]
    options = [dict(lr=0.5, l1=1e-3), dict(lr=0.2, l1=0.0), dict(lr=0.05, l1=1e-4)]
    make = [lambda k=k: mlp("float64", seed=k + 1, stage=stages[k], flatten=True, **options[k]) for k in range(3)]
    cpu, dev = [m() for m in make], [m() for m in make]
    images, labels = pool(37)
    images = images.reshape(-1, 4, 5)
    trainer = device.DeviceTrainer(dev, batch_size=8)
    trainer.set_data(images, labels)
    epochs_equal_cpu(trainer, dev, cpu, images, labels, 20, 8, epochs=2)


class Copies:
    """Counts host-to-device (cuda.to_device) and device-to-host (copy_to_host) copies."""

    def __init__(self, monkeypatch):
        self.to_device = self.to_host = 0
        original_to, array_type = cuda.to_device, type(cuda.device_array(1))
        original_host = array_type.copy_to_host

        def to_device(*args, **kwargs):
            self.to_device += 1
            return original_to(*args, **kwargs)

        def copy_to_host(array, *args, **kwargs):
            self.to_host += 1
            return original_host(array, *args, **kwargs)

        monkeypatch.setattr(cuda, "to_device", to_device)
        monkeypatch.setattr(array_type, "copy_to_host", copy_to_host)


def test_copies_per_epoch_do_not_grow_with_the_steps(monkeypatch):
    """One array in (states + permutation) and one out (the record) per epoch, for 2 and 5 steps;
    a train_step sends its batch and the states and reads one record."""
    images, labels = pool(40)
    counts = []
    for n in (16, 40):
        trainer = device.DeviceTrainer([mlp("float32", seed=1), mlp("float32", seed=2)], batch_size=8)
        trainer.set_data(images[:n], labels[:n])
        copies = Copies(monkeypatch)
        record = trainer.train_epoch([np.random.default_rng(1), np.random.default_rng(2)], batch_size=8)
        assert record.losses.shape == (2, n // 8)
        counts.append((copies.to_device, copies.to_host))
        monkeypatch.undo()
    assert counts == [(1, 1), (1, 1)]
    trainer = device.DeviceTrainer(mlp("float32"), batch_size=8)
    copies = Copies(monkeypatch)
    x, y = batches(1, dtype="float32")[0]
    trainer.train_step(x, y, np.random.default_rng(1))
    assert (copies.to_device, copies.to_host) == (2, 1)


def test_kernels_devices_and_loss_equal_their_cpu_references():
    """stats_scan + devices: G, c and d_eps of the driven rows equal mapping.double_G_rows and
    pf_devices' residuals and device parameters from the same Generator; loss: the softmax loop,
    then mapping.outputs_vjp."""
    model = mlp("float64")
    layer = model.memristive_layers[0]
    D = layer._matrix()
    x = batches(1)[0][0]
    stage = model.stage
    factor = stage.nonidealities[0]._factor
    P = cuda.to_device(device._params(model)[None])
    k = ks.kernels(np.float64)
    st = cuda.device_array((1, ks.N_STATS))
    rank = cuda.device_array((1, 21), dtype=np.int64)
    offsets = cuda.device_array(1, dtype=np.uint64)
    rng = np.random.default_rng(4)
    state = cuda.to_device(device._states([rng], np.zeros((1, 0), np.uint64)))
    arrays = [cuda.device_array((1, 21, 24)) for _ in range(8)]
    k["stats_scan"][1, ks.RT](cuda.to_device(D[None]), P, st, cuda.to_device(x[None]), 8, rank, offsets, state,
                              False, state, offsets, False, False)
    k["devices"][ks.grid(21)](cuda.to_device(D[None]), rank, st, P, state, offsets, *arrays, *no_kde(21), state,
                              offsets, False)
    active, _ = mapping.scan_inputs(x)
    rows = np.flatnonzero(active)
    np.testing.assert_array_equal(rank.copy_to_host()[0], np.where(active, np.cumsum(active) - 1, -1))
    max_weight = float(D.max())
    np.testing.assert_allclose(st.copy_to_host()[0, :3], [max_weight, np.sum(D == max_weight), np.abs(D).sum()],
                               rtol=1e-14)
    G = mapping.double_G_rows(D, rows, max_weight, G_OFF, G_ON)
    residuals = pf_devices.residuals(rng, factor, G.shape, np.float64)
    c, d_eps = stage.nonidealities[0].device_parameters_numpy(G, residuals)
    got_G, got_c, got_d, _ = (a.copy_to_host()[0] for a in arrays[:4])
    np.testing.assert_allclose(got_G[rows], G, rtol=1e-15)
    np.testing.assert_allclose(got_c[rows], c, rtol=1e-13)
    np.testing.assert_allclose(got_d[rows], d_eps, rtol=1e-13)
    assert np.all(got_c[~active] == 0)
    assert state.copy_to_host()[0, 4] == rows.size * 24
    z = np.random.default_rng(2).normal(0, 3, (1, 8, 10))
    y = np.random.default_rng(3).integers(0, 10, (1, 8))
    gz = cuda.device_array((1, 8, 10))
    record = cuda.device_array((1, 4))
    st_all = np.zeros((1, 1, ks.N_STATS))
    st_all[0, 0, ks.MAXW] = 1.7          # sum |D| 0: no L1 penalty
    st_all = cuda.to_device(st_all)
    I = np.random.default_rng(4).normal(0, 1e-6, (1, 8, 20))
    gI = cuda.device_array((1, 8, 20))
    k["loss"][1, ks.RT](cuda.to_device(z), cuda.to_device(y), 8, st_all, P, gz, cuda.device_array((1, 8, 2)),
                        record, 0, 1, cuda.to_device(I), st_all[0], gI, True)
    loss, grad, hits = softmax.softmax_cross_entropy(z[0], y[0])
    np.testing.assert_allclose(record.copy_to_host()[0, 2:], [loss, hits], rtol=1e-14)
    np.testing.assert_allclose(gz.copy_to_host()[0], grad, rtol=1e-13, atol=1e-17)
    grad_I, grad_max = mapping.outputs_vjp(I[0], grad, K_V, 1.7, G_OFF, G_ON)
    np.testing.assert_allclose(gI.copy_to_host()[0], grad_I, rtol=1e-14)
    assert abs(st_all.copy_to_host()[0, 0, ks.GMAX] - grad_max) <= 1e-13 * abs(grad_max)


@pytest.mark.parametrize("build, message", [
    (lambda: Sequential([MemristiveConv2D(1, 2, 3, "double", "float32"), Flatten(), MemristiveDense(8, 10),
                         Softmax()], stage=Stage(G_OFF, G_ON, K_V, (pf(),))), "MemristiveConv2D is not supported"),
    (lambda: Sequential([MemristiveDense(20, 12, "standard"), Sigmoid(), MemristiveDense(12, 10), Softmax()],
                        stage=Stage(G_OFF, G_ON, K_V, (pf(),))), "the layers mix double and standard weights"),
    (lambda: Sequential([MemristiveDense(20, 10), Softmax()], stage=Stage(G_OFF, G_ON, K_V, (pf(),)),
                        optimizer=SGD(0.1, momentum=0.9)), "plain SGD"),
    (lambda: Sequential([MemristiveDense(20, 10)], stage=Stage(G_OFF, G_ON, K_V, (pf(),))), "Softmax"),
])
def test_unsupported_networks_are_a_value_error(build, message):
    model = build()
    with pytest.raises(ValueError, match=message):
        device.DeviceTrainer(model)
    ok, reason = device.DeviceTrainer.supports(model)
    assert not ok and re.search(message, reason)
    assert device.DeviceTrainer.supports([mlp("float32"), mlp("float32", seed=2)]) == (True, "")


def test_bad_arguments_are_value_errors():
    trainer = device.DeviceTrainer([mlp("float32", seed=1), mlp("float32", seed=2)])
    x, y = batches(1, dtype="float32")[0]
    with pytest.raises(ValueError, match="each member needs its own Generator"):
        rng = np.random.default_rng(1)
        trainer.train_step(x, y, [rng, rng])
    with pytest.raises(ValueError, match="one numpy.random.Generator per member"):
        trainer.train_step(x, y, np.random.default_rng(1))
    rngs = [np.random.default_rng(1), np.random.default_rng(2)]
    with pytest.raises(ValueError, match="inputs in \\[0, 1\\]"):
        trainer.train_step(x * 2, y, rngs)
    with pytest.raises(ValueError, match="labels in \\[0, 10\\)"):
        trainer.train_step(x, y + 10, rngs)
    with pytest.raises(ValueError, match="call set_data"):
        trainer.train_epoch(rngs)
    with pytest.raises(ValueError, match="uint8"):
        trainer.set_data(x, y)
    with pytest.raises(ValueError, match="layer sizes differ"):
        device.DeviceTrainer([mlp("float32"), Sequential([MemristiveDense(20, 10), Softmax()],
                                                          stage=Stage(G_OFF, G_ON, K_V, (pf(),)))])


def test_kernels_read_vjps_and_update_equal_their_references():
    """forward, inputs_vjp, devices_vjp, tie_share and update of one hidden layer (float64) against
    memnp.kernels.reference (PF currents and VJP on the driven rows), mapping.outputs,
    pf_devices.device_parameters_vjp, mapping.double_w_to_G_vjp_rows, optim's L1 and sgd.step."""
    from memnp.kernels import reference, sgd
    model = mlp("float64")
    D = model.memristive_layers[1]._matrix()          # 13 x 20: inputs are the hidden layer's
    x = np.random.default_rng(8).random((8, 12))
    x[:, 5] = 0.0
    k = ks.kernels(np.float64)
    P_host = device._params(model)
    P = cuda.to_device(P_host[None])
    st = cuda.device_array((1, ks.N_STATS))
    rank = cuda.device_array((1, 13), dtype=np.int64)
    state = cuda.to_device(device._states([np.random.default_rng(2)], np.zeros((1, 0), np.uint64)))
    dD, dx = cuda.to_device(D[None]), cuda.to_device(x[None])
    G, c, d, KK = (cuda.device_array((1, 13, 20)) for _ in range(4))
    offsets = cuda.device_array(1, dtype=np.uint64)
    k["stats_scan"][1, ks.RT](dD, P, st, dx, 8, rank, offsets, state, False, state, offsets, False, False)
    chain = [cuda.device_array((1, 13, 20)) for _ in range(4)]      # eps, drift, read, stuck: unused
    k["devices"][ks.grid(13)](dD, rank, st, P, state, offsets, G, c, d, KK, *chain, *no_kde(13), state, offsets,
                              False)
    I, y = cuda.device_array((1, 8, 20)), cuda.device_array((1, 8, 10))
    adc, inside = cuda.to_device(np.zeros((1, 1, 3))), cuda.device_array((1, 1, 8, 20))
    k["forward"][ks.grid(80, ks.RS)](dx, 8, rank, c, KK, st, P, adc, I, y, False, inside)
    rows = np.flatnonzero(mapping.scan_inputs(x)[0])
    V = mapping.voltages(x, K_V, rows)
    Gh, ch, dh = (a.copy_to_host()[0][rows] for a in (G, c, d))
    max_weight = float(D.max())
    want_I = reference.pf_currents(V, ch, dh)
    np.testing.assert_allclose(I.copy_to_host()[0], want_I, rtol=1e-12)
    want_y = mapping.outputs(want_I, K_V, max_weight, G_OFF, G_ON)
    np.testing.assert_allclose(y.copy_to_host()[0], want_y, rtol=1e-11)
    gI = np.random.default_rng(9).normal(0, 1e5, (1, 8, 20))
    dgI, gx = cuda.to_device(gI), cuda.device_array((1, 8, 12))
    k["inputs_vjp"][ks.grid(96)](dx, 8, rank, c, KK, dgI, P, gx, inside)
    grad_V, grad_c, grad_d = reference.pf_currents_vjp(V, ch, dh, gI[0])
    want_gx = np.zeros((8, 13))
    want_gx[:, rows] = grad_V
    want_gx = want_gx[:, :12] * K_V * x * (1 - x)
    np.testing.assert_allclose(gx.copy_to_host()[0], want_gx, rtol=1e-11, atol=1e-20)
    gD, prod = cuda.device_array((1, 13, 20)), cuda.device_array((1, 13, 20))
    k["devices_vjp"][ks.grid(260)](dx, 8, rank, G, c, d, KK, dD, dgI, st, P, gD, prod, *chain, inside)
    st_host = st.copy_to_host()
    st_host[0, ks.GMAX] = 0.25                       # an upstream dL/d(max weight)
    st = cuda.to_device(st_host)
    k["tie_share"][1, ks.RT](prod, st)
    k["update"][ks.grid(260)](dD, gD, st, P)
    grad_G = pf_devices.device_parameters_vjp(Gh, ch, dh, grad_c, grad_d, model.stage.nonidealities[0].slopes)
    grad_D = mapping.double_w_to_G_vjp_rows(D, grad_G, rows, 0.25, G_OFF, G_ON, max_weight)
    grad_D += model.l1 * np.sign(D)
    want_D = sgd.step(D.copy(), grad_D, P_host[ks.LR], non_negative=True)
    assert relative(dD.copy_to_host()[0], want_D) <= 1e-12
    assert relative(dD.copy_to_host()[0], D) > 1e-3


def test_epoch_arguments_are_value_errors():
    trainer = device.DeviceTrainer(mlp("float32"))
    images, labels = pool(16)
    trainer.set_data(images, labels)
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        trainer.train_epoch(rng, batch_size=0)
    with pytest.raises(ValueError, match="order must be \\(N,\\) or \\(K, N\\)"):
        trainer.train_epoch(rng, order=np.arange(15))
    with pytest.raises(ValueError, match="order must be"):
        trainer.train_epoch(rng, order=np.arange(16) + 1)
    with pytest.raises(ValueError, match="labels in \\[0, 10\\)"):
        trainer.set_data(images, labels[:15])
    with pytest.raises(ValueError, match="labels in \\[0, 10\\)"):
        trainer.set_data(images, np.stack([labels, labels]))
    with pytest.raises(ValueError, match="scale must be a number in \\(0, 1/255\\]"):
        trainer.set_data(images, labels, scale="x")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        device.DeviceTrainer(mlp("float32"), batch_size=True)


def test_train_step_with_a_batch_per_member():
    """x (K, p, n_in) and y (K, p): member k trains on its own batch (float32, within 1e-5)."""
    cpu, dev = [mlp("float32", seed=k) for k in (1, 2)], [mlp("float32", seed=k) for k in (1, 2)]
    (x0, y0), (x1, y1) = batches(2, dtype="float32")
    record = device.DeviceTrainer(dev).train_step(np.stack([x0, x1]), np.stack([y0, y1]),
                                                  [np.random.default_rng(3), np.random.default_rng(4)])
    for k, (x, y) in enumerate([(x0, y0), (x1, y1)]):
        loss, acc = cpu[k].train_step(x, y, np.random.default_rng(3 + k))
        assert abs(record.losses[k] - loss) <= 1e-5 * loss and record.accuracies[k] == acc
