"""A vectorizable exponential for the Numba kernels, and a hint for wide SIMD registers.

Numba 0.68 lowers ``math.exp`` to a scalar libm call per element (SVML is not available with
current llvmlite), which caps the PF kernels near 1 G evaluations/s. :func:`fast_exp` is written
only with multiplications, additions, a rounding trick and integer bit operations, so LLVM
vectorizes loops that call it.

Method (Cody-Waite range reduction plus a minimax polynomial):

    k = round(x log2(e)),   r = x - k ln2_hi - k ln2_lo,   |r| <= ln2 / 2,
    exp(x) = 2**k * P(r).

The rounding uses the "magic number" 1.5 * 2**t + bias (t = 23 for float32, 52 for float64): after
``y = x log2(e) + magic`` the low mantissa bits of y hold k + bias, so shifting the bits of y left
by t puts k + bias into the exponent field and gives 2**k without any float-to-int conversion.
This relies on y - magic not being simplified to x log2(e): the functions here are compiled
without the ``reassoc`` fast-math flag (they keep that property after LLVM inlines them into
kernels compiled with full fast-math, because LLVM fast-math flags are per instruction).

Polynomials (relative error of P(r) against exp(r) on |r| <= ln2 / 2):
- float32: degree-5 minimax, 7.5e-8 (fitted with :func:`minimax_exp_coefficients`);
  with float32 rounding the result is within 2.5e-7 relative of exp over the whole valid range.
- float64: degree-12 Taylor polynomial, truncation error below 2.5e-16; within a few ulp.

:func:`fast_exp_nonneg` is a variant for x >= 0 (the PF kernels' exponent is a square root),
one operation shorter in float32 (see :func:`exp_nonneg_f32`).

Inputs are clamped to [-87, 88] (float32) or [-708, 709] (float64): results are correct to the
bounds above inside that interval; beyond it they saturate instead of overflowing to inf or
underflowing to 0 (+inf and -inf saturate too). NaN gives NaN.

Caching note: the kernels in :mod:`memnp.kernels.cpu` inline these functions and are cached on
disk (``cache=True``); Numba's cache only tracks the source file of the cached function itself, so
after editing this file delete ``memnp/kernels/__pycache__/cpu.*.nbi`` and ``*.nbc``.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: Fast-math flags of the exp functions: no 'reassoc' (see the module docstring), and no
#: 'nnan'/'ninf', so that a NaN input gives NaN.
EXP_FASTMATH = {"nsz", "arcp", "contract", "afn"}

_LOG2E = 1.4426950408889634
# float32: ln 2 split so that k * LN2_HI is exact for |k| < 2**15.
_LN2_HI_F32 = 0.693359375
_LN2_LO_F32 = math.log(2.0) - _LN2_HI_F32
# float64: the classic split, LN2_HI with 32 significant bits.
_LN2_HI_F64 = 6.93147180369123816490e-01
_LN2_LO_F64 = 1.90821492927058770002e-10
#: Degree-5 minimax coefficients (constant term first) for exp on [-ln2/2, ln2/2], float32.
EXP_COEFFS_F32 = (1.0000001192092896, 0.9999997019767761, 0.49998894333839417,
                  0.16667574644088745, 0.04191538318991661, 0.008297654800117016)
#: Degree-12 Taylor coefficients 1/k! for float64.
EXP_COEFFS_F64 = tuple(1.0 / math.factorial(k) for k in range(13))
#: Valid input interval of each precision (inputs outside are clamped).
EXP_RANGE = {np.dtype(np.float32): (-87.0, 88.0), np.dtype(np.float64): (-708.0, 709.0)}

_f32 = np.float32
_L2E_32, _HI_32, _LO_32 = _f32(_LOG2E), _f32(_LN2_HI_F32), _f32(_LN2_LO_F32)
_LN2_32 = _f32(math.log(2.0))
_MAGIC_32 = _f32(1.5 * 2.0 ** 23 + 127.0)
_LOW_32, _HIGH_32 = _f32(-87.0), _f32(88.0)
_A0, _A1, _A2, _A3, _A4, _A5 = (_f32(a) for a in EXP_COEFFS_F32)
_MAGIC_64 = 1.5 * 2.0 ** 52 + 1023.0
(_B0, _B1, _B2, _B3, _B4, _B5, _B6, _B7, _B8, _B9, _B10, _B11, _B12) = EXP_COEFFS_F64


@intrinsic
def _exponent_field(typingctx, y):
    """Bits of y shifted left by the mantissa width, reinterpreted as the same float type."""
    if y == types.float32:
        int_type, float_type, shift = ir.IntType(32), ir.FloatType(), 23
    elif y == types.float64:
        int_type, float_type, shift = ir.IntType(64), ir.DoubleType(), 52
    else:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], int_type)
        bits = builder.shl(bits, ir.Constant(int_type, shift))
        return builder.bitcast(bits, float_type)

    return y(y), codegen


@intrinsic
def wide_vectors(typingctx):
    """Ask LLVM to vectorize the calling function with 512-bit registers where the CPU has them.

    On AVX-512 CPUs that LLVM tunes for 256-bit vectors (most Intel server parts), this doubles
    the throughput of the exp loops. It adds the LLVM function attribute
    ``"prefer-vector-width"="512"`` to the function being compiled; call it once inside each
    ``prange`` body (the body becomes its own function). It changes no results, is a no-op on
    CPUs without AVX-512, and silently does nothing if llvmlite refuses the attribute.
    """
    def codegen(context, builder, signature, args):
        try:
            # llvmlite only validates a list of known attribute names in add(); string
            # attributes are written into the IR verbatim by the set they are stored in.
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except Exception:  # pragma: no cover - depends on llvmlite internals
            pass
        return context.get_dummy_value()

    return types.none(), codegen


@njit(fastmath=EXP_FASTMATH, cache=True)
def exp_f32(x):
    """exp(x) for a float32 scalar (vectorizable; relative error < 2.5e-7 on [-87, 88])."""
    x = min(max(x, _LOW_32), _HIGH_32)
    y = x * _L2E_32 + _MAGIC_32        # round(x log2 e) + 127 in the low mantissa bits
    k = y - _MAGIC_32                  # round(x log2 e), exactly
    r = x - k * _HI_32
    r = r - k * _LO_32
    p = _A5
    p = p * r + _A4
    p = p * r + _A3
    p = p * r + _A2
    p = p * r + _A1
    p = p * r + _A0
    return p * _exponent_field(y)


@njit(fastmath=EXP_FASTMATH, cache=True)
def exp_f64(x):
    """exp(x) for a float64 scalar (vectorizable; within a few ulp on [-708, 709])."""
    x = min(max(x, -708.0), 709.0)
    y = x * _LOG2E + _MAGIC_64
    k = y - _MAGIC_64
    r = x - k * _LN2_HI_F64
    r = r - k * _LN2_LO_F64
    p = _B12
    p = p * r + _B11
    p = p * r + _B10
    p = p * r + _B9
    p = p * r + _B8
    p = p * r + _B7
    p = p * r + _B6
    p = p * r + _B5
    p = p * r + _B4
    p = p * r + _B3
    p = p * r + _B2
    p = p * r + _B1
    p = p * r + _B0
    return p * _exponent_field(y)


@njit(fastmath=EXP_FASTMATH, cache=True)
def exp_nonneg_f32(x):
    """exp(x) for a float32 scalar x >= 0 (the PF exponent), about 10 % faster than exp_f32: no
    lower clamp, and a one-step reduction r = x - k fl(ln 2) (exact with FMA), which adds at
    most k 1.9e-9 to the relative error: within 2e-7 of exp on [0, 10], 3.5e-7 on [0, 88].
    x below -87 gives garbage."""
    x = min(x, _HIGH_32)
    y = x * _L2E_32 + _MAGIC_32
    k = y - _MAGIC_32
    r = x - k * _LN2_32
    p = _A5
    p = p * r + _A4
    p = p * r + _A3
    p = p * r + _A2
    p = p * r + _A1
    p = p * r + _A0
    return p * _exponent_field(y)


@njit(fastmath=EXP_FASTMATH, cache=True)
def exp_nonneg_f64(x):
    """exp(x) for a float64 scalar x >= 0: :func:`exp_f64` without the lower clamp."""
    x = min(x, 709.0)
    y = x * _LOG2E + _MAGIC_64
    k = y - _MAGIC_64
    r = x - k * _LN2_HI_F64
    r = r - k * _LN2_LO_F64
    p = _B12
    p = p * r + _B11
    p = p * r + _B10
    p = p * r + _B9
    p = p * r + _B8
    p = p * r + _B7
    p = p * r + _B6
    p = p * r + _B5
    p = p * r + _B4
    p = p * r + _B3
    p = p * r + _B2
    p = p * r + _B1
    p = p * r + _B0
    return p * _exponent_field(y)


def fast_exp(x):
    """exp(x) for a float32 or float64 scalar, in the same precision (Numba code only)."""
    raise NotImplementedError("fast_exp is only callable from Numba-compiled code; use exp_array")


@overload(fast_exp, jit_options={"fastmath": EXP_FASTMATH})
def _fast_exp_overload(x):
    if x == types.float32:
        return lambda x: exp_f32(x)
    if x == types.float64:
        return lambda x: exp_f64(x)
    return None


def fast_exp_nonneg(x):
    """exp(x) for a float32 or float64 scalar x >= 0, in the same precision (Numba code only).

    A little faster than :func:`fast_exp` (see :func:`exp_nonneg_f32`); the PF kernels use it.
    """
    raise NotImplementedError("fast_exp_nonneg is only callable from Numba-compiled code; "
                              "use exp_array")


@overload(fast_exp_nonneg, jit_options={"fastmath": EXP_FASTMATH})
def _fast_exp_nonneg_overload(x):
    if x == types.float32:
        return lambda x: exp_nonneg_f32(x)
    if x == types.float64:
        return lambda x: exp_nonneg_f64(x)
    return None


@njit(fastmath=EXP_FASTMATH, cache=True)
def _exp_loop(x, out, nonneg):
    if nonneg:
        for i in range(x.size):
            out[i] = fast_exp_nonneg(x[i])
    else:
        for i in range(x.size):
            out[i] = fast_exp(x[i])


def exp_array(x, nonneg=False):
    """Apply :func:`fast_exp` (or, with nonneg=True, :func:`fast_exp_nonneg`) elementwise to a
    float32 or float64 array (for tests and checks). Returns a new array of x's shape and dtype.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"x must be a float32 or float64 array; got dtype {x.dtype}")
    flat = np.ascontiguousarray(x).ravel()
    out = np.empty_like(flat)
    _exp_loop(flat, out, bool(nonneg))
    return out.reshape(x.shape)


def minimax_exp_coefficients(degree, half_width=math.log(2.0) / 2.0, iterations=30):
    """Coefficients (constant term first) of the polynomial of a given degree minimizing the
    maximum relative error max |P(r) / exp(r) - 1| over |r| <= half_width (Remez exchange).

    Returns (coefficients (degree + 1,) float64, max relative error). Runs in float64, which is
    ample for the float32 polynomial; :data:`EXP_COEFFS_F32` is ``degree=5`` rounded to float32.
    """
    if not 1 <= degree <= 10:
        raise ValueError(f"degree must be in [1, 10]; got {degree}")
    n_points = degree + 2
    sign = (-1.0) ** np.arange(n_points)
    t = -np.cos(np.pi * np.arange(n_points) / (n_points - 1))  # on [-1, 1]; r = half_width t
    grid = np.linspace(-1.0, 1.0, 20001)
    for _ in range(iterations):
        # P(r_k) - exp(r_k) = (-1)^k E exp(r_k), P in the scaled variable t.
        system = np.empty((n_points, n_points))
        system[:, :-1] = t[:, None] ** np.arange(degree + 1)
        system[:, -1] = -sign * np.exp(half_width * t)
        solution = np.linalg.solve(system, np.exp(half_width * t))
        scaled = solution[:-1]
        error = np.polynomial.polynomial.polyval(grid, scaled) * np.exp(-half_width * grid) - 1.0
        # One extremum per run of constant sign; exchange when there are exactly n_points.
        runs = np.flatnonzero(np.diff(np.sign(error)) != 0) + 1
        edges = np.concatenate([[0], runs, [grid.size]])
        extrema = [a + np.argmax(np.abs(error[a:b])) for a, b in zip(edges[:-1], edges[1:])]
        if len(extrema) != n_points:
            break
        t = grid[extrema]
    coefficients = scaled / half_width ** np.arange(degree + 1)
    return coefficients, float(np.max(np.abs(error)))
