"""K-axis kernels (memnp.kernels.ensemble*, issue 15): for every member, bit for bit what the
single-network kernel gives for that member alone, and the NumPy reference to rounding.

Members differ in their active rows (so in r_k), their fraction of zero inputs (so cpu_auto picks
the dense kernels for some and the zero-skipping ones for others), their k_V and device parameters.
Runs with 1 and 2 Numba threads (2 needs NUMBA_NUM_THREADS >= 2); with 2 the one-thread threshold
is lowered to 0 so that the parallel loops run on these small shapes.

The PF crossbar kernels call the single kernels' task functions, and Numba binds such calls to a
definition that depends on what the process compiled before (see tests/ensemble_cases.py): their
bit-for-bit comparison with cpu_auto runs in a fresh process with an empty Numba cache, where it
is deterministic; in this process they are compared with the NumPy reference and across thread
counts. The mapping, loss and optimiser loops are compared bit for bit here.
"""
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
import pytest

from ensemble_cases import G_OFF, G_ON, INTERCEPTS, SIGMA, SLOPES, crossbar_case
from memnp.crossbar import mapping as np_mapping
from memnp.kernels import cpu_auto, ensemble, ensemble_reference as eref, ensemble_steps as steps
from memnp.kernels import reference
from memnp.kernels.ensemble_layout import MemberRows, member_scalars
from memnp.nn import optim
from memnp.nn.losses import cross_entropy_from_logits_numpy

MEMBERS = (1, 2, 5)
DTYPES = (np.float32, np.float64)
THREADS = (1, pytest.param(2, marks=pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                                         reason="needs NUMBA_NUM_THREADS >= 2")))
#: Normwise relative error against the float64 NumPy reference.
TOL = {np.float32: 2e-5, np.float64: 1e-11}
members = pytest.mark.parametrize("K", MEMBERS)
dtypes = pytest.mark.parametrize("dtype", DTYPES)
threads = pytest.mark.parametrize("threads", THREADS)


@contextmanager
def numba_threads(n, monkeypatch):
    """Run on n Numba threads; with n > 1 no call falls back to one thread."""
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    if n > 1:
        monkeypatch.setattr(ensemble, "serial_below", lambda: 0)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def rel_err(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return np.linalg.norm(np.asarray(actual, dtype=np.float64) - expected) / np.linalg.norm(expected)


# --- layout ----------------------------------------------------------------------------------------

def test_layout_from_active_and_blocks():
    active = np.array([[True, False, True, True], [False, True, False, True]])
    layout = MemberRows.from_active(active)
    assert layout.rows.tolist() == [0, 2, 3, 1, 3] and layout.offsets.tolist() == [0, 3, 5]
    assert layout.members == 2 and layout.total == 5 and layout.counts().tolist() == [3, 2]
    blocks = [np.arange(6.0).reshape(2, 3), 10 + np.arange(4.0).reshape(2, 2)]
    V = layout.pack(blocks)
    assert V.tolist() == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13]
    assert layout.batch(V) == 2 and np.array_equal(layout.block(V, 1, 2), blocks[1])
    assert MemberRows.full(2, 3).rows.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("rows, offsets, match", [
    ([0, 1, 1], [0, 3], "increase within each member"),
    ([0, 1], [0, 2, 2], "at least one row"),
    ([0, 5], [0, 2], r"\[0, 3\]"),
    ([0, 1], [0, 3], "end at len"),
])
def test_layout_rejects_bad_rows(rows, offsets, match):
    with pytest.raises(ValueError, match=match):
        MemberRows(np.array(rows), np.array(offsets), 4)


def test_bad_shapes_and_scalars_name_the_parameter():
    layout, V, c, d_eps, G, grad_I = crossbar_case(2, np.float64, 0)
    with pytest.raises(ValueError, match="V must be voltage-packed"):
        ensemble.pf_currents(V[:-1], c, d_eps, layout)
    with pytest.raises(ValueError, match="d_eps must be row-packed"):
        ensemble.pf_currents(V, c, d_eps[:, :-1], layout)
    with pytest.raises(ValueError, match="grad_I must have shape"):
        ensemble.pf_currents_vjp(V, c, d_eps, layout, grad_I[:1])
    with pytest.raises(ValueError, match="k_V must be a number or one number per member"):
        member_scalars("k_V", [1.0, 2.0, 3.0], 2)
    with pytest.raises(ValueError, match="lr must hold finite numbers > 0"):
        steps.sgd_step(np.zeros((2, 3)), np.zeros((2, 3)), [0.1, 0.0])


# --- crossbar reads --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [10, 20, 40])
def test_plan_is_the_single_kernels_choice(n):
    """Per member, the kernel family and evaluations cpu_auto.plan gives (the cpu backend.s choice),
    around its thresholds (zero fractions near 0.3 and 0.6, crossbars near 1,024 devices)."""
    rng = np.random.default_rng(n)
    for _ in range(20):
        K, p = int(rng.integers(1, 6)), int(rng.integers(0, 20))
        active = rng.random((K, 130)) < rng.uniform(0.3, 1.0, size=(K, 1))
        active[:, -1] = True
        layout = MemberRows.from_active(active)
        V = rng.random(p * layout.total)
        V[rng.random(V.size) < rng.choice([0.25, 0.3, 0.35, 0.55, 0.6, 0.65])] = 0.0
        got, want = ensemble.plan(V, layout, n), ensemble.plan_reference(V, layout, n)
        assert np.array_equal(got.is_sparse, want.is_sparse) and got.evaluations == want.evaluations


@members
@dtypes
def test_pf_currents_and_power(K, dtype, monkeypatch):
    layout, V, c, d_eps, _, _ = crossbar_case(K, dtype, 10 + K)
    chosen = ensemble.plan(V, layout, c.shape[1]).is_sparse
    if K == 5:
        assert chosen.any() and not chosen.all()      # both kernel families are exercised
    results = []
    for threads in [1, 2][:numba.config.NUMBA_NUM_THREADS]:
        with numba_threads(threads, monkeypatch):
            results.append((ensemble.pf_currents(V, c, d_eps, layout), ensemble.pf_powers(V, c, d_eps, layout)))
    I, powers = results[0]
    assert all(np.array_equal(I, other) and np.array_equal(powers, p) for other, p in results[1:])
    assert I.dtype == dtype and I.shape == (K, layout.batch(V), c.shape[1])
    expected = eref.pf_currents(V.astype(np.float64), c, d_eps, layout)
    for k in range(K):
        assert rel_err(I[k], expected[k]) < TOL[dtype]
    assert np.allclose(powers, eref.pf_powers(V.astype(np.float64), c, d_eps, layout), rtol=TOL[dtype], atol=0)


@members
@dtypes
@pytest.mark.parametrize("need_V", [True, False])
def test_pf_currents_vjp(K, dtype, need_V, monkeypatch):
    layout, V, c, d_eps, _, grad_I = crossbar_case(K, dtype, 20 + K)
    results = []
    for threads in [1, 2][:numba.config.NUMBA_NUM_THREADS]:
        with numba_threads(threads, monkeypatch):
            results.append(ensemble.pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V))
    got = results[0]
    assert (got.grad_V is None) == (not need_V)
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip((got.grad_V, got.grad_c, got.grad_d_eps),
                                                        (other.grad_V, other.grad_c, other.grad_d_eps))
                   if a is not None)
    expected = eref.pf_currents_vjp(V.astype(np.float64), c, d_eps, layout, grad_I, need_V)
    p = layout.batch(V)
    for a, b in zip((got.grad_V, got.grad_c, got.grad_d_eps), expected):
        if b is not None:
            assert a.dtype == dtype
            for k in range(K):
                if a.ndim == 1:
                    ak, bk = layout.block(a, k, p), layout.block(b, k, p)
                else:
                    ak, bk = layout.row_block(a, k), layout.row_block(b, k)
                assert rel_err(ak, bk) < 10 * TOL[dtype]
    if need_V:
        assert np.all(got.grad_V[V == 0] == 0)


@pytest.mark.slow
def test_crossbar_kernels_equal_the_single_kernels_bit_for_bit(tmp_path):
    """In a fresh process (empty Numba cache, 2 threads): every K-axis PF and ideal result equals
    cpu_auto's for that member alone, bit for bit (see tests/ensemble_cases.py for why there)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    script = Path(__file__).with_name("ensemble_cases.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and done.stdout.strip() == "all equal", done.stdout + done.stderr[-3000:]


@dtypes
def test_pf_kernels_without_examples(dtype):
    layout, V, c, d_eps, _, _ = crossbar_case(2, dtype, 3)
    V = V[:0]
    assert ensemble.pf_currents(V, c, d_eps, layout).shape == (2, 0, c.shape[1])
    assert np.isnan(ensemble.pf_powers(V, c, d_eps, layout)).all()
    grads = ensemble.pf_currents_vjp(V, c, d_eps, layout, np.zeros((2, 0, c.shape[1]), dtype))
    assert grads.grad_V.shape == (0,) and not grads.grad_c.any() and not grads.grad_d_eps.any()
    assert grads.grad_c.shape == c.shape


@members
@dtypes
def test_ideal_reads(K, dtype):
    layout, V, _, _, G, grad_I = crossbar_case(K, dtype, 30 + K)
    I = ensemble.ideal_currents(V, G, layout)
    assert np.array_equal(I, eref.ideal_currents(V, G, layout, single=cpu_auto))
    assert np.allclose(I, eref.ideal_currents(V.astype(np.float64), G.astype(np.float64), layout),
                       rtol=TOL[dtype], atol=0)
    grads = ensemble.ideal_currents_vjp(V, G, layout, grad_I)
    for a, b in zip((grads.grad_V, grads.grad_G), eref.ideal_currents_vjp(V, G, layout, grad_I)):
        assert a.dtype == dtype and np.array_equal(a, b)
    assert ensemble.ideal_currents_vjp(V, G, layout, grad_I, need_V=False).grad_V is None
    powers = ensemble.ideal_powers(V, G, layout)
    assert np.array_equal(powers, eref.ideal_powers(V, G, layout, single=cpu_auto))
    assert np.allclose(powers, eref.ideal_powers(V, G, layout), rtol=TOL[dtype], atol=0)


# --- mapping loops ---------------------------------------------------------------------------------

def layer_case(K, dtype, seed, n_in=None, n_out=None):
    """(x (K, p, n_in), layout of their active rows, D (K, n_in + 1, 2 n_out), k_V, G_off, G_on)."""
    rng = np.random.default_rng(seed)
    p = int(rng.integers(3, 30))
    n_in = int(rng.integers(5, 60)) if n_in is None else n_in
    n_out = int(rng.integers(1, 12)) if n_out is None else n_out
    x = rng.random((K, p, n_in))
    x[rng.random(x.shape) < rng.uniform(0.3, 0.9, size=(K, 1, 1))] = 0.0
    x[:, :, rng.random(n_in) < 0.3] = 0.0           # rows no example drives
    D = np.maximum(rng.normal(0.5, 0.3, size=(K, n_in + 1, 2 * n_out)), 0.0)
    D[0, 1, 0] = D[0].max()                          # a tie at the maximum
    D[0, 2, 1] = D[0].max()
    k_V = rng.uniform(0.2, 0.6, K)
    G_off = rng.uniform(0.9, 1.1, K) * G_OFF
    G_on = rng.uniform(0.9, 1.1, K) * G_ON
    x, D = x.astype(dtype), D.astype(dtype)
    active, valid = steps.scan_inputs(x)
    return x, MemberRows.from_active(active), D, k_V, G_off, G_on


@members
@dtypes
@threads
def test_scan_inputs_and_voltages(K, dtype, threads, monkeypatch):
    x, layout, _, k_V, _, _ = layer_case(K, dtype, 40 + K)
    x[-1, 0, 0] = 1.5                                # one member's input out of [0, 1]
    with numba_threads(threads, monkeypatch):
        active, valid = steps.scan_inputs(x)
        V = steps.voltages(x, k_V, layout)
    ref_active, ref_valid = eref.scan_inputs(x)
    assert np.array_equal(active, ref_active) and np.array_equal(valid, ref_valid)
    assert valid.tolist() == [True] * (K - 1) + [False]
    assert np.array_equal(V, eref.voltages(x, k_V, layout))
    p = x.shape[1]
    for k in range(K):
        assert np.array_equal(active[k, :-1], np.any(x[k] != 0, axis=0)) and active[k, -1]
        full = np.concatenate([x[k], np.ones((p, 1), dtype)], axis=1) * dtype(k_V[k])
        assert np.array_equal(layout.block(V, k, p), full[:, layout.member_rows(k)])


@members
@dtypes
@threads
def test_max_weights_and_double_G_rows(K, dtype, threads, monkeypatch):
    x, layout, D, k_V, G_off, G_on = layer_case(K, dtype, 50 + K)
    with numba_threads(threads, monkeypatch):
        top = steps.max_weights(D)
        G = steps.double_G_rows(D, layout, top, G_off, G_on)
    assert np.array_equal(top, eref.max_weights(D)) and np.array_equal(top, D.reshape(K, -1).max(axis=1))
    assert np.array_equal(G, eref.double_G_rows(D, layout, top, G_off, G_on))
    for k in range(K):
        want = np_mapping._double_G(D[k][layout.member_rows(k)], top[k], G_off[k], G_on[k])
        assert np.allclose(layout.row_block(G, k), want, rtol=4 * np.finfo(dtype).eps, atol=0)
    bad = D.copy()
    bad[-1, 0, 0] = np.nan
    assert np.isnan(steps.max_weights(bad)[-1]) and np.isfinite(steps.max_weights(bad)[:-1]).all()


@members
@dtypes
@threads
def test_double_w_to_G_vjp_rows(K, dtype, threads, monkeypatch):
    x, layout, D, k_V, G_off, G_on = layer_case(K, dtype, 60 + K)
    rng = np.random.default_rng(K)
    top = steps.max_weights(D)
    grad_G = rng.normal(size=(layout.total, D.shape[2])).astype(dtype)
    grad_max = rng.normal(size=K)
    with numba_threads(threads, monkeypatch):
        grad_D = steps.double_w_to_G_vjp_rows(D, grad_G, layout, grad_max, G_off, G_on, top)
    assert grad_D.dtype == dtype
    assert np.array_equal(grad_D, eref.double_w_to_G_vjp_rows(D, grad_G, layout, grad_max, G_off, G_on, top))
    for k in range(K):
        full = np.zeros(D.shape[1:], dtype)
        full[layout.member_rows(k)] = layout.row_block(grad_G, k)
        want = np_mapping._double_w_to_G_vjp(D[k], full, grad_max[k], G_off[k], G_on[k], top[k])
        assert rel_err(grad_D[k], want) < TOL[dtype]


@members
@dtypes
@threads
def test_outputs_and_vjp(K, dtype, threads, monkeypatch):
    rng = np.random.default_rng(70 + K)
    p, n_out = int(rng.integers(2, 30)), int(rng.integers(1, 12))
    I = (rng.uniform(1e-6, 1e-4, size=(K, p, 2 * n_out))).astype(dtype)
    grad_y = rng.normal(size=(K, p, n_out)).astype(dtype)
    k_V, top = rng.uniform(0.2, 0.6, K), rng.uniform(0.8, 2.0, K)
    G_off, G_on = rng.uniform(0.9, 1.1, K) * G_OFF, rng.uniform(0.9, 1.1, K) * G_ON
    with numba_threads(threads, monkeypatch):
        y = steps.outputs(I, k_V, top, G_off, G_on)
        back = steps.outputs_vjp(I, grad_y, k_V, top, G_off, G_on)
    assert np.array_equal(y, eref.outputs(I, k_V, top, G_off, G_on))
    ref_grad_I, ref_grad_max = eref.outputs_vjp(I, grad_y, k_V, top, G_off, G_on)
    assert np.array_equal(back.grad_I, ref_grad_I) and np.array_equal(back.grad_max_weight, ref_grad_max)
    for k in range(K):
        assert rel_err(y[k], np_mapping.I_to_y(I[k].astype(np.float64), k_V[k], top[k], G_off[k], G_on[k])) < TOL[dtype]
        want_I, want_max = np_mapping.I_to_y_vjp(I[k].astype(np.float64), grad_y[k].astype(np.float64),
                                                 k_V[k], top[k], G_off[k], G_on[k])
        assert rel_err(back.grad_I[k], want_I) < TOL[dtype]
        assert abs(back.grad_max_weight[k] - want_max) <= 10 * TOL[dtype] * abs(want_max)


# --- loss and optimiser ----------------------------------------------------------------------------

@members
@dtypes
@threads
def test_softmax_cross_entropy(K, dtype, threads, monkeypatch):
    rng = np.random.default_rng(80 + K)
    p, classes = int(rng.integers(1, 40)), int(rng.integers(2, 12))
    logits = (rng.normal(size=(K, p, classes)) * rng.uniform(0.5, 20, size=(K, 1, 1))).astype(dtype)
    labels = rng.integers(0, classes, size=(K, p))
    with numba_threads(threads, monkeypatch):
        got = steps.softmax_cross_entropy(logits, labels)
    loss, grad, hits = eref.softmax_cross_entropy(logits, labels)
    assert np.array_equal(got.loss, loss) and np.array_equal(got.grad, grad) and np.array_equal(got.hits, hits)
    assert got.grad.dtype == dtype
    for k in range(K):
        want_loss, want_grad = cross_entropy_from_logits_numpy(logits[k].astype(np.float64), labels[k])
        assert abs(got.loss[k] - want_loss) <= 1e-12 * max(1.0, abs(want_loss))
        assert rel_err(got.grad[k], want_grad) < TOL[dtype]
        assert got.hits[k] == np.count_nonzero(np.argmax(logits[k], axis=1) == labels[k])
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, "):
        steps.softmax_cross_entropy(logits, labels + classes)


@members
@dtypes
@threads
@pytest.mark.parametrize("non_negative", [False, True])
def test_sgd_step(K, dtype, threads, non_negative, monkeypatch):
    rng = np.random.default_rng(90 + K)
    shape = (K, int(rng.integers(1, 40)), 2 * int(rng.integers(1, 30)))
    theta = rng.normal(0.3, 0.5, size=shape).astype(dtype)
    grad = rng.normal(size=shape).astype(dtype)
    lr = rng.uniform(0.001, 0.5, K)
    monkeypatch.setattr(steps, "CHUNK", 64)           # several chunks per member
    with numba_threads(threads, monkeypatch):
        got = steps.sgd_step(theta.copy(), grad, lr, non_negative)
    single = eref.sgd_step(theta.copy(), grad, lr, non_negative)
    assert np.array_equal(got, single)
    for k in range(K):                                # the NumPy path of memnp.nn.SGD
        want = theta[k] - dtype(lr[k]) * grad[k]
        if non_negative:
            optim.non_negative_(want)
        assert np.array_equal(got[k], want)


@members
@dtypes
@threads
def test_l1_gradient(K, dtype, threads, monkeypatch):
    rng = np.random.default_rng(100 + K)
    shape = (K, int(rng.integers(1, 40)), int(rng.integers(1, 30)))
    theta = rng.normal(size=shape).astype(dtype)
    theta[rng.random(shape) < 0.2] = 0.0
    theta.reshape(-1)[0] = np.nan
    grad = rng.normal(size=shape).astype(dtype)
    gamma = rng.uniform(1e-5, 1e-3, K)
    gamma[K // 2] = 0.0
    monkeypatch.setattr(steps, "CHUNK", 50)
    with numba_threads(threads, monkeypatch):
        got = steps.l1_gradient(theta, grad.copy(), gamma)
    assert np.array_equal(got, eref.l1_gradient(theta, grad.copy(), gamma), equal_nan=True)
    for k in range(K):                                # what Sequential.compute_gradients does
        want = grad[k].copy()
        if gamma[k]:
            optim.l1_gradient_(theta[k], want, float(gamma[k]))
        assert np.array_equal(got[k], want, equal_nan=True)


# --- CUDA (the simulator by default; see tests/test_kernels_cuda.py) -------------------------------

def _cuda_module():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
    from numba import cuda
    from memnp.kernels import cuda as kc
    if not kc.SIMULATOR and not cuda.is_available():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU")
    from memnp.kernels import ensemble_cuda
    return ensemble_cuda


def small_case(K, dtype, seed):
    """A crossbar_case small enough for the simulator: p = 3, m = 7, n = 5."""
    rng = np.random.default_rng(seed)
    active = rng.random((K, 7)) < 0.6
    active[:, -1] = True
    layout = MemberRows.from_active(active)
    V = rng.uniform(-0.5, 0.5, size=3 * layout.total)
    V[rng.random(V.size) < 0.25] = 0.0
    G = rng.uniform(G_OFF, G_ON, size=(layout.total, 5))
    e = rng.multivariate_normal([0.0, 0.0], SIGMA, size=G.shape)
    c = np.exp(-SLOPES[0] * np.log(G) + INTERCEPTS[0] + e[..., 0])
    d_eps = np.exp(-SLOPES[1] * np.log(G) + INTERCEPTS[1] + e[..., 1])
    grad_I = rng.normal(size=(K, 3, 5))
    return layout, *(a.astype(dtype) for a in (V, c, d_eps, grad_I))


@pytest.mark.parametrize("K", [1, 3])
@dtypes
def test_cuda_pf_currents_and_vjp_match_the_cpu(K, dtype):
    ensemble_cuda = _cuda_module()
    layout, V, c, d_eps, grad_I = small_case(K, dtype, 110 + K)
    I = ensemble_cuda.pf_currents(V, c, d_eps, layout)
    want = ensemble.pf_currents(V, c, d_eps, layout)
    assert I.dtype == dtype and rel_err(I, want) < TOL[dtype]
    got = ensemble_cuda.pf_currents_vjp(V, c, d_eps, layout, grad_I)
    cpu = ensemble.pf_currents_vjp(V, c, d_eps, layout, grad_I)
    for a, b in zip((got.grad_V, got.grad_c, got.grad_d_eps), (cpu.grad_V, cpu.grad_c, cpu.grad_d_eps)):
        assert a.dtype == dtype and rel_err(a, b) < 10 * TOL[dtype]
    assert np.all(got.grad_V[V == 0] == 0)
    assert ensemble_cuda.pf_currents_vjp(V, c, d_eps, layout, grad_I, need_V=False).grad_V is None
