"""One memristive layer of K ensemble members read in one kernel call per stair (issue 15).

:class:`StackedWeights` holds the double weights of layer i of every member stacked, D (K, m, n)
(m = n_in + 1 rows, bias last; n = 2 n_out columns); each member's layer keeps its weights in
its slice D[k] (its params are views of it, so the member's model file, load and optimiser see
them). A :class:`StackedCrossbar` reads them under K PF-only stages: the stairs of
:meth:`memnp.nn.crossbar_layer.CrossbarLayer._read` for all members at once, with the K-axis kernels
(the backend's :mod:`memnp.kernels.ensemble`, :mod:`memnp.kernels.ensemble_steps`,
:mod:`memnp.kernels.ensemble_devices`) in the ragged active-row layout
(:class:`memnp.kernels.ensemble_layout.MemberRows`). Each member's PF residuals come from its own
Generator, in the order the member alone draws them: the words of all PCG64 members in one
parallel call (:func:`memnp.kernels.ensemble_devices.draw_device_parameters`), other bit
generators and small layers one member after the other.

Every number equals the member's own read bit for bit (on the cpu backend): the same kernels' task
functions on the same blocks with the member's own scalars. Where the single read takes a NumPy
path, so does this one, member by member: G of a member that reads every row (its batch drives
every input, as after a sigmoid), float64 device parameters, and draws="all" (the rows read taken
from the crossbar's draws by NumPy indexing).

Shapes: inputs X (K, p, n_in) C-contiguous in the weights' dtype; outputs (K, p, n_out);
gradients the same shapes; V in volts, G in S, I in A.
"""
import contextlib
import dataclasses

import numba
import numpy as np

from ..crossbar.mapping import _double_G, _double_max_weight
from ..crossbar.validation import finite_array
from ..kernels import ensemble_devices, ensemble_steps, pcg64
from ..kernels.cpu_auto import serial_below
from ..kernels.ensemble_layout import MemberRows
from ..kernels.mapping import _unit_numpy
from .memristive import _input_error

__all__ = ["StackedWeights", "StackedLayer", "StackedCrossbar", "StackedRead", "threads_for"]

#: A device's residual draw and parameters cost about this many PF device evaluations (for the
#: one-thread threshold).
DRAW_COST = 10
_MASK64 = (1 << 64) - 1


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


def _give_back(held, after):
    """Release the bit generators :meth:`StackedCrossbar._take_states` locked, first moving each
    on to its state in ``after`` (K, 2) uint64 (s_hi, s_lo) when a kernel drew its words."""
    try:
        if after is not None:
            for k, bits, state in held:
                state["state"]["state"] = (int(after[k, 0]) << 64) | int(after[k, 1])
                bits.state = state
    finally:
        for _, bits, _ in held:
            bits.lock.release()


@dataclasses.dataclass(eq=False)
class StackedRead:
    """What a stacked forward pass keeps for its backward pass: the layout of the rows read, V
    (p R,) voltage-packed, G, c, d_eps (R, n) row-packed, I (K, p, n), max_weight (K,) float64;
    is_sparse (K,) bool, the kernel each member's read ran, for a fused read
    (:mod:`memnp.kernels.ensemble_fused`), else None."""

    layout: MemberRows
    p: int
    V: np.ndarray
    G: np.ndarray
    c: np.ndarray
    d_eps: np.ndarray
    I: np.ndarray
    max_weight: np.ndarray
    is_sparse: object = None


class StackedWeights:
    """The double weights of layer ``index`` of K members stacked, ``D`` (K, m, n); each member's
    layer keeps its weights in its slice ``slices[k]`` (its params are views of it)."""

    def __init__(self, index, layers):
        self.index = index
        self.layers = list(layers)
        self.D = None
        self.slices = ()

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


class StackedLayer:
    """What every stacked read of layer ``weights.index`` shares: the members' stacked weights
    (a :class:`StackedWeights`), their stages' k_V, G_off and G_on as (K,) float64, and the
    mapping stairs (inputs to voltages and conductances) in K-axis calls."""

    def __init__(self, weights, stages):
        self.weights = weights
        self.index = weights.index
        self.layers = weights.layers
        self.stages = list(stages)
        self.k_V = np.array([stage.k_V for stage in stages], dtype=np.float64)
        self.G_off = np.array([stage.G_off for stage in stages], dtype=np.float64)
        self.G_on = np.array([stage.G_on for stage in stages], dtype=np.float64)
        self._state = None
        #: The backend's fused K-axis layer kernels (memnp.kernels.ensemble_fused), or None.
        self.fused = None

    @property
    def D(self):
        return self.weights.D

    @property
    def slices(self):
        return self.weights.slices

    def sync(self):
        self.weights.sync()

    def _scan(self, X):
        """(X, layout, max_weight, full) of a read: X C-contiguous in the weights' dtype, the rows
        each member reads, max D[k] (K,) float64, and (K,) bool: the members that read every row.
        Bad weights or inputs are a ValueError naming the member."""
        D = self.D
        if X.dtype != D.dtype or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=D.dtype)
        if self.fused is not None:
            found = self.fused.scan(X, D)
            layout, max_weight, valid = found.layout, found.max_weight, found.valid
        else:
            max_weight = ensemble_steps.max_weights(D)
            active, valid = ensemble_steps.scan_inputs(X)
            layout = MemberRows.from_active(active)
        for k in np.flatnonzero(~(max_weight > 0)):
            try:      # the checked NumPy form, as the single read (it says what is wrong, if anything)
                max_weight[k] = _double_max_weight(D[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        for k in np.flatnonzero(~valid):
            if _unit_numpy(X[k]):      # -0.0 fails the bit test; NumPy settles it
                continue
            try:
                _input_error(X[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        return X, layout, max_weight, layout.counts() == layout.n_rows

    def _mapping(self, X, layout, max_weight, full):
        """(V, G) of a read: the stairs from the inputs to the voltages and conductances."""
        D = self.D
        offsets = layout.offsets
        G = ensemble_steps.double_G_rows(D, layout, max_weight, self.G_off, self.G_on)
        for k in np.flatnonzero(full):
            # The single read maps a crossbar whose every row is read with NumPy (_double_G).
            G[offsets[k]:offsets[k + 1]] = _double_G(D[k], float(max_weight[k]), float(self.G_off[k]),
                                                     float(self.G_on[k]))
        V = ensemble_steps.voltages(X, self.k_V, layout)
        return V, G

    def _read_mapping(self, X):
        """(layout, V, G, max_weight): :meth:`_scan` and :meth:`_mapping` of inputs X."""
        X, layout, max_weight, full = self._scan(X)
        V, G = self._mapping(X, layout, max_weight, full)
        return layout, V, G, max_weight


class StackedCrossbar(StackedLayer):
    """Layer ``weights.index`` of K members (double-weight MemristiveDense layers) read under
    PF-only ``stages`` (one per member); ``weights`` a :class:`StackedWeights`; ``reads`` the
    backend's K-axis PF reads (:attr:`memnp.kernels.backend.Backend.ensemble`)."""

    def __init__(self, weights, stages, reads):
        super().__init__(weights, stages)
        self.reads = reads
        self.fused = getattr(reads, "fused", None)
        K = len(self.layers)
        pfs = [stage.nonpreserving for stage in stages]
        self.pfs = pfs
        self.slopes = np.array([pf.slopes for pf in pfs], dtype=np.float64).reshape(K, 2)
        self.intercepts = np.array([pf.intercepts for pf in pfs], dtype=np.float64).reshape(K, 2)
        self.factors = np.array([pf.fused().factor for pf in pfs], dtype=np.float64).reshape(K, 2, 2)

    def _draw(self, G, layout, rngs, draws_all=False):
        """(c, d_eps) (R, n) of every member's devices read: the PF residuals drawn from each
        member's Generator (one parallel call for the PCG64 members with enough devices, the
        others one by one: the same words either way), then the device parameters. With
        ``draws_all`` every device of the crossbar gets its draw, in the crossbar's order, and the
        rows read keep theirs (the single read's draws="all")."""
        n = G.shape[1]
        K = len(self.pfs)
        if draws_all:
            m = self.D.shape[1]
            residuals = np.empty((2, K * m, n), dtype=G.dtype)
            self._residuals(residuals, MemberRows.full(K, m), rngs, G, False)
            c, d_eps = np.empty_like(G), np.empty_like(G)
            for k, pf in enumerate(self.pfs):
                # The single read's arrays: the crossbar's draws, then the rows read taken from
                # them by NumPy indexing (whose result's layout picks the device-parameter path).
                every = np.ascontiguousarray(residuals[:, k * m:(k + 1) * m])
                a, b = layout.offsets[k], layout.offsets[k + 1]
                taken = every if b - a == m else every[..., layout.member_rows(k), :]
                c[a:b], d_eps[a:b] = pf.device_parameters(G[a:b], taken)
            return c, d_eps
        residuals = np.empty((2,) + G.shape, dtype=G.dtype)
        fast = G.dtype == np.float32      # float32: the single read's loop (pf_devices.FASTER)
        c, d_eps = self._residuals(residuals, layout, rngs, G, fast)
        if not fast:     # float64: the single read's NumPy path (IVNonlinearityPF.device_parameters)
            offsets = layout.offsets
            c, d_eps = np.empty_like(G), np.empty_like(G)
            for k, pf in enumerate(self.pfs):
                a, b = offsets[k], offsets[k + 1]
                c[a:b], d_eps[a:b] = pf.device_parameters(G[a:b], residuals[:, a:b])
        return c, d_eps

    def _residuals(self, residuals, layout, rngs, G, parameters):
        """Fill ``residuals`` (2, R, n) in ``layout``; (c, d_eps) from them and G when
        ``parameters`` (else (None, None))."""
        states, drawn, held = self._take_states(residuals, layout, rngs)
        after = None
        try:
            c, d_eps, after = ensemble_devices.draw_device_parameters(
                G if parameters else residuals[0], residuals, layout, states, drawn, self.factors, self.slopes,
                self.intercepts, parameters)
        finally:
            _give_back(held, after)
        return c, d_eps

    def _take_states(self, residuals, layout, rngs, min_words=pcg64.MIN_WORDS):
        """(states (K, 4) uint64, drawn (K,) bool, held): the PCG64 states of the members whose
        residuals a kernel draws (a PCG64 with enough devices: one word each), their bit
        generators locked and listed in ``held``; a PCG64 member with fewer than ``min_words``
        devices and the other members have their residuals drawn into
        ``residuals`` (2, R, n) here, one member after the other. Pass ``held`` to
        :func:`_give_back` in a ``finally``."""
        offsets, n = layout.offsets, residuals.shape[2]
        K = len(self.pfs)
        drawn = np.zeros(K, dtype=np.bool_)
        states = np.zeros((K, 4), dtype=np.uint64)
        held = []
        try:
            for k, (pf, rng) in enumerate(zip(self.pfs, rngs)):
                a, b = offsets[k], offsets[k + 1]
                bits = rng.bit_generator
                if type(bits) is np.random.PCG64 and (b - a) * n >= min_words:
                    bits.lock.acquire()
                    state = bits.state
                    held.append((k, bits, state))
                    s, inc = state["state"]["state"], state["state"]["inc"]
                    states[k] = (s >> 64, s & _MASK64, inc >> 64, inc & _MASK64)
                    drawn[k] = True
                else:
                    residuals[:, a:b] = pf.sample((b - a, n), rng, residuals.dtype)
        except BaseException:
            _give_back(held, None)
            raise
        return states, drawn, held

    def forward(self, X, rngs, draws_all=False, read_rngs=None):
        """Outputs y (K, p, n_out) from inputs X (K, p, n_in); each member's PF residuals from
        rngs[k] (``draws_all``: for every device, as the single read's draws="all"; a PF-only
        stage makes no read draws, so ``read_rngs`` are not used)."""
        with threads_for(self.D.size + X.size):
            X, layout, max_weight, full = self._scan(X)
        for layer in self.layers:
            layer._last = None        # a member's own last read is not this one
        fused = self.fused
        if fused is not None and not draws_all and self.D.dtype == np.float32:
            # float32: the single read's loops throughout (float64 device parameters are NumPy's).
            residuals = np.empty((2, layout.total, self.D.shape[2]), dtype=self.D.dtype)
            states, drawn, held = self._take_states(residuals, layout, rngs, min_words=1)
            after = None
            try:
                read = fused.layer_forward(X, self.D, layout, self.k_V, self.G_off, self.G_on, max_weight, states,
                                           drawn, self.factors, self.slopes, self.intercepts, residuals)
                after = read.after
            finally:
                _give_back(held, after)
            self._state = StackedRead(layout, X.shape[1], read.V, read.G, read.c, read.d_eps, read.I, max_weight,
                                      read.is_sparse)
            return read.y
        with threads_for(self.D.size + X.size):
            V, G = self._mapping(X, layout, max_weight, full)
        with threads_for(DRAW_COST * G.size):
            c, d_eps = self._draw(G, layout, rngs, draws_all)
        I = self.reads.pf_currents(V, c, d_eps, layout)
        self._state = StackedRead(layout, X.shape[1], V, G, c, d_eps, I, max_weight)
        with threads_for(I.size):
            return ensemble_steps.outputs(I, self.k_V, max_weight, self.G_off, self.G_on)

    def powers(self):
        """(K,) float64: each member's average crossbar power (W) over the examples of the last
        forward pass (what the member's own read reports, CrossbarPass.power)."""
        state = self._state
        if state is None:
            raise ValueError(f"layer {self.index}: the stacked read's power needs a forward pass first")
        return self.reads.pf_powers(state.V, state.c, state.d_eps, state.layout)

    def _check_dy(self, dY, grad_max_weight):
        """ValueError naming the first member whose dL/dy is not finite (its dL/d(max_weight) is not)."""
        for k in np.flatnonzero(~np.isfinite(grad_max_weight)):
            try:
                finite_array("dy", dY[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None

    def backward(self, dY, need_dx):
        """(dL/dX (K, p, n_in) or None, dL/dD (K, m, n)) from dL/dy (K, p, n_out)."""
        state = self._state
        if state is None:
            raise ValueError(f"layer {self.index}: the stacked read's backward pass needs a forward pass first")
        layout, p = state.layout, state.p
        dY = np.ascontiguousarray(dY, dtype=state.I.dtype)
        if state.is_sparse is not None:     # a fused read: one fused backward call
            fused = self.fused.layer_backward(state, dY, self.D, layout, self.k_V, self.G_off, self.G_on,
                                                    state.max_weight, self.slopes, need_dx)
            self._check_dy(dY, fused.grad_max_weight)
            self._state = None
            if not need_dx:
                return None, fused.grad_D
            grad_x = fused.grad_x
            grad_x *= self.k_V.astype(grad_x.dtype)[:, None, None]
            return grad_x, fused.grad_D
        with threads_for(state.I.size):
            out = ensemble_steps.outputs_vjp(state.I, dY, self.k_V, state.max_weight, self.G_off, self.G_on)
        self._check_dy(dY, out.grad_max_weight)
        grads = self.reads.pf_currents_vjp(state.V, state.c, state.d_eps, layout, out.grad_I, need_dx)
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
