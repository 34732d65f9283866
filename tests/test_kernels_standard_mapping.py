"""The standard-weight mapping loops (memnp.kernels.standard_mapping) against the NumPy mapping
(memnp.crossbar.mapping.w_to_G, w_to_G_vjp): the same numbers, bit for bit, signed zeros
included, and a training run of standard weights that equals the NumPy path's step for step."""
import numpy as np
import pytest

from memnp.crossbar.mapping import w_to_G, w_to_G_vjp, w_to_G_vjp_rows
from memnp.kernels import standard_mapping

G_OFF, G_ON = 5.24841e-7, 2.6242e-6


def _weights(rng, dtype, shape=(23, 7)):
    """Weights with the awkward entries: a tie at max |W| of either sign, exact zeros of both
    signs, a subnormal, entries so small that k_G W rounds to zero."""
    W = rng.normal(size=shape).astype(dtype)
    top = float(np.abs(W).max()) + 0.25
    W[2, 3], W[17, 0] = top, -top
    W[4, 1], W[5, 2] = 0.0, -0.0
    W[6, 6] = np.finfo(dtype).tiny / 8
    W[7, 4] = -np.finfo(dtype).tiny * 4
    return W


def _same(a, b):
    """Equal bit for bit (so -0.0 differs from 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["default", "avg"])
def test_G_rows_equal_w_to_G(rng, dtype, rule):
    W = _weights(rng, dtype)
    G, max_weight = w_to_G(W, G_OFF, G_ON, rule)
    assert standard_mapping.max_weight(W) == max_weight
    rows = np.array([0, 2, 5, 6, 7, 17, 22])
    assert _same(standard_mapping.G_rows(W, rows, max_weight, G_OFF, G_ON, rule), G[rows])
    every = np.arange(W.shape[0])
    assert _same(standard_mapping.G_rows(W, every, max_weight, G_OFF, G_ON, rule), G)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["default", "avg"])
def test_vjp_equals_w_to_G_vjp(rng, dtype, rule):
    W = _weights(rng, dtype)
    max_weight = float(np.abs(W).max())
    for rows in (np.arange(W.shape[0]), np.array([1, 2, 4, 5, 9, 22])):
        grad_G = (rng.normal(size=(rows.size, 2 * W.shape[1])) * 1e6).astype(dtype)
        grad_G[0, :3] = [0.0, -0.0, 0.0]
        grad_G[1, 4:6] = -0.0
        full = np.zeros((W.shape[0], 2 * W.shape[1]), dtype)
        full[rows] = grad_G
        for upstream in (0.37, -0.0, 0.0):
            want = w_to_G_vjp(W, full, upstream, G_OFF, G_ON, rule)
            got = standard_mapping.w_to_G_vjp_rows(W, grad_G, rows, upstream, G_OFF, G_ON, rule, max_weight)
            assert _same(got, want)
        # The two ties (row 17 is not read in the second set) get their shares all the same.
        assert got[2, 3] != 0 and got[17, 0] != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_weight_from_the_bits(rng, dtype):
    W = _weights(rng, dtype, (40, 12))
    assert standard_mapping.max_weight(W) == float(np.abs(W).max())
    tiny = np.full((2, 3), -np.finfo(dtype).tiny / 4, dtype)      # subnormal magnitudes still order
    tiny[1, 2] *= 2
    assert standard_mapping.max_weight(tiny) == float(np.abs(tiny).max())
    for bad in (np.nan, -np.nan, np.inf, -np.inf):
        E = W.copy()
        E[7, 1] = bad
        assert standard_mapping.max_weight(E) is None             # the NumPy form says what is wrong
    assert standard_mapping.max_weight(np.zeros((3, 3), dtype)) is None
    assert standard_mapping.max_weight(-np.zeros((3, 3), dtype)) is None
    assert standard_mapping.max_weight(W.T) is None                # not C-contiguous
    assert standard_mapping.max_weight(W.astype(np.float16)) is None


@pytest.mark.parametrize("rule", ["default", "avg"])
def test_training_equals_the_numpy_mapping(monkeypatch, rule):
    """Standard-weight MNIST MLPs under D2D (float32, the weight_implementation setups): 30 steps
    with the loops equal 30 steps with the NumPy mapping, weights and losses bit for bit."""
    from memnp.crossbar import Stage
    from memnp.crossbar.nonidealities import D2DLognormal
    from memnp.nn import crossbar_layer, mnist_mlp

    stage = Stage(G_off=G_OFF, G_on=G_ON, k_V=0.5, mapping_rule=rule,
                  nonidealities=(D2DLognormal(G_off=G_OFF, G_on=G_ON, R_on_log_std=0.5, R_off_log_std=0.5),))
    data = np.random.default_rng(7)
    batches = [(data.random((16, 28, 28)).astype(np.float32) * (data.random((16, 28, 28)) < 0.4),
                data.integers(0, 10, 16)) for _ in range(30)]

    def train():
        model = mnist_mlp(np.random.default_rng(3), "standard", dtype="float32", stage=stage)
        start = [layer.params["W"].copy() for layer in model.layers if "W" in layer.params]
        rng = np.random.default_rng(11)
        losses = [model.train_step(x.astype(np.float32), y, rng)[0] for x, y in batches]
        return losses, [layer.params["W"].copy() for layer in model.layers if "W" in layer.params], start

    fast = train()

    class NumPyMapping:       # the reference path: w_to_G in the forward pass, w_to_G_vjp back
        @staticmethod
        def max_weight(W):
            return None

        @staticmethod
        def w_to_G_vjp_rows(W, grad_G, rows, upstream, G_off, G_on, rule, max_weight):
            return w_to_G_vjp_rows(W, grad_G, rows, upstream, G_off, G_on, rule)

    monkeypatch.setattr(crossbar_layer, "standard_loops", NumPyMapping)
    slow = train()
    assert fast[0] == slow[0]
    assert all(_same(a, b) for a, b in zip(fast[1], slow[1]))
    assert all(not np.array_equal(a, b) for a, b in zip(fast[1], fast[2]))     # it trained
