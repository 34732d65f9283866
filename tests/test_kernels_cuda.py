"""CUDA kernels (memnp.kernels.cuda) against the NumPy reference.

By default they run under Numba's CUDA simulator (conftest sets NUMBA_ENABLE_CUDASIM=1), on small
shapes only, because the simulator runs every GPU thread as a Python thread. On a GPU machine run
``NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_kernels_cuda.py``: the same tests then run on
the device, plus the larger shapes marked ``gpu_only``.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
numba_cuda_api = pytest.importorskip("numba.cuda")

from memnp.kernels import reference as ref  # noqa: E402

try:
    from memnp.kernels import cuda as kc
    from memnp.kernels import cuda_common as kcc
except ImportError as exc:  # pragma: no cover - numba-cuda present but broken
    pytest.skip(f"memnp.kernels.cuda cannot be imported: {exc}", allow_module_level=True)

if not kc.SIMULATOR and not numba_cuda_api.is_available():
    pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU", allow_module_level=True)

gpu_only = pytest.mark.skipif(kc.SIMULATOR, reason="larger shapes: too slow for the CUDA simulator")

#: SiOx regimes of docs/model.md §6: G_off, G_on (S), slopes (s_c, s_d), intercepts (b_c, b_d), Sigma.
REGIMES = {
    "low": (6.9013e-4, 3.45065e-3, (-1.11965, -1.33689), (0.62835, -25.9156),
            [[0.00122933, 0.00965122], [0.00965122, 0.2470822]]),
    "high": (5.24841e-7, 2.6242e-6, (-1.03023, -0.0901078), (-0.250595, -37.1186),
             [[0.03208284, 0.09272695], [0.09272695, 0.32510818]]),
}
TOL = {np.float64: 1e-10, np.float32: 1e-5}
SMALL_SHAPES = [(3, 5, 4), (4, 9, 6)]


def make_inputs(shape, regime, seed=0):
    """float64 V (p, m), c, d_eps, G (m, n) and grad_I (p, n) for a PF crossbar of one regime.

    V holds negatives, a row of exact zeros and scattered exact zeros; the last row is the bias
    row at k_V = 0.5 V.
    """
    p, m, n = shape
    rng = np.random.default_rng(seed)
    G_off, G_on, (s_c, s_d), (b_c, b_d), sigma = REGIMES[regime]
    G = rng.uniform(G_off, G_on, size=(m, n))
    ln_R = -np.log(G)
    resid = rng.multivariate_normal([0.0, 0.0], sigma, size=(m, n))
    c = np.exp(s_c * ln_R + b_c + resid[..., 0])
    d_eps = np.exp(s_d * ln_R + b_d + resid[..., 1])
    V = rng.uniform(-0.5, 0.5, size=(p, m))
    V[rng.random((p, m)) < 0.2] = 0.0
    V[1] = 0.0
    V[:, -1] = 0.5
    grad_I = rng.normal(size=(p, n))
    return V, c, d_eps, G, grad_I


def rel_err(actual, expected):
    """Normwise relative error of actual against a float64 expectation."""
    expected = np.asarray(expected, dtype=np.float64)
    diff = np.asarray(actual, dtype=np.float64) - expected
    return np.linalg.norm(diff) / np.linalg.norm(expected)


def cast(dtype, *arrays):
    return [np.asarray(a, dtype=dtype) for a in arrays]


cases = pytest.mark.parametrize("dtype", [np.float64, np.float32])
regimes = pytest.mark.parametrize("regime", ["low", "high"])
shapes = pytest.mark.parametrize("shape", SMALL_SHAPES)


@cases
@regimes
@shapes
def test_pf_currents(dtype, regime, shape):
    V, c, d_eps, _, _ = make_inputs(shape, regime)
    I = kc.pf_currents(*cast(dtype, V, c, d_eps))
    assert I.dtype == dtype and I.shape == (shape[0], shape[2])
    assert rel_err(I, ref.pf_currents(V, c, d_eps)) <= TOL[dtype]


@cases
@regimes
@shapes
def test_pf_currents_vjp(dtype, regime, shape):
    V, c, d_eps, _, grad_I = make_inputs(shape, regime)
    got = kc.pf_currents_vjp(*cast(dtype, V, c, d_eps, grad_I))
    want = ref.pf_currents_vjp(V, c, d_eps, grad_I)
    for name, g, w in zip(("grad_V", "grad_c", "grad_d_eps"), got, want):
        assert g.dtype == dtype and g.shape == w.shape, name
        assert rel_err(g, w) <= TOL[dtype], name
    # The reference's rule at V == 0: the gradient with respect to V is exactly 0 there.
    assert np.all(got[0][V == 0] == 0) and np.all(got[0][V != 0] != 0)


def test_cd_chunks_fill_and_cover():
    """The chunks cover the batch exactly, none is empty, and a narrow layer gets several."""
    for p, m, n in [(1, 1, 1), (7, 5, 4), (11, 5, 4), (64, 26, 20), (8192, 785, 50),
                    (8192, 51, 10), (70_000, 3, 2)]:
        chunk, chunks = kc.cd_chunks(p, m, n)
        assert chunk >= 1 and (chunks - 1) * chunk < p <= chunks * chunk, (p, m, n)
        assert chunks <= 65535 and (chunks == 1 or chunk >= kc.CD_MIN_CHUNK)
    assert kc.cd_chunks(0, 5, 4) == (0, 0)
    if kc.SIMULATOR and kc.TXY == 8:  # blocks of 8, 64 target threads: the shapes tested below
        assert kc.cd_chunks(11, 5, 4) == (4, 3)      # 4 + 4 + 3 examples
        assert kc.cd_chunks(7, 3, 2) == (2, 4)       # 2 + 2 + 2 + 1
    elif not kc.SIMULATOR and kc.TXY == 256:  # the paper's layer: 27 chunks of 304 examples
        assert kc.cd_chunks(8192, 785, 50) == (304, 27)
        assert kc.cd_chunks(8192, 51, 10) == (32, 256)


@cases
@pytest.mark.parametrize("shape", [(11, 5, 4), (7, 3, 2), (13, 5, 3)])
def test_pf_grad_cd_chunked(dtype, shape):
    """dL/dc, dL/d(d_eps) over several chunks (the last one short) match the reference: float64
    to 1e-12 per element; the same call twice gives the same bits."""
    V, c, d_eps, _, grad_I = make_inputs(shape, "high", seed=4)
    assert kc.cd_chunks(*shape)[1] > 1
    args = cast(dtype, V, c, d_eps, grad_I)
    _, gc, gd = kc.pf_currents_vjp(*args, need_V=False)
    _, want_c, want_d = ref.pf_currents_vjp(V, c, d_eps, grad_I, need_V=False)
    if dtype == np.float64:
        np.testing.assert_allclose(gc, want_c, rtol=1e-12, atol=1e-12 * np.abs(want_c).max())
        np.testing.assert_allclose(gd, want_d, rtol=1e-12, atol=1e-12 * np.abs(want_d).max())
    else:
        assert rel_err(gc, want_c) <= 1e-5 and rel_err(gd, want_d) <= 1e-5
    _, gc2, gd2 = kc.pf_currents_vjp(*args, need_V=False)
    assert np.array_equal(gc, gc2) and np.array_equal(gd, gd2)


def test_pf_grad_cd_chunk_sums_by_hand():
    """Stage 1's partial sums are the per-chunk sums of the reference's terms; stage 2 adds them."""
    shape = (11, 5, 4)
    V, c, d_eps, _, grad_I = make_inputs(shape, "low", seed=5)
    chunk, chunks = kc.cd_chunks(*shape)
    cuda = numba_cuda_api
    dV, dc, dd, dg = (cuda.to_device(a) for a in (V, c, d_eps, grad_I))
    K = kc._compute_K(np.dtype(np.float64), dd, 5, 4)
    part_c = cuda.device_array((chunks, 5, 4), dtype=np.float64)
    part_d = cuda.device_array((chunks, 5, 4), dtype=np.float64)
    grid = ((20 + kc.TXY - 1) // kc.TXY, chunks)
    kc._pf_grad_cd_part_kernel[np.dtype(np.float64)][grid, kc.TXY](
        dV, dc, dd, K, np.float64(kc.A2_EPS), dg, chunk, part_c, part_d)
    part_c = part_c.copy_to_host()
    for z in range(chunks):
        rows = slice(z * chunk, (z + 1) * chunk)
        _, want_c, _ = ref.pf_currents_vjp(V[rows], c, d_eps, grad_I[rows], need_V=False)
        np.testing.assert_allclose(part_c[z], want_c, rtol=1e-12, atol=1e-12 * np.abs(want_c).max())


@cases
@regimes
@shapes
def test_pf_power(dtype, regime, shape):
    V, c, d_eps, _, _ = make_inputs(shape, regime)
    P = kc.pf_power(*cast(dtype, V, c, d_eps))
    assert isinstance(P, float)
    assert abs(P - ref.pf_power(V, c, d_eps)) <= TOL[dtype] * ref.pf_power(V, c, d_eps)


@cases
@shapes
def test_ideal_currents_and_power(dtype, shape):
    V, _, _, G, _ = make_inputs(shape, "high")
    Vd, Gd = cast(dtype, V, G)
    I = kc.ideal_currents(Vd, Gd)
    assert I.dtype == dtype and I.shape == (shape[0], shape[2])
    assert rel_err(I, V @ G) <= TOL[dtype]
    P = kc.ideal_power(Vd, Gd)
    assert abs(P - ref.ideal_power(V, G)) <= TOL[dtype] * ref.ideal_power(V, G)


def test_grid_strides_over_the_examples(monkeypatch):
    """With at most 2 blocks along the examples, every kernel's grid-stride loop covers the rest."""
    monkeypatch.setattr(kc, "_MAX_GRID_Y", 2)    # the dL/dV grid and cd_chunks
    monkeypatch.setattr(kcc, "_MAX_GRID_Y", 2)   # _grid_cols: forward and power
    V, c, d_eps, G, grad_I = make_inputs((11, 5, 4), "low", seed=7)
    assert rel_err(kc.pf_currents(V, c, d_eps), ref.pf_currents(V, c, d_eps)) <= 1e-12
    for g, w in zip(kc.pf_currents_vjp(V, c, d_eps, grad_I), ref.pf_currents_vjp(V, c, d_eps, grad_I)):
        assert rel_err(g, w) <= 1e-12
    assert kc.pf_power(V, c, d_eps) == pytest.approx(ref.pf_power(V, c, d_eps), rel=1e-12)
    assert rel_err(kc.ideal_currents(V, G), V @ G) <= 1e-12


def test_power_by_hand():
    """One device, two examples: the power is the mean over examples of |V| |I|."""
    V = np.array([[0.5], [-0.25]])
    c, d_eps = np.array([[2e-6]]), np.array([[3e-17]])
    I = ref.pf_device_currents(V, c, d_eps)[:, 0, 0]
    want = (0.5 * abs(I[0]) + 0.25 * abs(I[1])) / 2
    assert kc.pf_power(V, c, d_eps) == pytest.approx(want, rel=1e-12)
    want_ideal = (0.25 + 0.0625) * 1e-3 / 2
    assert kc.ideal_power(V, np.array([[1e-3]])) == pytest.approx(want_ideal, rel=1e-12)


def test_device_arrays_in_and_out():
    """Device-array inputs give device-array outputs (no host round trip); powers are floats."""
    cuda = numba_cuda_api
    V, c, d_eps, G, grad_I = make_inputs((3, 5, 4), "high", seed=1)
    dV, dc, dd, dG, dg = (cuda.to_device(a) for a in (V, c, d_eps, G, grad_I))
    I = kc.pf_currents(dV, dc, dd)
    assert cuda.devicearray.is_cuda_ndarray(I)
    assert rel_err(I.copy_to_host(), ref.pf_currents(V, c, d_eps)) <= 1e-10
    grads = kc.pf_currents_vjp(dV, c, dd, dg)  # host c mixed in
    for g, w in zip(grads, ref.pf_currents_vjp(V, c, d_eps, grad_I)):
        assert cuda.devicearray.is_cuda_ndarray(g)
        assert rel_err(g.copy_to_host(), w) <= 1e-10
    assert kc.pf_power(dV, dc, dd) == pytest.approx(ref.pf_power(V, c, d_eps), rel=1e-10)
    assert rel_err(kc.ideal_currents(dV, dG).copy_to_host(), V @ G) <= 1e-10
    with pytest.raises(ValueError, match="dtype"):
        kc.pf_currents(dV, cuda.to_device(c.astype(np.float32)), dd)


def test_empty_shapes():
    V, c, d_eps, G, grad_I = make_inputs((3, 5, 4), "low")
    assert kc.pf_currents(V[:0], c, d_eps).shape == (0, 4)
    assert np.all(kc.pf_currents(V[:, :0], c[:0], d_eps[:0]) == 0)
    gV, gc, gd = kc.pf_currents_vjp(V, c[:, :0], d_eps[:, :0], grad_I[:, :0])
    assert gV.shape == (3, 5) and np.all(gV == 0) and gc.shape == gd.shape == (5, 0)
    gV, gc, gd = kc.pf_currents_vjp(V[:0], c, d_eps, grad_I[:0])
    assert gV.shape == (0, 5) and np.all(gc == 0) and np.all(gd == 0)
    assert kc.pf_power(V, c[:, :0], d_eps[:, :0]) == 0.0
    assert kc.ideal_currents(V[:0], G).shape == (0, 4)


def test_bad_input():
    V, c, d_eps, G, grad_I = make_inputs((3, 5, 4), "low")
    with pytest.raises(ValueError, match="V must be a float32 or float64"):
        kc.pf_currents(V.astype(np.int64), c, d_eps)
    with pytest.raises(ValueError, match="V must be a 2-D"):
        kc.pf_currents(V[0], c, d_eps)
    with pytest.raises(ValueError, match="c must have shape"):
        kc.pf_currents(V, c[:4], d_eps)
    with pytest.raises(ValueError, match="d_eps must have shape"):
        kc.pf_power(V, c, d_eps[:, :3])
    with pytest.raises(ValueError, match="grad_I must have shape"):
        kc.pf_currents_vjp(V, c, d_eps, grad_I[:2])
    with pytest.raises(ValueError, match="G must have shape"):
        kc.ideal_currents(V, G.T)


def test_block_shape_parsing():
    assert kcc._block_shape("32x8") == (32, 8)
    for bad in ("32", "3x8", "64x32", "axb", "0x4"):
        with pytest.raises(ValueError, match="MEMNP_CUDA_BLOCK"):
            kcc._block_shape(bad)


def test_no_device_raises_runtime_error(monkeypatch):
    monkeypatch.setattr(kcc, "_DEVICE_OK", False)
    V, c, d_eps, _, _ = make_inputs((3, 5, 4), "low")
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        kc.pf_currents(V, c, d_eps)


def test_import_error_without_numba_cuda():
    """Without numba-cuda the module raises ImportError and the backend switch explains it."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numba_cuda' or name.startswith('numba_cuda.'):\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from memnp.kernels import get_backend\n"
        "try:\n"
        "    get_backend('cuda')\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR:', exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root, timeout=120)
    assert "IMPORT-ERROR:" in out.stdout and "numba-cuda" in out.stdout, out.stdout + out.stderr


# --- On a real GPU only: shapes of the paper's networks, long row sums, a grid-strided batch. ----

@gpu_only
@cases
@pytest.mark.parametrize("shape", [(64, 785, 50), (64, 1025, 50), (100, 26, 20)])
def test_paper_shapes_on_gpu(dtype, shape):
    V, c, d_eps, _, grad_I = make_inputs(shape, "high", seed=2)
    V = np.abs(V)  # the paper's inputs: k_V [x, 1] with x in [0, 1]
    args = cast(dtype, V, c, d_eps)
    assert rel_err(kc.pf_currents(*args), ref.pf_currents(V, c, d_eps)) <= TOL[dtype]
    got = kc.pf_currents_vjp(*args, grad_I.astype(dtype))
    for g, w in zip(got, ref.pf_currents_vjp(V, c, d_eps, grad_I)):
        assert rel_err(g, w) <= TOL[dtype]
    assert kc.pf_power(*args) == pytest.approx(ref.pf_power(V, c, d_eps), rel=TOL[dtype])


@gpu_only
def test_batch_larger_than_grid_on_gpu():
    V, c, d_eps, G, grad_I = make_inputs((70_000, 3, 2), "low", seed=3)
    assert rel_err(kc.pf_currents(V, c, d_eps), ref.pf_currents(V, c, d_eps)) <= 1e-10
    want = ref.pf_currents_vjp(V, c, d_eps, grad_I)
    for g, w in zip(kc.pf_currents_vjp(V, c, d_eps, grad_I), want):
        assert rel_err(g, w) <= 1e-10
    assert kc.pf_power(V, c, d_eps) == pytest.approx(ref.pf_power(V, c, d_eps), rel=1e-10)
    assert rel_err(kc.ideal_currents(V, G), V @ G) <= 1e-10


@gpu_only
@cases
@pytest.mark.parametrize("shape", [(4001, 26, 10), (3001, 101, 50)])
def test_narrow_layers_many_chunks_on_gpu(dtype, shape):
    """dL/dc, dL/d(d_eps) of narrow layers over many chunks (p not a multiple of the chunk)."""
    chunk, chunks = kc.cd_chunks(*shape)
    assert chunks > 8 and shape[0] % chunk != 0
    V, c, d_eps, _, grad_I = make_inputs(shape, "high", seed=6)
    V = np.abs(V)
    got = kc.pf_currents_vjp(*cast(dtype, V, c, d_eps, grad_I))
    for name, g, w in zip(("grad_V", "grad_c", "grad_d_eps"), got,
                          ref.pf_currents_vjp(V, c, d_eps, grad_I)):
        assert rel_err(g, w) <= (1e-12 if dtype == np.float64 else TOL[dtype]), name
