"""Edges of memnp.nn's inputs found by an audit (issue 16, item 4): model files (truncated,
non-finite weights, a bad stage), the types a model is built from and the gradients a layer's
backward takes. Each is a ValueError naming the file, layer or parameter."""
import math

import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, Stage

G_OFF, G_ON = 5.24841e-7, 2.6242e-6


def _saved_model(tmp_path, rng):
    from memnp.nn import Dense, MemristiveDense, ReLU, Sequential, Softmax
    model = Sequential([Dense(4, 5), ReLU(), MemristiveDense(5, 3), Softmax()], stage=Stage(G_OFF, G_ON, 0.5))
    model.initialize(rng)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def test_load_a_truncated_model_file(tmp_path, rng):
    from memnp.nn import Sequential
    _, path = _saved_model(tmp_path, rng)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 30, 10):
        cut = tmp_path / f"cut{size}.npz"
        cut.write_bytes(data[:size])
        with pytest.raises(ValueError, match=rf"{cut.name} is not a readable .npz model file: it is truncated "
                                             r"or not a memnp model file \(a .npz archive written by "
                                             r"Sequential.save\)"):
            Sequential.load(cut)
    with pytest.raises(ValueError, match="is a directory, not a memnp model file"):
        Sequential.load(tmp_path)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"one.npy is not a readable .npz model file: it holds one array"):
        Sequential.load(tmp_path / "one.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_load_refuses_weights_that_are_not_finite(tmp_path, rng, bad):
    from memnp.nn import Sequential
    model, path = _saved_model(tmp_path, rng)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["layer2.w_neg"] = arrays["layer2.w_neg"].astype(np.float64)
    arrays["layer2.w_neg"][1, 2] = bad          # 1e300: finite in the file, inf in float32
    bad_path = tmp_path / "diverged.npz"
    np.savez(bad_path, **arrays)
    message = (r"diverged.npz: layer2.w_neg \(layer 2, MemristiveDense.w_neg\) holds 1 NaN or infinite "
               r"value\(s\) \(in float32\); weights must be finite")
    with pytest.raises(ValueError, match=message):
        Sequential.load(bad_path)
    before = {key: value.copy() for key, value in model.layers[0].params.items()}
    with pytest.raises(ValueError, match=message):
        model.load_weights(bad_path)
    # nothing was loaded: the Dense layer before the bad one kept its weights
    assert all(np.array_equal(model.layers[0].params[key], before[key]) for key in before)


def test_load_names_the_file_of_a_bad_stage(tmp_path, rng):
    import json
    from memnp.nn import Sequential
    _, path = _saved_model(tmp_path, rng)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    stage = json.loads(str(arrays["stage"][0]))
    stage["nonidealities"] = [{"type": "Drift", "nu_mean": 0.1, "nu_std": 0.0, "t": 1.0, "t0": 10.0}]
    arrays["stage"] = np.array([json.dumps(stage)])
    np.savez(tmp_path / "stage.npz", **arrays)
    with pytest.raises(ValueError, match=r"stage.npz: the stage in the model file is not valid: t \(seconds since "
                                         r"programming\) must be >= t0"):
        Sequential.load(tmp_path / "stage.npz")


def test_set_weights_checks_arrays_in_memory(rng):
    from memnp.experiments import protocol
    from memnp.nn import Dense, MemristiveDense, Sequential, Softmax
    model = Sequential([Dense(4, 5), MemristiveDense(5, 3), Softmax()], stage=Stage(G_OFF, G_ON, 0.5))
    model.initialize(rng)
    arrays = protocol.model_arrays(model, model.stage)          # the layout of a weights file
    other = Sequential([Dense(4, 5), MemristiveDense(5, 3), Softmax()], stage=Stage(G_OFF, G_ON, 0.5))
    other.set_weights(arrays, "w.npz")
    assert np.array_equal(other.layers[1].params["w_pos"], model.layers[1].params["w_pos"])
    arrays["layer1.b_neg"] = arrays["layer1.b_neg"].copy()
    arrays["layer1.b_neg"][0] = np.inf
    with pytest.raises(ValueError, match=r"w.npz: layer1.b_neg \(layer 1, MemristiveDense.b_neg\) holds 1 NaN or "
                                         r"infinite value\(s\)"):
        other.set_weights(arrays, "w.npz")
    del arrays["layer0.W"]
    with pytest.raises(ValueError, match=r"weights does not fit the architecture: missing parameters "
                                         r"\['layer0.W'\]"):
        other.set_weights(arrays)


def test_model_parts_must_have_their_types(rng):
    from memnp.nn import Dense, MaxPool2D, MemristiveDense, PassContext, Sequential, Softmax
    stage = Stage(G_OFF, G_ON, 0.5)
    for bad in ("siox-high", {"G_off": G_OFF, "G_on": G_ON}):
        with pytest.raises(ValueError, match=r"stage must be a memnp.crossbar.Stage .* or None; got"):
            Sequential([MemristiveDense(4, 3)], stage=bad)
        model = Sequential([MemristiveDense(4, 3), Softmax()], stage=stage).initialize(rng)
        with pytest.raises(ValueError, match=r"stage must be a memnp.crossbar.Stage"):     # was AttributeError
            model.forward(rng.random((2, 4)), rng, stage=bad)
        with pytest.raises(ValueError, match=r"stage must be a memnp.crossbar.Stage; got"):
            CrossbarPass(bad)
    with pytest.raises(ValueError, match=r"draws must be one of active, all; got 'x'"):
        PassContext(stage, rng, None, "x")
    with pytest.raises(ValueError, match=r"layers must be memnp.nn layers .* layer 1 is int"):
        Sequential([Dense(4, 3), 3])                                                       # was AttributeError
    with pytest.raises(ValueError, match=r"optimizer must be None or an optimizer with a step method"):
        Sequential([Dense(4, 3)], optimizer="sgd")
    for shape in ("ab", (-4,), (), (4.5,), 7):
        with pytest.raises(ValueError, match=r"input_shape must be a tuple of integers >= 1"):
            Sequential([Dense(4, 3)], input_shape=shape)
    assert Sequential([Dense(4, 3)], input_shape=[np.int64(4)]).input_shape == (4,)
    for l1 in (math.inf, math.nan, "x", -1.0):
        with pytest.raises(ValueError, match=r"l1 must be a finite number >= 0"):
            Sequential([Dense(4, 3)], l1=l1)
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64; got 0"):   # was a TypeError
        MaxPool2D(0)


def test_backward_refuses_a_gradient_of_another_shape(rng):
    from memnp.nn import (Conv2D, Dense, Flatten, MaxPool2D, MemristiveConv2D, MemristiveDense, PassContext, ReLU,
                          Sigmoid, Softmax)
    ctx = PassContext(Stage(G_OFF, G_ON, 0.5), rng)
    cases = [(Dense(3, 2), (4, 3)), (Sigmoid(), (4, 3)), (ReLU(), (4, 3)), (Softmax(), (4, 3)),
             (Flatten(), (2, 4, 4, 3)), (MaxPool2D(), (2, 5, 4, 3)), (Conv2D(3, 2, 2), (2, 4, 5, 3)),
             (MemristiveDense(3, 2), (4, 3)), (MemristiveDense(3, 2, weights="standard"), (4, 3)),
             (MemristiveConv2D(3, 2, 2), (2, 4, 5, 3))]
    for layer, x_shape in cases:
        layer.initialize(rng) if layer.params else None
        y = layer.forward(rng.random(x_shape).astype(np.float32), ctx)
        layer.backward(np.ones_like(y))                             # the right shape passes
        for bad in (np.ones(y.shape[:-1] + (y.shape[-1] + 1,), y.dtype), np.ones((1,) + y.shape[1:], y.dtype),
                    np.ones(y.size, y.dtype)):
            with pytest.raises(ValueError, match=rf"dy must have the shape of {type(layer).__name__}'s outputs in "
                                                 rf"the last forward pass \({y.shape[0]}, "):
                layer.backward(bad)
