"""A vectorizable natural logarithm for the Numba kernels.

Numba lowers ``math.log`` and ``np.log`` to a scalar libm call per element, so loops calling them
do not vectorize. :func:`fast_log` uses only integer bit operations, multiplications, additions
and one division, so LLVM vectorizes loops that call it (the companion of
:func:`memnp.kernels.fastexp.fast_exp`).

Method. Split a positive x as x = 2**k m with m in [sqrt(1/2), sqrt(2)) by integer arithmetic on
its bits (subtract the bits of sqrt(1/2), shift the exponent field out, take the exponent back out
of the bits), then with f = m - 1 and s = f / (2 + f), |s| <= 3 - 2 sqrt(2) = 0.1716:

    ln(1 + f) = 2 atanh(s) = f - (h - s (h + R)),   h = f**2 / 2,   R = s**2 P(s**2),
    ln(x)     = k ln2_hi + (ln(1 + f) + k ln2_lo),

where P approximates sum_j 2 z**j / (2j + 3) on 0 <= z <= (3 - 2 sqrt 2)**2 (the identity
f - 2s = s f = h - s h makes the large terms exact). The float k is formed with a "magic number"
(bits of 1.5 * 2**t plus k, minus 1.5 * 2**t) instead of an integer-to-float conversion.

Polynomials (minimax, fitted by :func:`minimax_coefficients`): float64 degree 6, |P error|
3.1e-16, which adds below 5e-18 to the relative error of ln(x); float32 degree 2, |P error| 1.9e-7
(adds 3e-9). Measured over many decades: float64 within about 2 ulp, float32 within about 2 ulp
(see tests/test_kernels_normal.py).

Inputs outside the positive normal numbers (the public :func:`fast_log`):
- subnormal x: scaled by 2**54 (float64) or 2**25 (float32) first, so they are as accurate;
- x = 0 (either sign) gives -inf; x < 0 and NaN give NaN; x = +inf gives +inf.
The private ``_log_core_*`` functions skip these selects and need a positive normal finite x.

Fast-math flags: no 'reassoc' (the magic-number subtraction and the order of the final sum must
stay as written), no 'arcp' (s is an exact division), no 'nnan'/'ninf' (the special-value selects
must survive). The flags are per instruction, so this holds after LLVM inlines these functions into
kernels compiled with other flags. Caching note as in :mod:`memnp.kernels.fastexp`: kernels in other
files that inline these functions are not recompiled when this file changes; delete their cache.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: Fast-math flags of the log functions (see the module docstring).
LOG_FASTMATH = {"nsz", "contract"}
_JIT = {"fastmath": LOG_FASTMATH, "error_model": "numpy", "cache": True}

#: Minimax coefficients (constant term first) of P(z) ~ sum_j 2 z**j / (2j + 3) on
#: 0 <= z <= (3 - 2 sqrt 2)**2: degree 6 for float64, degree 2 (rounded to float32) for float32.
LOG_COEFFS_F64 = (0.666666666666667, 0.3999999999989851, 0.2857142862636982,
                  0.2222221107755022, 0.1818289288000979, 0.1533160811820948,
                  0.14617735659559045)
LOG_COEFFS_F32 = (0.6666668653488159, 0.39988717436790466, 0.2958204746246338)
#: Upper end of the polynomial's interval, (3 - 2 sqrt 2)**2.
Z_MAX = (3.0 - 2.0 * np.sqrt(2.0)) ** 2

_LN2_HI_F64 = 6.93147180369123816490e-01     # 32 significant bits: k ln2_hi is exact
_LN2_LO_F64 = 1.90821492927058770002e-10
_LN2_HI_F32 = np.float32(0.693359375)        # 10 significant bits
_LN2_LO_F32 = np.float32(np.log(2.0) - 0.693359375)
(_P0, _P1, _P2, _P3, _P4, _P5, _P6) = LOG_COEFFS_F64
_Q0, _Q1, _Q2 = (np.float32(q) for q in LOG_COEFFS_F32)
_TINY_F64, _SCALE_F64, _SHIFT_F64 = 2.0 ** -1022, 2.0 ** 54, 54.0
_TINY_F32, _SCALE_F32, _SHIFT_F32 = np.float32(2.0 ** -126), np.float32(2.0 ** 25), np.float32(25)
_HALF_32, _ONE_32, _TWO_32 = np.float32(0.5), np.float32(1.0), np.float32(2.0)
_ZERO_32 = np.float32(0.0)
_INF_32, _NAN_32 = np.float32(np.inf), np.float32(np.nan)

# Per precision: integer type, float type, mantissa bits, bits of sqrt(1/2), bits of 1.5 * 2**t.
_SPLIT = {
    types.float32: (ir.IntType(32), ir.FloatType(), 23, 0x3F3504F3, 0x4B400000, 1.5 * 2.0 ** 23),
    types.float64: (ir.IntType(64), ir.DoubleType(), 52, 0x3FE6A09E667F3BCD, 0x4338000000000000,
                    1.5 * 2.0 ** 52),
}


@intrinsic
def _split(typingctx, x):
    """(m, k) with x = 2**k m, m in [sqrt(1/2), sqrt(2)) and k as a float of x's type, for a
    positive normal finite x (other inputs give finite garbage)."""
    if x not in _SPLIT:
        return None
    int_type, float_type, shift, sqrt_half, magic_bits, magic = _SPLIT[x]

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], int_type)
        k = builder.ashr(builder.sub(bits, ir.Constant(int_type, sqrt_half)),
                         ir.Constant(int_type, shift))
        m = builder.bitcast(builder.sub(bits, builder.shl(k, ir.Constant(int_type, shift))),
                            float_type)
        k_plus_magic = builder.bitcast(builder.add(k, ir.Constant(int_type, magic_bits)),
                                       float_type)
        k_float = builder.fsub(k_plus_magic, ir.Constant(float_type, magic))
        return context.make_tuple(builder, signature.return_type, [m, k_float])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def always_inline(typingctx):
    """Mark the calling function 'alwaysinline' for LLVM (call it first in the function body).

    Loops that call these small functions vectorize only once LLVM inlines them, and LLVM's
    inlining cost model is close to the line for them (a two-instruction change was seen to flip
    it and make a caller 5x slower). Numba keeps each jitted function's own fast-math flags when
    LLVM inlines it, unlike Numba's own ``inline="always"``. Does nothing if llvmlite refuses.
    """
    def codegen(context, builder, signature, args):
        try:
            builder.function.attributes.add("alwaysinline")
        except Exception:  # pragma: no cover - depends on llvmlite internals
            pass
        return context.get_dummy_value()

    return types.none(), codegen


@njit(**_JIT)
def _log_core_f64(x):
    """ln(x) for a positive normal finite float64 x (vectorizable, within about 2 ulp)."""
    always_inline()
    m, k = _split(x)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = _P6
    p = p * z + _P5
    p = p * z + _P4
    p = p * z + _P3
    p = p * z + _P2
    p = p * z + _P1
    p = p * z + _P0
    R = z * p
    h = 0.5 * f * f
    return k * _LN2_HI_F64 - ((h - (s * (h + R) + k * _LN2_LO_F64)) - f)


@njit(**_JIT)
def _log_core_f32(x):
    """ln(x) for a positive normal finite float32 x (vectorizable, within about 2 ulp)."""
    always_inline()
    m, k = _split(x)
    f = m - _ONE_32
    s = f / (_TWO_32 + f)
    z = s * s
    p = _Q2
    p = p * z + _Q1
    p = p * z + _Q0
    R = z * p
    h = _HALF_32 * f * f
    return k * _LN2_HI_F32 - ((h - (s * (h + R) + k * _LN2_LO_F32)) - f)


@njit(**_JIT)
def log_f64(x):
    """ln(x) for a float64 scalar: subnormals scaled first; 0 -> -inf, x < 0 or NaN -> NaN,
    +inf -> +inf."""
    always_inline()
    small = x < _TINY_F64
    y = x * _SCALE_F64 if small else x
    r = _log_core_f64(y)
    r = r - _SHIFT_F64 * _LN2_HI_F64 - _SHIFT_F64 * _LN2_LO_F64 if small else r
    r = r if x < np.inf else x              # +inf -> +inf (NaN passes through)
    if not x > 0.0:
        r = -np.inf if x == 0.0 else np.nan
    return r


@njit(**_JIT)
def log_f32(x):
    """ln(x) for a float32 scalar (same special values as :func:`log_f64`)."""
    always_inline()
    small = x < _TINY_F32
    y = x * _SCALE_F32 if small else x
    r = _log_core_f32(y)
    r = r - _SHIFT_F32 * _LN2_HI_F32 - _SHIFT_F32 * _LN2_LO_F32 if small else r
    r = r if x < _INF_32 else x
    if not x > _ZERO_32:
        r = -_INF_32 if x == _ZERO_32 else _NAN_32
    return r


def fast_log(x):
    """ln(x) for a float32 or float64 scalar, in the same precision (Numba code only)."""
    raise NotImplementedError("fast_log is only callable from Numba-compiled code; use log_array")


@overload(fast_log, jit_options={"fastmath": LOG_FASTMATH, "error_model": "numpy"})
def _fast_log_overload(x):
    if x == types.float32:
        return lambda x: log_f32(x)
    if x == types.float64:
        return lambda x: log_f64(x)
    return None


@njit(**_JIT)
def _log_loop(x, out):
    for i in range(x.size):
        out[i] = fast_log(x[i])


def log_array(x):
    """Apply :func:`fast_log` elementwise to a float32 or float64 array (for tests and checks).
    Returns a new array of x's shape and dtype."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"x must be a float32 or float64 array; got dtype {x.dtype}")
    flat = np.ascontiguousarray(x).ravel()
    out = np.empty_like(flat)
    _log_loop(flat, out)
    return out.reshape(x.shape)


# --- provenance of the coefficients ----------------------------------------------------------

def _solve(matrix, rhs):
    """Gaussian elimination with partial pivoting in the arrays' own dtype (long double here,
    which np.linalg does not support)."""
    a, b = matrix.copy(), rhs.copy()
    n = b.size
    for i in range(n):
        p = i + int(np.argmax(np.abs(a[i:, i])))
        a[[i, p]], b[[i, p]] = a[[p, i]], b[[p, i]]
        for j in range(i + 1, n):
            factor = a[j, i] / a[i, i]
            a[j, i:] -= factor * a[i, i:]
            b[j] -= factor * b[i]
    x = np.zeros_like(b)
    for i in range(n - 1, -1, -1):
        x[i] = (b[i] - a[i, i + 1:] @ x[i + 1:]) / a[i, i]
    return x


def minimax_coefficients(func, upper, degree, iterations=40, grid=40001):
    """Coefficients (constant term first, in the variable y) of the polynomial of the given degree
    minimizing max |P(y) - func(y)| over 0 <= y <= upper (Remez exchange), and that maximum.

    func takes and returns np.longdouble arrays; the fit runs in long double (80-bit on x86, so
    the float64 coefficients are accurate; where long double is float64 the fit is noisier).
    Returns (coefficients (degree + 1,) float64, max absolute error float). With
    ``log_series`` below and upper = :data:`Z_MAX` it gives :data:`LOG_COEFFS_F64` (degree 6)
    and, rounded to float32, :data:`LOG_COEFFS_F32` (degree 2).
    """
    if not 1 <= degree <= 12:
        raise ValueError(f"degree must be in [1, 12]; got {degree}")
    if not upper > 0:
        raise ValueError(f"upper must be > 0; got {upper}")
    ld = np.longdouble
    n = degree + 2
    half = ld(upper) / 2
    t = (1.0 - np.cos(np.pi * np.arange(n) / (n - 1))).astype(ld)    # nodes in [0, 2]
    fine = np.linspace(0.0, 2.0, grid).astype(ld)
    powers = np.arange(degree + 1)
    for _ in range(iterations):
        system = np.empty((n, n), dtype=ld)
        system[:, :-1] = t[:, None] ** powers
        system[:, -1] = (-1.0) ** np.arange(n)
        scaled = _solve(system, func(t * half))[:-1]
        error = np.polynomial.polynomial.polyval(fine, scaled) - func(fine * half)
        runs = np.flatnonzero(np.diff(np.sign(error)) != 0) + 1
        edges = np.concatenate([[0], runs, [grid]])
        extrema = [a + int(np.argmax(np.abs(error[a:b]))) for a, b in zip(edges[:-1], edges[1:])]
        if len(extrema) != n:
            break
        t = fine[extrema]
    return (scaled / half ** powers).astype(np.float64), float(np.max(np.abs(error)))


def log_series(z):
    """sum_j 2 z**j / (2j + 3) (the function P approximates), in z's dtype, for 0 <= z < 0.1."""
    out = np.zeros_like(z)
    for j in range(39, -1, -1):
        out = out * z + 2.0 / (2 * j + 3)
    return out
