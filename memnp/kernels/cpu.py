"""Fast CPU crossbar kernels (Numba, parallel, vectorized): the default backend.

Same functions, shapes and units as :mod:`memnp.kernels.reference`: V (p, m) in volts, c (m, n) in
A/V, d_eps (m, n) in F/m (must be > 0), G (m, n) in siemens, I (p, n) in amperes. float32 inputs
are computed and returned in float32; any other input is converted to float64. c, d_eps, G and
grad_I are converted to V's precision. None of the functions builds the p x m x n tensor.

Poole-Frenkel algebra. With u = |V| and K = A**2 B / d_eps (1/V, computed once per call),

    I_ind = V c e,   e = exp(E),   E = sqrt(u K + A**2 EPS),
    dI_ind/dV = [V != 0] c e (1 + uK / (2E)),   dI_ind/dc = V e,
    dI_ind/d(d_eps) = -(c / d_eps) V e uK / (2E).

float64 kernels evaluate exactly this. float32 kernels drop the offset A**2 EPS = 1.6e-15 and
factor the square root, E = sqrt(u) sqrt(K), so that no square root or division is left in the
inner loops (then uK / (2E) = E / 2). The offset changes E by at most sqrt(A**2 EPS) = 4e-8 in
absolute terms, below float32 rounding of exp(E); the offset exists only to keep the derivative
finite at V = 0, and dI/dV there is 0 by the reference's rule anyway.

Loop layout. Forward: parallel over (block of examples, column) tasks; a task copies its column
of c and of the device term into contiguous vectors and runs, for each example of its block, a
vectorized loop over rows.
Power runs the forward kernel with weights V**2 and |c| instead (|V| |I_ind| = V**2 |c| e). Backward:
parallel over rows, examples innermost (vectorized, padded with zeros to :data:`EXAMPLE_PAD`),
two columns per pass; a row task owns row i of dL/dc and dL/d(d_eps) and column i of dL/dV, so
no two threads write the same element. Sums run in float32 SIMD lanes over blocks of at most
:data:`BLOCK` terms (:data:`COLUMN_BLOCK` columns for dL/dV) and the block sums in float64.

The exponential is :func:`memnp.kernels.fastexp.fast_exp_nonneg` (E >= 0; a polynomial LLVM
can vectorize);
the kernels are compiled on first use and cached on disk (``cache=True``).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .fastexp import fast_exp_nonneg, wide_vectors
from .physics import A2_B, A2_EPS

#: Block length of float32 lane sums before they are added to float64 accumulators.
BLOCK = 512
#: Columns whose dL/dV terms are summed in float32 before joining the float64 total.
COLUMN_BLOCK = 32
#: The backward kernel pads the example axis to a multiple of this (a multiple of the SIMD width
#: times LLVM's unroll factor), so that short batches still run in the vectorized loop.
EXAMPLE_PAD = 32
#: Examples per forward task: the task's voltages stay in cache while it runs through columns.
EXAMPLE_BLOCK = 64
#: Fast-math flags of the kernels: reassociation lets LLVM vectorize the sums; no 'nnan'/'ninf',
#: so NaN and inf inputs propagate to the outputs as in plain arithmetic.
KERNEL_FASTMATH = {"reassoc", "nsz", "arcp", "contract", "afn"}

#: Parallelize only the explicit prange loops (no automatic parfor conversion of array
#: expressions), which also keeps compilation short.
_PRANGE_ONLY = {"prange": True, "comprehension": False, "setitem": False, "reduction": False,
                "numpy": False, "stencil": False, "fusion": False, "inplace_binop": False}

_A2_EPS_F64 = float(A2_EPS)
_A2_B_F64 = float(A2_B)
_A2_B_F32 = np.float32(A2_B)


# --- precision-specific pieces of the PF formula -------------------------------------------------

def _exponent(x, k):
    """E from the per-example term x (see _example_term) and the per-device term k (see
    _device_term): x k = sqrt(u) sqrt(K) in float32, sqrt(x k + A^2 EPS) = sqrt(uK + A^2 EPS)
    in float64."""
    raise NotImplementedError


@overload(_exponent)
def _exponent_overload(x, k):
    if x == types.float32 and k == types.float32:
        return lambda x, k: x * k                      # sqrt(u) * sqrt(K)
    if x == types.float64 and k == types.float64:
        return lambda x, k: np.sqrt(x * k + _A2_EPS_F64)  # sqrt(u K + A^2 EPS)
    return None


def _half_uK_over_E(x, k, E):
    """uK / (2E) from x, k and E: E / 2 in float32 (where E = sqrt(uK)), x k / (2E) in float64."""
    raise NotImplementedError


@overload(_half_uK_over_E)
def _half_uK_over_E_overload(x, k, E):
    if x == types.float32:
        return lambda x, k, E: np.float32(0.5) * E
    if x == types.float64:
        return lambda x, k, E: 0.5 * x * k / E
    return None


# --- kernels ---------------------------------------------------------------------------------

def _device_term(d_eps):
    """Per-device term k of the exponent from d_eps: sqrt(K) (float32) or K (float64), where
    K = A^2 B / d_eps."""
    raise NotImplementedError


@overload(_device_term)
def _device_term_overload(d_eps):
    if d_eps == types.float32:
        return lambda d_eps: np.sqrt(_A2_B_F32 / d_eps)
    if d_eps == types.float64:
        return lambda d_eps: _A2_B_F64 / d_eps
    return None


def _example_term(u):
    """Per-example term x of the exponent from u = |V|: sqrt(u) (float32) or u (float64)."""
    raise NotImplementedError


@overload(_example_term)
def _example_term_overload(u):
    if u == types.float32:
        return lambda u: np.sqrt(u)
    if u == types.float64:
        return lambda u: u
    return None


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _pf_forward_task(j, first, last, W, X, c, d_eps, power, out):
    """out[first:last, j] = sum_i W[ex, i] C[i, j] exp(E[ex, i, j]) for examples first..last-1,
    with C = |c| if power else c.

    Gathers column j of C and of the device term into contiguous vectors, then runs the
    vectorized row loop for each example; float32 lane sums of BLOCK rows join a float64 total.
    """
    wide_vectors()
    m = W.shape[1]
    cj = np.empty(m, dtype=W.dtype)
    kj = np.empty(m, dtype=W.dtype)
    for i in range(m):
        cj[i] = abs(c[i, j]) if power else c[i, j]
        kj[i] = _device_term(d_eps[i, j])
    for ex in range(first, last):
        total = 0.0
        for start in range(0, m, BLOCK):
            block = W.dtype.type(0.0)
            # Unsigned indices: LLVM then knows they are not negative and loads contiguously.
            for i in range(np.uint64(start), np.uint64(min(start + BLOCK, m))):
                block += W[ex, i] * cj[i] * fast_exp_nonneg(_exponent(X[ex, i], kj[i]))
            total += block
        out[ex, j] = total


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _pf_forward_kernel(V, c, d_eps, power):
    """out[p, j] = sum_i W[p, i] C[i, j] exp(E[p, i, j]), accumulated in float64, where
    W = V and C = c for the currents (power False), W = V**2 and C = |c| for the device powers
    (power True: |V| |I_ind| = V**2 |c| e).

    V (p, m); c, d_eps (m, n). Returns out (p, n) float64. Parallel over (block of
    EXAMPLE_BLOCK examples, column) tasks, columns varying fastest, so that a thread keeps one
    block of examples in cache while it works through the columns.
    """
    p, m = V.shape
    n = c.shape[1]
    X = np.empty((p, m), dtype=V.dtype)
    for ex in range(p):
        for i in range(m):
            X[ex, i] = _example_term(abs(V[ex, i]))
    W = V
    if power:
        W = np.empty((p, m), dtype=V.dtype)
        for ex in range(p):
            for i in range(m):
                W[ex, i] = V[ex, i] * V[ex, i]
    out = np.empty((p, n), dtype=np.float64)
    blocks = (p + EXAMPLE_BLOCK - 1) // EXAMPLE_BLOCK
    for task in prange(blocks * n):
        wide_vectors()
        b = task // n
        j = task - b * n
        first = b * EXAMPLE_BLOCK
        _pf_forward_task(j, first, min(first + EXAMPLE_BLOCK, p), W, X, c, d_eps, power, out)
    return out


@njit(fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _pf_backward_row(i, V, c, d_eps, gT, need_V, grad_V, grad_c, grad_d_eps):
    """Row i of the backward pass: writes grad_c[i, :], grad_d_eps[i, :] and, if need_V,
    grad_V[:, i].

    gT (n, pp) is dL/dI transposed and zero-padded to pp >= p examples. Columns are handled in
    pairs, sharing the loads of V and of the dL/dV row.
    """
    wide_vectors()
    p, m = V.shape
    n = c.shape[1]
    pp = gT.shape[1]
    dtype = V.dtype
    zero = dtype.type(0.0)
    one = dtype.type(1.0)
    vi = np.zeros(pp, dtype=dtype)           # column i of V and its exponent term, zero-padded
    xi = np.zeros(pp, dtype=dtype)
    for q in range(p):
        vi[q] = V[q, i]
        xi[q] = _example_term(abs(vi[q]))
    total_V = np.zeros(pp, dtype=np.float64)
    block_V = np.zeros(pp, dtype=dtype)      # dL/dV terms of one block of columns
    for j0 in range(0, n, COLUMN_BLOCK):
        j1 = min(j0 + COLUMN_BLOCK, n)
        for ja in range(j0, j1, 2):
            # Columns ja and jb = ja + 1; past the last column jb repeats ja with weight 0.
            jb = min(ja + 1, j1 - 1)
            ca = c[i, ja]
            cb = c[i, jb] if jb > ja else zero
            ka = _device_term(d_eps[i, ja])
            kb = _device_term(d_eps[i, jb])
            total_ca = 0.0
            total_da = 0.0
            total_cb = 0.0
            total_db = 0.0
            for start in range(0, pp, BLOCK):
                block_ca = zero
                block_da = zero
                block_cb = zero
                block_db = zero
                for q in range(np.uint64(start), np.uint64(min(start + BLOCK, pp))):
                    x = xi[q]
                    v = vi[q]
                    Ea = _exponent(x, ka)
                    ga = gT[ja, q] * fast_exp_nonneg(Ea)       # dL/dI * e
                    ha = _half_uK_over_E(x, ka, Ea)
                    ta = ga * v
                    block_ca += ta
                    block_da += ta * ha
                    Eb = _exponent(x, kb)
                    gb = gT[jb, q] * fast_exp_nonneg(Eb)
                    hb = _half_uK_over_E(x, kb, Eb)
                    tb = gb * v
                    block_cb += tb
                    block_db += tb * hb
                    if need_V:
                        block_V[q] += ca * ga * (one + ha) + cb * gb * (one + hb)
                total_ca += block_ca
                total_da += block_da
                total_cb += block_cb
                total_db += block_db
            grad_c[i, ja] = total_ca
            grad_d_eps[i, ja] = -total_da * (np.float64(ca) / np.float64(d_eps[i, ja]))
            if jb > ja:
                grad_c[i, jb] = total_cb
                grad_d_eps[i, jb] = -total_db * (np.float64(cb) / np.float64(d_eps[i, jb]))
        for q in range(pp):
            total_V[q] += block_V[q]
            block_V[q] = zero
    if need_V:
        for q in range(p):
            grad_V[q, i] = total_V[q] if vi[q] != zero else zero


@njit(parallel=_PRANGE_ONLY, fastmath=KERNEL_FASTMATH, error_model="numpy", cache=True)
def _pf_backward_kernel(V, c, d_eps, grad_I, need_V):
    """The PF vector-Jacobian product, parallel over rows, examples innermost.

    V (p, m); c, d_eps (m, n); grad_I (p, n). Returns (grad_V (p, m), grad_c (m, n),
    grad_d_eps (m, n)) in V's dtype (grad_V (0, 0) unless need_V). Each row task owns row i of grad_c and grad_d_eps and
    column i of grad_V, so no two threads write the same element. The example axis is padded
    with zeros to a multiple of :data:`EXAMPLE_PAD` so that the vectorized loop covers it
    without a scalar remainder.
    """
    p, m = V.shape
    n = c.shape[1]
    pp = (p + EXAMPLE_PAD - 1) // EXAMPLE_PAD * EXAMPLE_PAD
    gT = np.zeros((n, pp), dtype=V.dtype)          # padding: dL/dI = 0 adds nothing
    for ex in range(p):
        for j in range(n):
            gT[j, ex] = grad_I[ex, j]
    grad_V = np.empty((p, m) if need_V else (0, 0), dtype=V.dtype)
    grad_c = np.empty((m, n), dtype=V.dtype)
    grad_d_eps = np.empty((m, n), dtype=V.dtype)
    for i in prange(m):
        wide_vectors()
        _pf_backward_row(i, V, c, d_eps, gT, need_V, grad_V, grad_c, grad_d_eps)
    return grad_V, grad_c, grad_d_eps


# --- Python wrappers ----------------------------------------------------------------------------

def _float_dtype(V):
    return np.dtype(np.float32) if np.asarray(V).dtype == np.float32 else np.dtype(np.float64)


def _as_matrix(name, a, dtype, shape=None):
    """a as a C-contiguous 2-D array of dtype, checking its shape."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array; got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {a.shape}")
    return a


def _check_pf(V, c, d_eps):
    dtype = _float_dtype(V)
    V = _as_matrix("V", V, dtype)
    c = _as_matrix("c", c, dtype)
    d_eps = _as_matrix("d_eps", d_eps, dtype, c.shape)
    if V.shape[1] != c.shape[0]:
        raise ValueError(f"V has {V.shape[1]} columns but c and d_eps have {c.shape[0]} rows "
                         "(V is examples x rows, c and d_eps are rows x columns)")
    return V, c, d_eps


def pf_currents(V, c, d_eps):
    """Column currents I (p, n) in amperes of a PF crossbar: I[p, j] = sum_i I_ind[p, i, j]."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    return _pf_forward_kernel(V, c, d_eps, False).astype(V.dtype)


def pf_currents_vjp(V, c, d_eps, grad_I, need_V=True):
    """Vector-Jacobian product of :func:`pf_currents`.

    grad_I (p, n) is dL/dI. Returns (dL/dV (p, m), dL/dc (m, n), dL/d(d_eps) (m, n)) in V's
    precision; dL/dV is None (not computed) when ``need_V`` is false. dL/dV is 0 where V == 0
    exactly (the reference's rule).
    """
    V, c, d_eps = _check_pf(V, c, d_eps)
    grad_I = _as_matrix("grad_I", grad_I, V.dtype, (V.shape[0], c.shape[1]))
    grad_V, grad_c, grad_d_eps = _pf_backward_kernel(V, c, d_eps, grad_I, bool(need_V))
    return (grad_V if need_V else None), grad_c, grad_d_eps


def pf_power(V, c, d_eps):
    """Average power (W) of a PF crossbar over the batch: sum of |V| |I_ind| / p (nan if p = 0)."""
    V, c, d_eps = _check_pf(V, c, d_eps)
    if V.shape[0] == 0:
        return float("nan")
    return float(_pf_forward_kernel(V, c, d_eps, True).sum() / V.shape[0])


def ideal_currents(V, G):
    """Column currents I = V G (p, n) of an ideal crossbar in amperes (BLAS), in V's precision."""
    dtype = _float_dtype(V)
    V = _as_matrix("V", V, dtype)
    G = _as_matrix("G", G, dtype)
    if V.shape[1] != G.shape[0]:
        raise ValueError(f"V has {V.shape[1]} columns but G has {G.shape[0]} rows")
    return V @ G


def ideal_power(V, G):
    """Average power (W) of an ideal crossbar: sum of |V| |V G_ij| over devices, divided by p.

    |V_pi| |V_pi G_ij| = V_pi**2 |G_ij|, so the sum is sum_i (sum_p V_pi**2)(sum_j |G_ij|),
    computed in float64 without forming any p x m x n array (valid for G of any sign); nan if
    p = 0.
    """
    V = _as_matrix("V", V, np.float64)
    G = _as_matrix("G", G, np.float64)
    if V.shape[1] != G.shape[0]:
        raise ValueError(f"V has {V.shape[1]} columns but G has {G.shape[0]} rows")
    if V.shape[0] == 0:
        return float("nan")
    return float(np.dot((V * V).sum(axis=0), np.abs(G).sum(axis=1)) / V.shape[0])
