"""Fast standard normal draws, seeded by the caller's numpy.random.Generator.

:func:`standard_normal` takes ceil(n / 2) raw 64-bit words from the Generator's bit generator
(``rng.bit_generator.random_raw``) and turns each word into two N(0, 1) numbers by the Box-Muller
transform, in a vectorized Numba kernel: 4-5x faster than ``rng.standard_normal`` on the project's
machine, where drawing the raw words is about half of the time (bench/RESULTS.md). For word k
(bits w):

    u1 = ((w >> 32) + 1) 2**-32          in (0, 1],
    u2 = (w & 0xffffffff) 2**-32         in [0, 1),
    r  = sqrt(-2 ln u1),
    z[2k] = r cos(2 pi u2),   z[2k + 1] = r sin(2 pi u2).

An odd n drops the last word's sine. The same Generator state gives the same numbers on every
machine (up to the last bit or so: the kernel's polynomials use fused multiply-adds where the CPU
has them), and float32 output is the float64 output rounded to float32. The plain NumPy version is
:func:`memnp.kernels.reference.box_muller` (np.log, np.cos, np.sin); the two agree to a few
1e-15 absolute.

Range: u1 >= 2**-32, so |z| <= sqrt(64 ln 2) = 6.66. The tail beyond that (probability 2.7e-11 per
number under N(0, 1)) is missing, and u1's 32-bit resolution makes the far tail coarse: r > 5
(u1 < e**-12.5) has about 16,000 possible values, r > 6 only 65. cuRAND's Box-Muller has the same
kind of bound. Fine for device noise; not for rare-event estimates in the far tail.

Kernel details. ln is :func:`memnp.kernels.fastlog._log_core_f64` (u1 is positive and normal).
The angle is reduced exactly in integers: with v = lo + 2**29 (lo = the low 32 bits), the
quadrant is q = (v >> 30) & 3 and the remainder t = ((v & (2**30 - 1)) - 2**29) 2**-32 in
[-1/8, 1/8), so 2 pi u2 = q pi/2 + 2 pi t exactly; sin(2 pi t) = t S(t**2) and
cos(2 pi t) = C(t**2) with degree-6 minimax polynomials S and C (absolute errors 2.5e-18 and
4.7e-17 on the interval; :func:`sincos_coefficients`), then a swap and signs by quadrant.
Integers become floats through the bits of 2**52 (exact, no conversion instruction).

:func:`box_muller_pair` is the per-word transform itself, callable from other Numba kernels, so
that callers can fuse the draws into their own loops (for example to build correlated pairs).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .fastexp import wide_vectors
from .fastlog import _log_core_f64, always_inline, minimax_coefficients

#: Fast-math flags of the transform: 'contract' lets LLVM use FMA in the polynomials; nothing
#: that reorders or approximates operations.
NORMAL_FASTMATH = {"nsz", "contract"}
_JIT = {"fastmath": NORMAL_FASTMATH, "error_model": "numpy", "cache": True}

#: Minimax coefficients (constant term first) of S(y) ~ sin(2 pi sqrt(y)) / sqrt(y) and
#: C(y) ~ cos(2 pi sqrt(y)) on 0 <= y <= 1/64 (degree 6 each; see :func:`sincos_coefficients`).
SIN_COEFFS = (6.283185307179586, -41.341702240399634, 81.60524927594804, -76.70585970426016,
              42.05868501816844, -15.093804119516829, 3.7808677692362087)
COS_COEFFS = (1.0, -19.73920880217842, 64.9393940223656, -85.45681709040693, 60.24462009416453,
              -26.424257508233122, 7.81030113747161)
#: Largest |z| the transform can return: sqrt(-2 ln 2**-32) = sqrt(64 ln 2).
Z_MAX = math.sqrt(64.0 * math.log(2.0))
#: standard_normal uses the parallel kernel from this many numbers on (same results either way).
PARALLEL_MIN = 2 ** 18
#: Words per task of the parallel kernel.
CHUNK = 2 ** 14

(_S0, _S1, _S2, _S3, _S4, _S5, _S6) = SIN_COEFFS
(_C0, _C1, _C2, _C3, _C4, _C5, _C6) = COS_COEFFS
_U = np.uint64
_LOW32, _SHIFT32, _SHIFT30, _SHIFT63 = _U(0xFFFFFFFF), _U(32), _U(30), _U(63)
_ONE, _THREE = _U(1), _U(3)
_EXP52 = _U(0x4330000000000000)           # bits of 2**52: (_EXP52 | i) as float = 2**52 + i
_HALF_QUADRANT, _QUADRANT_MASK = _U(2 ** 29), _U(2 ** 30 - 1)
_TWO52_MINUS_1 = 2.0 ** 52 - 1.0           # (2**52 + hi) - (2**52 - 1) = hi + 1
_TWO52_PLUS_HALF_QUADRANT = 2.0 ** 52 + 2.0 ** 29
_INV_2_32 = 2.0 ** -32


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose bits are the uint64 ``bits``."""
    if bits != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@intrinsic
def _bits_from_f64(typingctx, x):
    """The bits of the float64 ``x`` as a uint64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@njit(**_JIT)
def box_muller_pair(w):
    """(z0, z1) = (r cos(2 pi u2), r sin(2 pi u2)) in float64 from one uint64 word w (the module
    docstring defines u1, u2, r). Numba code only; vectorizes inside loops."""
    always_inline()
    hi = w >> _SHIFT32
    lo = w & _LOW32
    u1 = (_f64_from_bits(hi | _EXP52) - _TWO52_MINUS_1) * _INV_2_32
    r = np.sqrt(-2.0 * _log_core_f64(u1))
    v = lo + _HALF_QUADRANT
    q = (v >> _SHIFT30) & _THREE
    t = (_f64_from_bits((v & _QUADRANT_MASK) | _EXP52) - _TWO52_PLUS_HALF_QUADRANT) * _INV_2_32
    y = t * t
    s = _S6
    s = s * y + _S5
    s = s * y + _S4
    s = s * y + _S3
    s = s * y + _S2
    s = s * y + _S1
    s = s * y + _S0
    s = s * t                                        # sin(2 pi t)
    c = _C6
    c = c * y + _C5
    c = c * y + _C4
    c = c * y + _C3
    c = c * y + _C2
    c = c * y + _C1
    c = c * y + _C0                                  # cos(2 pi t)
    odd = (q & _ONE) == _ONE
    cos_part = s if odd else c                       # quadrants: (c, s), (-s, c), (-c, -s), (s, -c)
    sin_part = c if odd else s
    r_bits = _bits_from_f64(r)
    r_cos = _f64_from_bits(r_bits ^ (((q ^ (q >> _ONE)) & _ONE) << _SHIFT63))
    r_sin = _f64_from_bits(r_bits ^ ((q >> _ONE) << _SHIFT63))
    return r_cos * cos_part, r_sin * sin_part


@njit(**_JIT)
def _fill(words, out):
    """out[2k], out[2k + 1] = box_muller_pair(words[k]) for k < out.size // 2 (whole pairs)."""
    wide_vectors()
    for k in range(out.size // 2):
        z0, z1 = box_muller_pair(words[k])
        out[2 * k] = z0
        out[2 * k + 1] = z1


@njit(**_JIT)
def _tail(words, out):
    """The last number of an odd-length out: the cosine of the last word."""
    n = out.size
    if n % 2 == 1:
        out[n - 1] = box_muller_pair(words[n // 2])[0]


@njit(**_JIT)
def _serial(words, out):
    _fill(words, out)
    _tail(words, out)


@njit(parallel=True, **_JIT)
def _parallel(words, out):
    pairs = out.size // 2
    for task in prange((pairs + CHUNK - 1) // CHUNK):
        first = task * CHUNK
        last = min(pairs, first + CHUNK)
        _fill(words[first:last], out[2 * first:2 * last])
    _tail(words, out)


def standard_normal_into(words, out):
    """Fill out (n,) float32 or float64, C-contiguous, with the Box-Muller transform of words
    (ceil(n / 2),) uint64: out[2k], out[2k + 1] from words[k] (an odd n uses only the last word's
    cosine). Returns out. Any n >= PARALLEL_MIN runs in parallel (same results)."""
    if not isinstance(words, np.ndarray) or words.dtype != np.uint64 or words.ndim != 1:
        raise ValueError("words must be a 1-D numpy array of dtype uint64; got "
                         f"{getattr(words, 'dtype', type(words).__name__)} with shape "
                         f"{getattr(words, 'shape', None)}")
    if (not isinstance(out, np.ndarray) or out.dtype not in (np.float32, np.float64)
            or out.ndim != 1 or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError("out must be a writeable C-contiguous 1-D float32 or float64 array; got "
                         f"{getattr(out, 'dtype', type(out).__name__)} with shape "
                         f"{getattr(out, 'shape', None)}")
    if words.size != (out.size + 1) // 2:
        raise ValueError(f"words must hold ceil(out.size / 2) = {(out.size + 1) // 2} words for "
                         f"out.size = {out.size}; got {words.size}")
    if out.size == 0:
        return out
    words = np.ascontiguousarray(words)
    (_parallel if out.size >= PARALLEL_MIN else _serial)(words, out)
    return out


def _check_shape(shape):
    """shape as a tuple of non-negative Python ints (an int is a 1-D shape)."""
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if isinstance(items, (tuple, list)):
        checked = []
        for size in items:
            if (isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer))
                    or size < 0):
                break
            checked.append(int(size))
        else:
            return tuple(checked)
    raise ValueError(f"shape must be a non-negative int or a tuple of them; got {shape!r}")


def standard_normal(rng, shape, dtype=np.float64, out=None):
    """Standard normal numbers of the given shape and dtype, drawn from the Generator rng.

    rng: numpy.random.Generator; exactly ceil(n / 2) raw words are taken from its bit generator
    (n = the number of elements), nothing else, so its state afterwards is that of
    ``rng.bit_generator.random_raw(ceil(n / 2))``. shape: a non-negative int or tuple of them.
    dtype: float32 or float64 (float32 results are the float64 ones rounded). out: optional
    C-contiguous array of that shape and dtype to fill (and return).
    Returns an array of ``shape``, values N(0, 1) within |z| <= :data:`Z_MAX` (dimensionless).
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    shape = _check_shape(shape)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous array of shape {shape} and dtype "
                         f"{dtype}; got {getattr(out, 'dtype', type(out).__name__)} with shape "
                         f"{getattr(out, 'shape', None)}")
    n = out.size
    if n == 0:
        return out
    words = rng.bit_generator.random_raw((n + 1) // 2)
    (_parallel if n >= PARALLEL_MIN else _serial)(words, out.reshape(-1))
    return out


# --- provenance of the coefficients ----------------------------------------------------------

_PI = np.longdouble("3.14159265358979323846264338327950288")


def _sin_target(y):
    t = np.sqrt(y)
    return np.where(t == 0, 2 * _PI, np.sin(2 * _PI * t) / np.where(t == 0, 1, t))


def _cos_target(y):
    return np.cos(2 * _PI * np.sqrt(y))


def sincos_coefficients(degree=6):
    """Refit S and C (see the module docstring) by :func:`memnp.kernels.fastlog.
    minimax_coefficients` on 0 <= y <= 1/64. Returns ((S coefficients, max error),
    (C coefficients, max error)); degree 6 gives :data:`SIN_COEFFS` and :data:`COS_COEFFS` (to
    the fit's flat directions) with errors 2.0e-17 and 4.7e-17."""
    return (minimax_coefficients(_sin_target, 1.0 / 64.0, degree),
            minimax_coefficients(_cos_target, 1.0 / 64.0, degree))
