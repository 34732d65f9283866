"""NumPy's PCG64 raw words, made by a Numba loop: the words of ``bit_generator.random_raw(n)``,
and the bit generator's state afterwards, bit for bit, in less time.

PCG64 (O'Neill's PCG XSL-RR 128/64, NumPy's default bit generator) is a 128-bit linear
congruential generator, s_{k+1} = M s_k + inc (mod 2**128), whose k-th word is the XSL-RR output
of s_{k+1}: the 64-bit xor of its two halves, rotated right by its top 6 bits. NumPy makes the
words one call at a time, each step waiting for the previous one's 128-bit product. The loop here
runs LANES interleaved streams, lane j taking the words j, j + LANES, ... with the jump
s_{k+LANES} = M^LANES s_k + inc (M^(LANES-1) + ... + M + 1), so the lanes' products overlap.
The 128-bit arithmetic is in 64-bit halves with an LLVM 64 x 64 -> 128-bit multiply for the high
half of the low product.

:func:`raw_words` reads the state, runs the loop, and writes the state back (``random_raw`` is the
reference; tested to give the same words and state). It takes only ``numpy.random.PCG64`` (exactly;
other bit generators and short requests go to ``random_raw``).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: PCG's default 128-bit multiplier (NumPy's PCG64).
MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
LANES = 8
#: Requests below this many words go to ``random_raw`` (reading and writing the state costs a few us).
MIN_WORDS = 2048
_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
_U = np.uint64
_SHIFT58, _SHIFT63 = _U(58), _U(63)


@intrinsic
def _mul_high(typingctx, a, b):
    """The high 64 bits of the 128-bit product of two uint64."""
    if a != types.uint64 or b != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
    return types.uint64(types.uint64, types.uint64), codegen


@njit(error_model="numpy", cache=True)
def _output(hi, lo):
    """XSL-RR: (hi ^ lo) rotated right by hi >> 58."""
    x = hi ^ lo
    r = hi >> _SHIFT58
    return (x >> r) | (x << ((_U(64) - r) & _SHIFT63))


@njit(error_model="numpy", cache=True)
def _step(h, l, m_hi, m_lo, c_hi, c_lo):
    """(M s + C) mod 2**128 in 64-bit halves."""
    p_lo = l * m_lo
    p_hi = _mul_high(l, m_lo) + l * m_hi + h * m_lo
    s_lo = p_lo + c_lo
    return p_hi + c_hi + _U(s_lo < p_lo), s_lo


@njit(error_model="numpy", cache=True)
def _words(hi, lo, m_hi, m_lo, c_hi, c_lo, out, last):
    """out[k] = output(s_{k+1}) for the lanes' states (hi, lo) (LANES,) = s_1 .. s_LANES, each
    advanced by (M, C) = (m_hi m_lo, c_hi c_lo) per use; last (2,) gets s_n (n = out.size >= 1)."""
    n = out.size
    h0, h1, h2, h3, h4, h5, h6, h7 = hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7]
    l0, l1, l2, l3, l4, l5, l6, l7 = lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7]
    blocks = n // LANES
    for b in range(blocks):
        k = b * LANES
        out[k] = _output(h0, l0)
        out[k + 1] = _output(h1, l1)
        out[k + 2] = _output(h2, l2)
        out[k + 3] = _output(h3, l3)
        out[k + 4] = _output(h4, l4)
        out[k + 5] = _output(h5, l5)
        out[k + 6] = _output(h6, l6)
        out[k + 7] = _output(h7, l7)
        if b == blocks - 1:
            last[0], last[1] = h7, l7
        h0, l0 = _step(h0, l0, m_hi, m_lo, c_hi, c_lo)
        h1, l1 = _step(h1, l1, m_hi, m_lo, c_hi, c_lo)
        h2, l2 = _step(h2, l2, m_hi, m_lo, c_hi, c_lo)
        h3, l3 = _step(h3, l3, m_hi, m_lo, c_hi, c_lo)
        h4, l4 = _step(h4, l4, m_hi, m_lo, c_hi, c_lo)
        h5, l5 = _step(h5, l5, m_hi, m_lo, c_hi, c_lo)
        h6, l6 = _step(h6, l6, m_hi, m_lo, c_hi, c_lo)
        h7, l7 = _step(h7, l7, m_hi, m_lo, c_hi, c_lo)
    # the last n % LANES words: the first lanes once more
    hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7] = h0, h1, h2, h3, h4, h5, h6, h7
    lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7] = l0, l1, l2, l3, l4, l5, l6, l7
    for j in range(n - blocks * LANES):
        out[blocks * LANES + j] = _output(hi[j], lo[j])
        last[0], last[1] = hi[j], lo[j]


def _jump(steps):
    """(M^steps, inc factor sum_{i<steps} M^i), mod 2**128."""
    mult, total, power = 1, 0, 1
    for _ in range(steps):
        total = (total + power) & _MASK128
        power = (power * MULTIPLIER) & _MASK128
    mult = power
    return mult, total


_M_LANES, _SUM_LANES = _jump(LANES)


_M_HI, _M_LO = _U(MULTIPLIER >> 64), _U(MULTIPLIER & _MASK64)
_ML_HI, _ML_LO = _U(_M_LANES >> 64), _U(_M_LANES & _MASK64)
_SL_HI, _SL_LO = _U(_SUM_LANES >> 64), _U(_SUM_LANES & _MASK64)


@njit(error_model="numpy", cache=True)
def fill(s_hi, s_lo, inc_hi, inc_lo, out):
    """Fill out (n,) uint64 with the words of a PCG64 at state (s_hi, s_lo), increment (inc_hi,
    inc_lo); returns the state after them (hi, lo). Numba code (the loop of :func:`words_from`)."""
    n = out.size
    if n == 0:
        return s_hi, s_lo
    zero = _U(0)
    hi = np.empty(LANES, np.uint64)
    lo = np.empty(LANES, np.uint64)
    h, l = s_hi, s_lo
    for j in range(LANES):
        h, l = _step(h, l, _M_HI, _M_LO, inc_hi, inc_lo)
        hi[j], lo[j] = h, l
    c_hi, c_lo = _step(inc_hi, inc_lo, _SL_HI, _SL_LO, zero, zero)   # inc (M^(LANES-1) + ... + M + 1)
    last = np.empty(2, np.uint64)
    _words(hi, lo, _ML_HI, _ML_LO, c_hi, c_lo, out, last)
    return last[0], last[1]


def words_from(s, inc, count):
    """((count,) uint64 words, the state after them) of a PCG64 at state s with increment inc
    (the 128-bit integers of ``bit_generator.state["state"]``)."""
    out = np.empty(count, dtype=np.uint64)
    hi, lo = fill(_U(s >> 64), _U(s & _MASK64), _U(inc >> 64), _U(inc & _MASK64), out)
    return out, (int(hi) << 64) | int(lo)


def raw_words(bits, count):
    """(count,) uint64: ``bits.random_raw(count)``, and the same state left in ``bits``."""
    if type(bits) is not np.random.PCG64 or count < MIN_WORDS:
        return bits.random_raw(count)
    with bits.lock:
        state = bits.state
        out, state["state"]["state"] = words_from(state["state"]["state"], state["state"]["inc"], count)
        bits.state = state
    return out


def raw_words_numpy(bits, count):
    """The reference: NumPy's own ``random_raw``."""
    return bits.random_raw(count)
