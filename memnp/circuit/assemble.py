"""Sparse nodal equations of a crossbar with line resistance: wire matrix, driver terms, device
stamps of the Jacobian, and the KCL residual.

With y the unknown node voltages of :class:`~memnp.circuit.network.Network` (word nodes, then bit
nodes; a side of zero resistance is not among them), the nodal equations are F(y) = 0 with F the
net current leaving every unknown node (A):

    word node (i, j):  g_w (U[i,j] - U[i,j-1]) + g_w (U[i,j] - U[i,j+1]) + I_d(U[i,j] - W[i,j])
    bit node (i, j):   g_b (W[i,j] - W[i-1,j]) + g_b (W[i,j] - W[i+1,j]) - I_d(U[i,j] - W[i,j])

where g_w = 1 / r_word and g_b = 1 / r_bit (S), U[i,-1] = V[i] (the driver), W[m,j] = 0 (the
amplifier), and the terms to j = n (word line's open end) and i = -1 (bit line's open end) are
absent. Hence F(y) = L y - b(V) + D(I_d), with L the wire matrix (:func:`wire_matrix`), b the
driver currents g_w V[i] at word nodes (i, 0) (:func:`driver_currents`) and D the device currents
added to word nodes and subtracted from bit nodes. The Jacobian is L plus the device stamps
(:func:`device_stamps`): a device of slope s = dI_d/dv adds +s at (word, word) and (bit, bit),
-s at (word, bit) and (bit, word); with one side known only its diagonal +s remains.
The Jacobian is symmetric, and positive definite when every s >= 0 (each line is tied to a fixed
potential at one end).
"""
import numpy as np
import scipy.sparse as sp

from .network import Network


def _line_laplacian(length, g, grounded_first):
    """(length x length) matrix of a line of ``length`` nodes with segments of conductance g
    between neighbours and one more segment to a fixed potential at its first node
    (``grounded_first``) or at its last node."""
    diag = np.full(length, 2.0 * g)
    if grounded_first:
        diag[-1] = g
    else:
        diag[0] = g
    if length == 1:
        diag[:] = g
    off = np.full(length - 1, -g)
    return sp.diags([off, diag, off], [-1, 0, 1], shape=(length, length), format="csr")


def wire_matrix(net: Network):
    """L (N, N) csr, N = net.n_unknowns: the segment conductances between unknown nodes and to the
    driver / amplifier (S)."""
    m, n = net.m, net.n
    blocks = []
    if net.word_unknown:      # m word lines of n nodes, the driver before node 0
        blocks.append(sp.kron(sp.identity(m), _line_laplacian(n, 1.0 / net.r_word, True)))
    if net.bit_unknown:       # n bit lines of m nodes (stride n), the amplifier after node m-1
        blocks.append(sp.kron(_line_laplacian(m, 1.0 / net.r_bit, False), sp.identity(n)))
    if not blocks:
        return sp.csr_matrix((0, 0))
    return sp.block_diag(blocks, format="csr")


def device_stamps(net: Network, s):
    """Device part of the Jacobian (N, N) csr from the slopes s (m, n) in S."""
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    k = net.size
    if net.word_unknown and net.bit_unknown:
        return sp.bmat([[sp.diags(s), sp.diags(-s)], [sp.diags(-s), sp.diags(s)]], format="csr")
    if net.word_unknown or net.bit_unknown:
        return sp.diags(s, format="csr")
    return sp.csr_matrix((0, 0)) if k else sp.csr_matrix((0, 0))


def jacobian(net: Network, s):
    """dF/dy (N, N) csr at device slopes s (m, n)."""
    return (wire_matrix(net) + device_stamps(net, s)).tocsr()


def driver_currents(net: Network, V):
    """b (p, N): g_w V[i] at word node (i, 0), zero elsewhere (A). V (p, m) in V."""
    V = np.asarray(V, dtype=np.float64)
    b = np.zeros((V.shape[0], net.n_unknowns))
    if net.word_unknown:
        b[:, 0:net.size:net.n] = V / net.r_word
    return b


def node_voltages(net: Network, y, V):
    """(U, W), each (p, m, n) in V, from the unknowns y (p, N) and the drivers V (p, m)."""
    V = np.asarray(V, dtype=np.float64)
    p, k = V.shape[0], net.size
    offset = 0
    if net.word_unknown:
        U = y[:, :k].reshape(p, net.m, net.n)
        offset = k
    else:
        U = np.repeat(V[:, :, None], net.n, axis=2)
    W = y[:, offset:offset + k].reshape(p, net.m, net.n) if net.bit_unknown else np.zeros((p, net.m, net.n))
    return U, W


def unknowns(net: Network, U, W):
    """y (p, N) from U and W (p, m, n): the inverse of :func:`node_voltages`."""
    parts = []
    p = U.shape[0]
    if net.word_unknown:
        parts.append(U.reshape(p, -1))
    if net.bit_unknown:
        parts.append(W.reshape(p, -1))
    return np.concatenate(parts, axis=1) if parts else np.zeros((p, 0))


def device_term(net: Network, I_d):
    """D(I_d) (p, N): device currents (p, m, n) in A added at word nodes, subtracted at bit nodes."""
    p = I_d.shape[0]
    parts = []
    if net.word_unknown:
        parts.append(I_d.reshape(p, -1))
    if net.bit_unknown:
        parts.append(-I_d.reshape(p, -1))
    return np.concatenate(parts, axis=1) if parts else np.zeros((p, 0))


def residual(net: Network, y, V, I_d):
    """F (p, N) in A: the net current leaving every unknown node (zero at the solution).
    y (p, N) unknowns (V), V (p, m) drivers, I_d (p, m, n) device currents at those voltages."""
    return (wire_matrix(net) @ y.T).T - driver_currents(net, V) + device_term(net, I_d)


def output_currents(net: Network, U, W, I_d):
    """I (p, n) in A: the current through each bit line's last segment, into the amplifier
    (W[m-1, j] / r_bit; the column sum of the device currents when r_bit = 0)."""
    if net.bit_unknown:
        return W[:, -1, :] / net.r_bit
    return I_d.sum(axis=1)
