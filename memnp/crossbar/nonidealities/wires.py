"""Line resistance (IR drop): the word and bit lines are wires with r ohms per segment.

Topology (badcrossbar's), for m word lines (rows) and n bit lines (columns)::

    V[i] --r_word--o--r_word--o-- ... --o      word line i: driven at its left end
                   |          |         |
                  [G]        [G]       [G]     device (i, j): word node to bit node
                   |          |         |
                   o          o         o      bit line j: r_bit between rows,
                 r_bit      r_bit     r_bit    one r_bit below the last row
                   |          |         |
                  SA         SA        SA      sense amplifier (virtual ground, 0 V)

The output current I[j] is the current through bit line j's last segment into its amplifier.
Every device current shifts its neighbours' node voltages, so the currents are found by solving
the nodal equations (:mod:`memnp.circuit`): exactly, to a relative KCL residual of 1e-10
(float64) or 1e-6 (float32); a solve that does not converge raises
:class:`memnp.circuit.ConvergenceError` naming the array size, r and the residual.
With r_word = r_bit = 0 the plain kernels run (the currents of a stage without wires).
"""
import dataclasses

import numpy as np

from ...kernels import get_backend
from ..validation import non_negative
from .base import Nonideality, register


@register
@dataclasses.dataclass(frozen=True)
class LineResistance(Nonideality):
    """Resistance of the crossbar lines: r_word and r_bit in ohms per segment (>= 0).

    The "wires" of a stage: it takes the currents from the device law (linear devices of
    conductance G, or the PF devices of IVNonlinearityPF) and the node voltages the lines set up.

    Methods (V (p, m) in V at the word-line drivers, G (m, n) in S; float32 or float64, dtype kept):

    - ``currents(V, G, devices=None, backend=None) -> (I (p, n) in A, state)``; ``devices`` is None
      for linear devices or (c, d_eps), each (m, n), for PF devices; the state is the circuit's
      :class:`memnp.circuit.state.SolveState`;
    - ``currents_vjp(state, grad_I, need_V=True) -> (dL/dV or None, dL/dG)`` for linear devices,
      ``(dL/dV or None, (dL/dc, dL/d(d_eps)))`` for PF devices (adjoint method);
    - ``r_vjp(state, grad_I) -> (dL/dr_word, dL/dr_bit)``, summed over the examples;
    - ``power(state) -> {"device", "wires", "total"}`` in W, averaged over the examples;
    - ``report(state) -> SolveReport`` (per example: status, iterations, residual).

    Backends (a memnp.kernels.backend.Backend or its name): ``numpy`` (dense Newton, small arrays
    only: the reference), ``cpu`` (Newton-CG in Numba, the default), ``cuda``; each backend's
    ``circuit`` solves (memnp.circuit.dispatch).
    """

    r_word: float
    r_bit: float

    kind = "wires"

    phase = "wires"

    def __post_init__(self):
        object.__setattr__(self, "r_word", non_negative("r_word", self.r_word))
        object.__setattr__(self, "r_bit", non_negative("r_bit", self.r_bit))

    @property
    def label(self):
        return f"LineResistance(r_word={self.r_word:.4g},r_bit={self.r_bit:.4g})"

    @property
    def is_zero(self):
        return self.r_word == 0 and self.r_bit == 0

    def describe(self, m, n):
        """'m x n array, r_word=... ohm, r_bit=... ohm' (for error messages)."""
        return f"a {m} x {n} array with r_word={self.r_word:g} ohm, r_bit={self.r_bit:g} ohm"

    # -- forward ---------------------------------------------------------------------------------
    def currents(self, V, G, devices=None, backend=None):
        """(I (p, n) in A, state): the currents reaching the sense amplifiers."""
        from ...circuit import dispatch
        from ...circuit.state import SolveState
        V, G, devices = _check(V, G, devices)
        state = SolveState(get_backend(backend), V, G, devices, dispatch.tolerance(V.dtype))
        I = dispatch.forward(self, state)
        state.report.raise_unless_converged(self.describe(*G.shape))
        return I, state

    def currents_vjp(self, state, grad_I, need_V=True):
        """(dL/dV (p, m) or None, dL/dG (m, n)) for linear devices, (dL/dV, (dL/dc, dL/d(d_eps)))
        for PF devices, from dL/dI (p, n), at the state's converged solution. The transposed
        solves' residuals are checked (their SolveReport is kept as ``state.vjp_report``, cpu and
        cuda backends); one that misses the tolerance raises
        :class:`memnp.circuit.ConvergenceError` naming the array size, r and the residual."""
        from ...circuit import dispatch
        grad_I = np.asarray(grad_I)
        if grad_I.shape != (state.V.shape[0], state.G.shape[1]):
            raise ValueError(f"grad_I must have shape {(state.V.shape[0], state.G.shape[1])}; "
                             f"got {grad_I.shape}")
        return dispatch.vjp(self, state, grad_I, need_V)

    def r_vjp(self, state, grad_I):
        """(dL/dr_word, dL/dr_bit): the gradient of the loss with respect to the two segment
        resistances (per ohm), summed over the examples, by the adjoint method (cpu and cuda
        states; one more transposed solve)."""
        from ...circuit import dispatch
        return dispatch.r_vjp(self, state, np.asarray(grad_I))

    def power(self, state):
        """dict(device=W, wires=W, total=W): device and wire dissipation, averaged over examples."""
        from ...circuit import dispatch
        return dispatch.power(self, state)

    def report(self, state):
        """The :class:`memnp.circuit.SolveReport` of the solve that made ``state``."""
        return state.report


def _check(V, G, devices):
    if not (isinstance(V, np.ndarray) and V.ndim == 2 and V.dtype in (np.float32, np.float64)):
        raise ValueError("V must be a 2-dimensional float32 or float64 array (p, m)")
    if not (isinstance(G, np.ndarray) and G.ndim == 2 and G.shape[0] == V.shape[1]):
        raise ValueError(f"G must be a 2-dimensional array (m, n) with m = {V.shape[1]} rows; got "
                         f"{getattr(G, 'shape', None)}")
    if not np.all(np.isfinite(V)):
        raise ValueError("V must contain only finite values (no NaN or inf)")
    if devices is None:
        if not np.all(G >= 0) or not np.all(np.isfinite(G)):
            raise ValueError("G must contain only finite conductances >= 0 S")
    else:
        if len(devices) != 2 or any(np.shape(d) != G.shape for d in devices):
            raise ValueError(f"devices must be (c, d_eps), each of G's shape {G.shape}")
        c, d_eps = devices
        if not (np.all(c >= 0) and np.all(np.isfinite(c))):
            raise ValueError("devices: c must contain only finite values >= 0 (A/V)")
        if not (np.all(d_eps > 0) and np.all(np.isfinite(d_eps))):
            raise ValueError("devices: d_eps must contain only finite values > 0 (F/m)")
    return V, G, devices

