"""The fused PF layer of K members (memnp.kernels.ensemble_fused) against the unfused K-axis calls,
bit for bit, on one thread and on two, with dense and zero-skipping members."""
import numba
import numpy as np
import pytest

from memnp.kernels import ensemble_fused as ef
from memnp.kernels import ensemble_reference as er
from memnp.kernels import pcg64
from memnp.kernels.ensemble_layout import MemberRows

G_OFF, G_ON = 5.24841e-7, 2.6242e-6
SLOPES, INTERCEPTS = (-1.03023, -0.0901078), (-0.250595, -37.1186)
SIGMA = np.array([[0.03208284, 0.09272695], [0.09272695, 0.32510818]])


def _case(K, dtype, seed, p=24, n_in=90, n_out=20):
    """Inputs X (K, p, n_in) with a different zero fraction per member (dense and sparse reads),
    weights D (K, n_in + 1, 2 n_out), per-member k_V, G_off, G_on, PF slopes and factors."""
    rng = np.random.default_rng(seed)
    X = rng.random((K, p, n_in))
    zeros = np.resize([0.9, 0.1, 0.6, 0.97, 0.3], K)
    for k in range(K):
        X[k][rng.random((p, n_in)) < zeros[k]] = 0.0
        if k != 1:     # member 1 reads every row (its G is mapped with NumPy's rounding)
            X[k][:, rng.random(n_in) < 0.2] = 0.0        # rows no example drives
    D = rng.uniform(0.0, 1.0, size=(K, n_in + 1, 2 * n_out))
    k_V = rng.uniform(0.2, 0.5, K)
    G_off = G_OFF * rng.uniform(0.9, 1.1, K)
    G_on = G_ON * rng.uniform(0.9, 1.1, K)
    slopes = np.tile(SLOPES, (K, 1)) * rng.uniform(0.95, 1.05, (K, 2))
    intercepts = np.tile(INTERCEPTS, (K, 1))
    factors = np.stack([np.linalg.cholesky(SIGMA * s) for s in rng.uniform(0.5, 1.5, K)])
    active = np.concatenate([(X != 0).any(axis=1), np.ones((K, 1), bool)], axis=1)
    layout = MemberRows.from_active(active)
    grad_y = rng.normal(size=(K, p, n_out))
    max_weight = D.reshape(K, -1).max(axis=1).astype(dtype).astype(np.float64)
    return (X.astype(dtype), D.astype(dtype), layout, k_V, G_off, G_on, max_weight, slopes, intercepts,
            factors, grad_y.astype(dtype))


def _states(generators, layout, n):
    """(states, drawn): PCG64 state words of the members with enough words to draw in the kernel."""
    K = len(generators)
    states = np.zeros((K, 4), np.uint64)
    drawn = np.zeros(K, np.bool_)
    for k, g in enumerate(generators):
        if layout.counts()[k] * n >= pcg64.MIN_WORDS:
            s, inc = g.bit_generator.state["state"]["state"], g.bit_generator.state["state"]["inc"]
            states[k] = (s >> 64, s & (2**64 - 1), inc >> 64, inc & (2**64 - 1))
            drawn[k] = True
    return states, drawn


@pytest.mark.parametrize("threads, schedule", [(1, "members"), (2, "members"), (1, "tasks"), (2, "tasks")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("need_x", [False, True])
def test_fused_layer_equals_the_unfused_calls(dtype, threads, schedule, need_x, monkeypatch):
    # threads = 2: the parallel kernels, whatever the call's size (the threshold is for speed);
    # schedule: whole members per thread, or every member's work split over the threads
    monkeypatch.setattr(ef, "parallel", lambda evaluations, members: threads > 1 and numba.get_num_threads() > 1)
    monkeypatch.setattr(ef, "by_member", lambda members, threads: schedule == "members")
    K = 5
    X, D, layout, k_V, G_off, G_on, max_weight, slopes, intercepts, factors, grad_y = _case(K, dtype, seed=3)
    n = D.shape[2]
    ref_gens = [np.random.default_rng(100 + k) for k in range(K)]
    gens = [np.random.default_rng(100 + k) for k in range(K)]
    G, V, c, d_eps, I, y = er.fused_forward_reference(X, D, layout, k_V, G_off, G_on, max_weight, ref_gens,
                                                      factors, slopes, intercepts)
    states, drawn = _states(gens, layout, n)
    assert drawn.any() and not drawn.all()      # both ways of drawing are exercised
    residuals = np.empty((2, layout.total, n), dtype)
    for k in np.flatnonzero(~drawn):            # the others' residuals are given, as the layer does
        a, b = layout.offsets[k], layout.offsets[k + 1]
        from memnp.kernels.pf_devices import residuals as draw
        residuals[:, a:b] = draw(gens[k], factors[k], (b - a, n), dtype)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        read = ef.layer_forward(X, D, layout, k_V, G_off, G_on, max_weight, states, drawn, factors, slopes,
                                intercepts, residuals)
        grads = ef.layer_backward(read, grad_y, D, layout, k_V, G_off, G_on, max_weight, slopes, need_x)
    finally:
        numba.set_num_threads(before)
    for name, mine, theirs in (("G", read.G, G), ("V", read.V, V), ("c", read.c, c), ("d_eps", read.d_eps, d_eps),
                               ("I", read.I, I), ("y", read.y, y)):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), name
    assert read.is_sparse.any() and not read.is_sparse.all()
    assert (layout.counts() == layout.n_rows).sum() == 1
    for k in np.flatnonzero(drawn):   # the words the kernel drew are the Generator's next ones
        s = ref_gens[k].bit_generator.state["state"]["state"]
        assert (int(read.after[k, 0]) << 64 | int(read.after[k, 1])) == s
    grad_D, grad_x, grad_mw = er.fused_backward_reference(G, V, c, d_eps, I, grad_y, D, layout, k_V, G_off, G_on,
                                                          max_weight, slopes, need_x)
    assert np.array_equal(grads.grad_D, grad_D)
    assert np.array_equal(grads.grad_max_weight, grad_mw)
    if need_x:
        assert np.array_equal(grads.grad_x, grad_x) and grads.grad_x.shape == X.shape
    else:
        assert grads.grad_x is None
    assert np.abs(grad_D).max() > 0 and np.all(np.isfinite(grad_D))


def test_parallel_threshold_scales_with_threads():
    assert not ef.parallel(0, 4)
    if numba.get_num_threads() > 1:
        assert ef.parallel(10**8, 1) and ef.parallel(10**8, 16)
        # whole members per thread wake the threads once: a lower threshold than a split call's
        middle = ef.serial_below()
        assert ef.parallel(middle, numba.get_num_threads()) and not ef.parallel(middle, 1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_equals_the_unfused_calls(dtype, threads, monkeypatch):
    from memnp.kernels import ensemble_steps
    monkeypatch.setattr(ef, "parallel", lambda evaluations, members: threads > 1 and numba.get_num_threads() > 1)
    X, D, *_ = _case(4, dtype, seed=5)
    X[2, 3, 7] = -0.0          # in [0, 1], but fails the bit test: valid False, settled by the caller
    X[3, 0, 0] = 1.5           # out of range
    D[1, 0, 0] = np.nan        # not a valid weight matrix: max_weight nan
    found = ef.scan(X, D)
    active, valid = ensemble_steps.scan_inputs(X)
    layout = MemberRows.from_active(active)
    assert np.array_equal(found.layout.rows, layout.rows) and np.array_equal(found.layout.offsets, layout.offsets)
    assert found.layout.n_rows == layout.n_rows == X.shape[2] + 1
    assert list(found.valid) == [True, True, False, False] and list(valid) == [True, True, True, False]
    reference = ensemble_steps.max_weights(D)
    assert np.array_equal(found.max_weight, reference, equal_nan=True) and np.isnan(found.max_weight[1])
    assert not found.layout.rows.flags.writeable
