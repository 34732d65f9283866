"""The line-resistance solvers of :class:`memnp.nonidealities.LineResistance`: forward, VJP and
power, one solver per device, attached to the kernel backends (``Backend.circuit``; the circuit
package sits above the kernels, so it attaches them here).

``numpy``: the dense reference (:mod:`memnp.circuit.reference`); ``cpu``: Newton with line steps
or CG steps (:mod:`memnp.circuit.solve`, :mod:`memnp.circuit.adjoint`); ``cuda``: the same line
or CG steps in numba.cuda (:mod:`memnp.circuit.cuda`). With r_word = r_bit = 0 every backend runs its plain
kernels (exactly a stage without wires). Results come back in V's dtype.
"""
import numpy as np

from ..kernels import backend as backends
from . import adjoint, reference, solve
from .network import Network, line_voltages
from .report import empty_report


def _cuda():
    try:
        from . import cuda
    except ImportError as exc:
        raise ImportError("LineResistance on the cuda backend needs numba-cuda: "
                          "pip install 'memnp[cuda]'") from exc
    return cuda


def tolerance(dtype):
    """Relative-residual tolerance of a solve in ``dtype``: 1e-6 float32, 1e-10 float64."""
    return solve.TOLERANCE[np.dtype(dtype)]


def _solver(state):
    solver = state.backend.circuit
    if solver is None:
        raise ValueError(f"LineResistance needs a backend with a circuit solver (cpu, cuda, numpy); "
                         f"got {state.backend!r}")
    return solver


def forward(lr, state):
    """Column currents I (p, n) in V's dtype; fills the state's solution and report."""
    V, G, devices = state.V, state.G, state.devices
    if lr.is_zero:
        kernels = state.backend
        state.report = empty_report(V.shape[0], state.tolerance, "no wires (r_word = r_bit = 0)")
        return kernels.ideal_currents(V, G) if devices is None else kernels.pf_currents(V, *devices)
    return _solver(state).forward(lr, state).astype(V.dtype)


def _adjoint_tolerance(state):
    """CG tolerance of the transposed solve: the forward's for float32 (gradients rounded to
    float32 anyway), a tenth of it for float64. Its residual is then checked against the
    forward's tolerance (:func:`memnp.circuit.adjoint.vjp`)."""
    return state.tolerance if state.V.dtype == np.float32 else 0.1 * state.tolerance


def vjp(lr, state, grad_I, need_V):
    V, G, devices = state.V, state.G, state.devices
    if lr.is_zero:
        kernels = state.backend
        if devices is None:
            grad_V = (grad_I @ G.T).astype(V.dtype, copy=False) if need_V else None
            return grad_V, np.asarray(V.T @ grad_I, dtype=G.dtype)
        grad_V, grad_c, grad_d = kernels.pf_currents_vjp(V, *devices, grad_I, need_V)
        return grad_V, (grad_c, grad_d)
    grad_V, grad_theta = _solver(state).vjp(lr, state, grad_I, need_V)
    grad_V = grad_V.astype(V.dtype) if need_V else None
    if devices is None:
        return grad_V, grad_theta.astype(G.dtype)
    return grad_V, tuple(g.astype(G.dtype) for g in grad_theta)


def r_vjp(lr, state, grad_I):
    """(dL/dr_word, dL/dr_bit) in 1/ohm units of L, summed over the examples (cpu adjoint; with
    r_word = r_bit = 0 at the plain currents' voltages v = V)."""
    V, G, devices = state.V, state.G, state.devices
    if state.v is None and not lr.is_zero:
        raise ValueError("dL/dr needs the cpu or cuda backend's state (the numpy reference "
                         "keeps node voltages, not device voltages)")
    arrays = state.arrays or solve.device_arrays(G, devices)
    v = state.v
    if v is None:
        v = np.ascontiguousarray(np.repeat(np.asarray(V, dtype=np.float64)[:, :, None],
                                           G.shape[1], axis=2))
    _, _, report, grad_r = adjoint.vjp(v, V, *arrays, lr.r_word, lr.r_bit, grad_I,
                                       _adjoint_tolerance(state), need_V=False, need_r=True,
                                       check_tol=state.tolerance)
    adjoint.raise_unless_converged(report, lr.describe(*G.shape))
    return float(grad_r[0]), float(grad_r[1])


def power(lr, state):
    V, G, devices = state.V, state.G, state.devices
    if lr.is_zero:
        kernels = state.backend
        device = kernels.ideal_power(V, G) if devices is None else kernels.pf_power(V, *devices)
        return {"device": float(device), "wires": 0.0, "total": float(device)}
    return _solver(state).power(lr, state)


def _power_from_devices(lr, state):
    """Device and wire power from the device voltages of a cpu or cuda solve."""
    V = state.V
    x, _ = solve.currents(state.v, *state.arrays)
    p, m, n = x.shape
    net = Network(m, n, lr.r_word, lr.r_bit)
    _, _, word_segments, bit_segments = line_voltages(net, x, V)
    device = float((x * state.v).sum() / p)
    wires = float((lr.r_word * np.square(word_segments).sum()
                   + lr.r_bit * np.square(bit_segments).sum()) / p)
    return {"device": device, "wires": wires, "total": device + wires}


class NumpySolver:
    """Dense Newton on the node voltages (the reference; small arrays only)."""

    def forward(self, lr, state):
        V, G, devices = state.V, state.G, state.devices
        state.reference = reference.solve(V, G, devices, lr.r_word, lr.r_bit,
                                          tol=min(state.tolerance, 1e-12))
        state.report = state.reference["report"]
        return state.reference["I"]

    def vjp(self, lr, state, grad_I, need_V):
        return reference.vjp(state.reference, grad_I)

    def power(self, lr, state):
        return reference.power(state.reference)


class CpuSolver:
    """Newton on the device voltages with line or CG steps (Numba), and the adjoint."""

    def forward(self, lr, state):
        V, G, devices = state.V, state.G, state.devices
        state.arrays = solve.device_arrays(G, devices)
        state.method = solve.resolve_method("auto", V, *state.arrays, lr.r_word, lr.r_bit)
        state.v, state.report, I = solve.solve_with_currents(
            V, G, devices, lr.r_word, lr.r_bit, state.tolerance, max_newton=solve.MAX_NEWTON,
            max_cg=solve.MAX_CG, arrays=state.arrays, method=state.method)
        return I

    def vjp(self, lr, state, grad_I, need_V):
        V = state.V
        grad_V, grad_theta, state.vjp_report = adjoint.vjp(
            state.v, V, *state.arrays, lr.r_word, lr.r_bit, grad_I, _adjoint_tolerance(state),
            need_V, method=state.method or "auto", check_tol=state.tolerance)
        adjoint.raise_unless_converged(state.vjp_report, lr.describe(*state.G.shape))
        return grad_V, grad_theta

    def power(self, lr, state):
        return _power_from_devices(lr, state)


class CudaSolver:
    """Newton with line or CG steps, and the adjoint, in numba.cuda (memnp.circuit.cuda)."""

    def forward(self, lr, state):
        V, G, devices = state.V, state.G, state.devices
        cuda = _cuda()
        state.v, state.report, state.arrays = cuda.solve(V, G, devices, lr.r_word, lr.r_bit,
                                                         state.tolerance)
        return solve.currents(state.v, *state.arrays)[1]

    def vjp(self, lr, state, grad_I, need_V):
        V = state.V
        grad_V, grad_theta, state.vjp_report = _cuda().vjp(
            state.v, V, *state.arrays, lr.r_word, lr.r_bit, grad_I, _adjoint_tolerance(state),
            need_V, check_tol=state.tolerance)
        adjoint.raise_unless_converged(state.vjp_report, lr.describe(*state.G.shape))
        return grad_V, grad_theta

    def power(self, lr, state):
        return _power_from_devices(lr, state)


# Each device's solver, attached to its backend class (memnp.kernels.backend.Backend.circuit).
backends.NumpyBackend.circuit = NumpySolver()
backends.CpuBackend.circuit = CpuSolver()
backends.CudaBackend.circuit = CudaSolver()
