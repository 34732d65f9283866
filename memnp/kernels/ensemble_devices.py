"""PF device parameters, their VJP and the input-gradient scatter with a K axis (issue 15).

Layout as in :mod:`memnp.kernels.ensemble_layout`: G (S), c (A/V), d_eps (F/m) and their
gradients are row-packed (R, n), member k's block rows offsets[k]:offsets[k + 1]; residuals E
(2, R, n) (e_c then e_d); per-member slopes and intercepts (K, 2) float64 (s_c, s_d) and (b_c,
b_d). One Numba call, parallel over members, runs for each member the loop of
:mod:`memnp.kernels.pf_devices` on its block with its numbers, so member k's result equals
``pf_devices.device_parameters(G_k, E_k, slopes[k], intercepts[k])`` (and ``..._vjp``) bit for
bit. :func:`draw_device_parameters` also draws the residuals: member k's words come from its own
PCG64 (:func:`memnp.kernels.pcg64.fill`: the words and state of ``random_raw``), so the members'
Generators advance in one parallel call instead of one after the other.

The ``*_reference`` functions are those loops over members, the references the tests compare
against (pf_devices' own references are the NumPy code of
:class:`memnp.crossbar.nonidealities.IVNonlinearityPF`).
"""
import numpy as np
from numba import njit, prange

from . import pcg64
from .arrays import contiguous_floats
from .cpu import _PRANGE_ONLY
from .ensemble_layout import MemberRows
from .pf_devices import _parameters, _parameters_vjp, _residuals, device_parameters_vjp
from .pf_devices import device_parameters as single_device_parameters

__all__ = ["device_parameters", "draw_device_parameters", "device_parameters_vjp_members", "scatter_rows",
           "device_parameters_reference", "draw_device_parameters_reference", "device_parameters_vjp_reference",
           "scatter_rows_reference"]


@njit(parallel=_PRANGE_ONLY, cache=True)
def _parameters_members(G, e_c, e_d, offsets, slopes, intercepts, n, c, d_eps):
    for k in prange(offsets.size - 1):
        a = offsets[k] * n
        b = offsets[k + 1] * n
        _parameters(G[a:b], e_c[a:b], e_d[a:b], slopes[k, 0], intercepts[k, 0], slopes[k, 1],
                    intercepts[k, 1], c[a:b], d_eps[a:b])


@njit(parallel=_PRANGE_ONLY, cache=True)
def _parameters_vjp_members(G, c, d_eps, grad_c, grad_d_eps, offsets, slopes, n, grad_G):
    for k in prange(offsets.size - 1):
        a = offsets[k] * n
        b = offsets[k + 1] * n
        _parameters_vjp(G[a:b], c[a:b], d_eps[a:b], grad_c[a:b], grad_d_eps[a:b], slopes[k, 0],
                        slopes[k, 1], grad_G[a:b])


@njit(parallel=_PRANGE_ONLY, cache=True)
def _draw_members(states, drawn, offsets, n, factors, G, slopes, intercepts, with_parameters,
                  e_c, e_d, c, d_eps, after):
    for k in prange(offsets.size - 1):
        a = offsets[k] * n
        b = offsets[k + 1] * n
        if drawn[k]:
            words = np.empty(b - a, np.uint64)
            after[k, 0], after[k, 1] = pcg64.fill(states[k, 0], states[k, 1], states[k, 2], states[k, 3], words)
            _residuals(words, factors[k, 0, 0], factors[k, 0, 1], factors[k, 1, 0], factors[k, 1, 1],
                       e_c[a:b], e_d[a:b])
        if with_parameters:
            _parameters(G[a:b], e_c[a:b], e_d[a:b], slopes[k, 0], intercepts[k, 0], slopes[k, 1],
                        intercepts[k, 1], c[a:b], d_eps[a:b])


def draw_device_parameters(G, residuals, layout, states, drawn, factors, slopes, intercepts, parameters=True):
    """Draw the residuals of the members with ``drawn[k]`` into ``residuals`` (2, R, n) (the
    others' must be there already) and, when ``parameters``, compute (c, d_eps) (R, n) from them
    as :func:`device_parameters` does. Member k's words: one per device from the PCG64 at
    ``states[k]`` = (s_hi, s_lo, inc_hi, inc_lo) uint64, as ``random_raw`` makes them. Returns
    (c, d_eps, after): after (K, 2) uint64 the states (s_hi, s_lo) after the drawn members' words
    (c and d_eps None without ``parameters``)."""
    G = np.asarray(G)
    _check(layout, (G,), residuals)
    K = layout.members
    slopes, intercepts = _per_member("slopes", slopes, K), _per_member("intercepts", intercepts, K)
    states = np.ascontiguousarray(states, dtype=np.uint64)
    drawn = np.ascontiguousarray(drawn, dtype=np.bool_)
    factors = np.ascontiguousarray(factors, dtype=np.float64)
    if states.shape != (K, 4) or drawn.shape != (K,) or factors.shape != (K, 2, 2):
        raise ValueError(f"states, drawn and factors must have shapes ({K}, 4), ({K},) and ({K}, 2, 2); got "
                         f"{states.shape}, {drawn.shape} and {factors.shape}")
    c = np.empty_like(G) if parameters else np.empty((0, G.shape[1]), G.dtype)
    d_eps = np.empty_like(c)
    after = np.zeros((K, 2), np.uint64)
    _draw_members(states, drawn, layout.offsets, G.shape[1], factors, G.reshape(-1), slopes, intercepts,
                  bool(parameters), residuals[0].reshape(-1), residuals[1].reshape(-1), c.reshape(-1),
                  d_eps.reshape(-1), after)
    return (c, d_eps, after) if parameters else (None, None, after)


def _check(layout, arrays, residuals=None):
    if not isinstance(layout, MemberRows):
        raise ValueError(f"layout must be a MemberRows; got {type(layout).__name__}")
    if not contiguous_floats(*arrays) or arrays[0].ndim != 2 or arrays[0].shape[0] != layout.total:
        raise ValueError(f"G, c, d_eps and their gradients must be row-packed C-contiguous float32 or "
                         f"float64 arrays of one shape (R, n), R = {layout.total}")
    if residuals is not None and (not contiguous_floats(residuals, dtypes=(arrays[0].dtype,))
                                  or residuals.shape != (2,) + arrays[0].shape):
        raise ValueError(f"residuals must be a C-contiguous {arrays[0].dtype} array of shape "
                         f"{(2,) + arrays[0].shape}; got {residuals.dtype} {residuals.shape}")


def _per_member(name, values, K):
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape != (K, 2):
        raise ValueError(f"{name} must hold one pair per member: shape ({K}, 2); got {values.shape}")
    return values


def device_parameters(G, residuals, layout, slopes, intercepts):
    """(c, d_eps) (R, n) in G's dtype from row-packed G (R, n) and residuals (2, R, n); member k
    uses slopes[k] and intercepts[k]."""
    G = np.asarray(G)
    _check(layout, (G,), residuals)
    K = layout.members
    slopes, intercepts = _per_member("slopes", slopes, K), _per_member("intercepts", intercepts, K)
    c = np.empty_like(G)
    d_eps = np.empty_like(G)
    _parameters_members(G.reshape(-1), residuals[0].reshape(-1), residuals[1].reshape(-1), layout.offsets,
                        slopes, intercepts, G.shape[1], c.reshape(-1), d_eps.reshape(-1))
    return c, d_eps


def device_parameters_vjp_members(G, c, d_eps, grad_c, grad_d_eps, layout, slopes):
    """dL/dG (R, n) from dL/dc and dL/d(d_eps), all row-packed (R, n) of one dtype."""
    _check(layout, (G, c, d_eps, grad_c, grad_d_eps))
    slopes = _per_member("slopes", slopes, layout.members)
    grad_G = np.empty_like(G)
    _parameters_vjp_members(G.reshape(-1), c.reshape(-1), d_eps.reshape(-1), grad_c.reshape(-1),
                            grad_d_eps.reshape(-1), layout.offsets, slopes, G.shape[1], grad_G.reshape(-1))
    return grad_G


@njit(parallel=_PRANGE_ONLY, cache=True)
def _scatter(grad_V, rows, offsets, p, full):
    for k in prange(offsets.size - 1):
        o0 = offsets[k]
        r = offsets[k + 1] - o0
        block = grad_V[p * o0:p * (o0 + r)]
        for ex in range(p):
            for s in range(r):
                full[k, ex, rows[o0 + s]] = block[ex * r + s]


def scatter_rows(grad_V, layout, p):
    """(K, p, m): member k's voltage-packed block (p, r_k) of grad_V placed at its rows, zeros at
    the rows it did not read (m = layout.n_rows)."""
    if not contiguous_floats(grad_V, ndim=1) or grad_V.size != p * layout.total:
        raise ValueError(f"grad_V must be voltage-packed: a C-contiguous float array of p R = "
                         f"{p * layout.total} entries")
    full = np.zeros((layout.members, p, layout.n_rows), dtype=grad_V.dtype)
    _scatter(grad_V, layout.rows, layout.offsets, p, full)
    return full


# --- references: loops over members of the single-network functions --------------------------------

def draw_device_parameters_reference(G, residuals, layout, generators, factors, slopes, intercepts):
    """Member by member: residuals from generators[k].bit_generator.random_raw (pf_devices.residuals)
    and the single loop's device parameters."""
    from .pf_devices import residuals as draw
    for k, generator in enumerate(generators):
        a, b = layout.offsets[k], layout.offsets[k + 1]
        residuals[:, a:b] = draw(generator, factors[k], (b - a, G.shape[1]), G.dtype)
    return device_parameters_reference(G, residuals, layout, slopes, intercepts)


def device_parameters_reference(G, residuals, layout, slopes, intercepts):
    c, d_eps = np.empty_like(G), np.empty_like(G)
    for k in range(layout.members):
        a, b = layout.offsets[k], layout.offsets[k + 1]
        c[a:b], d_eps[a:b] = single_device_parameters(G[a:b], residuals[:, a:b], slopes[k], intercepts[k])
    return c, d_eps


def device_parameters_vjp_reference(G, c, d_eps, grad_c, grad_d_eps, layout, slopes):
    grad_G = np.empty_like(G)
    for k in range(layout.members):
        a, b = layout.offsets[k], layout.offsets[k + 1]
        grad_G[a:b] = device_parameters_vjp(G[a:b], c[a:b], d_eps[a:b], grad_c[a:b], grad_d_eps[a:b], slopes[k])
    return grad_G


def scatter_rows_reference(grad_V, layout, p):
    full = np.zeros((layout.members, p, layout.n_rows), dtype=grad_V.dtype)
    for k in range(layout.members):
        full[k][:, layout.member_rows(k)] = layout.block(grad_V, k, p)
    return full
