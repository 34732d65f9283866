"""NumPy's PCG64 words and memnp's Box-Muller normals, made on the GPU (numba.cuda).

From a ``numpy.random.Generator`` whose bit generator is ``numpy.random.PCG64``, :func:`random_raw`
fills a device array with the words ``rng.bit_generator.random_raw(count)`` would give, and
:func:`standard_normal` with the numbers :func:`memnp.kernels.normal.standard_normal` would give
(from ceil(n / 2) words, the same transform). Either then moves the host Generator on by the number
of words used (``bit_generator.advance``, keeping its buffered 32-bit half as ``random_raw`` does),
so its state afterwards is the state after drawing on the CPU and nothing is copied back.

PCG64 (see :mod:`memnp.kernels.pcg64`) is the 128-bit LCG s_{k+1} = M s_k + inc (mod 2**128); word
k is the XSL-RR output of s_{k+1}. Jumping d steps is again an LCG step,
s_{k+d} = M_d s_k + C_d with M_d = M**d and C_d = inc (M**(d-1) + ... + M + 1), found in
O(log d) products by squaring (:func:`jump`, and its device twin). Thread t of T jumps the
Generator's state to s_{t+1} and then makes the words t, t + T, t + 2T, ... by the jump (M_T, C_T)
computed once on the host, so neighbouring threads write neighbouring words.

All 64-bit arithmetic is done on 32-bit halves held in uint64, so that no operation overflows:
the same code wraps correctly on the GPU and in the CUDA simulator (whose NumPy scalars would
warn on overflow). The Box-Muller transform is that of :func:`memnp.kernels.normal.box_muller_pair`
(its logarithm, polynomials and exact angle reduction) written without bit casts: u1 and the
angle's remainder come from exact integer-to-float conversions, the logarithm's split
x = 2**k m from ``math.frexp``. The kernels are compiled without fast-math (IEEE division and
square root). Results equal the CPU's to the last bit or so: both compilers may fuse different
multiply-adds (the CPU's own numbers carry the same caveat); float32 output is the float64 value
rounded, as on the CPU.

Importing this module raises ImportError when numba-cuda is not installed.
"""
import math

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda

from .cuda_common import SIMULATOR, _require_device
from .fastlog import LOG_COEFFS_F64
from .normal import COS_COEFFS, SIN_COEFFS, _check_shape
from .pcg64 import MULTIPLIER

_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
_U = np.uint64
_ZERO, _ONE, _THREE = _U(0), _U(1), _U(3)
_LOW32, _SHIFT32, _SHIFT58, _SHIFT30 = _U(0xFFFFFFFF), _U(32), _U(58), _U(30)
_SHIFT64 = _U(64)
_SHIFT_MASK = _U(63)
_M_HI, _M_LO = _U(MULTIPLIER >> 64), _U(MULTIPLIER & _MASK64)
_HALF_QUADRANT, _QUADRANT_MASK = _U(2 ** 29), _U(2 ** 30 - 1)
_HALF_QUADRANT_F = 2.0 ** 29
_INV_2_32 = 2.0 ** -32
(_S0, _S1, _S2, _S3, _S4, _S5, _S6) = SIN_COEFFS
(_C0, _C1, _C2, _C3, _C4, _C5, _C6) = COS_COEFFS
(_P0, _P1, _P2, _P3, _P4, _P5, _P6) = LOG_COEFFS_F64
_LN2_HI = 6.93147180369123816490e-01        # as memnp.kernels.fastlog
_LN2_LO = 1.90821492927058770002e-10
_SQRT_HALF = 0.7071067811865476             # the float64 bits 0x3FE6A09E667F3BCD of fastlog's split

#: Threads per block and most blocks per launch (grid-stride loops cover larger requests). The
#: simulator runs each thread as a Python thread: tiny values, which also make small requests
#: span several threads and blocks.
THREADS = 4 if SIMULATOR else 256
MAX_BLOCKS = 3 if SIMULATOR else 1024


# --- 64- and 128-bit arithmetic on 32-bit halves (device functions) ---------------------------

def _add64(a, b):
    """(a + b mod 2**64, carry out) for uint64 a, b."""
    low = (a & _LOW32) + (b & _LOW32)
    high = (a >> _SHIFT32) + (b >> _SHIFT32) + (low >> _SHIFT32)
    return ((high & _LOW32) << _SHIFT32) | (low & _LOW32), high >> _SHIFT32


def _mul64(a, b):
    """(high, low) 64-bit halves of the 128-bit product of uint64 a, b."""
    a0, a1 = a & _LOW32, a >> _SHIFT32
    b0, b1 = b & _LOW32, b >> _SHIFT32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> _SHIFT32) + (p01 & _LOW32) + (p10 & _LOW32)           # < 3 * 2**32
    high = p11 + (p01 >> _SHIFT32) + (p10 >> _SHIFT32) + (mid >> _SHIFT32)  # the exact high half
    return high, ((mid & _LOW32) << _SHIFT32) | (p00 & _LOW32)


def _mul64_low(a, b):
    """a b mod 2**64 for uint64 a, b."""
    a0, a1 = a & _LOW32, a >> _SHIFT32
    b0, b1 = b & _LOW32, b >> _SHIFT32
    p00 = a0 * b0
    mid = (p00 >> _SHIFT32) + ((a0 * b1) & _LOW32) + ((a1 * b0) & _LOW32)
    return ((mid & _LOW32) << _SHIFT32) | (p00 & _LOW32)


def _mul128(ah, al, bh, bl):
    """(a b mod 2**128) as (high, low) for 128-bit a = (ah, al), b = (bh, bl)."""
    high, low = _mul64(al, bl)
    high, _ = _add64(high, _mul64_low(al, bh))
    high, _ = _add64(high, _mul64_low(ah, bl))
    return high, low


def _add128(ah, al, bh, bl):
    """(a + b mod 2**128) as (high, low)."""
    low, carry = _add64(al, bl)
    high, _ = _add64(ah, bh)
    high, _ = _add64(high, carry)
    return high, low


def _mul_add128(sh, sl, mh, ml, ch, cl):
    """(M s + C mod 2**128) as (high, low): one LCG step, or a jump with (M_d, C_d)."""
    ph, pl = _mul128(sh, sl, mh, ml)
    return _add128(ph, pl, ch, cl)


def _jump_params(delta, inc_h, inc_l):
    """(M_d high, M_d low, C_d high, C_d low) of a jump by d = delta (uint64) steps: the device
    twin of :func:`jump` (square and multiply over the bits of d)."""
    acc_mh, acc_ml, acc_ch, acc_cl = _ZERO, _ONE, _ZERO, _ZERO
    cur_mh, cur_ml, cur_ch, cur_cl = _M_HI, _M_LO, inc_h, inc_l
    while delta > _ZERO:
        if delta & _ONE:
            acc_mh, acc_ml = _mul128(acc_mh, acc_ml, cur_mh, cur_ml)
            acc_ch, acc_cl = _mul_add128(acc_ch, acc_cl, cur_mh, cur_ml, cur_ch, cur_cl)
        # (cur_M + 1) cur_C, then cur_M squared
        m1h, m1l = _add128(cur_mh, cur_ml, _ZERO, _ONE)
        cur_ch, cur_cl = _mul128(m1h, m1l, cur_ch, cur_cl)
        cur_mh, cur_ml = _mul128(cur_mh, cur_ml, cur_mh, cur_ml)
        delta = delta >> _ONE
    return acc_mh, acc_ml, acc_ch, acc_cl


def _output(h, l):
    """PCG's XSL-RR output of the state (h, l): (h ^ l) rotated right by h >> 58."""
    x = h ^ l
    r = h >> _SHIFT58
    return (x >> r) | (x << ((_SHIFT64 - r) & _SHIFT_MASK))


# --- Box-Muller (device function) -------------------------------------------------------------

def _log_core(x):
    """memnp.kernels.fastlog._log_core_f64 for x in (0, 1] (positive normal): the same split
    x = 2**k m, m in [sqrt(1/2), sqrt(2)) (from frexp), the same polynomial and sums."""
    fm, ex = math.frexp(x)                       # x = fm 2**ex, fm in [1/2, 1)
    if fm < _SQRT_HALF:
        m = fm + fm
        k = float(ex - 1)
    else:
        m = fm
        k = float(ex)
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
    return k * _LN2_HI - ((h - (s * (h + R) + k * _LN2_LO)) - f)


def _box_muller(w):
    """(r cos(2 pi u2), r sin(2 pi u2)) in float64 from one word, as
    :func:`memnp.kernels.normal.box_muller_pair` computes them."""
    hi = w >> _SHIFT32
    lo = w & _LOW32
    u1 = float(hi + _ONE) * _INV_2_32           # exact: hi + 1 <= 2**32
    r = math.sqrt(-2.0 * _log_core(u1))
    v = lo + _HALF_QUADRANT
    q = (v >> _SHIFT30) & _THREE
    t = (float(v & _QUADRANT_MASK) - _HALF_QUADRANT_F) * _INV_2_32
    y = t * t
    s = _S6
    s = s * y + _S5
    s = s * y + _S4
    s = s * y + _S3
    s = s * y + _S2
    s = s * y + _S1
    s = s * y + _S0
    s = s * t                                    # sin(2 pi t)
    c = _C6
    c = c * y + _C5
    c = c * y + _C4
    c = c * y + _C3
    c = c * y + _C2
    c = c * y + _C1
    c = c * y + _C0                              # cos(2 pi t)
    odd = (q & _ONE) == _ONE
    cos_part = s if odd else c                   # quadrants: (c, s), (-s, c), (-c, -s), (s, -c)
    sin_part = c if odd else s
    r_cos = -r if ((q ^ (q >> _ONE)) & _ONE) == _ONE else r
    r_sin = -r if (q >> _ONE) == _ONE else r
    return r_cos * cos_part, r_sin * sin_part


_add64 = cuda.jit(device=True)(_add64)
_mul64 = cuda.jit(device=True)(_mul64)
_mul64_low = cuda.jit(device=True)(_mul64_low)
_mul128 = cuda.jit(device=True)(_mul128)
_add128 = cuda.jit(device=True)(_add128)
_mul_add128 = cuda.jit(device=True)(_mul_add128)
_jump_params = cuda.jit(device=True)(_jump_params)
_output = cuda.jit(device=True)(_output)
_log_core = cuda.jit(device=True)(_log_core)
_box_muller = cuda.jit(device=True)(_box_muller)


# --- Kernels ----------------------------------------------------------------------------------

def _first_state(s_h, s_l, inc_h, inc_l):
    """This thread's first state s_{t+1} (t = its index in the grid)."""
    t = cuda.grid(1)
    mh, ml, ch, cl = _jump_params(_U(t) + _ONE, inc_h, inc_l)
    return _mul_add128(s_h, s_l, mh, ml, ch, cl)


_first_state = cuda.jit(device=True)(_first_state)


def _words_body(s_h, s_l, inc_h, inc_l, jm_h, jm_l, jc_h, jc_l, out):
    """out[k] = word k of the PCG64 at state s, increment inc; (jm, jc): the jump by the grid size."""
    h, l = _first_state(s_h, s_l, inc_h, inc_l)
    for k in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[k] = _output(h, l)
        h, l = _mul_add128(h, l, jm_h, jm_l, jc_h, jc_l)


def _normals_body(s_h, s_l, inc_h, inc_l, jm_h, jm_l, jc_h, jc_l, out):
    """out[2k], out[2k + 1] = the Box-Muller pair of word k (an odd length drops the last sine)."""
    n = out.shape[0]
    h, l = _first_state(s_h, s_l, inc_h, inc_l)
    for k in range(cuda.grid(1), (n + 1) // 2, cuda.gridsize(1)):
        z0, z1 = _box_muller(_output(h, l))
        out[2 * k] = z0
        if 2 * k + 1 < n:
            out[2 * k + 1] = z1
        h, l = _mul_add128(h, l, jm_h, jm_l, jc_h, jc_l)


_CACHE = not SIMULATOR
_words_kernel = cuda.jit(cache=_CACHE)(_words_body)
_normals_kernel = cuda.jit(cache=_CACHE)(_normals_body)


# --- Host side --------------------------------------------------------------------------------

def jump(delta, inc):
    """(M_d, C_d) as Python ints: s_{k+d} = (M_d s_k + C_d) mod 2**128 for d = delta >= 0 steps of
    the PCG64 with increment inc (O(log d) products)."""
    acc_m, acc_c, cur_m, cur_c = 1, 0, MULTIPLIER, inc & _MASK128
    while delta > 0:
        if delta & 1:
            acc_m = (acc_m * cur_m) & _MASK128
            acc_c = (acc_c * cur_m + cur_c) & _MASK128
        cur_c = ((cur_m + 1) * cur_c) & _MASK128
        cur_m = (cur_m * cur_m) & _MASK128
        delta >>= 1
    return acc_m, acc_c


def _halves(x):
    return _U(x >> 64), _U(x & _MASK64)


def _bit_generator(rng):
    if not isinstance(rng, np.random.Generator) or type(rng.bit_generator) is not np.random.PCG64:
        got = (f"a Generator on {type(rng.bit_generator).__name__}"
               if isinstance(rng, np.random.Generator) else type(rng).__name__)
        raise ValueError(f"rng must be a numpy.random.Generator on numpy.random.PCG64; got {got}")
    return rng.bit_generator


def _launch(kernel, rng, words, out):
    """Run kernel for `words` words into out from rng's state; move rng on by `words` words."""
    bits = _bit_generator(rng)
    if words == 0:
        return out
    _require_device()
    blocks = min(MAX_BLOCKS, -(-words // THREADS))
    with bits.lock:
        state = bits.state
        s, inc = state["state"]["state"], state["state"]["inc"]
        jm, jc = jump(blocks * THREADS, inc)
        kernel[blocks, THREADS](*_halves(s), *_halves(inc), *_halves(jm), *_halves(jc), out)
        bits.advance(words)
        after = bits.state  # advance() clears the buffered 32-bit half; random_raw keeps it
        after["has_uint32"], after["uinteger"] = state["has_uint32"], state["uinteger"]
        bits.state = after
    return out


def _count(count):
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative int; got {count!r}")
    return int(count)


def random_raw(rng, count):
    """A device array (count,) uint64 holding ``rng.bit_generator.random_raw(count)``'s words.

    rng: numpy.random.Generator on numpy.random.PCG64; its state afterwards is the state after
    ``random_raw(count)``. count: a non-negative int.
    """
    count = _count(count)
    _bit_generator(rng)
    out = cuda.device_array(count, dtype=np.uint64)
    return _launch(_words_kernel, rng, count, out)


def standard_normal(rng, shape, dtype=np.float64):
    """A device array of ``shape`` and ``dtype`` (float32 or float64) holding the N(0, 1) numbers
    :func:`memnp.kernels.normal.standard_normal` draws from the same Generator state.

    Uses ceil(n / 2) words (n = the number of elements); rng's state afterwards is the state after
    drawing them on the CPU. Values within |z| <= 6.66 (dimensionless).
    """
    _bit_generator(rng)
    shape = _check_shape(shape)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    n = math.prod(shape)
    flat = cuda.device_array(n, dtype=dtype)
    _launch(_normals_kernel, rng, (n + 1) // 2, flat)
    return flat.reshape(shape)
