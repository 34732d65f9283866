"""Strict inputs of the library: every bad input is a ValueError that names the parameter and
says what is allowed (issue 9, item 4)."""
import numpy as np
import pytest

from memnp.crossbar import CrossbarPass, I_to_y, I_to_y_vjp, Stage, double_w_to_G, w_to_G, x_to_V
from memnp.crossbar import validation
from memnp.kernels import checks
from memnp.kernels import mapping as mapping_loops
from memnp.nn import (Conv2D, Dense, Flatten, MaxPool2D, MemristiveConv2D, MemristiveDense,
                      PassContext, ReLU, Sequential, Sigmoid, Softmax)
from memnp.nn.architectures import mnist_mlp
from memnp.nonidealities import D2DLognormal, IVNonlinearityPF, StuckAtGOff

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
HIGH_PF = IVNonlinearityPF(0.5, (-1.03023, -0.0901078), (-0.250595, -37.1186),
                           [[0.03208284, 0.09272695], [0.09272695, 0.32510818]])
IDEAL = Stage(G_OFF, G_ON, 0.5)
PF = Stage(G_OFF, G_ON, 0.5, (HIGH_PF,))
STUCK = Stage(G_OFF, G_ON, 0.5, (StuckAtGOff(G_OFF, 0.1),))
D2D = Stage(G_OFF, G_ON, 0.5, (D2DLognormal(G_OFF, G_ON, 0.25, 0.25),))


def _pass_inputs(rng, p=4, m=6, n=4, dtype=np.float64):
    V = (0.5 * rng.random((p, m))).astype(dtype)
    G = rng.uniform(G_OFF, G_ON, (m, n)).astype(dtype)
    return V, G


# --- the bit scans against their NumPy forms --------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_scans_match_numpy(rng, dtype):
    a = rng.normal(size=(5, 7)).astype(dtype)
    for special in (None, np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0):
        b = a.copy()
        if special is not None:
            b[2, 3] = special
        bits = checks.bits(b)
        assert checks.bit_extremes(bits) == checks.bit_extremes_reference(bits)
        assert checks.unsigned_max(bits) == checks.unsigned_max_reference(bits)
    # the largest positive value and the largest negative magnitude, read back from the bits
    bits = checks.bits(a)
    _, hi = checks.bit_extremes(bits)
    assert np.array(hi, bits.dtype).view(dtype) == a.max()
    top = checks.unsigned_max(bits) - checks.SIGN_BITS[np.dtype(dtype)]
    assert np.array(top, bits.dtype).view(dtype) == -a.min()
    assert checks.bits(a[:, ::2]) is None and checks.bits(a.astype(np.float16)) is None
    assert checks.bits(a[:0]) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_scan_checks_the_unit_interval(rng, dtype):
    x = (rng.random((6, 9)) * (rng.random((6, 9)) < 0.4)).astype(dtype)
    x[0, 0], x[1, 1] = 1.0, -0.0                    # both ends are inside
    active, valid = mapping_loops.scan_inputs(x)
    want_active, want_valid = mapping_loops.scan_inputs_reference(x)
    assert valid is want_valid is True and np.array_equal(active, want_active)
    assert mapping_loops.in_unit_interval(x)
    above_one = np.nextafter(dtype(1), dtype(2))
    below_zero = -np.finfo(dtype).tiny
    for bad in (above_one, below_zero, np.nan, np.inf, -np.inf, 255.0):
        y = x.copy()
        y[4, 5] = bad
        active, valid = mapping_loops.scan_inputs(y)
        assert valid is False and mapping_loops.scan_inputs_reference(y)[1] is False
        assert mapping_loops.in_unit_interval(y) is False
        assert np.array_equal(active, mapping_loops.scan_inputs_reference(y)[0])


# --- CrossbarPass -----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", [IDEAL, PF, D2D])
def test_crossbar_forward_refuses_bad_V_and_G(rng, stage):
    crossbar = CrossbarPass(stage, "numpy")
    V, G = _pass_inputs(rng)
    crossbar.forward(V, G, rng)                     # valid inputs pass
    for value in (np.nan, np.inf, -np.inf):
        bad = V.copy()
        bad[1, 2] = value
        with pytest.raises(ValueError, match="^V must contain only finite values"):
            crossbar.forward(bad, G, rng)
        bad = G.copy()
        bad[3, 1] = value
        with pytest.raises(ValueError, match="^G must contain only finite values"):
            crossbar.forward(V, bad, rng)
    with pytest.raises(ValueError, match="^V must be real .*complex"):
        crossbar.forward(V.astype(np.complex128), G, rng)
    for value in (0.0, -0.0, -G_OFF):
        bad = G.copy()
        bad[0, 0] = value
        with pytest.raises(ValueError, match=r"^G must hold conductances > 0 S"):
            crossbar.forward(V, bad, rng)
    with pytest.raises(ValueError, match=r"^V must have \|V\| <= the stage's k_V = 0.5 V"):
        crossbar.forward(V * 1.5 + 0.1, G, rng)
    with pytest.raises(ValueError, match=r"^V must have \|V\| <= the stage's k_V = 0.5 V .*0.6 V"):
        crossbar.forward(np.where(V == V.max(), -0.6, -V), G, rng)
    crossbar.forward(-V, G, rng)                   # negative voltages within k_V pass
    with pytest.raises(ValueError, match="^V must hold at least one example"):
        crossbar.forward(V[:0], G, rng)
    with pytest.raises(ValueError, match="^G must have one row per column of V"):
        crossbar.forward(V, G[1:], rng)
    with pytest.raises(ValueError, match="^V must be a float32 or float64 array"):
        crossbar.forward(V.astype(np.float16), G, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crossbar_voltage_bound_allows_rounding_only(rng, dtype):
    crossbar = CrossbarPass(PF, "numpy")
    V, G = _pass_inputs(rng, dtype=dtype)
    V[0, 0], V[1, 1] = dtype(0.5), -dtype(0.5)
    V[2, 2] = np.nextafter(dtype(0.5), dtype(1))   # one unit in the last place above k_V
    crossbar.forward(V, G, rng)
    V[2, 2] = dtype(0.5) * (1 + 64 * np.finfo(dtype).eps)
    with pytest.raises(ValueError, match="k_V"):
        crossbar.forward(V, G, rng)
    # non-contiguous arrays take the NumPy form of the checks, with the same verdicts
    V2 = np.asfortranarray(V)
    with pytest.raises(ValueError, match="k_V"):
        crossbar.forward(V2, np.asfortranarray(G), rng)


def test_crossbar_rng_and_backward_checks(rng):
    crossbar = CrossbarPass(PF, "numpy")
    V, G = _pass_inputs(rng)
    with pytest.raises(ValueError, match="^CrossbarPass.backward needs a forward pass first"):
        crossbar.backward(np.ones((4, 4)))
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        crossbar.forward(V, G, np.random.RandomState(0))
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        crossbar.forward(V, G, None)
    CrossbarPass(IDEAL, "numpy").forward(V, G, None)   # an ideal stage draws nothing
    crossbar.forward(V, G, rng)
    crossbar.forward(V, G, None, draws=crossbar.draws)   # replayed draws need no Generator
    grad = rng.normal(size=(4, 4))
    crossbar.backward(grad)
    for value in (np.nan, np.inf):
        bad = grad.copy()
        bad[2, 1] = value
        with pytest.raises(ValueError, match="^grad_I must contain only finite values"):
            crossbar.backward(bad)
    with pytest.raises(ValueError, match=r"^grad_I must have the shape of the forward pass's currents \(4, 4\)"):
        crossbar.backward(grad[:, :2])
    with pytest.raises(ValueError, match="^grad_I must be real"):
        crossbar.backward(grad.astype(np.complex128))


def test_layers_check_what_they_hand_to_the_crossbar(rng):
    """The memristive layers mark their passes as checked (their own scans imply the pass's
    checks); a NaN in dL/dy is still caught, naming dy."""
    layer = MemristiveDense(5, 3)
    layer.initialize(rng)
    y = layer.forward(rng.random((4, 5)), PassContext(PF, rng))
    assert layer._last.crossbar.inputs_checked and layer._last.crossbar.gradients_checked
    layer.backward(np.ones_like(y))
    for value in (np.nan, np.inf):
        dy = np.ones_like(y)
        dy[1, 2] = value
        with pytest.raises(ValueError, match="^dy must contain only finite values"):
            layer.backward(dy)
    assert not getattr(CrossbarPass(PF), "inputs_checked", False)


# --- mapping ----------------------------------------------------------------------------------

def test_x_to_V_needs_x_in_the_unit_interval(rng):
    x = rng.random((3, 5))
    assert np.array_equal(x_to_V(x, 0.5)[:, :-1], 0.5 * x)
    for bad, hint in ((1.5, ""), (-0.25, ""), (200.0, "divide by 255")):
        y = x.copy()
        y[1, 1] = bad
        with pytest.raises(ValueError, match=r"^x must hold values in \[0, 1\].*" + hint):
            x_to_V(y, 0.5)
    with pytest.raises(ValueError, match="^x must contain only finite values"):
        x_to_V(np.full((2, 2), np.nan), 0.5)
    with pytest.raises(ValueError, match="^x must be a real numeric array"):
        x_to_V(x.astype(np.complex128), 0.5)
    with pytest.raises(ValueError, match="^k_V must be a finite number > 0, not a boolean"):
        x_to_V(x, True)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int8, np.complex128, np.bool_])
def test_w_to_G_refuses_weights_that_are_not_float32_or_float64(rng, dtype):
    W = (rng.normal(size=(5, 3)) * 3).astype(dtype)
    with pytest.raises(ValueError, match=f"^W must be a float32 or float64 array; got dtype {np.dtype(dtype)}"):
        w_to_G(W, G_OFF, G_ON)
    with pytest.raises(ValueError, match="^D must be a float32 or float64 array"):
        double_w_to_G(W if np.dtype(dtype).kind in "cb" else np.abs(W), G_OFF, G_ON)
    w_to_G(W.real.astype(np.float32) + 1, G_OFF, G_ON)      # the same values as float32 pass


def test_I_to_y_checks_columns_and_max_weight(rng):
    I = rng.normal(size=(3, 6))
    I_to_y(I, 0.5, 1.2, G_OFF, G_ON)
    with pytest.raises(ValueError, match="^I must be 2-D with an even number of columns"):
        I_to_y(I[:, :5], 0.5, 1.2, G_OFF, G_ON)
    with pytest.raises(ValueError, match="^I must be 2-D with an even number of columns"):
        I_to_y_vjp(I[:, :5], np.ones((3, 2)), 0.5, 1.2, G_OFF, G_ON)
    for bad in (0.0, -1.0, np.nan, np.inf, True):
        with pytest.raises(ValueError, match="^max_weight must be a finite number > 0"):
            I_to_y(I, 0.5, bad, G_OFF, G_ON)
    with pytest.raises(ValueError, match=r"^grad_y must have shape \(3, 3\)"):
        I_to_y_vjp(I, np.ones((3, 2)), 0.5, 1.2, G_OFF, G_ON)


def test_number_checks_refuse_booleans():
    for check in (validation.positive, validation.non_negative, validation.probability):
        with pytest.raises(ValueError, match="^p must be .*, not a boolean; got True"):
            check("p", True)
        with pytest.raises(ValueError, match="not a boolean"):
            check("p", np.bool_(False))
    with pytest.raises(ValueError, match="^G_off must be a finite number > 0, not a boolean"):
        Stage(True, G_ON)
    with pytest.raises(ValueError, match="^p must be a probability in \\[0, 1\\], not a boolean"):
        StuckAtGOff(G_OFF, True)


# --- memristive layers ------------------------------------------------------------------------

@pytest.mark.parametrize("weights, stage", [("double", PF), ("double", IDEAL), ("standard", IDEAL),
                                            ("standard", STUCK)])
def test_memristive_layers_need_inputs_in_the_unit_interval(rng, weights, stage):
    layer = MemristiveDense(5, 3, weights)
    layer.initialize(rng)
    ctx = PassContext(stage, rng)
    x = rng.random((4, 5)).astype(np.float32)
    layer.forward(x, ctx)
    for bad, message in ((1.0001, r"^x must hold values in \[0, 1\]"), (-0.5, r"^x must hold values in \[0, 1\]"),
                         (np.nan, "^x must contain only finite values"), (np.inf, "^x must contain only finite")):
        y = x.copy()
        y[2, 3] = bad
        with pytest.raises(ValueError, match=message):
            layer.forward(y, ctx)
    with pytest.raises(ValueError, match=r"^x must hold at least one example"):
        layer.forward(x[:0], ctx)
    with pytest.raises(ValueError, match=r"^x must have 5 columns"):
        layer.forward(x[:, :4], ctx)
    with pytest.raises(ValueError, match="^x must be a real numeric array"):
        layer.forward(x.astype(np.complex64), ctx)


def test_memristive_conv_inputs(rng):
    layer = MemristiveConv2D(2, 3, 2)
    layer.initialize(rng)
    ctx = PassContext(PF, rng)
    x = rng.random((2, 4, 4, 2))
    layer.forward(x, ctx)
    with pytest.raises(ValueError, match=r"^x must hold values in \[0, 1\]"):
        layer.forward(x * 2, ctx)
    with pytest.raises(ValueError, match=r"^x must have shape \(examples, height, width, 2\)"):
        layer.forward(x[..., :1], ctx)
    with pytest.raises(ValueError, match="^x must hold at least one example"):
        layer.forward(x[:0], ctx)


@pytest.mark.parametrize("weights, names", [("double", ("w_pos", "b_neg")), ("standard", ("W", "b"))])
@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex64])
def test_memristive_layers_refuse_weights_of_other_dtypes(rng, weights, names, dtype):
    for stage in (PF, IDEAL):
        for name in names:
            layer = MemristiveDense(5, 3, weights)
            layer.initialize(rng)
            layer.params[name] = (layer.params[name] * 4).astype(dtype)
            with pytest.raises(ValueError, match=f"^{name} must be a float32 or float64 array; got dtype"):
                layer.forward(rng.random((2, 5)), PassContext(stage, rng))


def test_memristive_layers_need_a_generator(rng):
    layer = MemristiveDense(5, 3)
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        layer.initialize(np.random.RandomState(0))
    layer.initialize(rng)
    for bad in (None, np.random.RandomState(0), 7):
        with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator .* got"):
            layer.forward(rng.random((2, 5)), PassContext(PF, bad))


@pytest.mark.parametrize("make, x_shape", [
    (lambda: Dense(4, 3), (2, 4)), (lambda: Conv2D(2, 3, 2), (2, 4, 4, 2)), (lambda: MaxPool2D(), (2, 4, 4, 2)),
    (lambda: Flatten(), (2, 3, 3)), (lambda: Sigmoid(), (2, 4)), (lambda: ReLU(), (2, 4)),
    (lambda: ReLU(max_value=1.0), (2, 4)), (lambda: Softmax(), (2, 4)),
    (lambda: MemristiveDense(4, 3), (2, 4)), (lambda: MemristiveDense(4, 3, "standard"), (2, 4)),
    (lambda: MemristiveConv2D(2, 3, 2), (2, 4, 4, 2))])
def test_backward_before_forward(rng, make, x_shape):
    layer = make()
    layer.initialize(rng)
    with pytest.raises(ValueError, match=rf"^{type(layer).__name__}.backward needs a forward pass first"):
        layer.backward(np.ones(x_shape))
    y = layer.forward(rng.random(x_shape), PassContext(PF, rng))
    layer.backward(np.ones_like(y))                # after a forward pass it works


def test_dense_input_width_and_empty_batch(rng):
    layer = Dense(4, 3)
    layer.initialize(rng)
    with pytest.raises(ValueError, match=r"^x must have shape \(examples, 4\) for Dense; got \(2, 5\)"):
        layer.forward(rng.random((2, 5)))
    with pytest.raises(ValueError, match="^x must hold at least one example"):
        layer.forward(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        layer.initialize(np.random.RandomState(1))
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        Conv2D(1, 1).initialize(None)


# --- Sequential -------------------------------------------------------------------------------

def test_sequential_checks_that_widths_chain_at_construction():
    with pytest.raises(ValueError, match=r"^layers do not chain: layer 3 \(MemristiveDense\) takes inputs of "
                                         r"width 20, but layer 1 \(MemristiveDense\) gives 25"):
        Sequential([Flatten(), MemristiveDense(784, 25), Sigmoid(), MemristiveDense(20, 10), Softmax()])
    with pytest.raises(ValueError, match=r"layer 2 \(Conv2D\) takes inputs of width 16, but layer 0 \(Conv2D\) gives 8"):
        Sequential([Conv2D(3, 8), ReLU(), Conv2D(16, 4)])
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\) does not fit its input: Dense expects inputs \(10,\)"):
        Sequential([Dense(4, 5), Dense(10, 2)], input_shape=(4,))
    # chains that fit, and widths unknown after a Flatten of images
    Sequential([Flatten(), MemristiveDense(784, 25), Sigmoid(), MemristiveDense(25, 10), Softmax()])
    Sequential([Conv2D(3, 8), ReLU(), MaxPool2D(), Conv2D(8, 4), Flatten(), Dense(100, 10)])


def test_sequential_inputs(rng):
    model = mnist_mlp(rng, "double", stage=PF)
    images = (rng.random((8, 28, 28)) * 255).astype(np.uint8)
    for call in (lambda x: model.evaluate(x, np.zeros(8, int), rng, power=True),
                 lambda x: model.predict(x, rng), lambda x: model.forward(x, rng),
                 lambda x: model.compute_gradients(x, np.zeros(8, int), rng)):
        with pytest.raises(ValueError, match=r"^x holds uint8 values up to \d+: memnp models take inputs "
                                             r"scaled to \[0, 1\] \(for 8-bit images, pass x / 255\)"):
            call(images)
        with pytest.raises(ValueError, match="^x must hold at least one example"):
            call(images[:0] / 255)
        with pytest.raises(ValueError, match="^rng must be None or a numpy.random.Generator"):
            model.forward(images / 255, np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"^x must hold values in \[0, 1\]"):
        model.forward(images.astype(np.float32), rng)
    with pytest.raises(ValueError, match="^rng must be a numpy.random.Generator"):
        model.initialize(42)
    with pytest.raises(ValueError, match="^x must be a real numeric array"):
        model.forward((images / 255).astype(np.complex64), rng)
    # scaled images are fine, and binary integer images too
    assert model.forward(images / 255, rng).shape == (8, 10)
    assert model.forward((images > 128).astype(np.uint8), rng).shape == (8, 10)


def test_nn_number_options_refuse_booleans():
    from memnp.nn.optim import SGD
    with pytest.raises(ValueError, match="^lr must be a finite number > 0, not a boolean"):
        SGD(lr=True)
    with pytest.raises(ValueError, match=r"^momentum must be a number in \[0, 1\), not a boolean"):
        SGD(momentum=False)
    with pytest.raises(ValueError, match="^l1 must be a number >= 0, not a boolean"):
        Sequential([Dense(2, 2)], l1=True)
    with pytest.raises(ValueError, match="^max_value must be None or a finite number > 0, not a boolean"):
        ReLU(max_value=True)
    with pytest.raises(ValueError, match="^n_in must be an integer >= 1; got True"):
        Dense(True, 2)
