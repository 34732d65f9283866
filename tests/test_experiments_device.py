"""The cuda backend's training pass (memnp.experiments.device_train, memnp.nn.device_eval,
memnp.kernels.cuda_eval) against the cpu backend's, under Numba's CUDA simulator (conftest) on
small shapes: protocol.train_group of PF MLPs (a 20-6-10 network stands in for the paper's MLP)
with memristive validation and a test stage, and the CLI's --backend.
"""
import dataclasses

import numpy as np
import pytest

from device_guard import require_device

numba_cuda_api = require_device()

from memnp.crossbar import Stage  # noqa: E402
from memnp.experiments import Training, protocol  # noqa: E402
from memnp.experiments.configs import DataSpec  # noqa: E402
from memnp.kernels import reference  # noqa: E402
from memnp.nn import SGD, Flatten, MemristiveDense, Sequential, Sigmoid, Softmax  # noqa: E402
from memnp.kernels import cuda_eval, cuda_step as ks  # noqa: E402
from memnp.nn import device_eval  # noqa: E402

from test_nn_device import G_OFF, G_ON, K_V, Copies  # noqa: E402

cuda = numba_cuda_api


def pf_stage(intercept_c=-0.250595):
    return Stage.from_dict(dict(G_off=G_OFF, G_on=G_ON, k_V=K_V, nonidealities=[dict(
        type="IVNonlinearityPF", k_V=K_V, slopes=[-1.03023, -0.0901078], intercepts=[intercept_c, -37.1186],
        covariance=[[0.03208284, 0.09272695], [0.09272695, 0.32510818]])]))


def small_mlp(dtype, hidden=6):
    """A build_model stand-in: Flatten (4, 5) -> 20 -> hidden -> 10, double weights on the stage."""
    def build(family, weights, stage, rng, learning_rate=0.01, l1=0.0):
        layers = [Flatten(dtype=dtype), MemristiveDense(20, hidden, weights, dtype), Sigmoid(dtype=dtype),
                  MemristiveDense(hidden, 10, weights, dtype), Softmax(dtype=dtype)]
        return Sequential(layers, input_shape=(4, 5), stage=stage, optimizer=SGD(lr=learning_rate),
                          l1=l1).initialize(rng)
    return build


def data(n_train=16, n_val=8, n_test=8, seed=7):
    """{split: (uint8 images (n, 4, 5) with MNIST-like zeros, labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        images = (rng.integers(0, 256, (n, 4, 5)) * (rng.random((n, 4, 5)) < 0.5)).astype(np.uint8)
        images[:, 0, 3] = 0       # a row no example drives
        out[split] = (images, rng.integers(0, 10, n).astype(np.uint8))
    return out


def trainings(n_train=16, members=2, epochs=2):
    """PF trainings with memristive validation (2 repeats) and a PF test stage (2 repeats) after
    every epoch; they differ in learning rate and L1."""
    options = [dict(learning_rate=0.5, regularised=True, l1=1e-3), dict(learning_rate=0.2),
               dict(learning_rate=0.05, regularised=True)]
    return [Training(data=DataSpec(name="mnist", train=n_train), stage=pf_stage(), epochs=epochs, batch_size=8,
                     validation_every=1, validation_repeats=2, test_stages=(pf_stage(-0.3),), test_every=1,
                     test_repeats=2, test_batch_size=8, **options[k]) for k in range(members)]


def run(monkeypatch, backend, dtype, configs, splits, checkpoints=None, on_epoch=None):
    monkeypatch.setenv("MEMNP_BACKEND", backend)
    monkeypatch.setattr(protocol, "build_model", small_mlp(dtype))
    seqs = [np.random.SeedSequence(100 + k) for k in range(len(configs))]
    return protocol.train_group(configs, splits, seqs, checkpoints=checkpoints, on_epoch=on_epoch)


def numbers(record):
    """Every number of a record that the backends must agree on, flattened."""
    h, v = record["history"], record["validation"]
    values = [h["loss"], h["accuracy"]] + [np.ravel(h[name]) for name in ("val_loss", "val_accuracy") if name in h]
    if v is not None:          # memristive validation (an ideal training validates digitally)
        values += [np.ravel(v["loss"]), np.ravel(v["accuracy"])]
    for test in record["test"]:
        values += [np.ravel(test["loss"]), np.ravel(test["accuracy"]), np.ravel(test["power"])]
    return np.concatenate([np.asarray(x, dtype=np.float64) for x in values])


def relative(a, b):
    """The largest elementwise relative difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def relative_to_max(a, b):
    """max |a - b| / max |b| (weights: some are 0 after the non-negative projection)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def compare(got, want, tolerance):
    for (rec_g, w_g), (rec_w, w_w) in zip(got, want):
        assert rec_g["history"]["epoch"] == rec_w["history"]["epoch"]
        assert rec_g["checkpoint"]["epoch"] == rec_w["checkpoint"]["epoch"]
        assert relative(numbers(rec_g), numbers(rec_w)) <= tolerance
        for key in w_w:
            if key.startswith("layer"):
                assert relative_to_max(w_g[key], w_w[key]) <= tolerance, key


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tolerance, epochs", [("float64", 1e-10, 2), ("float32", 1e-4, 1)])
def test_a_cuda_group_gives_the_cpu_records(monkeypatch, dtype, tolerance, epochs):
    """Two PF members, epochs of 16 examples in batches of 8 (two in float64, one in float32),
    validation and test passes after each: histories, validation, tests (loss, accuracy, power)
    and the kept weights equal the cpu backend's (float64 to 1e-10, float32 to 1e-4)."""
    splits = data()
    want = run(monkeypatch, "cpu", dtype, trainings(epochs=epochs), splits)
    got = run(monkeypatch, "cuda", dtype, trainings(epochs=epochs), splits)
    compare(got, want, tolerance)
    assert all(0 < p < 1 for rec, _ in got for p in np.ravel(rec["test"][0]["power"]))


def case_e():
    """bench/epoch.py's case e in small arrays: D2D, stuck devices, drift, read noise, DAC, PF,
    ADC and Tiles of 8 x 6."""
    stage = pf_stage().to_dict()
    items = [dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25),
             stage["nonidealities"][0], dict(type="StuckAtGOff", G_off=G_OFF, p=0.02),
             dict(type="Drift", nu_mean=0.01, nu_std=0.005, t=86400.0), dict(type="ReadNoise", sigma_rel=0.05),
             dict(type="DAC", bits=6), dict(type="ADC", bits=6, full_scale="worst-case"),
             dict(type="Tiles", rows=8, cols=6)]
    return Stage(G_OFF, G_ON, K_V, tuple(items))


@pytest.mark.slow
def test_a_combined_stage_group_gives_the_cpu_records(monkeypatch):
    """Where DeviceTrainer trains the combined stage: training, validation and both test stages
    (PF, and the combined one with its DAC's voltages in the power) on the device; the cpu
    backend's records (float64)."""
    import dataclasses
    from memnp.nn.device import DeviceTrainer
    stage = case_e()
    if not DeviceTrainer.supports(small_mlp("float64")("mnist", "double", stage, np.random.default_rng(0)))[0]:
        pytest.skip("DeviceTrainer does not train the combined stage on this branch")
    splits = data(n_train=8, n_val=4, n_test=4)
    configs = [dataclasses.replace(c, stage=stage, test_stages=(pf_stage(-0.3), stage))
               for c in trainings(n_train=8, members=2, epochs=1)]
    want = run(monkeypatch, "cpu", "float64", configs, splits)
    got = run(monkeypatch, "cuda", "float64", configs, splits)
    compare(got, want, 1e-10)


def d2d_stage(p_stuck=0.0):
    """A linear stage (no currents phase) with D2D and, optionally, devices stuck at G_off: the
    registry's d2d_* and stuck_off setups in small."""
    items = [dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25)]
    if p_stuck:
        items.append(dict(type="StuckAtGOff", G_off=G_OFF, p=p_stuck))
    return Stage(G_OFF, G_ON, K_V, tuple(items))


def test_a_linear_stage_group_trains_on_the_device(monkeypatch):
    """Two D2D trainings (linear reads; their learning rates and L1 differ) in one train_group
    pass with backend cuda: they train on the device (DeviceTrainer.supports no longer refuses
    linear stages, the ideal one included), with validation and a linear test stage (D2D and
    stuck devices; its power too) on the device; one epoch of 8 examples, float64: the cpu
    backend's records and weights to 1e-10."""
    import dataclasses
    from memnp.experiments import device_train
    from memnp.nn.device import DeviceTrainer
    build = small_mlp("float64")
    for stage in (Stage(G_OFF, G_ON, K_V, ()), d2d_stage(0.05)):
        assert DeviceTrainer.supports(build("mnist", "double", stage, np.random.default_rng(0))) == (True, "")
    assert device_eval.stage_supported(d2d_stage(0.05), power=True) is None
    splits = data(n_train=8, n_val=4, n_test=4)
    base = [dataclasses.replace(c, validation_repeats=1, test_repeats=1)
            for c in trainings(n_train=8, members=2, epochs=1)]
    configs = [dataclasses.replace(base[0], stage=d2d_stage(), test_stages=(d2d_stage(0.05),)),
               dataclasses.replace(base[1], stage=d2d_stage(), test_stages=(d2d_stage(0.05),))]
    want = run(monkeypatch, "cpu", "float64", configs, splits)
    epochs, evaluated = [], []
    train_epoch, evaluate = device_train.DevicePass.train_epoch, device_eval.DeviceEvaluator.evaluate

    def count_epoch(self, active, epoch):
        epochs.append(len(active))
        return train_epoch(self, active, epoch)

    def count_passes(self, weights, members, data, batch_size):
        evaluated.extend(m.power for m in members)
        return evaluate(self, weights, members, data, batch_size)
    monkeypatch.setattr(device_train.DevicePass, "train_epoch", count_epoch)
    monkeypatch.setattr(device_eval.DeviceEvaluator, "evaluate", count_passes)
    got = run(monkeypatch, "cuda", "float64", configs, splits)
    assert epochs == [2]
    assert evaluated.count(True) == 2 and evaluated.count(False) == 2    # a test and a validation pass each
    compare(got, want, 1e-10)
    assert all(0 < p < 1 for rec, _ in got for p in np.ravel(rec["test"][0]["power"]))


@pytest.mark.slow
def test_copies_over_an_epoch_do_not_grow_with_the_steps(monkeypatch):
    """An epoch of two members with validation (2 rounds) and a test stage: the same host<->device
    copies for 1 and 2 steps."""
    counts = []
    for n_train in (8, 16):
        splits = data(n_train=n_train, n_val=4, n_test=4)
        copies = Copies(monkeypatch)
        run(monkeypatch, "cuda", "float32", trainings(n_train, epochs=1), splits)
        counts.append((copies.to_device, copies.to_host))
        monkeypatch.undo()
    # In, once per pass: the trainers' constants and weights (the training trainer's and two
    # evaluation trainers'), the training set (images, labels, pixel table), the evaluator's table,
    # the validation and test sets; per epoch: the states with the order of the epoch, of 2
    # validation rounds and of one test call (25 on main). Out: the epoch record, 3 evaluation
    # records and the test's powers, the weights after validation (2 layers).
    assert counts[0] == counts[1]
    assert counts[0][1] == 1 + 3 + 1 + 2


def test_host_test_stages_run_beside_the_device_pass(monkeypatch):
    """A test stage the device cannot read (line resistance; the PF one on the device) runs on
    the host from the synced weights: the same records as the cpu backend (float64, 1e-10)."""
    import dataclasses
    splits = data(n_val=4, n_test=4)
    wires = Stage(G_OFF, G_ON, K_V, (dict(type="LineResistance", r_word=1.0, r_bit=1.0),))
    assert "LineResistance" in device_eval.stage_supported(wires, power=True)
    configs = [dataclasses.replace(trainings(members=1, epochs=1)[0], test_stages=(pf_stage(-0.3), wires))]
    want = run(monkeypatch, "cpu", "float64", configs, splits)
    got = run(monkeypatch, "cuda", "float64", configs, splits)
    compare(got, want, 1e-10)
    assert [len(test["power"][0]) for test in got[0][0]["test"]] == [2, 2]


class Killed(Exception):
    pass


@pytest.mark.slow
def test_a_killed_cuda_run_resumes_from_its_checkpoint(monkeypatch, tmp_path):
    """A cuda run killed after epoch 1 (its checkpoint saved from the synced device weights)
    resumes on the device (the weights uploaded again) to the uninterrupted run's numbers."""
    from memnp.experiments.checkpoint import TrainingCheckpoint
    import dataclasses
    splits = data(n_val=4, n_test=4)
    configs = [dataclasses.replace(c, validation_repeats=1, test_repeats=1) for c in trainings(members=1)]
    whole = run(monkeypatch, "cuda", "float64", configs, splits)

    def kill(epoch, epochs):
        if epoch == 1:
            raise Killed
    checkpoint = TrainingCheckpoint(tmp_path, "job", every_seconds=0)
    with pytest.raises(Killed):
        run(monkeypatch, "cuda", "float64", configs, splits, checkpoints=[checkpoint], on_epoch=kill)
    assert checkpoint.load().epoch == 1
    resumed = run(monkeypatch, "cuda", "float64", configs, splits, checkpoints=[checkpoint])
    assert resumed[0][0]["resumed_from_epoch"] == 1
    compare(resumed, whole, 1e-14)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the simulator's NumPy scalars meet the NaN weights
@pytest.mark.parametrize("n_train", [8, 16], ids=["last-step", "mid-epoch"])
def test_a_diverging_member_fails_as_on_the_host(monkeypatch, n_train):
    """From epoch 2 on the learning rate is NaN, so the weights turn NaN at the epoch's first update.
    The host refuses them at its next step (mid-epoch: a ValueError, then the parameters' check)
    or after the epoch (its last step); the device pass raises the same TrainingDiverged (epoch 2,
    the parameter named), not a NaN loss and not in epoch 3 (no validation or test after epoch 2
    syncs the weights first)."""
    from memnp.experiments import device_train
    configs = [dataclasses.replace(trainings(n_train=n_train, members=1, epochs=3)[0], validation_every=3,
                                   test_every=3)]
    splits = data(n_train=n_train, n_val=4, n_test=4)
    real = device_train.DevicePass.train_epoch

    def train_epoch(self, active, epoch):     # the device reads the host models' learning rates
        trainer = self._trainer(active)
        P = trainer.P.copy_to_host()
        P[:, ks.LR] = [m.model.optimizer.lr for m in active]
        trainer.P = cuda.to_device(P)
        return real(self, active, epoch)
    monkeypatch.setattr(device_train.DevicePass, "train_epoch", train_epoch)
    messages = []
    for backend in ("cpu", "cuda"):
        build, models = small_mlp("float64"), []
        monkeypatch.setenv("MEMNP_BACKEND", backend)
        monkeypatch.setattr(protocol, "build_model", lambda *args: models.append(build(*args)) or models[-1])

        def nan_rate(epoch, epochs):
            models[0].optimizer.lr = float("nan")
        with pytest.raises(protocol.TrainingDiverged) as caught:
            protocol.train_group(configs, splits, [np.random.SeedSequence(100)], on_epoch=nan_rate)
        messages.append(str(caught.value))
    assert messages[0].startswith("training diverged in epoch 2 (parameter layer")
    assert messages[1] == messages[0]


def test_device_evaluation_equals_sequential_evaluate():
    """DeviceEvaluator: three passes (two members, one twice under another PF stage) give
    Sequential.evaluate's loss, accuracy and power (float64, 1e-12), and the Generators end where
    the CPU's do."""
    stage = pf_stage()
    build = small_mlp("float64")
    models = [build("mnist", "double", stage, np.random.default_rng(k), 0.1, l1) for k, l1 in ((1, 1e-3), (2, 0.0))]
    for model in models:
        model.backend = "cpu"
    splits = data(n_val=13)
    images, labels = splits["validation"]
    trainer = device_eval.PixelTrainer(models, batch_size=8)
    evaluator = device_eval.DeviceEvaluator.of(trainer)
    on_device = evaluator.upload(images, labels)
    other = pf_stage(-0.3)
    tasks = [(0, stage, 3), (1, other, 4), (0, other, 5)]
    rngs = [np.random.default_rng(seed) for _, _, seed in tasks]
    got = evaluator.evaluate(trainer.D, [device_eval.EvalMember(k, s, r, models[k].l1, power=True)
                                         for (k, s, _), r in zip(tasks, rngs)], on_device, 5)
    x = images.astype(np.float32) / np.float32(255)
    for (k, s, seed), result, rng in zip(tasks, got, rngs):
        cpu_rng = np.random.default_rng(seed)
        want = models[k].evaluate(x, labels, rng=cpu_rng, stage=s, batch_size=5, power=True)
        for name in ("loss", "accuracy", "power"):
            assert abs(result[name] - want[name]) <= 1e-12 * abs(want[name]), name
        assert rng.bit_generator.state == cpu_rng.bit_generator.state


def test_infer_on_the_device_gives_the_cpu_repeats(monkeypatch):
    """protocol.infer with the cuda backend runs a PF inference setup's repeats on the device
    (device_train.infer_repeats), with the cpu backend's numbers (float64, 1e-10), whatever stage
    the network was trained under; chip sampling stays on the host."""
    from memnp.experiments import Inference, device_train
    model = small_mlp("float64")("mnist", "double", None, np.random.default_rng(3), 0.1, 1e-3)   # trained ideal
    weights = protocol.model_arrays(model, None)
    images, labels = data(n_test=7)["test"]
    setup = Inference(stage=pf_stage(-0.3), repeats=2, batch_size=4, test_examples=6)
    ran = []
    real = device_train.infer_repeats

    def spy(*args):
        out = real(*args)
        ran.append(out is not None)
        return out
    monkeypatch.setattr(protocol, "infer_repeats", spy)
    reported = []
    monkeypatch.setenv("MEMNP_BACKEND", "cuda")
    got = protocol.infer(weights, setup, (images, labels), np.random.SeedSequence(42),
                         on_repeat=lambda i, r, res: reported.append(i))
    monkeypatch.setenv("MEMNP_BACKEND", "cpu")
    want = protocol.infer(weights, setup, (images, labels), np.random.SeedSequence(42))
    assert ran == [True, False] and reported == [1, 2]
    for name in ("accuracy", "loss", "power"):
        assert len(got[name]) == 2
        assert np.allclose(got[name], want[name], rtol=1e-10, atol=0), name
    assert len(set(want["loss"])) == 2     # two different repeats
    monkeypatch.setenv("MEMNP_BACKEND", "cuda")
    chip = Inference(stage=pf_stage(-0.3), repeats=1, batch_size=4, test_examples=6, sampling="chip")
    protocol.infer(weights, chip, (images, labels), np.random.SeedSequence(42))
    assert ran[-1] is True       # chip sampling too (test_chip_sampling_on_the_device_gives_the_cpu_repeats)


def chip_stage():
    """PF with D2D, stuck devices (float64: a word per device) and read noise."""
    items = [dict(type="D2DLognormal", G_off=G_OFF, G_on=G_ON, R_on_log_std=0.25, R_off_log_std=0.25),
             pf_stage(-0.3).to_dict()["nonidealities"][0], dict(type="StuckAtGOff", G_off=G_OFF, p=0.1),
             dict(type="ReadNoise", sigma_rel=0.05)]
    return Stage(G_OFF, G_ON, K_V, tuple(items))


def linear_chip_stage():
    """A linear read: D2D, the tahfo2 device's drawn stuck values and read noise."""
    from memnp.experiments import registry
    tahfo2 = registry.device_stage("tahfo2")
    stuck = tahfo2.to_dict()["nonidealities"][0]
    items = [dict(type="D2DLognormal", G_off=tahfo2.G_off, G_on=tahfo2.G_on, R_on_log_std=0.25, R_off_log_std=0.25),
             dict(stuck, p=0.1), dict(type="ReadNoise", sigma_rel=0.05)]
    return Stage(tahfo2.G_off, tahfo2.G_on, tahfo2.k_V, tuple(items))


@pytest.mark.parametrize("stage", [pf_stage(-0.3), chip_stage(), linear_chip_stage()],
                         ids=["pf", "pf-d2d-stuck-read", "linear-d2d-drawn-stuck-read"])
def test_chip_sampling_on_the_device_gives_the_cpu_repeats(monkeypatch, stage):
    """protocol.infer with chip sampling runs on the device: every batch restarts the chip's
    draws from its seed, for every row (a row no example drives included), and read noise runs on
    from batch to batch in its own stream; the cpu backend's repeats (float64, 1e-10)."""
    from memnp.experiments import Inference, device_train
    model = small_mlp("float64")("mnist", "double", None, np.random.default_rng(3), 0.1, 1e-3)
    weights = protocol.model_arrays(model, None)
    images, labels = data(n_test=7)["test"]
    setup = Inference(stage=stage, repeats=2, batch_size=4, test_examples=7, sampling="chip")
    ran = []
    real = device_train.infer_repeats

    def spy(*args):
        out = real(*args)
        ran.append(out is not None)
        return out
    monkeypatch.setattr(protocol, "infer_repeats", spy)
    monkeypatch.setenv("MEMNP_BACKEND", "cuda")
    got = protocol.infer(weights, setup, (images, labels), np.random.SeedSequence(42))
    monkeypatch.setenv("MEMNP_BACKEND", "cpu")
    want = protocol.infer(weights, setup, (images, labels), np.random.SeedSequence(42))
    assert ran == [True, False]
    for name in ("accuracy", "loss", "power"):
        assert np.allclose(got[name], want[name], rtol=1e-10, atol=0), name
    assert len(set(want["loss"])) == 2
    batch = protocol.infer(weights, dataclasses.replace(setup, sampling="batch"), (images, labels),
                           np.random.SeedSequence(42))
    assert not np.allclose(batch["loss"], want["loss"], rtol=1e-6)   # the chip's draws are not the batch's


def test_an_evaluation_step_is_forward_only(monkeypatch):
    """A DeviceEvaluator pass launches the forward half of the trainer's step only (per step and
    layer stats_scan, devices and forward, then the loss; no VJP, tie share or update). A chip pass
    under read noise gives the host's chip pass (passes.evaluate) and leaves the chip's Generator
    as given and the read Generator where the host's read stream ends."""
    import collections
    from memnp.experiments import passes
    launched = collections.Counter()
    real = ks.kernels

    class Counted:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            launch = self.kernel[config]

            def run(*args):
                launched[self.name] += 1
                return launch(*args)
            return run
    monkeypatch.setattr(ks, "kernels", lambda dtype: {n: Counted(n, k) for n, k in real(dtype).items()})
    stage = chip_stage()
    model = small_mlp("float64")("mnist", "double", stage, np.random.default_rng(3), 0.1, 1e-3)
    model.backend = "cpu"
    images, labels = data(n_val=6)["validation"]
    trainer = device_eval.PixelTrainer([model], batch_size=3)
    evaluator = device_eval.DeviceEvaluator.of(trainer)
    on_device = evaluator.upload(images, labels)
    seq = np.random.SeedSequence(5)
    chip, read = np.random.default_rng(seq), np.random.default_rng(passes.read_seed(seq))
    seeded = chip.bit_generator.state
    launched.clear()
    got = evaluator.evaluate(trainer.D, [device_eval.EvalMember(0, stage, chip, model.l1, power=True, sampling="chip",
                                                                read_rng=read)], on_device, 3)[0]
    assert dict(launched) == {"stats_scan": 4, "devices": 4, "forward": 4, "loss": 2, "weights_sum": 2, "finish": 1}
    x = images.astype(np.float32) / np.float32(255)
    want = passes.evaluate(model, x, labels, stage, seq, 3, "chip")
    for name in ("loss", "accuracy", "power"):
        assert abs(got[name] - want[name]) <= 1e-12 * abs(want[name]), name
    host_read = np.random.default_rng(passes.read_seed(seq))
    for start in (0, 3):
        model.evaluate(x[start:start + 3], labels[start:start + 3], rng=np.random.default_rng(seq), stage=stage,
                       batch_size=3, draws="all", read_rng=host_read)
    assert chip.bit_generator.state == seeded
    assert read.bit_generator.state == host_read.bit_generator.state
    with pytest.raises(ValueError, match="read_rng"):
        device_eval.EvalMember(0, stage, chip, sampling="chip")


def test_power_kernel_equals_the_reference():
    """power_terms + power_sum: reference.pf_power of each member's driven rows (float64)."""
    rng = np.random.default_rng(4)
    K, p, m, c = 2, 5, 7, 6
    x = rng.random((K, p, m - 1)) * (rng.random((K, p, m - 1)) < 0.6)
    x[:, :, 2] = 0.0
    rank = np.where((x != 0).any(axis=1), 0, -1)
    rank = np.concatenate([rank, np.zeros((K, 1), dtype=rank.dtype)], axis=1).astype(np.int64)
    cc, d = rng.random((K, m, c)) * 1e-6, rng.random((K, m, c)) * 1e-10 + 1e-11
    from memnp.kernels.physics import A2_B
    KK = A2_B / d
    P = np.zeros((K, ks.N_PARAMS + 1))
    P[:, ks.K_V] = K_V
    P[:, ks.IS_PF] = 1.0
    kern = cuda_eval.kernels(np.float64)
    terms = cuda.device_array((K, p, c), dtype=np.float64)
    record = cuda.to_device(np.zeros((K, 3)))
    kern["power_terms"][ks.grid(K * p * c)](cuda.to_device(x), p, cuda.to_device(rank), cuda.to_device(cc),
                                            cuda.to_device(KK), cuda.to_device(P), terms)
    kern["power_sum"][K, ks.RT](terms, p, record, 1, False)
    kern["power_sum"][K, ks.RT](terms, p, record, 2, False)
    kern["power_sum"][K, ks.RT](terms, p, record, 2, True)      # a second layer's power adds
    got = record.copy_to_host()
    for k in range(K):
        driven = rank[k] >= 0
        V = np.concatenate([K_V * x[k], np.full((p, 1), K_V)], axis=1)[:, driven]
        want = reference.pf_power(V, cc[k][driven], d[k][driven])
        assert abs(got[k, 1] - want) <= 1e-12 * want
        assert abs(got[k, 2] - 2 * want) <= 1e-12 * want


def test_pixels_are_the_experiments_inputs():
    from memnp.experiments.datasource import to_float
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(cuda_eval.pixels(), to_float(levels))


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["avg", "ideal"])
def test_a_standard_weight_group_gives_the_cpu_records(monkeypatch, stage):
    """Standard weights (signed W, two devices each) train on the device, with validation and PF
    test passes (the test stage maps with the default rule): under a PF stage with the avg
    mapping rule (a group shares its rule), and under the ideal stage (the paper's ideal
    training, which the CPU reads digitally): the cpu backend's records and weights (float64)."""
    import dataclasses
    from memnp.experiments import device_train
    from memnp.experiments.members import Member
    splits = data(n_train=8, n_val=4, n_test=4)
    stage = dataclasses.replace(pf_stage(), mapping_rule="avg") if stage == "avg" else Stage(G_OFF, G_ON, K_V, ())
    configs = [dataclasses.replace(c, standard_weights=True, stage=stage)
               for c in trainings(n_train=8, members=2, epochs=1)]
    monkeypatch.setenv("MEMNP_BACKEND", "cuda")
    monkeypatch.setattr(protocol, "build_model", small_mlp("float64"))
    members = [Member(c, splits, np.random.SeedSequence(k)) for k, c in enumerate(configs)]
    assert device_train.unsupported(members, [splits] * 2) is None
    want = run(monkeypatch, "cpu", "float64", configs, splits)
    got = run(monkeypatch, "cuda", "float64", configs, splits)
    compare(got, want, 1e-10)


def test_unsupported_members_take_the_host_path(monkeypatch):
    """A training the device cannot run (a stage with line resistance): no device pass."""
    from memnp.experiments import device_train
    from memnp.experiments.members import Member
    monkeypatch.setenv("MEMNP_BACKEND", "cuda")
    monkeypatch.setattr(protocol, "build_model", small_mlp("float32"))
    splits = data()
    pf = Member(trainings(members=1)[0], splits, np.random.SeedSequence(1))
    assert device_train.device_pass([pf], [splits]) is not None
    wires = Stage(G_OFF, G_ON, K_V, (dict(type="LineResistance", r_word=1.0, r_bit=1.0),))
    member = Member(Training(data=DataSpec(name="mnist"), stage=wires, batch_size=8), splits, np.random.SeedSequence(1))
    assert device_train.unsupported([member], [splits]).startswith("trainings[0]: ")
    assert device_train.device_pass([member], [splits]) is None
    monkeypatch.setenv("MEMNP_BACKEND", "cpu")
    assert device_train.device_pass([pf], [splits]) is None


# -- the CLI's --backend --------------------------------------------------------------------------
def invoke(*args):
    """``memnp ARGS`` in-process, MEMNP_BACKEND unset during the call and restored after it."""
    from click.testing import CliRunner
    from memnp.cli import cli
    return CliRunner(env={"MEMNP_BACKEND": None}).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_backend_cuda_trains_on_the_device(monkeypatch, tmp_path):
    """train --backend cuda (simulator; a 784-2-10 network in place of the paper's MLP, 8
    examples, one epoch): the device pass trains it, and training.json says backend cuda."""
    import json
    from memnp.experiments import device_train
    epochs = []
    original = device_train.DevicePass.train_epoch

    def spy(self, active, epoch):
        epochs.append(epoch)
        return original(self, active, epoch)
    monkeypatch.setattr(device_train.DevicePass, "train_epoch", spy)

    def narrow(family, weights, stage, rng, learning_rate=0.01, l1=0.0):   # 784-2-10: the simulator is slow
        layers = [Flatten(dtype="float32"), MemristiveDense(784, 2, weights, "float32"), Sigmoid(dtype="float32"),
                  MemristiveDense(2, 10, weights, "float32"), Softmax(dtype="float32")]
        return Sequential(layers, input_shape=(28, 28), stage=stage, optimizer=SGD(lr=learning_rate),
                          l1=l1).initialize(rng)
    monkeypatch.setattr(protocol, "build_model", narrow)
    result = invoke("train", "--backend", "cuda", "--device", "siox-high", "--epochs", 1, "--examples", 8, 8, 8,
                    "--validation-repeats", 1, "--checkpoint-every", 0, "--out", tmp_path / "net")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "net" / "training.json").read_text())
    assert record["backend"] == "cuda" and epochs == [1]
    assert len(record["validation"]["accuracy"]) == 1


@pytest.mark.parametrize("command", ["train", "infer", "reproduce", "bench"])
def test_an_unknown_backend_is_one_error_line(tmp_path, command):
    from cli_helpers import one_error_line
    extra = ["--weights", tmp_path / "w.npz"] if command == "infer" else []
    (tmp_path / "w.npz").write_bytes(b"")
    result = invoke(command, "--backend", "foo", *extra)
    assert result.exit_code == 2
    one_error_line(result, "--backend", "'foo' is not one of 'cpu', 'cuda'")


def test_backend_cuda_without_a_gpu_is_one_error_line(tmp_path):
    """Outside the simulator and without a GPU: exit status 2 and one error line, nothing written."""
    from test_cli_install import _python
    env = {"NUMBA_ENABLE_CUDASIM": "0", "MEMNP_BACKEND": "cpu"}
    probe = _python("-c", "from numba import cuda; print(cuda.is_available())", env=env)
    if probe.stdout.strip() == "True":
        pytest.skip("a CUDA GPU is present")
    (tmp_path / "w.npz").write_bytes(b"")
    for command in (["train"], ["reproduce", "--preset", "tiny"], ["infer", "--weights", tmp_path / "w.npz"],
                    ["bench", "epoch"]):
        out = [] if command[0] == "bench" else ["--out", tmp_path / "out"]
        result = _python("-m", "memnp", command[0], "--backend", "cuda", *map(str, command[1:] + out), env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [result.stderr.strip().splitlines()[-1]], result.stderr
        assert errors[0].startswith("Error: the cuda backend found no usable CUDA GPU")
    assert not (tmp_path / "out").exists()


def test_reproduce_and_bench_pass_the_backend_on(monkeypatch, tmp_path):
    """--backend reaches the runner (and so its worker processes and stamps) and the benchmark
    processes as MEMNP_BACKEND."""
    import os
    import subprocess
    from memnp import numerics
    from memnp.experiments import runner
    seen, before = {}, os.environ.get("MEMNP_BACKEND")

    def fake_reproduce(*args, **kwargs):
        seen["reproduce"] = (os.environ.get("MEMNP_BACKEND"), numerics.current().backend)
        raise ValueError("stop here")
    monkeypatch.setattr(runner, "reproduce", fake_reproduce)
    result = invoke("reproduce", "--backend", "cuda", "--preset", "tiny", "--out", tmp_path / "r", "--no-figures")
    assert seen["reproduce"] == ("cuda", "cuda") and "stop here" in result.output

    def fake_call(command, *args, **kwargs):
        seen["bench"] = os.environ.get("MEMNP_BACKEND")
        return 0
    monkeypatch.setattr(subprocess, "call", fake_call)
    result = invoke("bench", "--backend", "cuda", "epoch")
    assert result.exit_code == 0, result.output
    assert seen["bench"] == "cuda"
    assert os.environ.get("MEMNP_BACKEND") == before   # invoke() restores the variable
