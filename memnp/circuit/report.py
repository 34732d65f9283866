"""Convergence of a circuit solve, reported as data (the solver never prints or raises on it).

:class:`SolveReport` holds, per example of a batch: a status code, the Newton iterations, the
inner (conjugate-gradient) iterations, the final relative residual, the final residual in amperes
and the last voltage step in volts. The boundary that called the solver decides what to do with
it (:meth:`SolveReport.raise_unless_converged` is the one error every caller uses).
"""
import dataclasses
import math

import numpy as np

#: Status codes, per example.
CONVERGED, IN_PROGRESS, MAX_ITER, NON_FINITE = 0, 1, 2, 3
STATUS_NAMES = {CONVERGED: "CONVERGED", IN_PROGRESS: "IN_PROGRESS", MAX_ITER: "MAX_ITER",
                NON_FINITE: "NON_FINITE"}


def newton_status(rr, sr, ff, tol, it, max_newton):
    """(status, relative residual) after a residual evaluation (rr = ||R||^2, sr = ||S R||^2,
    ff = ||f(v)||^2) and ``it`` Newton steps: NON_FINITE, CONVERGED, MAX_ITER, or IN_PROGRESS
    to take another step. Plain Python, compiled by each solver (cpu: njit, cuda: device function)."""
    if not (math.isfinite(rr) and math.isfinite(sr) and math.isfinite(ff)):
        return NON_FINITE, math.inf
    rel = math.sqrt(sr / ff) if ff > 0.0 else (0.0 if sr == 0.0 else math.inf)
    if rel <= tol:
        return CONVERGED, rel
    if it >= max_newton:
        return MAX_ITER, rel
    return IN_PROGRESS, rel


class ConvergenceError(RuntimeError):
    """A circuit solve that did not reach its tolerance (the message names size, r and residual)."""


@dataclasses.dataclass(frozen=True)
class SolveReport:
    """Per-example convergence of one batched solve.

    status (p,) int: CONVERGED, IN_PROGRESS, MAX_ITER or NON_FINITE; iterations (p,) Newton
    iterations; inner_iterations (p,) conjugate-gradient iterations summed over them; residual
    (p,) relative residual ||x - f(v)||_2 / max(||x||_2, ||f(v)||_2) of the device currents x
    against the device law f at the node voltages they set up (the KCL residual of the nodal
    equations, relative); residual_A (p,) the same residual's largest entry in amperes; step (p,)
    largest device-voltage change of the last iteration (V). tolerance: the relative residual
    asked for; method: which solver ran.
    """

    status: np.ndarray
    iterations: np.ndarray
    inner_iterations: np.ndarray
    residual: np.ndarray
    residual_A: np.ndarray
    step: np.ndarray
    tolerance: float
    method: str

    @property
    def converged(self):
        """True when every example converged."""
        return bool(np.all(self.status == CONVERGED))

    @property
    def max_residual(self):
        return float(np.max(self.residual)) if self.residual.size else 0.0

    def summary(self, steps="Newton iterations"):
        """One line: the method, the status counts, the largest iterations (``steps``: what they
        count), inner iterations and residual."""
        counts = {STATUS_NAMES[s]: int(np.sum(self.status == s)) for s in STATUS_NAMES}
        return (f"{self.method}: {counts}, {steps} <= {int(np.max(self.iterations, initial=0))}, "
                f"inner <= {int(np.max(self.inner_iterations, initial=0))}, "
                f"relative residual <= {self.max_residual:.3g} (tolerance {self.tolerance:.3g})")

    def raise_unless_converged(self, what, kind="solve", steps="Newton iterations"):
        """ConvergenceError naming ``what`` (array size and r) unless every example converged;
        ``kind``: which solve ("solve", or "adjoint (VJP) solve"), ``steps``: what
        ``iterations`` counts."""
        if self.converged:
            return
        bad = np.flatnonzero(self.status != CONVERGED)
        worst = bad[np.argmax(np.where(np.isfinite(self.residual[bad]), self.residual[bad], np.inf))]
        raise ConvergenceError(
            f"line-resistance {kind} did not converge for {what}: {bad.size} of "
            f"{self.status.size} examples not converged (example {int(worst)}: "
            f"{STATUS_NAMES[int(self.status[worst])]} after {int(self.iterations[worst])} {steps}, "
            f"relative residual "
            f"{float(self.residual[worst]):.3g} against the tolerance {self.tolerance:.3g}, "
            f"{float(self.residual_A[worst]):.3g} A)")


def empty_report(p, tolerance, method):
    """A report of p examples, all converged at iteration 0 with zero residual (nothing to solve)."""
    zeros = np.zeros(p)
    return SolveReport(np.zeros(p, np.int8), np.zeros(p, np.int64), np.zeros(p, np.int64), zeros,
                       zeros.copy(), zeros.copy(), float(tolerance), method)
