"""Training on real digits: a digital MLP learns MNIST; a PF-aware double-weight MLP learns under
the high-resistance SiOx stage. Uses the first 10,000 MNIST digits from the shared data, or the
identical copy embedded in the package when the shared data is absent; the file is grouped by
class, so it is shuffled with a fixed seed first."""
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA

import memnp.data
from memnp.crossbar import Stage
from memnp.nn import SGD, Dense, Flatten, ReLU, Sequential, Softmax, mnist_mlp
from memnp.nonidealities import IVNonlinearityPF

HIGH_R_STAGE = Stage(5.24841e-7, 2.6242e-6, 0.5, (IVNonlinearityPF(
    0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
    [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]),))


EMBEDDED = Path(memnp.data.__file__).with_name("mnist-10k.npz")


@pytest.fixture(scope="module")
def digits():
    """(train images, train labels, test images, test labels): 8,000 / 2,000, shuffled."""
    path = SHARED_DATA / "mnist-10k.npz"
    if not path.is_file():
        path = EMBEDDED
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    x, y = (images[order] / np.float32(255)).astype(np.float32), labels[order]
    return x[:8000], y[:8000], x[8000:], y[8000:]


def train(model, x, y, epochs, rng, batch=64):
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            model.train_step(x[idx], y[idx], rng)


def test_digital_mlp_learns_mnist(digits):
    x, y, x_test, y_test = digits
    rng = np.random.default_rng(1)
    model = Sequential([Flatten(), Dense(784, 64), ReLU(), Dense(64, 10), Softmax()], input_shape=(28, 28),
                       optimizer=SGD(lr=0.02, momentum=0.9)).initialize(rng)
    assert model.evaluate(x_test, y_test)["accuracy"] < 0.3
    train(model, x, y, 4, rng, batch=32)
    assert model.evaluate(x_test, y_test)["accuracy"] >= 0.90


def test_pf_aware_double_weight_mlp_learns_under_high_resistance_siox(digits):
    x, y, x_test, y_test = digits
    rng = np.random.default_rng(1)
    # Plain SGD as in the paper, with a larger step for a 3-epoch run (0.61-0.70 over seeds 1-4).
    model = mnist_mlp(rng, "double", stage=HIGH_R_STAGE, optimizer=SGD(lr=0.5))
    before = model.evaluate(x_test, y_test, rng)
    train(model, x, y, 3, rng)
    after = model.evaluate(x_test, y_test, rng, power=True)
    assert after["loss"] < before["loss"]
    assert after["accuracy"] >= 0.50  # chance is 0.10
    assert all(v.min() >= 0 for layer in model.memristive_layers for v in layer.params.values())
    assert 1e-4 < after["power"] < 1e-2  # docs/model.md §8: a few milliwatts for PF-aware networks
