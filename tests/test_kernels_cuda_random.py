"""PCG64 words and Box-Muller normals on the GPU (memnp.kernels.cuda_random) against NumPy's
PCG64 and memnp.kernels.normal.

Runs under Numba's CUDA simulator by default (conftest), where a launch has 3 blocks of 4
threads: the small counts below cover one partial pass, exactly one pass and several passes of
the grid-stride loop. On a GPU machine, ``NUMBA_ENABLE_CUDASIM=0`` runs them on the device, plus
the larger counts marked ``gpu_only``.
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
numba_cuda_api = pytest.importorskip("numba.cuda")

from memnp.kernels import normal, pcg64  # noqa: E402

try:
    from memnp.kernels import cuda_random as cr
except ImportError as exc:  # pragma: no cover - numba-cuda present but broken
    pytest.skip(f"memnp.kernels.cuda_random cannot be imported: {exc}", allow_module_level=True)

if not cr.SIMULATOR and not numba_cuda_api.is_available():
    pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU", allow_module_level=True)

gpu_only = pytest.mark.skipif(cr.SIMULATOR, reason="large counts: too slow for the CUDA simulator")
cuda = numba_cuda_api
#: One pass of the simulator's grid: 3 blocks x 4 threads.
GRID = cr.MAX_BLOCKS * cr.THREADS
COUNTS = [1, 5, GRID, GRID + 1, 3 * GRID + 7]


def pair(seed):
    """Two Generators in the same state: one for the GPU, one for the CPU reference."""
    return np.random.default_rng(seed), np.random.default_rng(seed)


def assert_close_normals(got, want):
    """float64: within 2 ulp of |z| <= 6.66 (the CPU and GPU compilers may fuse different
    multiply-adds), and mostly the same bits; float32: the same rounding or one float32 ulp."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.size == 0:
        return
    if got.dtype == np.float64:
        assert np.all(np.abs(got - want) <= 2 * np.spacing(np.maximum(np.abs(want), 1.0)))
        assert np.mean(got == want) >= 0.9
    else:
        assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)))
        assert np.mean(got == want) >= 0.98


def test_jump_is_numpy_advance():
    """jump(d) moves a state as PCG64.advance(d) does, and as pcg64._jump for small d."""
    for d in (0, 1, 2, 7, 8):
        assert cr.jump(d, 1) == pcg64._jump(d)
    bits = np.random.PCG64(3)
    s, inc = bits.state["state"]["state"], bits.state["state"]["inc"]
    for d in (1, 12, 1000, 2 ** 40 + 12345, 2 ** 127 + 5):
        mult, plus = cr.jump(d, inc)
        moved = np.random.PCG64(3)
        moved.advance(d)
        assert (mult * s + plus) % 2 ** 128 == moved.state["state"]["state"], d


def _jump_kernel(deltas, inc_h, inc_l, out):
    i = cuda.grid(1)
    if i < deltas.shape[0]:
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = cr._jump_params(deltas[i], inc_h, inc_l)


def test_device_jump_matches_host():
    """The device's square-and-multiply jump gives the host's (M_d, C_d) halves."""
    inc = np.random.PCG64(11).state["state"]["inc"]
    deltas = np.array([0, 1, 2, 3, 13, 2 ** 20 + 1, 2 ** 63 + 2 ** 31 + 9, 2 ** 64 - 1],
                      dtype=np.uint64)
    out = cuda.device_array((deltas.size, 4), dtype=np.uint64)
    cuda.jit(_jump_kernel)[1, deltas.size](cuda.to_device(deltas), *cr._halves(inc), out)
    got = out.copy_to_host()
    for row, d in zip(got, deltas):
        mult, plus = cr.jump(int(d), inc)
        assert [int(x) for x in row] == [mult >> 64, mult & (2 ** 64 - 1),
                                         plus >> 64, plus & (2 ** 64 - 1)], int(d)


def _mul_kernel(a, b, out):
    i = cuda.grid(1)
    if i < a.shape[0]:
        out[i, 0], out[i, 1] = cr._mul64(a[i], b[i])
        out[i, 2] = cr._mul64_low(a[i], b[i])
        out[i, 3], out[i, 4] = cr._add64(a[i], b[i])


def test_64_bit_arithmetic_on_halves():
    """Products and sums of extreme operands, against Python's integers."""
    top = 2 ** 64 - 1
    values = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 63, top, 0x2360ED051FC65DA4, 0x4385DF649FCCF645]
    a = np.array([x for x in values for _ in values], dtype=np.uint64)
    b = np.array([y for _ in values for y in values], dtype=np.uint64)
    out = cuda.device_array((a.size, 5), dtype=np.uint64)
    cuda.jit(_mul_kernel)[(a.size + 31) // 32, 32](cuda.to_device(a), cuda.to_device(b), out)
    for (hi, lo, low, s, carry), x, y in zip(out.copy_to_host(), a, b):
        x, y = int(x), int(y)
        assert (int(hi), int(lo)) == ((x * y) >> 64, (x * y) & top)
        assert int(low) == (x * y) & top
        assert (int(s), int(carry)) == ((x + y) & top, (x + y) >> 64)


@pytest.mark.parametrize("count", COUNTS + [0])
def test_words_are_numpys(count):
    rng, cpu = pair(count + 100)
    words = cr.random_raw(rng, count)
    assert cuda.devicearray.is_cuda_ndarray(words)
    assert words.shape == (count,) and words.dtype == np.uint64
    assert np.array_equal(words.copy_to_host(), cpu.bit_generator.random_raw(count))
    assert rng.bit_generator.state == cpu.bit_generator.state
    # and the next draws, on either side, go on from there
    assert np.array_equal(rng.bit_generator.random_raw(3), cpu.bit_generator.random_raw(3))


def test_words_keep_a_buffered_half_word():
    """A Generator holding half a word (after a float32 draw) keeps it, as random_raw does."""
    rng, cpu = pair(5)
    assert rng.random(dtype=np.float32) == cpu.random(dtype=np.float32)
    assert rng.bit_generator.state["has_uint32"] == 1
    cr.random_raw(rng, 9)
    cpu.bit_generator.random_raw(9)
    assert rng.bit_generator.state == cpu.bit_generator.state
    assert rng.random(dtype=np.float32) == cpu.random(dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [1, 2, 2 * GRID - 1, 2 * GRID, (5, 2 * GRID + 3), (0, 4)])
def test_normals_are_memnps(dtype, shape):
    rng, cpu = pair(17)
    z = cr.standard_normal(rng, shape, dtype)
    want = normal.standard_normal(cpu, shape, dtype)
    assert cuda.devicearray.is_cuda_ndarray(z)
    assert_close_normals(z.copy_to_host(), want)
    assert rng.bit_generator.state == cpu.bit_generator.state


def _box_muller_kernel(words, out):
    i = cuda.grid(1)
    if i < words.shape[0]:
        out[2 * i], out[2 * i + 1] = cr._box_muller(words[i])


def test_box_muller_edge_words():
    """The transform at its edges: u1 = 2**-32 and 1, every quadrant boundary of the angle."""
    lows = [0, 1, 2 ** 29 - 1, 2 ** 29, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 3 * 2 ** 30 + 2 ** 29,
            2 ** 32 - 1]
    highs = [0, 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]
    words = np.array([(h << 32) | lo for h in highs for lo in lows], dtype=np.uint64)
    out = cuda.device_array(2 * words.size, dtype=np.float64)
    cuda.jit(_box_muller_kernel)[(words.size + 31) // 32, 32](cuda.to_device(words), out)
    got = out.copy_to_host()
    want = normal.standard_normal_into(words, np.empty(2 * words.size))
    assert np.all(np.abs(got - want) <= 2 * np.spacing(np.maximum(np.abs(want), 1.0)))
    assert np.max(np.abs(got)) == pytest.approx(normal.Z_MAX, rel=1e-15)
    top = words >> np.uint64(32) == np.uint64(2 ** 32 - 1)  # u1 = 1: r = 0 exactly
    assert np.all(got.reshape(-1, 2)[top] == 0)


@pytest.mark.parametrize("call, match", [
    (lambda: cr.random_raw(np.random.PCG64(1), 4), "rng must be a numpy.random.Generator"),
    (lambda: cr.random_raw(np.random.Generator(np.random.PCG64DXSM(1)), 4), "PCG64DXSM"),
    (lambda: cr.random_raw(np.random.default_rng(1), -1), "count must be a non-negative int"),
    (lambda: cr.random_raw(np.random.default_rng(1), 2.0), "count must be a non-negative int"),
    (lambda: cr.standard_normal(np.random.default_rng(1), 4, np.int32), "dtype must be float32"),
    (lambda: cr.standard_normal(np.random.default_rng(1), (2, -1)), "shape must be"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_input_leaves_the_generator_alone():
    rng, cpu = pair(2)
    with pytest.raises(ValueError):
        cr.standard_normal(rng, 6, np.int64)
    assert rng.bit_generator.state == cpu.bit_generator.state


@gpu_only
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_counts_on_gpu(dtype):
    """Millions of words: many passes of a full grid; several Generator states."""
    for seed, n in ((0, 3_000_001), (1, 2 ** 22)):
        rng, cpu = pair(seed)
        assert np.array_equal(cr.random_raw(rng, n).copy_to_host(), cpu.bit_generator.random_raw(n))
        z = cr.standard_normal(rng, n, dtype).copy_to_host()
        assert_close_normals(z, normal.standard_normal(cpu, n, dtype))
        assert rng.bit_generator.state == cpu.bit_generator.state
