"""Dense reference: Newton's method on the 2 m n nodal unknowns with numpy.linalg.solve (float64).

Slow and obvious, for small arrays only: the ``numpy`` backend of :class:`LineResistance` and the
oracle the fast solver and its adjoint are tested against. Every example is solved on its own:
y <- y - J^-1 F(y) with F, J from :mod:`memnp.circuit.assemble` (J densified), halving the step while it
does not reduce ||F||, until no step reduces ||F|| any more (rounding); converged when then
||F||_2 <= tol times the norm of the summed magnitudes of the currents at every node. The VJP solves
J^T lambda = dL/dy at the solution (implicit function theorem), one transposed dense solve per example.

Shapes: V (p, m) in V; G (m, n) in S or devices = (c, d_eps), each (m, n); node voltages U, W
(p, m, n) in V; device currents I_d (p, m, n) and output currents I (p, n) in A.
"""
import numpy as np

from . import assemble
from .network import Network, line_voltages
from .report import CONVERGED, MAX_ITER, NON_FINITE, SolveReport, empty_report
from ..kernels.device_law import pf_current_slope_array, pf_partials_array

#: Largest number of unknowns the dense reference accepts.
MAX_UNKNOWNS = 4096


def device_law(v, G, devices):
    """(I_d, dI_d/dv), each v's shape (p, m, n), float64: linear devices of conductance G (m, n)
    when ``devices`` is None, else PF devices (c, d_eps)."""
    if devices is None:
        G = np.asarray(G, dtype=np.float64)
        return v * G, np.broadcast_to(G, v.shape).copy()
    return pf_current_slope_array(v, *devices)


def solve(V, G, devices, r_word, r_bit, tol=1e-13, max_iter=100):
    """Solve every example: returns a dict with U, W, I_d, s (slopes), I (output currents), the
    net, the report and what the VJP needs."""
    V = np.asarray(V, dtype=np.float64)
    p, m = V.shape
    n = (np.shape(G) if devices is None else np.shape(devices[0]))[1]
    net = Network(m, n, r_word, r_bit)
    if net.n_unknowns > MAX_UNKNOWNS:
        raise ValueError(f"the numpy (dense reference) backend solves at most {MAX_UNKNOWNS} node "
                         f"voltages; {net.label()} has {net.n_unknowns} (use the cpu backend)")
    U0 = np.repeat(V[:, :, None], n, axis=2)
    y = assemble.unknowns(net, U0, np.zeros_like(U0))
    status = np.zeros(p, np.int8)
    iterations = np.zeros(p, np.int64)
    rel = np.zeros(p)
    res_A = np.zeros(p)
    step = np.zeros(p)
    if net.n_unknowns:
        L = assemble.wire_matrix(net).toarray()
        b = assemble.driver_currents(net, V)
        for e in range(p):
            ye = y[e:e + 1]
            F, scale, s = _residual(net, L, b[e:e + 1], ye, V[e:e + 1], G, devices)
            norm = np.linalg.norm(F)
            status[e] = MAX_ITER
            # Newton until no step reduces ||F|| any more (rounding reached), then judge.
            for it in range(max_iter):
                if not np.isfinite(norm):
                    break
                J = L + assemble.device_stamps(net, s[0]).toarray()
                delta = np.linalg.solve(J, -F[0])[None]
                lam = 1.0
                for _ in range(40):
                    trial = ye + lam * delta
                    F_t, scale_t, s_t = _residual(net, L, b[e:e + 1], trial, V[e:e + 1], G, devices)
                    norm_t = np.linalg.norm(F_t)
                    if norm_t < norm:
                        break
                    lam /= 2
                else:
                    break
                step[e] = np.abs(trial - ye).max()
                ye, F, scale, s, norm = trial, F_t, scale_t, s_t, norm_t
                iterations[e] = it + 1
            if not np.isfinite(norm):
                status[e] = NON_FINITE
            elif norm <= tol * scale:
                status[e] = CONVERGED
            y[e] = ye[0]
            rel[e] = norm / max(scale, 1e-300)
            res_A[e] = np.abs(F).max() if F.size else 0.0
        report = SolveReport(status, iterations, np.zeros(p, np.int64), rel, res_A, step, tol,
                             "dense Newton (numpy.linalg.solve)")
    else:
        report = empty_report(p, tol, "no unknowns (r_word = r_bit = 0)")
    U, W = assemble.node_voltages(net, y, V)
    I_d, s = device_law(U - W, G, devices)
    return {"net": net, "V": V, "G": G, "devices": devices, "U": U, "W": W, "I_d": I_d, "s": s,
            "I": assemble.output_currents(net, U, W, I_d), "report": report}


def _residual(net, L, b, y, V, G, devices):
    """F (1, N), its scale and the slopes. The scale is the norm of the summed magnitudes of the
    terms at every node (|L| |y| + |b| + |D(I_d)|): node voltages carry rounding of eps |V|, which
    the wire conductances turn into currents far above the device currents, so a residual
    relative to the device currents alone has a floor near eps |V| / (r |I_d|)."""
    U, W = assemble.node_voltages(net, y, V)
    I_d, s = device_law(U - W, G, devices)
    D = assemble.device_term(net, I_d)[0]
    F = (L @ y[0] - b[0] + D)[None]
    scale = np.linalg.norm(np.abs(L) @ np.abs(y[0]) + np.abs(b[0]) + np.abs(D))
    return F, max(scale, 1e-300), s


def vjp(state, grad_I):
    """(dL/dV (p, m), dL/dG (m, n)) for linear devices or (dL/dV, (dL/dc, dL/d(d_eps))) for PF,
    from dL/dI (p, n), by one transposed dense solve per example at the solution."""
    net, V, G, devices = state["net"], state["V"], state["G"], state["devices"]
    U, W, s = state["U"], state["W"], state["s"]
    g = np.asarray(grad_I, dtype=np.float64)
    p, m, n = U.shape
    k = net.size
    # weight[e, i, j]: dL/dI_d[e, i, j] through every path (explicit and through the nodes).
    weight = np.zeros((p, m, n))
    grad_V = np.zeros((p, m))
    if net.n_unknowns:
        L = assemble.wire_matrix(net).toarray()
        for e in range(p):
            # dL/dy (explicit): I = W[m-1] / r_bit, or sum_i I_d when r_bit = 0.
            dLdy = np.zeros(net.n_unknowns)
            if net.bit_unknown:
                dLdy[net.bit_index(m - 1, 0):net.bit_index(m - 1, 0) + n] = g[e] / net.r_bit
            else:                             # word side unknown, W = 0: dI_j/dU[i,j] = s_ij
                dLdy[:k] = (s[e] * g[e][None, :]).reshape(-1)
            J = L + assemble.device_stamps(net, s[e]).toarray()
            lam = np.linalg.solve(J.T, dLdy)
            lam_w = lam[:k].reshape(m, n) if net.word_unknown else np.zeros((m, n))
            offset = k if net.word_unknown else 0
            lam_b = lam[offset:offset + k].reshape(m, n) if net.bit_unknown else np.zeros((m, n))
            explicit = np.zeros((m, n)) if net.bit_unknown else np.broadcast_to(g[e][None, :], (m, n))
            weight[e] = explicit - lam_w + lam_b
            if net.word_unknown:              # F_word(i, 0) holds -g_w V[i]
                grad_V[e] = lam_w[:, 0] / net.r_word
            else:                             # v = V[i] - W: dF_bit/dV[i] = -s, dI/dV explicit
                grad_V[e] = (weight[e] * s[e]).sum(axis=1)
    else:
        weight = np.broadcast_to(g[:, None, :], (p, m, n)).copy()
        grad_V = (weight * s).sum(axis=2)
    v = U - W
    if devices is None:
        return grad_V, (weight * v).sum(axis=0)
    dc, dd = pf_partials_array(v, *devices)
    return grad_V, ((weight * dc).sum(axis=0), (weight * dd).sum(axis=0))


def power(state):
    """dict(device=W, wires=W, total=W), each averaged over the examples."""
    net, V, I_d = state["net"], state["V"], state["I_d"]
    p = V.shape[0]
    device = float((I_d * (state["U"] - state["W"])).sum() / p)
    _, _, word_segments, bit_segments = line_voltages(net, I_d, V)
    wires = float((net.r_word * (word_segments ** 2).sum() + net.r_bit * (bit_segments ** 2).sum()) / p)
    return {"device": device, "wires": wires, "total": device + wires}
