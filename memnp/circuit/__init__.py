"""Crossbars with line resistance: nodal equations, a dense reference, a fast batched solver and
its adjoint (see :mod:`memnp.circuit.network` for the topology, :mod:`memnp.circuit.solve` for the
method). :class:`memnp.nonidealities.LineResistance` is the way in."""
from .network import Network
from .report import (CONVERGED, IN_PROGRESS, MAX_ITER, NON_FINITE, ConvergenceError, SolveReport)

__all__ = ["Network", "SolveReport", "ConvergenceError", "CONVERGED", "IN_PROGRESS", "MAX_ITER",
           "NON_FINITE"]
