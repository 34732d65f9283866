"""The training and inference protocol on a small slice of the embedded MNIST subset."""
import numpy as np
import pytest

from memnp.experiments import datasource, protocol, registry
from memnp.experiments.augment import translate_flip
from memnp.experiments.configs import DataSpec, Inference, Training
from memnp.experiments.store import write_npz

SPEC = DataSpec("mnist-10k", train=192, validation=128, test=200)
IDEAL = registry.device_stage("ideal")
STUCK = registry.device_stage("stuck-off")


@pytest.fixture(scope="module")
def data():
    return datasource.load(SPEC)


def _train(data, stage=IDEAL, seed=1, **kw):
    fields = dict(data=SPEC, stage=stage, epochs=3, learning_rate=0.5, validation_every=2,
                  validation_repeats=3, test_every=2, test_repeats=2)
    fields.update(kw)
    return protocol.train(Training(**fields), data, np.random.SeedSequence(seed))


def _numbers(record):
    return {k: v for k, v in record["history"].items() if k != "seconds"}, record["validation"], record["test"]


def test_data_limits_and_float_conversion(data):
    assert data["train"][0].shape == (192, 28, 28) and data["train"][0].dtype == np.uint8
    assert len(data["validation"][1]) == 128 and len(data["test"][1]) == 200
    x = datasource.to_float(data["test"][0])
    assert x.dtype == np.float32 and x.max() == 1.0 and x.min() == 0.0
    with pytest.raises(ValueError, match="exceeds the 2000 examples"):
        datasource.load(DataSpec("mnist-10k", test=2001), splits=("test",))


def test_standard_checkpoint_keeps_the_best_validation_epoch(data):
    record, weights = _train(data)
    history = record["history"]
    assert history["epoch"] == [1, 2, 3] and len(history["val_accuracy"]) == 3
    best = int(np.argmax(history["val_accuracy"]))  # first maximum: later ties do not replace it
    assert record["checkpoint"] == {"kind": "standard", "epoch": best + 1, "metric": "validation accuracy",
                                    "value": history["val_accuracy"][best]}
    assert record["validation"] is None and record["weights"] == "standard"
    assert record["n_synapses"] == 785 * 25 + 26 * 10 == 19885
    # The returned weights are the checkpoint's: the ideal validation accuracy is reproduced exactly.
    model = protocol.model_from_arrays(weights)
    x, y = datasource.to_float(data["validation"][0]), data["validation"][1]
    again = protocol.evaluate(model, x, y, IDEAL, None, 64, power=False)
    assert again["accuracy"] == history["val_accuracy"][best]
    assert np.isclose(again["loss"], history["val_loss"][best], rtol=1e-6)


def test_memristive_validation_and_test_history(data):
    record, _ = _train(data, stage=STUCK, test_stages=(STUCK, IDEAL))
    validation = record["validation"]
    assert validation["epoch"] == [1, 2]
    assert [len(a) for a in validation["accuracy"]] == [3, 3]
    medians = [float(np.median(a)) for a in validation["accuracy"]]
    best = int(np.argmax(medians))
    assert record["checkpoint"]["kind"] == "memristive"
    assert record["checkpoint"]["epoch"] == validation["epoch"][best]
    assert record["checkpoint"]["value"] == medians[best]
    assert record["history"]["val_accuracy"] == []
    assert len(record["test"]) == 2
    for entry in record["test"]:
        assert entry["epoch"] == [1, 2, 3]  # every test_every-th epoch and the last
        assert np.shape(entry["accuracy"]) == (3, 2) and np.shape(entry["power"]) == (3, 2)
        assert np.all(np.asarray(entry["power"]) > 0)
    # the ideal stage draws nothing: its two repeats agree exactly
    ideal_entry = record["test"][1]
    assert ideal_entry["accuracy"][0][0] == ideal_entry["accuracy"][0][1]


def test_training_is_seeded_and_independent_of_test_evaluations(data):
    a, wa = _train(data, stage=STUCK, seed=5)
    b, wb = _train(data, stage=STUCK, seed=5, test_stages=(STUCK,), test_every=1)
    c, _ = _train(data, stage=STUCK, seed=6)
    assert _numbers(a)[:2] == _numbers(b)[:2]
    for key in wa:
        if key.startswith("layer"):
            np.testing.assert_array_equal(wa[key], wb[key])
    assert _numbers(a)[0] != _numbers(c)[0]


def test_inference_repeats_are_independent_of_their_number(data):
    _, weights = _train(data, epochs=1)
    stage = registry.device_stage("d2d-high")
    three = protocol.infer(weights, Inference(stage=stage, repeats=3), data["test"], np.random.SeedSequence(9))
    two = protocol.infer(weights, Inference(stage=stage, repeats=2), data["test"], np.random.SeedSequence(9))
    assert three["accuracy"][:2] == two["accuracy"] and three["power"][:2] == two["power"]
    assert len(set(three["power"])) == 3  # fresh devices per repeat
    assert three["n_synapses"] == 19885


def test_chip_sampling_holds_the_draws_for_the_whole_pass(data):
    _, weights = _train(data, epochs=1)
    stage = registry.device_stage("d2d-high")
    model = protocol.model_from_arrays(weights)
    x, y = datasource.to_float(data["test"][0]), data["test"][1]
    seq = np.random.SeedSequence(3)
    chip = [protocol.evaluate(model, x, y, stage, seq, size, "chip") for size in (100, 40, 200)]
    # the same devices for every batch: the batch size cannot change any prediction
    assert chip[0]["accuracy"] == chip[1]["accuracy"] == chip[2]["accuracy"]
    assert np.isclose(chip[0]["loss"], chip[1]["loss"], rtol=1e-5)
    batch = [protocol.evaluate(model, x, y, stage, np.random.default_rng(3), size, "batch")
             for size in (100, 40)]
    assert batch[0]["loss"] != batch[1]["loss"]
    with pytest.raises(ValueError, match="sampling must be 'batch' or 'chip'"):
        protocol.evaluate(model, x, y, stage, seq, 100, "wafer")


def test_weights_arrays_load_as_a_memnp_model_file(data, tmp_path):
    from memnp.nn import Sequential
    _, weights = _train(data, stage=STUCK, epochs=1)
    path = tmp_path / "w.npz"
    write_npz(path, weights)
    loaded = Sequential.load(path)
    x = datasource.to_float(data["test"][0][:10])
    ours = protocol.model_from_arrays(weights)
    np.testing.assert_array_equal(loaded.forward(x, stage=IDEAL), ours.forward(x, stage=IDEAL))
    assert loaded.stage == STUCK


def test_energy_efficiency_formula():
    # docs/model.md §3 with the paper's low-resistance standard power (about 1.11 W): about 0.72 TOPS/W
    assert protocol.energy_efficiency(19885, 1.11) == pytest.approx(2 * 19885 / (50e-9 * 1.11))
    assert protocol.energy_efficiency(19885, 1.11) / 1e12 == pytest.approx(0.7166, abs=1e-4)
    assert protocol.energy_efficiency(19885, 0.0) is None
    assert protocol.energy_efficiency(19885, None) is None


def test_translate_flip():
    rng = np.random.default_rng(0)
    images = rng.random((40, 8, 8, 3)).astype(np.float32)
    out = translate_flip(images, np.random.default_rng(1), fraction=0.0)
    assert out.shape == images.shape and out.dtype == images.dtype
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    same = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f or s for f, s in zip(flipped, same)) and 5 < sum(flipped) < 35
    shifted = translate_flip(images, np.random.default_rng(1))
    assert not np.array_equal(shifted, out)
    assert shifted.min() >= images.min() - 1e-6 and shifted.max() <= images.max() + 1e-6
    with pytest.raises(ValueError, match=r"images must have shape \(N, H, W, C\)"):
        translate_flip(images[0], rng)


def test_test_curve_reaches_the_last_epoch_without_changing_the_earlier_points(data):
    # epochs=3, test_every=2: tested after epochs 1, 2 and (the last) 3; the points before it are
    # those of a run that stops at epoch 2 (the test passes have their own stream).
    full, _ = _train(data, stage=STUCK, seed=4, test_stages=(STUCK,))
    assert full["test"][0]["epoch"] == [1, 2, 3]
    short, _ = _train(data, stage=STUCK, seed=4, test_stages=(STUCK,), epochs=2)
    assert short["test"][0]["epoch"] == [1, 2]
    assert full["test"][0]["accuracy"][:2] == short["test"][0]["accuracy"]
