"""One memristive layer of K ensemble members read in one kernel call per stair (issue 15).

:class:`StackedCrossbar` holds the double weights of layer i of every member stacked, D (K, m, n)
(m = n_in + 1 rows, bias last; n = 2 n_out columns); each member's layer keeps its weights in
its slice D[k] (its params are views of it, so the member's model file, load and optimiser see
them). A read under a PF-only stage runs the stairs of :meth:`memnp.nn.memristive.CrossbarLayer._read`
for all members at once, with the K-axis kernels (:mod:`memnp.kernels.ensemble`,
:mod:`memnp.kernels.ensemble_steps`, :mod:`memnp.kernels.ensemble_devices`) in the ragged
active-row layout (:class:`memnp.kernels.ensemble_layout.MemberRows`). Only the PF residuals are
drawn member by member, each from its own Generator and in the order the member alone draws them.

Every number equals the member's own read bit for bit (on the cpu backend): the same kernels' task
functions on the same blocks with the member's own scalars. The one stair where the single read
takes a NumPy path is G of a member that reads every row (its batch drives every input, as after
a sigmoid): that member's G is computed with the same NumPy operations.

Shapes: inputs X (K, p, n_in) C-contiguous in the weights' dtype; outputs (K, p, n_out);
gradients the same shapes; V in volts, G in S, I in A.
"""
import contextlib
import dataclasses

import numba
import numpy as np

from ..crossbar.mapping import _double_G, _double_max_weight
from ..crossbar.validation import finite_array
from ..kernels import ensemble as ensemble_reads
from ..kernels import ensemble_devices, ensemble_steps
from ..kernels.cpu_auto import serial_below
from ..kernels.ensemble_layout import MemberRows
from .memristive import _input_error

__all__ = ["StackedCrossbar", "StackedRead", "threads_for"]


@contextlib.contextmanager
def threads_for(elements):
    """Run the block's K-axis loops on one thread when they touch fewer than
    :func:`memnp.kernels.cpu_auto.serial_below` elements (waking a sleeping thread costs more
    than such a loop), else on all of Numba's threads. The numbers do not depend on it."""
    before = numba.get_num_threads()
    if before == 1 or elements >= serial_below():
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@dataclasses.dataclass(eq=False)
class StackedRead:
    """What a stacked forward pass keeps for its backward pass: the layout of the rows read, V
    (p R,) voltage-packed, G, c, d_eps (R, n) row-packed, I (K, p, n), max_weight (K,) float64."""

    layout: MemberRows
    p: int
    V: np.ndarray
    G: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    I: np.ndarray
    max_weight: np.ndarray


class StackedCrossbar:
    """Layer ``index`` of K members (double-weight MemristiveDense layers under PF-only stages)."""

    def __init__(self, index, layers, stages):
        self.index = index
        self.layers = list(layers)
        K = len(self.layers)
        pfs = [stage.nonpreserving for stage in stages]
        self.pfs = pfs
        self.k_V = np.array([stage.k_V for stage in stages], dtype=np.float64)
        self.G_off = np.array([stage.G_off for stage in stages], dtype=np.float64)
        self.G_on = np.array([stage.G_on for stage in stages], dtype=np.float64)
        self.slopes = np.array([pf.slopes for pf in pfs], dtype=np.float64).reshape(K, 2)
        self.intercepts = np.array([pf.intercepts for pf in pfs], dtype=np.float64).reshape(K, 2)
        self.D = None
        self.slices = ()
        self._state = None

    # -- storage ------------------------------------------------------------------------------
    def sync(self):
        """Make every member keep its weights in its slice of ``D``: where a member's params were
        replaced (initialize, load, astype, assignment), D is rebuilt from the current values."""
        if self.D is not None and all(layer.keeps_matrix_in(D) for layer, D in zip(self.layers, self.slices)):
            return
        D = np.stack([layer._matrix() for layer in self.layers])
        self.D = D
        self.slices = tuple(D[k] for k in range(len(self.layers)))
        for layer, Dk in zip(self.layers, self.slices):
            layer.keep_matrix_in(Dk)

    # -- the read -----------------------------------------------------------------------------
    def _devices(self, X, rngs):
        """(layout, V, G, c, d_eps, max_weight) of a read: the stairs before the currents."""
        D = self.D
        if X.dtype != D.dtype or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=D.dtype)
        max_weight = ensemble_steps.max_weights(D)
        for k in np.flatnonzero(~(max_weight > 0)):
            try:      # the checked NumPy form, as the single read (it says what is wrong, if anything)
                max_weight[k] = _double_max_weight(D[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        active, valid = ensemble_steps.scan_inputs(X)
        for k in np.flatnonzero(~valid):
            try:
                _input_error(X[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        layout = MemberRows.from_active(active)
        offsets = layout.offsets
        G = ensemble_steps.double_G_rows(D, layout, max_weight, self.G_off, self.G_on)
        for k in np.flatnonzero(active.all(axis=1)):
            # The single read maps a crossbar whose every row is read with NumPy (_double_G).
            G[offsets[k]:offsets[k + 1]] = _double_G(D[k], float(max_weight[k]), float(self.G_off[k]),
                                                     float(self.G_on[k]))
        V = ensemble_steps.voltages(X, self.k_V, layout)
        n = D.shape[2]
        residuals = np.empty((2,) + G.shape, dtype=G.dtype)
        for k, (pf, rng) in enumerate(zip(self.pfs, rngs)):
            a, b = offsets[k], offsets[k + 1]
            residuals[:, a:b] = pf.sample((b - a, n), rng, G.dtype)
        if G.dtype == np.float32:
            c, d_eps = ensemble_devices.device_parameters(G, residuals, layout, self.slopes, self.intercepts)
        else:     # float64: the single read's NumPy path (IVNonlinearityPF.device_parameters)
            c, d_eps = np.empty_like(G), np.empty_like(G)
            for k, pf in enumerate(self.pfs):
                a, b = offsets[k], offsets[k + 1]
                c[a:b], d_eps[a:b] = pf.device_parameters(G[a:b], residuals[:, a:b])
        return layout, V, G, c, d_eps, max_weight

    def forward(self, X, rngs):
        """Outputs y (K, p, n_out) from inputs X (K, p, n_in); each member's PF residuals from
        rngs[k]."""
        with threads_for(self.D.size + X.size):
            layout, V, G, c, d_eps, max_weight = self._devices(X, rngs)
        I = ensemble_reads.pf_currents(V, c, d_eps, layout)
        self._state = StackedRead(layout, X.shape[1], V, G, c, d_eps, I, max_weight)
        for layer in self.layers:
            layer._last = None        # a member's own last read is not this one
        with threads_for(I.size):
            return ensemble_steps.outputs(I, self.k_V, max_weight, self.G_off, self.G_on)

    def backward(self, dY, need_dx):
        """(dL/dX (K, p, n_in) or None, dL/dD (K, m, n)) from dL/dy (K, p, n_out)."""
        state = self._state
        if state is None:
            raise ValueError(f"layer {self.index}: the stacked read's backward pass needs a forward pass first")
        layout, p = state.layout, state.p
        dY = np.ascontiguousarray(dY, dtype=state.I.dtype)
        with threads_for(state.I.size):
            out = ensemble_steps.outputs_vjp(state.I, dY, self.k_V, state.max_weight, self.G_off, self.G_on)
        for k in np.flatnonzero(~np.isfinite(out.grad_max_weight)):
            try:
                finite_array("dy", dY[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        grads = ensemble_reads.pf_currents_vjp(state.V, state.c, state.d_eps, layout, out.grad_I, need_dx)
        self._state = None
        with threads_for(self.D.size + (grads.grad_V.size if need_dx else 0)):
            grad_G = ensemble_devices.device_parameters_vjp_members(state.G, state.c, state.d_eps, grads.grad_c,
                                                                    grads.grad_d_eps, layout, self.slopes)
            grad_D = ensemble_steps.double_w_to_G_vjp_rows(self.D, grad_G, layout, out.grad_max_weight,
                                                           self.G_off, self.G_on, state.max_weight)
            if not need_dx:
                return None, grad_D
            grad_x = ensemble_devices.scatter_rows(grads.grad_V, layout, p)[:, :, :-1]
        grad_x *= self.k_V.astype(grad_x.dtype)[:, None, None]
        return grad_x, grad_D
