"""Seeded Gaussian draws (memnp.kernels.normal) and the vectorizable log (memnp.kernels.fastlog),
checked against the NumPy reference (memnp.kernels.reference.box_muller), np.log and N(0, 1)."""
import math

import numpy as np
import pytest
from scipy import stats

from memnp.kernels import fastlog, normal
from memnp.kernels.reference import box_muller

HIGH = np.array([0, 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1], dtype=np.uint64)
#: Quadrant boundaries of the angle (low 32 bits) and the edges of the reduced interval.
LOW = np.array([0, 1, 2 ** 29 - 1, 2 ** 29, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 2 ** 29, 2 ** 31,
                2 ** 31 + 2 ** 29, 3 * 2 ** 30, 2 ** 32 - 2 ** 29, 2 ** 32 - 1], dtype=np.uint64)
EDGE_WORDS = ((HIGH[:, None] << np.uint64(32)) | LOW[None, :]).ravel()


def transform(words, dtype=np.float64, n=None):
    """The kernel's output for words (n = 2 * words.size unless given)."""
    n = 2 * words.size if n is None else n
    return normal.standard_normal_into(words, np.empty(n, dtype=dtype))


# --- kernel against the reference ------------------------------------------------------------

@pytest.mark.parametrize("words", [np.random.default_rng(3).bit_generator.random_raw(100_000),
                                   EDGE_WORDS], ids=["random", "edges"])
def test_kernel_matches_reference(words):
    z, expected = transform(words), box_muller(words)
    assert np.max(np.abs(z - expected)) <= 1e-13
    # The interleaving: even entries carry cos, odd ones sin (a swap would break this).
    assert np.max(np.abs(z[0::2] ** 2 + z[1::2] ** 2 - expected[0::2] ** 2
                         - expected[1::2] ** 2)) <= 1e-12


def test_edge_values():
    # High bits 2**32 - 1: u1 = 1, r = 0. High bits 0: u1 = 2**-32, r = sqrt(64 ln 2).
    z = transform(EDGE_WORDS).reshape(HIGH.size, LOW.size, 2)
    assert np.all(z[-1] == 0.0)
    r = math.sqrt(64.0 * math.log(2.0))
    assert normal.Z_MAX == pytest.approx(r, rel=1e-15)
    top = z[0]
    np.testing.assert_allclose(top[0], [r, 0.0], atol=1e-14)             # angle 0
    np.testing.assert_allclose(top[5], [0.0, r], atol=1e-14)             # pi / 2
    np.testing.assert_allclose(top[7], [-r, 0.0], atol=1e-14)            # pi
    np.testing.assert_allclose(top[9], [0.0, -r], atol=1e-14)            # 3 pi / 2
    np.testing.assert_allclose(top[3], [r / math.sqrt(2)] * 2, atol=1e-14)  # pi / 4
    assert np.max(np.abs(transform(EDGE_WORDS))) <= normal.Z_MAX


def test_float32_is_rounded_float64_and_odd_lengths():
    words = np.random.default_rng(4).bit_generator.random_raw(1001)
    z64 = transform(words)
    np.testing.assert_array_equal(transform(words, np.float32), z64.astype(np.float32))
    np.testing.assert_array_equal(transform(words, n=2001), z64[:2001])
    np.testing.assert_array_equal(box_muller(words, np.float32, n=2001),
                                  box_muller(words)[:2001].astype(np.float32))


def test_parallel_path_is_bit_identical_to_serial():
    n = normal.PARALLEL_MIN + 2 * normal.CHUNK + 3           # several chunks, a partial one, odd n
    words = np.random.default_rng(5).bit_generator.random_raw((n + 1) // 2)
    serial = np.empty(n)
    normal._serial(words, serial)
    np.testing.assert_array_equal(transform(words, n=n), serial)
    assert np.max(np.abs(serial - box_muller(words, n=n))) <= 1e-13


# --- statistics ------------------------------------------------------------------------------

def test_moments_and_distribution():
    n = 1_000_000
    z = normal.standard_normal(np.random.default_rng(2024), n)
    # Standard errors at n = 1e6: mean 1e-3, variance 1.4e-3, skewness 2.4e-3, kurtosis 4.9e-3.
    assert abs(z.mean()) < 5e-3
    assert abs(z.var() - 1.0) < 7e-3
    assert abs(stats.skew(z)) < 1.2e-2
    assert abs(stats.kurtosis(z)) < 2.5e-2
    # KS: the 0.1 % critical value is 1.95 / sqrt(n); r = sqrt(-ln u1) would give D = 0.08.
    assert stats.kstest(z, "norm").statistic < 1.95 / math.sqrt(n)
    # The two numbers of a pair are independent: no correlation, also not in their squares.
    pairs = z.reshape(-1, 2)
    bound = 5.0 / math.sqrt(pairs.shape[0])
    assert abs(np.corrcoef(pairs.T)[0, 1]) < bound
    assert abs(np.corrcoef((pairs ** 2).T)[0, 1]) < bound
    # Each half alone is N(0, 1) too (a wrong quadrant map would skew one of them).
    for half in (pairs[:, 0], pairs[:, 1]):
        assert abs(half.mean()) < 7e-3 and abs(half.var() - 1.0) < 1e-2
    assert np.max(np.abs(z)) <= normal.Z_MAX


# --- determinism and the Generator -----------------------------------------------------------

@pytest.mark.parametrize("shape", [7, (3, 4), (2, 3, 5), (), (0,), (4, 0), (785, 50), 4097])
@pytest.mark.parametrize("held", [False, True], ids=["no-half-word", "half-word-held"])
def test_consumes_exactly_ceil_half_words(shape, held):
    """The words and the state afterwards are random_raw's, at a crossbar's size too, and a 32-bit
    half word the Generator holds from a float32 draw is kept."""
    rng, twin = np.random.default_rng(99), np.random.default_rng(99)
    if held:
        rng.random(1, dtype=np.float32), twin.random(1, dtype=np.float32)
        assert rng.bit_generator.state["has_uint32"] == 1
    z = normal.standard_normal(rng, shape)
    n = int(np.prod(shape))
    words = twin.bit_generator.random_raw((n + 1) // 2)
    assert rng.bit_generator.state == twin.bit_generator.state
    assert z.shape == (shape if isinstance(shape, tuple) else (shape,)) and z.dtype == np.float64
    np.testing.assert_array_equal(z.ravel(), transform(words, n=n))
    assert np.max(np.abs(z.ravel() - box_muller(words, n=n)), initial=0.0) <= 1e-13


def test_same_seed_same_numbers_in_both_precisions():
    a = normal.standard_normal(np.random.default_rng(1), (10, 11))
    b = normal.standard_normal(np.random.default_rng(1), (10, 11))
    c = normal.standard_normal(np.random.default_rng(1), (10, 11), dtype=np.float32)
    d = normal.standard_normal(np.random.default_rng(2), (10, 11))
    np.testing.assert_array_equal(a, b)
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, a.astype(np.float32))
    assert not np.any(a == d)
    # Successive calls continue the stream: two draws of 5 and 6 = one draw of 12 (words 3 + 3).
    rng = np.random.default_rng(1)
    first, second = normal.standard_normal(rng, 5), normal.standard_normal(rng, 6)
    whole = normal.standard_normal(np.random.default_rng(1), 12)
    np.testing.assert_array_equal(first, whole[:5])
    np.testing.assert_array_equal(second, whole[6:])


def test_out_argument():
    out = np.full((3, 5), np.nan, dtype=np.float32)
    result = normal.standard_normal(np.random.default_rng(8), (3, 5), np.float32, out=out)
    assert result is out
    np.testing.assert_array_equal(out, normal.standard_normal(np.random.default_rng(8), (3, 5),
                                                              np.float32))


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(rng=np.random.RandomState(0)), "rng"),
    (dict(rng=0), "rng"),
    (dict(shape=-1), "shape"),
    (dict(shape=(2, -3)), "shape"),
    (dict(shape=2.0), "shape"),
    (dict(shape=(True, 2)), "shape"),
    (dict(shape=None), "shape"),
    (dict(dtype=np.int32), "dtype"),
    (dict(dtype=np.float16), "dtype"),
    (dict(dtype="no-such-type"), "dtype"),
    (dict(out=np.empty((2, 4))), "out"),
    (dict(out=np.empty((4, 2), dtype=np.float32)), "out"),
    (dict(out=np.empty((4, 4))[:, ::2]), "out"),
])
def test_standard_normal_rejects_bad_input(kwargs, name):
    args = dict(rng=np.random.default_rng(0), shape=(4, 2), dtype=np.float64)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        normal.standard_normal(**args)


def test_standard_normal_into_rejects_bad_input():
    words = np.zeros(3, dtype=np.uint64)
    with pytest.raises(ValueError, match="words"):
        normal.standard_normal_into(words.astype(np.int64), np.empty(6))
    with pytest.raises(ValueError, match="words"):
        normal.standard_normal_into(words, np.empty(7))
    with pytest.raises(ValueError, match="out"):
        normal.standard_normal_into(words, np.empty(6, dtype=np.int64))
    with pytest.raises(ValueError, match="out"):
        normal.standard_normal_into(words, np.empty((3, 2)))
    with pytest.raises(ValueError, match="n must"):
        box_muller(words, n=4)


# --- fast_log ----------------------------------------------------------------------------------

def ulp_error(actual, x):
    """|actual - ln x| in units of the spacing of actual's dtype at ln x (float64 np.log as truth
    for float32; for float64, np.log in long double where that is wider than float64)."""
    wide = np.longdouble if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps else np.float64
    truth = np.log(x.astype(wide))
    spacing = np.spacing(np.abs(truth).astype(actual.dtype)).astype(wide)
    return np.abs(actual.astype(wide) - truth) / spacing


@pytest.mark.parametrize("dtype, decades, bound", [(np.float64, 300, 2.0), (np.float32, 37, 2.0)])
def test_fast_log_accuracy(dtype, decades, bound):
    rng = np.random.default_rng(11)
    x = np.concatenate([10.0 ** rng.uniform(-decades, decades, 200_000),
                        1.0 + rng.uniform(-0.3, 0.5, 100_000),       # the m = 1 +- f region
                        1.0 + rng.uniform(-1e-6, 1e-6, 10_000)]).astype(dtype)
    x = x[x != 1.0]
    y = fastlog.log_array(x)
    assert y.dtype == dtype
    err = ulp_error(y, x)
    assert float(err.max()) <= bound
    rel = np.abs(y.astype(np.float64) / np.log(x.astype(np.float64)) - 1.0)
    assert rel.max() <= (4e-16 if dtype == np.float64 else 2.4e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_log_special_values(dtype):
    info = np.finfo(dtype)
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.nan, np.inf, 1.0, 2.0, 0.5], dtype=dtype)
    y = fastlog.log_array(x)
    assert y[0] == -np.inf and y[1] == -np.inf
    assert np.all(np.isnan(y[2:5]))
    assert y[5] == np.inf and y[6] == 0.0
    np.testing.assert_allclose(y[7:], [math.log(2.0), -math.log(2.0)], rtol=2 * info.eps)
    sub = np.array([info.smallest_subnormal, info.tiny / 3, info.tiny * 0.999, info.tiny,
                    info.max], dtype=dtype)
    assert float(ulp_error(fastlog.log_array(sub), sub).max()) <= 2.0
    with pytest.raises(ValueError, match="x"):
        fastlog.log_array(np.arange(3))


def test_coefficients_are_the_minimax_fits():
    c64, e64 = fastlog.minimax_coefficients(fastlog.log_series, fastlog.Z_MAX, 6)
    c32, e32 = fastlog.minimax_coefficients(fastlog.log_series, fastlog.Z_MAX, 2)
    z = np.linspace(0.0, fastlog.Z_MAX, 1001)
    poly = np.polynomial.polynomial.polyval
    assert e64 < 3.2e-16 and e32 < 1.9e-7
    assert np.max(np.abs(poly(z, c64) - poly(z, fastlog.LOG_COEFFS_F64))) < 1e-15
    assert np.max(np.abs(poly(z, c32) - poly(z, fastlog.LOG_COEFFS_F32))) < 1e-7
    (s, es), (c, ec) = normal.sincos_coefficients()
    assert es < 2.1e-17 and ec < 4.8e-17
    y = np.linspace(0.0, 1.0 / 64.0, 1001)
    assert np.max(np.abs(poly(y, s) - poly(y, normal.SIN_COEFFS))) < 1e-15
    assert np.max(np.abs(poly(y, c) - poly(y, normal.COS_COEFFS))) < 1e-15
    with pytest.raises(ValueError, match="degree"):
        fastlog.minimax_coefficients(fastlog.log_series, 0.01, 0)
