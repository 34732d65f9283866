"""One pass of a crossbar under a stage: disturb G, compute the currents, and back again.

:class:`CrossbarPass` is the stair between conductances and currents of the data path. It runs
the stage's phases in the physical order of :data:`memnp.crossbar.pipeline.PHASES`: the
conductance phases (programming, drift, stuck, read noise) turn G into the read conductances, the
DAC quantises V, the currents phase (Ohm's law or PF, with LineResistance when the stage has it)
gives the column currents and the ADC quantises them, array by array under Tiles
(:mod:`memnp.crossbar.tiling`). ``forward`` draws the stage's randomness from the caller's
Generator, phase by phase, and keeps it (a :class:`~memnp.crossbar.pipeline.Draws` dict by phase
name) with what the backward pass needs; ``backward`` returns the gradients with respect to V and
G: exact for every differentiable phase, straight-through for the quantisers.
"""
import dataclasses

import numpy as np

from ..kernels import conductance_chain, get_backend, stage_draws
from . import tiling
from .pipeline import Draws
from . import validation

@dataclasses.dataclass(eq=False)
class ReadState:
    """What a forward pass keeps for its backward pass, power and reports.

    V (p, m) in V and G (m, n) in S as handed over; G_read (m, n) the read conductances; draws the
    pass's :class:`~memnp.crossbar.pipeline.Draws`; devices (c, d_eps) (m, n) each under PF, else
    None; V_read (p, m) the voltages after the DAC; inputs the conductance phases' inputs, or None
    when they ran in one pass (memnp.kernels.conductance_chain; vjp_args: that kernel's arguments
    when the draws were made in the same call); tiles the array-by-array read's state
    (memnp.crossbar.tiling), or None for one plain read."""

    V: np.ndarray
    G: np.ndarray
    G_read: np.ndarray = None
    draws: object = None
    devices: object = None
    V_read: np.ndarray = None
    inputs: object = None
    tiles: object = None
    vjp_args: object = None


class CrossbarPass:
    """Currents I (p, n) in A from voltages V (p, m) in V and conductances G (m, n) in S, on
    ``backend`` (a memnp.kernels.backend.Backend, or its name: resolved once, here)."""

    def __init__(self, stage, backend=None):
        self.stage = validation.stage("stage", stage)
        self.backend = get_backend(backend)
        self._cache = None       # the last forward pass's ReadState

    def sample(self, shape, rng, dtype=np.float64, read_rng=None):
        """Draws for a crossbar of ``shape`` (m, n), phase by phase in physical order: "chip" phases
        from ``rng``, "read" phases (read noise) from ``read_rng`` when given (chip mode: a stream
        that goes on from batch to batch), else from ``rng``."""
        if self.stage.fused_conductances:
            # One block of raw words per Generator (memnp.kernels.stage_draws): the same draws.
            fused = stage_draws.sample(self.stage.phases, shape, rng, read_rng, dtype,
                                       draw_plan=self.stage.draw_plan)
            if fused is not None:
                return Draws(fused)
        draws = Draws()
        for name, item in self.stage.phases.items():
            kind = item.draws
            if kind is None:
                continue
            source = read_rng if kind == "read" and read_rng is not None else rng
            draws[name] = item.sample(shape, source, dtype)
        return draws

    def forward(self, V, G, rng, draws=None, rows=None, n_rows=None, read_rng=None):
        """Column currents I (p, n).

        ``draws`` replays the draws of an earlier pass (a Draws dict, or for a paper stage the old
        (preserving, nonpreserving) pair) instead of drawing from ``rng`` / ``read_rng`` (see
        :meth:`sample`). ``rows``: when V and G hold only some rows of a crossbar of ``n_rows`` rows,
        their indices in it (ascending); Tiles and the ADCs' full scales follow the full crossbar.
        """
        stage = self.stage
        validation.crossbar_inputs(self, V, G, rng, draws)
        validation.crossbar_rows(self, V, rows, n_rows)
        validation.replayed_draws(self, draws, G)
        phases = stage.phases
        G_read = devices = vjp_args = None
        if draws is None:
            # A combined stage: the draws, the conductance phases and the PF device parameters in
            # one kernel call (memnp.kernels.stage_draws), where it applies.
            fused = stage_draws.sample_and_apply(phases, stage.draw_plan, G, rng, read_rng) \
                if stage.draw_plan is not None else None
            if fused is not None:
                draws, G_read, devices, vjp_args = fused
                draws = Draws(draws)
            else:
                draws = self.sample(G.shape, rng, G.dtype, read_rng)
        elif isinstance(draws, tuple):
            draws = Draws.from_pair(stage, draws)
        get = draws.get   # dict.get: the plain lookup by phase name
        if G_read is None and stage.fused_conductances:
            G_read = conductance_chain.apply(phases, G, draws)
        if G_read is None:
            inputs = []
            G_read = G
            for name, item in stage.conductance_phases:
                inputs.append(G_read)
                G_read = item.apply(G_read, get(name))
        else:
            inputs = None     # one pass each way (memnp.kernels.conductance_chain)
        dac = phases.get("dac")
        V_read = dac.apply(V, stage.k_V, getattr(self, "inputs_checked", False)) if dac is not None else V
        pf = stage.nonpreserving
        if devices is None and pf is not None:
            devices = pf.device_parameters(G_read, get("currents"))
        tiles = None
        if stage.plain_read:
            I = self.backend.pf_currents(V_read, *devices) if pf is not None \
                else self.backend.ideal_currents(V_read, G_read)
        else:
            I, tiles = tiling.read(self.backend, stage, V_read, G_read, devices, rows, n_rows)
        self._cache = ReadState(V, G, G_read, draws, devices, V_read, inputs, tiles, vjp_args)
        return I

    @property
    def read_conductances(self):
        """The conductances (m, n) in S the last forward pass read: G after programming, drift,
        stuck devices and read noise."""
        validation.forward_done(self, "CrossbarPass.read_conductances")
        return self._cache.G_read

    @property
    def draws(self):
        """The draws of the last forward pass (for replay): {phase name: draws}."""
        validation.forward_done(self, "CrossbarPass.draws")
        return self._cache.draws

    def backward(self, grad_I, need_V=True):
        """(dL/dV (p, m), dL/dG (m, n)) from dL/dI (p, n), with the draws of the last forward pass.
        dL/dV is None (and not computed) when ``need_V`` is false."""
        validation.crossbar_gradient(self, grad_I)
        state = self._cache
        V, G, G_read, draws, devices = state.V, state.G, state.G_read, state.draws, state.devices
        V_read, inputs, tiles = state.V_read, state.inputs, state.tiles
        stage = self.stage
        pf = stage.nonpreserving
        if tiles is not None:
            grad_V, grad_devices = tiling.read_vjp(self.backend, stage, tiles, grad_I, need_V)
            grad_G = pf.device_parameters_vjp(G_read, *devices, *grad_devices) if pf is not None \
                else grad_devices
        elif pf is not None:
            c, d_eps = devices
            grad_V, grad_c, grad_d_eps = self.backend.pf_currents_vjp(V_read, c, d_eps, grad_I, need_V)
            grad_G = pf.device_parameters_vjp(G_read, c, d_eps, grad_c, grad_d_eps)
        else:
            grad_V = grad_I @ G_read.T if need_V else None
            grad_G = V_read.T @ grad_I
        fused = None
        if inputs is None:
            fused = conductance_chain.apply_vjp_with(state.vjp_args, G, grad_G) if state.vjp_args is not None \
                else conductance_chain.apply_vjp(stage.phases, G, draws, grad_G)
            if fused is None:   # a gradient of another dtype or layout: the inputs again
                inputs = [G]
                for name, item in stage.conductance_phases[:-1]:
                    inputs.append(item.apply(inputs[-1], draws.get(name)))
        if fused is not None:
            grad_G = fused
        else:
            get = draws.get
            for (name, item), G_in in zip(reversed(stage.conductance_phases), reversed(inputs)):
                grad_G = item.apply_vjp(G_in, get(name), grad_G)
        if grad_V is not None:
            dac = stage.phases.get("dac")
            if dac is not None:
                grad_V = dac.apply_vjp(V, stage.k_V, grad_V)
            grad_V = grad_V.astype(V.dtype, copy=False)
        return grad_V, np.asarray(grad_G, dtype=G.dtype)

    def wire_reports(self):
        """[(r0, r1, c0, c1, SolveReport)] of the last forward pass: LineResistance's report
        (``wires.report(state)``) for every array read, with the array's rows r0:r1 and columns
        c0:c1 of the matrices handed over; [] for a stage without wires."""
        validation.forward_done(self, "CrossbarPass.wire_reports()")
        tiles = self._cache.tiles
        wires = self.stage.phases.get("wires")
        if tiles is None or wires is None:
            return []
        return [(part.r0, part.r1, part.c0, part.c1, wires.report(part.wires)) for part in tiles.parts]

    def power(self):
        """Average power (W) of the crossbar over the examples of the last forward pass (summed
        over the arrays under Tiles)."""
        validation.forward_done(self, "CrossbarPass.power()")
        state = self._cache
        if state.tiles is not None and "wires" in self.stage.phases:
            return self.power_parts()["total"]
        if state.devices is not None:
            return self.backend.pf_power(state.V_read, *state.devices)
        return self.backend.ideal_power(state.V_read, state.G_read)

    def power_parts(self):
        """dict(device=W, wires=W, total=W) of the last forward pass, averaged over its examples
        and summed over the arrays; "wires" is the line resistance's dissipation (0 without it)."""
        validation.forward_done(self, "CrossbarPass.power_parts()")
        tiles = self._cache.tiles
        if tiles is not None and "wires" in self.stage.phases:
            return tiling.power_parts(self.stage, tiles)
        total = self.power()
        return {"device": total, "wires": 0.0, "total": total}

    @property
    def solve_report(self):
        """The line-resistance SolveReport of the last forward pass (a list, one per array, when
        Tiles cut the crossbar), or None without wires; :meth:`wire_reports` names the arrays."""
        validation.forward_done(self, "CrossbarPass.solve_report")
        reports = [report for *_, report in self.wire_reports()]
        if not reports:
            return None
        return reports[0] if len(reports) == 1 else reports
