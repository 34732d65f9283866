"""What a line-resistance solve keeps for its VJP, power and report (memnp.circuit.dispatch)."""
import dataclasses

import numpy as np


@dataclasses.dataclass(eq=False)
class SolveState:
    """One solve of the wires of an array: its inputs and what the solver found.

    backend: the memnp.kernels.backend.Backend that solved it (its ``circuit``); V (p, m) in V at
    the word-line drivers; G (m, n) in S; devices: None for linear devices or (c, d_eps), each
    (m, n), for PF devices; tolerance: the relative KCL residual the solve stops at. Filled by the
    solve: v (p, m, n) the device voltages (cpu, cuda), arrays the solver's device arrays, method
    the step method (cpu), report the :class:`memnp.circuit.SolveReport`, reference the dense
    reference's solution dict (numpy); vjp_report the last VJP's SolveReport (cpu, cuda: its
    residual check, see memnp.circuit.adjoint)."""

    backend: object
    V: np.ndarray
    G: np.ndarray
    devices: object
    tolerance: float
    v: object = None
    arrays: object = None
    method: object = None
    report: object = None
    reference: object = None
    vjp_report: object = None
