"""memnp.nn.Ensemble: K members trained together equal, bit for bit on the cpu backend, each
member trained alone (weights, losses, accuracies, Generator states), over >= 50 steps.

Caveat (memnp/kernels/ensemble.py): in the first process after the PF kernels' sources changed, a
K-axis kernel compiled afresh and a single kernel loaded from Numba's on-disk cache can differ in
the last bits (seen once here, in the CNN case right after merging new K-axis kernels); a fresh
checkout (everything compiled in one process) and any later run agree."""
from pathlib import Path

import numpy as np
import pytest

from memnp.crossbar import Stage
from memnp.nn import (Conv2D, Ensemble, Flatten, MaxPool2D, MemristiveDense, ReLU, SGD, Sequential, Sigmoid,
                      Softmax, ensemble_mlp_step, mnist_mlp)

ROOT = Path(__file__).resolve().parents[1]
G_OFF, G_ON = 5.24841e-7, 2.6242e-6
STEPS = 50


def _pf(k):
    """The high-R SiOx PF model with member k's own numbers (slopes, intercepts shifted)."""
    return dict(type="IVNonlinearityPF", k_V=0.5, slopes=[-1.03023 + 0.01 * k, -0.0901078],
                intercepts=[-0.250595 - 0.02 * k, -37.1186],
                covariance=[[0.03208284, 0.09272695], [0.09272695, 0.32510818 + 0.01 * k]])


def stage_c(k):
    """Case c (bench/epoch.py): high-R SiOx PF; member k's range and PF parameters differ."""
    return Stage(G_OFF * (1 + 0.05 * k), G_ON * (1 + 0.03 * k), 0.5, (_pf(k),))


def stage_e(k):
    """Case e: the siox-high-chip pipeline (D2D, drift, stuck, read noise, DAC, PF, ADC, tiles),
    every number of member k its own."""
    G_off = G_OFF * (1 + 0.05 * k)
    return Stage(G_off, G_ON, 0.5, (
        dict(type="D2DLognormal", G_off=G_off, G_on=G_ON, R_on_log_std=0.25 + 0.02 * k, R_off_log_std=0.25),
        dict(type="Drift", nu_mean=0.01 + 0.002 * k, nu_std=0.005, t=86400.0 * (k + 1)),
        dict(type="StuckAtGOff", G_off=G_off, p=0.02 + 0.01 * k),
        dict(type="ReadNoise", sigma_rel=0.05 + 0.01 * k), dict(type="DAC", bits=6),
        _pf(k), dict(type="ADC", bits=6), dict(type="Tiles", rows=128, cols=64)))


@pytest.fixture(scope="module")
def mnist():
    with np.load(ROOT / "memnp" / "data" / "mnist-10k.npz", allow_pickle=False) as data:
        return (data["images"][:512] / np.float32(255)).astype(np.float32), data["labels"][:512].astype(np.int64)


def mlp_members(stage, K, hidden=25, weights="double", dtype="float32"):
    """K case-c/e networks (784-hidden-10, float32) with their own init, lr and L1."""
    return [mnist_mlp(np.random.default_rng(10 + k), weights, dtype, hidden, stage=stage(k),
                      optimizer=SGD(lr=0.01 * (1 + k)), l1=[0.0, 1e-4, 3e-4, 0.0, 2e-4][k % 5])
            for k in range(K)]


def cnn_members(K, weights="standard"):
    """K small CNNs of the cifar_cnn kind: digital convolutions, then PF memristive dense layers,
    on 12 x 12 x 1 crops of the digits."""
    models = []
    for k in range(K):
        layers = [Conv2D(1, 4, 3), ReLU(), MaxPool2D(), Conv2D(4, 6, 3), ReLU(max_value=1.0), Flatten(),
                  MemristiveDense(54, 12, weights), Sigmoid(), MemristiveDense(12, 10, weights),
                  Softmax()]
        models.append(Sequential(layers, input_shape=(12, 12, 1), stage=stage_c(k),
                                 optimizer=SGD(lr=0.02 + 0.01 * k), l1=1e-4 * k)
                      .initialize(np.random.default_rng(50 + k)))
    return models


def _params(model):
    return [np.array(layer.params[name]) for _, layer, name in model.parameters()]


def check_bit_equal(build, x, y, K, stacked, steps=STEPS, batch=16):
    """Train K members alone and K copies as an Ensemble on the same per-member batches (each
    member its own data order) and compare everything bit for bit after every step. ``stacked``:
    the layers the ensemble must run in one call for all members."""
    alone, together = build(K), build(K)
    ensemble = Ensemble(together)
    assert ensemble.stacked_layers == stacked
    rngs_alone = [np.random.default_rng(200 + k) for k in range(K)]
    rngs_together = [np.random.default_rng(200 + k) for k in range(K)]
    orders = [np.random.default_rng(300 + k).permutation(len(x)) for k in range(K)]
    before = [_params(m) for m in alone]
    all_losses = []
    for step in range(steps):
        idx = [orders[k][(step * batch) % len(x):][:batch] for k in range(K)]
        xs = np.stack([x[i] for i in idx])
        ys = np.stack([y[i] for i in idx])
        losses, accuracies = ensemble.train_step(xs, ys, rngs_together)
        assert losses.shape == accuracies.shape == (K,)
        for k in range(K):
            loss, acc = alone[k].train_step(xs[k], ys[k], rngs_alone[k])
            assert losses[k] == loss and accuracies[k] == acc, (step, k)
        all_losses.append(losses)
    for k in range(K):
        for a, b, start in zip(_params(alone[k]), _params(ensemble.members[k]), before[k]):
            assert a.dtype == b.dtype and np.array_equal(a, b)
            assert not np.array_equal(a, start)            # training moved the weights
        assert rngs_alone[k].bit_generator.state == rngs_together[k].bit_generator.state
        assert ensemble.members[k] is together[k]
    all_losses = np.array(all_losses)
    assert np.all(np.isfinite(all_losses))
    # The members are different trainings: their losses differ.
    assert len({float(v) for v in all_losses[-1]}) == K
    return alone, ensemble


@pytest.mark.parametrize("one_call", [True, False], ids=["one-call-step", "layered-step"])
def test_case_c_mlp_bit_equal(mnist, monkeypatch, one_call):
    """The one-call step (memnp.nn.ensemble_mlp_step) and, with it turned off, the layered step."""
    if not one_call:
        monkeypatch.setattr(ensemble_mlp_step, "train_step", lambda *args: None)
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_c, K), x, y, K=4, stacked=(1, 3))


def test_case_c_mlp_float64_bit_equal(mnist):
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_c, K, hidden=12, dtype="float64"), x.astype(np.float64), y,
                    K=3, stacked=(1, 3))


def test_case_e_chip_bit_equal(mnist, monkeypatch):
    """The layered step through the fused combined-stage read (memnp.kernels.ensemble_chip): every
    layer's read of every step takes it (the one-call step, which these members take otherwise, is
    tested in test_nn_ensemble_mlp_step.py)."""
    from memnp.nn import ensemble_chip_read
    monkeypatch.setattr(ensemble_mlp_step, "train_step", lambda *args: None)
    reads = []
    fused = ensemble_chip_read.forward

    def counted(*args):
        reads.append(fused(*args))
        return reads[-1]
    monkeypatch.setattr(ensemble_chip_read, "forward", counted)
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_e, K, hidden=12), x, y, K=3, stacked=(1, 3))
    assert len(reads) == 2 * STEPS and all(read is not None for read in reads)


def stage_d(k):
    """Case d: the paper's D2D variability and PF (a paper stage with a conductance phase)."""
    G_off = G_OFF * (1 + 0.05 * k)
    return Stage(G_off, G_ON, 0.5, (dict(type="D2DLognormal", G_off=G_off, G_on=G_ON, R_on_log_std=0.25,
                                         R_off_log_std=0.25 + 0.05 * k), _pf(k)))


def test_case_d_paper_d2d_bit_equal(mnist):
    x, y = mnist
    check_bit_equal(lambda K: mlp_members(stage_d, K, hidden=12), x, y, K=3, stacked=(1, 3), steps=12)


@pytest.mark.parametrize("weights, stacked", [("standard", ()), ("double", (6, 8))])
def test_cnn_memristive_dense_bit_equal(mnist, weights, stacked):
    x, y = mnist
    crops = np.ascontiguousarray(x[:, 8:20, 8:20, None])
    check_bit_equal(lambda K: cnn_members(K, weights), crops, y, K=3, stacked=stacked, batch=8)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_predict_and_evaluate_equal_members_alone(mnist, network):
    """predict and evaluate (the stacked forward pass: members' own stages, draws "active") give
    each member's own outputs, losses, accuracies and powers, after some training too; other
    stages and draws="all" go member by member and give them as well."""
    x, y = mnist
    K = 3
    if network == "mlp":
        build, data = (lambda: mlp_members(stage_c, K)), x
    else:
        build, data = (lambda: cnn_members(K, "double")), np.ascontiguousarray(x[:, 8:20, 8:20, None])
    alone, ensemble = build(), Ensemble(build())
    assert ensemble.stacked_layers
    for step in range(3):
        xs, ys = np.stack([data[16 * (step + k):][:16] for k in range(K)]), np.stack([y[16 * (step + k):][:16]
                                                                                      for k in range(K)])
        ensemble.train_step(xs, ys, [np.random.default_rng(step * K + k) for k in range(K)])
        for k in range(K):
            alone[k].train_step(xs[k], ys[k], np.random.default_rng(step * K + k))
    xs = np.stack([data[40 * k:40 * k + 100] for k in range(K)])
    ys = np.stack([y[40 * k:40 * k + 100] for k in range(K)])
    for batch_size in (32, None):
        out = ensemble.predict(xs, [np.random.default_rng(k) for k in range(K)], batch_size=batch_size)
        assert out.shape == (K, 100, 10)
        for k in range(K):
            assert np.array_equal(out[k], alone[k].predict(xs[k], np.random.default_rng(k), batch_size=batch_size))
    result = ensemble.evaluate(list(xs), list(ys), [np.random.default_rng(k) for k in range(K)],
                               batch_size=30, power=True)
    for k in range(K):
        expected = alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), batch_size=30, power=True)
        assert result["loss"][k] == expected["loss"]
        assert result["accuracy"][k] == expected["accuracy"]
        assert result["power"][k] == expected["power"] and expected["power"] > 0
    no_power = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)])
    assert no_power["power"] is None and no_power["loss"].shape == (K,)
    # Another PF stage for every member: the stacked pass under those stages.
    other = [stage_c(k + 1) for k in range(K)]
    assert ensemble._plan_for(other) is not None
    under = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)], stages=other, power=True)
    for k in range(K):
        expected = alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), stage=other[k], power=True)
        assert (under["loss"][k], under["accuracy"][k], under["power"][k]) == \
            (expected["loss"], expected["accuracy"], expected["power"])
    # draws="all" (chip sampling: every device drawn, the rows read keep theirs), with read streams.
    chip = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)], stages=other, draws="all",
                             read_rngs=[np.random.default_rng(9 + k) for k in range(K)], power=True)
    for k in range(K):
        expected = alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), stage=other[k], draws="all",
                                     read_rng=np.random.default_rng(9 + k), power=True)
        assert (chip["loss"][k], chip["accuracy"][k], chip["power"][k]) == \
            (expected["loss"], expected["accuracy"], expected["power"])
    out = ensemble.predict(xs, [np.random.default_rng(k) for k in range(K)], batch_size=64, draws="all")
    for k in range(K):
        assert np.array_equal(out[k], alone[k].predict(xs[k], np.random.default_rng(k), batch_size=64, draws="all"))


def test_ideal_training_then_stacked_evaluation_under_pf(mnist):
    """Members trained on an ideal stage (a step loops over them: nothing to stack) are evaluated
    under PF stages in one stacked pass, each equal to its own evaluation; stages of different
    structures go member by member."""
    x, y = mnist
    K = 3
    ideal = [Stage(G_OFF, G_ON, 0.5) for _ in range(K)]
    alone = mlp_members(lambda k: ideal[k], K)
    ensemble = Ensemble(mlp_members(lambda k: ideal[k], K))
    assert ensemble.stacked_layers == ()
    xs, ys = np.stack([x[16 * k:16 * k + 16] for k in range(K)]), np.stack([y[16 * k:16 * k + 16] for k in range(K)])
    ensemble.train_step(xs, ys)
    for k in range(K):
        alone[k].train_step(xs[k], ys[k])
    pf = [stage_c(k) for k in range(K)]
    assert ensemble._plan_for(pf) is not None
    xs, ys = np.stack([x[50 * k:50 * k + 90] for k in range(K)]), np.stack([y[50 * k:50 * k + 90] for k in range(K)])
    result = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)], stages=pf, batch_size=40)
    for k in range(K):
        expected = alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), stage=pf[k], batch_size=40)
        assert (result["loss"][k], result["accuracy"][k]) == (expected["loss"], expected["accuracy"])
    mixed = [pf[0], stage_e(1), pf[2]]
    assert ensemble._plan_for(mixed) is None
    result = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)], stages=mixed)
    for k in range(K):
        assert result["loss"][k] == alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), stage=mixed[k])["loss"]


def test_member_weights_save_and_load(tmp_path, mnist):
    x, y = mnist
    ensemble = Ensemble(mlp_members(stage_c, 2))
    ensemble.train_step(np.stack([x[:8], x[8:16]]), np.stack([y[:8], y[8:16]]),
                        [np.random.default_rng(1), np.random.default_rng(2)])
    path = tmp_path / "m1.npz"
    ensemble.members[1].save(path)
    loaded = Sequential.load(path)
    for a, b in zip(_params(loaded), _params(ensemble.members[1])):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("models, match", [
    ([], "K = 0"),
    ("not models", "Sequential"),
])
def test_bad_models(models, match):
    with pytest.raises(ValueError, match=match):
        Ensemble(models)


def test_members_that_differ_are_refused():
    base = mlp_members(stage_c, 1)[0]
    with pytest.raises(ValueError, match="member 1 differs from member 0 in its layer 1: .*'n_out': 12"):
        Ensemble([base, mnist_mlp(np.random.default_rng(0), "double", hidden=12, stage=stage_c(0))])
    with pytest.raises(ValueError, match="member 1 differs from member 0 in its layer 1: .*'standard'"):
        Ensemble([base, mnist_mlp(np.random.default_rng(0), "standard", stage=stage_c(0))])
    with pytest.raises(ValueError, match="member 1 differs from member 0 in its dtype"):
        Ensemble([base, mnist_mlp(np.random.default_rng(0), "double", dtype="float64", stage=stage_c(0))])
    with pytest.raises(ValueError, match="member 2 differs from member 0 in its stage.*stuck"):
        Ensemble([base, mlp_members(stage_c, 2)[1], mnist_mlp(np.random.default_rng(0), "double", stage=Stage(
            G_OFF, G_ON, 0.5, (_pf(0), dict(type="StuckAtGOff", G_off=G_OFF, p=0.1))))])
    with pytest.raises(ValueError, match="member 1 differs from member 0 in its backend"):
        Ensemble([base, mnist_mlp(np.random.default_rng(0), "double", stage=stage_c(0), backend="numpy")])
    with pytest.raises(ValueError, match="member 1 is the same Sequential object as member 0"):
        Ensemble([base, base])
    shared = Sequential(base.layers, input_shape=(28, 28), stage=stage_c(0))
    with pytest.raises(ValueError, match="member 1 shares its layer 1 with member 0"):
        Ensemble([base, shared])
    with pytest.raises(ValueError, match="member 1 must be a memnp.nn.Sequential"):
        Ensemble([base, "model"])


def test_bad_batches_and_rngs(mnist):
    x, y = mnist
    ensemble = Ensemble(mlp_members(stage_c, 3))
    xs, ys = np.stack([x[:8]] * 3), np.stack([y[:8]] * 3)
    rngs = [np.random.default_rng(k) for k in range(3)]
    with pytest.raises(ValueError, match=r"rngs must hold one Generator per member \(K = 3\); got 2"):
        ensemble.train_step(xs, ys, rngs[:2])
    with pytest.raises(ValueError, match="rngs must be a list"):
        ensemble.train_step(xs, ys, rngs[0])
    with pytest.raises(ValueError, match=r"rngs\[1\] \(member 1\) must be None or a numpy.random.Generator"):
        ensemble.train_step(xs, ys, [rngs[0], 5, rngs[2]])
    with pytest.raises(ValueError, match=r"member 2\) draws from the same Generator .* as member 0"):
        ensemble.train_step(xs, ys, [rngs[0], rngs[1], rngs[0]])
    with pytest.raises(ValueError, match=r"member 1\) draws from the same Generator .* as member 0"):
        ensemble.train_step(xs, ys, [rngs[0], np.random.Generator(rngs[0].bit_generator), rngs[2]])
    with pytest.raises(ValueError, match=r"xs\[2\] \(member 2\) holds 7 examples but member 0's holds 8"):
        ensemble.train_step([x[:8], x[:8], x[:7]], ys, rngs)
    with pytest.raises(ValueError, match=r"xs must hold one batch per member \(K = 3\); got 2"):
        ensemble.train_step(xs[:2], ys, rngs)
    with pytest.raises(ValueError, match="ys must hold one label per example of xs"):
        ensemble.train_step(xs, np.stack([y[:6]] * 3), rngs)
    with pytest.raises(ValueError, match=r"ys\[1\] \(member 1\) holds 6 examples"):
        ensemble.train_step(xs, [y[:8], y[:6], y[:8]], rngs)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        ensemble.predict(xs, rngs, batch_size=0)
    with pytest.raises(ValueError, match=r"stages must hold one Stage per member \(K = 3\)"):
        ensemble.evaluate(xs, ys, rngs, stages=[stage_c(0)])


def test_momentum_members_and_replaced_weights_stay_bit_equal(mnist):
    """Members with momentum (their optimiser steps member by member) and weights replaced between
    steps (initialize, load_weights: the stacked storage follows) still equal the members alone."""
    x, y = mnist
    K = 3

    def build(K):
        models = mlp_members(stage_c, K)
        models[1].optimizer = SGD(lr=0.02, momentum=0.9)
        return models

    alone, together = build(K), build(K)
    ensemble = Ensemble(together)
    rngs_a = [np.random.default_rng(k) for k in range(K)]
    rngs_t = [np.random.default_rng(k) for k in range(K)]
    for step in range(12):
        if step == 5:
            for models in (alone, together):
                models[2].initialize(np.random.default_rng(77))
        xs = np.stack([x[16 * ((step + k) % 20):][:16] for k in range(K)])
        ys = np.stack([y[16 * ((step + k) % 20):][:16] for k in range(K)])
        losses, accuracies = ensemble.train_step(xs, ys, rngs_t)
        for k in range(K):
            assert (losses[k], accuracies[k]) == alone[k].train_step(xs[k], ys[k], rngs_a[k])
    for k in range(K):
        for a, b in zip(_params(alone[k]), _params(together[k])):
            assert np.array_equal(a, b)


def test_a_members_stage_replaced_between_steps(mnist):
    """A member given another stage between steps trains under it, as alone; a stage of another
    phase structure is refused, naming the member."""
    x, y = mnist
    alone, ensemble = mlp_members(stage_c, 2), Ensemble(mlp_members(stage_c, 2))
    rngs_a = [np.random.default_rng(k) for k in range(2)]
    rngs_t = [np.random.default_rng(k) for k in range(2)]
    for step in range(4):
        if step == 2:
            alone[1].stage = ensemble.members[1].stage = stage_c(3)
        xs, ys = np.stack([x[16 * step:][:16]] * 2), np.stack([y[16 * step:][:16]] * 2)
        losses, _ = ensemble.train_step(xs, ys, rngs_t)
        assert [losses[k] for k in range(2)] == [alone[k].train_step(xs[k], ys[k], rngs_a[k])[0] for k in range(2)]
    ensemble.members[0].stage = stage_e(0)
    with pytest.raises(ValueError, match="member 1 differs from member 0 in its stage"):
        ensemble.train_step(xs, ys, rngs_t)


def test_load_weights_into_a_member_between_steps(tmp_path, mnist):
    x, y = mnist
    alone, ensemble = mlp_members(stage_c, 2), Ensemble(mlp_members(stage_c, 2))
    donor = mlp_members(stage_c, 4)[3]
    donor.save(tmp_path / "donor.npz")
    rngs_a = [np.random.default_rng(k) for k in range(2)]
    rngs_t = [np.random.default_rng(k) for k in range(2)]
    for step in range(4):
        if step == 2:
            alone[1].load_weights(tmp_path / "donor.npz")
            ensemble.members[1].load_weights(tmp_path / "donor.npz")
        xs, ys = np.stack([x[16 * step:][:16]] * 2), np.stack([y[16 * step:][:16]] * 2)
        losses, _ = ensemble.train_step(xs, ys, rngs_t)
        assert [losses[k] for k in range(2)] == [alone[k].train_step(xs[k], ys[k], rngs_a[k])[0] for k in range(2)]
    for a, b in zip(_params(alone[1]), _params(ensemble.members[1])):
        assert np.array_equal(a, b)


def test_stacked_step_names_the_member_of_bad_inputs(mnist):
    x, y = mnist
    ensemble = Ensemble(mlp_members(stage_c, 3))
    assert ensemble.stacked_layers == (1, 3)
    rngs = [np.random.default_rng(k) for k in range(3)]
    xs, ys = np.stack([x[:8]] * 3), np.stack([y[:8]] * 3)
    bad = xs.copy()
    bad[2, 0, 14, 14] = 1.5
    with pytest.raises(ValueError, match=r"member 2, layer 1: x must .*\[0, 1\]"):
        ensemble.train_step(bad, ys, rngs)
    labels = ys.copy()
    labels[1, 3] = 10
    with pytest.raises(ValueError, match=r"ys\[1\] \(member 1\): labels must be class indices in \[0, 9\]"):
        ensemble.train_step(xs, labels, rngs)
    with pytest.raises(ValueError, match=r"rngs\[0\] \(member 0\) must be a numpy.random.Generator"):
        ensemble.train_step(xs, ys, [None, rngs[1], rngs[2]])


def test_parallel_kernels_with_many_members_stay_bit_equal(mnist):
    """K = 6 members of the case c network on full batches of 64: the K-axis PF kernels take
    their parallel path (over the one-thread threshold) on 2 threads where Numba has them."""
    import numba
    x, y = mnist
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        check_bit_equal(lambda K: mlp_members(stage_c, K), x, y, K=6, stacked=(1, 3), steps=6, batch=64)
    finally:
        numba.set_num_threads(before)


def test_a_backend_without_k_axis_reads_loops_over_the_members(mnist):
    """The numpy backend has no K-axis reads (Backend.ensemble is None): the ensemble runs each
    member's own train_step and evaluate, with the same numbers."""
    x, y = mnist

    def build():
        return [mnist_mlp(np.random.default_rng(k), "double", "float64", 6, stage=stage_c(k), backend="numpy")
                for k in range(2)]

    alone, ensemble = build(), Ensemble(build())
    assert ensemble.stacked_layers == ()
    xs = np.stack([x[:8], x[8:16]]).astype(np.float64)
    ys = np.stack([y[:8], y[8:16]])
    losses, _ = ensemble.train_step(xs, ys, [np.random.default_rng(k) for k in range(2)])
    for k in range(2):
        assert losses[k] == alone[k].train_step(xs[k], ys[k], np.random.default_rng(k))[0]
        for a, b in zip(_params(alone[k]), _params(ensemble.members[k])):
            assert np.array_equal(a, b)


def test_chip_stage_evaluation_member_by_member_crossbars(mnist):
    """Under the combined chip stage the crossbar phases run in each member's own CrossbarPass:
    evaluation in batch and chip mode (draws="all", read noise from read_rngs) and predictions
    equal each member's, powers included."""
    x, y = mnist
    K = 3
    alone, ensemble = mlp_members(stage_e, K, hidden=12), Ensemble(mlp_members(stage_e, K, hidden=12))
    assert ensemble.stacked_layers == (1, 3)
    xs = np.stack([x[30 * k:30 * k + 70] for k in range(K)])
    ys = np.stack([y[30 * k:30 * k + 70] for k in range(K)])
    for draws, read in (("active", False), ("all", True)):
        read_rngs = [np.random.default_rng(5 + k) for k in range(K)] if read else None
        result = ensemble.evaluate(xs, ys, [np.random.default_rng(k) for k in range(K)], batch_size=25, power=True,
                                   draws=draws, read_rngs=read_rngs)
        for k in range(K):
            expected = alone[k].evaluate(xs[k], ys[k], np.random.default_rng(k), batch_size=25, power=True, draws=draws,
                                         read_rng=np.random.default_rng(5 + k) if read else None)
            assert (result["loss"][k], result["accuracy"][k], result["power"][k]) == \
                (expected["loss"], expected["accuracy"], expected["power"])
    out = ensemble.predict(xs, [np.random.default_rng(k) for k in range(K)], batch_size=32, draws="all")
    for k in range(K):
        assert np.array_equal(out[k], alone[k].predict(xs[k], np.random.default_rng(k), batch_size=32, draws="all"))


def test_backends_say_whether_they_have_k_axis_reads():
    from memnp.kernels import ensemble, get_backend
    assert get_backend("cpu").ensemble is ensemble
    assert get_backend("numpy").ensemble is None
