"""A memristive layer of K ensemble members whose stage has phases without K-axis kernels: the
mapping stairs for all members at once, the crossbar member by member (issue 15).

:class:`MemberCrossbar` reads double-weight MemristiveDense layers under stages such as the
combined chip (D2D, drift, stuck devices, read noise, DAC, PF, ADC, tiles): the inputs' scan, the
maximum weights, the conductances of the rows read, the voltages, the outputs and their VJP, the
double-weight VJP (and the model's loss, L1 and SGD step) run in one K-axis call each
(:mod:`memnp.kernels.ensemble_steps`); the phases in between -- the draws and the conductance
chain, the DAC, the tiled PF read with its ADCs -- run in each member's own
:class:`memnp.crossbar.CrossbarPass`, one call per member, exactly as the member's read runs
them. Line resistance (a stage whose rows are not separable) is not taken here: such members run
whole. On a backend with the K-axis combined-stage read (``backend.ensemble.chip``: the cpu's
:mod:`memnp.kernels.ensemble_chip`), members whose passes all take the combined stage's one-call
path run in one Numba call instead (:mod:`memnp.nn.ensemble_chip_read`), with the same numbers.

Every number equals the member's own read bit for bit: where the single read picks a NumPy path
by an array's layout (outputs of a non-contiguous current array), this one does for that member.
"""
import numpy as np

from ..crossbar import CrossbarPass, I_to_y, I_to_y_vjp
from ..crossbar.validation import finite_array
from ..kernels import ensemble_steps
from ..kernels import mapping as mapping_loops
from . import ensemble_chip_read
from .ensemble_read import StackedLayer, threads_for
from .memristive import _take_rows

__all__ = ["MemberCrossbar", "member_readable"]


def member_readable(stage):
    """True for a stage whose reads drop the rows without inputs (not ideal, rows separable: no
    line resistance) and whose currents follow a nonlinear I-V model (PF), as the single read
    needs to take the rows read whatever the input gradient wanted."""
    return stage is not None and not stage.is_ideal and stage.rows_separable and stage.nonpreserving is not None


class MemberCrossbar(StackedLayer):
    """Layer ``weights.index`` of K members read under ``stages`` (see the module docstring);
    ``backend`` the members' kernel backend."""

    def __init__(self, weights, stages, backend):
        super().__init__(weights, stages)
        self.backend = backend
        self.fused = getattr(backend.ensemble, "fused", None)
        self.chip = getattr(backend.ensemble, "chip", None)

    def forward(self, X, rngs, draws_all=False, read_rngs=None):
        """Outputs y (K, p, n_out) from inputs X (K, p, n_in); member k's draws from rngs[k]
        (and read_rngs[k] for read draws, when given)."""
        with threads_for(self.D.size + X.size):
            layout, V, G, max_weight = self._read_mapping(X)
        K, p = X.shape[0], X.shape[1]
        m, n = self.D.shape[1], self.D.shape[2]
        read_rngs = read_rngs or [None] * K
        chip = None
        if self.chip is not None and not draws_all:
            chip = ensemble_chip_read.forward(self.stages, self.backend, layout, V, G, p, rngs, read_rngs)
        if chip is not None:
            I = chip.read.I
            self._state = (layout, p, chip, max_weight, I, all(mapping_loops.supported(Ik) for Ik in I))
            return self._outputs(layout, max_weight)
        I = np.empty((K, p, n), dtype=G.dtype)
        crossbars, plain = [], True
        for k, stage in enumerate(self.stages):
            a, b = layout.offsets[k], layout.offsets[k + 1]
            rows = None if b - a == m else layout.member_rows(k)
            crossbar = CrossbarPass(stage, self.backend)
            crossbar.inputs_checked = crossbar.gradients_checked = True
            draws = None
            if draws_all and rows is not None:
                draws = _take_rows(crossbar.sample((m, n), rngs[k], self.D.dtype, read_rngs[k]), rows, (m, n))
            Ik = crossbar.forward(layout.block(V, k, p), G[a:b], rngs[k], draws, rows, m, read_rngs[k])
            plain = plain and mapping_loops.supported(Ik)
            I[k] = Ik
            crossbars.append((crossbar, Ik, rows))
        self._state = (layout, p, crossbars, max_weight, I, plain)
        return self._outputs(layout, max_weight)

    def _outputs(self, layout, max_weight):
        """y (K, p, n_out) from the currents of the state just kept."""
        I, plain = self._state[4], self._state[5]
        for layer in self.layers:
            layer._last = None        # a member's own last read is not this one
        if plain:
            with threads_for(I.size):
                return ensemble_steps.outputs(I, self.k_V, max_weight, self.G_off, self.G_on)
        return np.stack([I_to_y(Ik, stage.k_V, float(max_weight[k]), stage.G_off, stage.G_on)
                         if not mapping_loops.supported(Ik) else
                         mapping_loops.outputs(Ik, stage.k_V, float(max_weight[k]), stage.G_off, stage.G_on)
                         for k, (stage, Ik) in enumerate(zip(self.stages, I))])

    def powers(self):
        """(K,) float64: each member's average crossbar power (W) over the last forward pass."""
        if self._state is None:
            raise ValueError(f"layer {self.index}: the stacked read's power needs a forward pass first")
        crossbars = self._state[2]
        if isinstance(crossbars, ensemble_chip_read.ChipMembers):
            return np.array([crossbars.member_pass(k).power() for k in range(len(self.stages))], dtype=np.float64)
        return np.array([crossbar.power() for crossbar, _, _ in crossbars], dtype=np.float64)

    def backward(self, dY, need_dx):
        """(dL/dX (K, p, n_in) or None, dL/dD (K, m, n)) from dL/dy (K, p, n_out)."""
        if self._state is None:
            raise ValueError(f"layer {self.index}: the stacked read's backward pass needs a forward pass first")
        layout, p, crossbars, max_weight, I, plain = self._state
        self._state = None
        dY = np.ascontiguousarray(dY, dtype=I.dtype)
        if plain:
            with threads_for(I.size):
                out = ensemble_steps.outputs_vjp(I, dY, self.k_V, max_weight, self.G_off, self.G_on)
            grad_I, grad_max_weight = out.grad_I, out.grad_max_weight
        else:
            grad_I, grad_max_weight = np.empty_like(I), np.empty(len(self.stages))
            for k, (stage, Ik) in enumerate(zip(self.stages, I)):
                vjp = mapping_loops.outputs_vjp if mapping_loops.supported(Ik, dY[k]) else I_to_y_vjp
                grad_I[k], grad_max_weight[k] = vjp(Ik, dY[k], stage.k_V, float(max_weight[k]), stage.G_off,
                                                    stage.G_on)
        for k in np.flatnonzero(~np.isfinite(grad_max_weight)):
            try:
                finite_array("dy", dY[k])
            except ValueError as exc:
                raise ValueError(f"member {k}, layer {self.index}: {exc}") from None
        m, n = self.D.shape[1], self.D.shape[2]
        K = len(self.stages)
        grad_x = np.zeros((K, p, m), dtype=self.D.dtype) if need_dx else None
        if isinstance(crossbars, ensemble_chip_read.ChipMembers):
            grad_V_all, grad_G = crossbars.backward(grad_I, need_dx)
            member_grads = ((layout.block(grad_V_all, k, p) if need_dx else None,
                             None if layout.offsets[k + 1] - layout.offsets[k] == m else layout.member_rows(k))
                            for k in range(K))
        else:
            grad_G = np.empty((layout.total, n), dtype=self.D.dtype)
            member_grads = []
            for k, (crossbar, _, rows) in enumerate(crossbars):
                grad_V, grad_Gk = crossbar.backward(grad_I[k], need_V=need_dx)
                grad_G[layout.offsets[k]:layout.offsets[k + 1]] = grad_Gk
                member_grads.append((grad_V, rows))
        if need_dx:
            for k, (grad_V, rows) in enumerate(member_grads):
                if rows is None:
                    grad_x[k] = grad_V
                else:
                    grad_x[k][:, rows] = grad_V
        with threads_for(self.D.size):
            grad_D = ensemble_steps.double_w_to_G_vjp_rows(self.D, grad_G, layout, grad_max_weight,
                                                           self.G_off, self.G_on, max_weight)
        if not need_dx:
            return None, grad_D
        grad_x = grad_x[:, :, :-1]
        grad_x *= self.k_V.astype(grad_x.dtype)[:, None, None]
        return grad_x, grad_D
