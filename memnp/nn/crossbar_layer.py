"""The shared machinery of the memristive layers (:class:`CrossbarLayer`): parameters in the
crossbar's layout, the mapping onto conductances, the crossbar read under a stage and its VJP,
and the power; :mod:`memnp.nn.memristive` builds MemristiveDense and MemristiveConv2D on it.

A read of inputs x (p, n_rows) is one crossbar of m = n_rows + 1 rows (the bias row is an input
fixed to 1) and 2 n_out columns (differential pairs, positive device first):

    V = k_V [x, 1]  ->  G from the weights  ->  I = CrossbarPass(stage).forward(V, G)  ->  y = I_to_y(I)

Double weights are kept as views of one matrix D (n_rows + 1, 2 n_out) so that reads and
optimiser steps work on D directly; standard weights in a stage without nonidealities skip the
crossbar (y = x W + b). The VJP runs the same stairs in reverse with the forward pass's draws,
including the path through max_weight.
"""
import math

import numpy as np

from ..crossbar import (CrossbarPass, I_to_y, I_to_y_vjp, double_weights_matrix, split_double_weights,
                        standard_weights_matrix, w_to_G, x_to_V)
from ..crossbar.mapping import _double_G, _double_max_weight, w_to_G_vjp_rows
from ..crossbar.validation import finite_array, float_array, non_empty_batch, unit_interval, weight_dtype
from ..kernels import get_backend
from ..kernels import mapping as mapping_loops
from ..kernels import standard_mapping as standard_loops
from .base import Layer, _generator
from .reads import CrossbarRead, DigitalRead

WEIGHTS = ("double", "standard")
#: Parameter names of double weights, in the order of split_double_weights.
DOUBLE = ("w_pos", "w_neg", "b_pos", "b_neg")


class CrossbarLayer(Layer):
    """Shared machinery of the memristive layers: parameters, mapping, crossbar pass, power.

    ``n_rows`` inputs per crossbar read (excluding the bias row), ``n_out`` outputs;
    ``weight_shape`` is the shape the weight parameters are kept in (it reshapes to (n_rows, n_out)).
    """

    memristive = True
    #: False when no caller will ask for dL/dx (lets linear-crossbar passes skip inactive rows).
    needs_input_gradient = True

    def __init__(self, n_rows, n_out, weight_shape, weights, dtype):
        super().__init__(dtype)
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
        self.weights = weights
        self.n_rows, self.n_out, self.weight_shape = n_rows, n_out, tuple(weight_shape)
        names = DOUBLE if weights == "double" else ("W", "b")
        self.params = {name: np.zeros(self.weight_shape if name[0] in "wW" else (n_out,), self.dtype)
                       for name in names}
        self._last = None
        # Double weights: D and the views of it that params holds; dL/dD and the views in grads.
        self._D = self._views = self._grad_D = self._grad_views = None

    @property
    def constrained(self):
        """Names of the parameters projected onto >= 0 after every step (the double weights)."""
        return tuple(self.params) if self.weights == "double" else ()

    def initialize(self, rng):
        """Paper initialisers: standard W ~ N(0, 1/sqrt(n_rows)), b = 0; double w ~ N(0.5,
        1/sqrt(n_rows)), b = 0.5 (standard deviations). Double weights are then projected onto
        >= 0 (the reference applies its NonNeg constraint only after the first step; a negative
        initial double weight, about 1 in 160 for 25 inputs, would map below G_off)."""
        _generator(rng)
        std = 1.0 / math.sqrt(self.n_rows)
        if self.weights == "standard":
            self.params["W"] = rng.normal(0.0, std, self.weight_shape).astype(self.dtype)
            self.params["b"] = np.zeros(self.n_out, self.dtype)
        else:
            for name in ("w_pos", "w_neg"):
                self.params[name] = np.maximum(rng.normal(0.5, std, self.weight_shape), 0).astype(self.dtype)
            for name in ("b_pos", "b_neg"):
                self.params[name] = np.full(self.n_out, 0.5, self.dtype)

    # -- the crossbar read ----------------------------------------------------------------------
    def _matrix(self):
        """D (n_rows + 1, 2 n_out) for double weights, or W (n_rows + 1, n_out) for standard.

        For double weights D is the layer's own storage: params' four arrays are views of it.
        When any of them has been replaced by another array (initialize, load, astype, a user's
        assignment), D is rebuilt from the current values and params point at its views again."""
        p = self.params
        if self.weights == "double":
            if not self._intact(p, self._views):
                for name in DOUBLE:
                    weight_dtype(name, p[name])
                shape = (self.n_rows, self.n_out)
                w_pos, w_neg, b_pos, b_neg = (np.asarray(p[name], self.dtype) for name in DOUBLE)
                self._D = double_weights_matrix(w_pos.reshape(shape), w_neg.reshape(shape), b_pos, b_neg)
                self._views = self._split(self._D)
                self._grad_D = self._grad_views = None   # grads, if any, pair with the old D
                p.update(zip(DOUBLE, self._views))
            return self._D
        _standard_weight_dtypes(p)
        return standard_weights_matrix(p["W"].reshape(self.n_rows, self.n_out), p["b"])

    def _split(self, D):
        """(w_pos, w_neg, b_pos, b_neg) views of D (or of dL/dD) in the parameters' shapes."""
        w_pos, w_neg, b_pos, b_neg = split_double_weights(D)
        return w_pos.reshape(self.weight_shape), w_neg.reshape(self.weight_shape), b_pos, b_neg

    def update_groups(self):
        """[(name, parameter, gradient, non_negative)]: for double weights whose params and grads
        are still the views of D and dL/dD, the single group ("D", D, dL/dD, True) (one contiguous
        update instead of four strided ones, the same values); otherwise one group per parameter."""
        if self.weights == "double" and self._intact(self.params, self._views) \
                and self._intact(self.grads, self._grad_views):
            return [("D", self._D, self._grad_D, True)]
        return super().update_groups()

    def keep_matrix_in(self, D):
        """Keep the double weights in ``D`` (n_rows + 1, 2 n_out), a C-contiguous array of the
        layer's dtype holding their current values (a slice of :class:`memnp.nn.Ensemble`'s
        stacked weights): params become views of it, as after :meth:`_matrix` rebuilt D."""
        if self.weights != "double" or D.shape != (self.n_rows + 1, 2 * self.n_out) or D.dtype != self.dtype \
                or not D.flags.c_contiguous:
            raise ValueError(f"D must be a C-contiguous {self.dtype} array of shape "
                             f"{(self.n_rows + 1, 2 * self.n_out)} for double weights; got {D.dtype} {D.shape}")
        self._D = D
        self._views = self._split(D)
        self._grad_D = self._grad_views = None
        self.params.update(zip(DOUBLE, self._views))

    def keeps_matrix_in(self, D):
        """True when the double weights are still kept in ``D`` (see :meth:`keep_matrix_in`)."""
        return self._D is D and self._intact(self.params, self._views)

    @staticmethod
    def _intact(arrays, views):
        """True when ``arrays`` (params or grads) still holds exactly the four ``views``."""
        if views is None:
            return False
        get = arrays.get     # unrolled: this runs several times per training step
        return (get("w_pos") is views[0] and get("w_neg") is views[1] and get("b_pos") is views[2]
                and get("b_neg") is views[3])

    def _read(self, x, ctx):
        """Outputs y (p, n_out) from inputs x (p, n_rows) under ``ctx.stage``."""
        stage = getattr(ctx, "stage", None)
        if stage is None:
            raise ValueError(f"{type(self).__name__} needs a stage (give one to the model or the call)")
        x = _float_matrix(x)
        if x.shape[1] != self.n_rows:
            raise ValueError(f"x must have {self.n_rows} columns (the layer's inputs) for "
                             f"{type(self).__name__}; got shape {x.shape}")
        if self.weights == "standard" and stage.is_ideal:
            _standard_weight_dtypes(self.params)
            if not mapping_loops.in_unit_interval(x):
                _input_error(x)
            W = self.params["W"].reshape(self.n_rows, self.n_out)
            y = x @ W
            y += self.params["b"]
            self._last = DigitalRead(x, stage, ctx.backend)
            return y
        if stage.random and not isinstance(ctx.rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator (np.random.default_rng(seed)) when "
                             f"the stage has random nonidealities; got {type(ctx.rng).__name__}")
        M = self._matrix()
        double = self.weights == "double"
        if double:
            # The layer built D itself: the checks of double_w_to_G in one pass over D's bits (the
            # checked NumPy form when they fail, for its error), and G only for the rows that are
            # read (the same values as double_w_to_G's).
            max_weight = mapping_loops.double_max_weight(M)
            if max_weight is None:
                max_weight = _double_max_weight(M)
        else:
            # Standard weights: max |W| in one pass over W's bits, and G below only for the rows
            # read (the same values as w_to_G's); the checked NumPy form when the scan fails.
            G = None
            max_weight = standard_loops.max_weight(M)
            if max_weight is None:
                G, max_weight = w_to_G(M, stage.G_off, stage.G_on, stage.mapping_rule)
        active, valid = mapping_loops.scan_inputs(x)
        if not valid:
            _input_error(x)
        shape = M.shape if double else (M.shape[0], 2 * M.shape[1])
        rows = draws = None
        crossbar = CrossbarPass(stage, ctx.backend)
        read_rng = getattr(ctx, "read_rng", None)
        if not stage.is_ideal and stage.rows_separable \
                and (stage.nonpreserving is not None or not self.needs_input_gradient):
            # Rows whose voltage is 0 for every example carry no current, so their devices get no
            # gradient and only the active rows are read; the bias row is always active. Their
            # input gradient is 0 under PF (the reference's rule at V = 0) but not in a linear
            # crossbar, so there rows are dropped only when no input gradient is wanted
            # (``needs_input_gradient``, set by the model for its first trainable layer).
            # Draws: with ctx.draws == "active" (the default) only the active rows get draws (the
            # others' draws could not change anything); with "all" they are made for the whole
            # crossbar, in CrossbarPass's order, and the active rows taken from them, so every
            # device gets the draw it would get in a full pass (the result equals the full pass's
            # for the same Generator state).
            if not active.all():
                rows = np.flatnonzero(active)
                if ctx.draws == "all":
                    draws = _take_rows(crossbar.sample(shape, ctx.rng, M.dtype, read_rng), rows, shape)
                if double:
                    G = mapping_loops.double_G_rows(M, rows, max_weight, stage.G_off, stage.G_on)
                elif G is None:
                    G = standard_loops.G_rows(M, rows, max_weight, stage.G_off, stage.G_on, stage.mapping_rule)
                else:
                    G = G[rows]
        V = mapping_loops.voltages(x, stage.k_V, np.arange(shape[0]) if rows is None else rows)
        if double and rows is None:
            G = _double_G(M, max_weight, stage.G_off, stage.G_on)
        elif G is None and rows is None:
            G = standard_loops.G_rows(M, np.arange(shape[0]), max_weight, stage.G_off, stage.G_on,
                                      stage.mapping_rule)
        # This read built V from x in [0, 1] (the input scan) and G >= G_off from checked weights,
        # and checked rng above; dL/dy is checked in _read_vjp. The pass need not scan them again.
        crossbar.inputs_checked = crossbar.gradients_checked = True
        I = crossbar.forward(V, G, ctx.rng, draws, rows, shape[0], read_rng)
        self._last = CrossbarRead(M, max_weight, I, crossbar, stage, rows)
        if mapping_loops.supported(I):
            return mapping_loops.outputs(I, stage.k_V, max_weight, stage.G_off, stage.G_on)
        return I_to_y(I, stage.k_V, max_weight, stage.G_off, stage.G_on)

    def _read_vjp(self, dy, need_dx):
        """dL/dx (p, n_rows) or None from dL/dy (p, n_out); fills the parameter gradients."""
        self._forward_cache("_last")
        last = self._last
        self._gradient(dy, (last.x.shape[0] if isinstance(last, DigitalRead) else last.I.shape[0], self.n_out))
        if isinstance(last, DigitalRead):
            x = last.x
            W = self.params["W"].reshape(self.n_rows, self.n_out)
            self.grads["W"] = (x.T @ dy).reshape(self.weight_shape)
            self.grads["b"] = dy.sum(axis=0)
            return dy @ W.T if need_dx else None
        M, max_weight, I, crossbar = last.M, last.max_weight, last.I, last.crossbar
        stage, rows = last.stage, last.rows
        if mapping_loops.supported(I, dy):
            grad_I, grad_max_weight = mapping_loops.outputs_vjp(I, dy, stage.k_V, max_weight,
                                                                stage.G_off, stage.G_on)
        else:
            grad_I, grad_max_weight = I_to_y_vjp(I, dy, stage.k_V, max_weight, stage.G_off, stage.G_on)
        if not math.isfinite(grad_max_weight):
            # A sum over every entry of dL/dy: NaN or inf in dL/dy reaches it (inf * 0 is NaN).
            finite_array("dy", dy)
        if rows is not None and need_dx and stage.nonpreserving is None:
            raise ValueError(f"{type(self).__name__}: no input gradient is available after a pass with "
                             "needs_input_gradient = False in a linear crossbar; set it to True")
        grad_V, grad_G = crossbar.backward(grad_I, need_V=need_dx)
        if rows is not None and need_dx:
            full = np.zeros((grad_V.shape[0], self.n_rows + 1), grad_V.dtype)
            full[:, rows] = grad_V
            grad_V = full
        read = np.arange(M.shape[0]) if rows is None else rows
        if self.weights == "double":
            grad_M = mapping_loops.double_w_to_G_vjp_rows(M, grad_G, read, grad_max_weight, stage.G_off, stage.G_on,
                                                          max_weight)
            self._grad_D, self._grad_views = grad_M, self._split(grad_M)
            self.grads.update(zip(DOUBLE, self._grad_views))
        else:
            if mapping_loops.supported(M, grad_G):
                grad_M = standard_loops.w_to_G_vjp_rows(M, grad_G, read, grad_max_weight, stage.G_off, stage.G_on,
                                                        stage.mapping_rule, max_weight)
            else:
                grad_M = w_to_G_vjp_rows(M, grad_G, read, grad_max_weight, stage.G_off, stage.G_on,
                                         stage.mapping_rule)
            self.grads["W"] = grad_M[:-1].reshape(self.weight_shape)
            self.grads["b"] = grad_M[-1]
        if not need_dx:
            return None
        grad_x = grad_V[:, :-1]
        grad_x *= stage.k_V
        return grad_x

    def power(self):
        """Average power (W) of this crossbar over the reads of the last forward pass (docs/model.md §3).

        After a digital-shortcut pass, the power the ideal crossbar would have dissipated under
        that stage, mapped from the layer's current weights (ask before the next optimiser step).
        For a convolution every receptive field is one read.
        """
        if self._last is None:
            raise ValueError(f"{type(self).__name__}.power() needs a forward pass first")
        last = self._last
        if isinstance(last, CrossbarRead):
            return float(last.crossbar.power())
        stage = last.stage
        G, _ = w_to_G(self._matrix(), stage.G_off, stage.G_on, stage.mapping_rule)
        return float(get_backend(last.backend).ideal_power(x_to_V(last.x, stage.k_V), G))

    def power_parts(self):
        """dict(device=W, wires=W, total=W) of the last forward pass: the devices' and the line
        resistance's dissipation (wires 0.0 without a LineResistance in the stage)."""
        if isinstance(self._last, CrossbarRead):
            return {k: float(v) for k, v in self._last.crossbar.power_parts().items()}
        total = self.power()
        return {"device": total, "wires": 0.0, "total": total}


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_matrix(x):
    """x (p, n), p >= 1, as a C-contiguous float32 or float64 array (other numbers as float64);
    its range, [0, 1], is checked by the input scans."""
    if type(x) is np.ndarray and x.ndim == 2 and x.shape[0] and x.dtype in _FLOATS and x.flags.c_contiguous:
        return x             # what the layers pass each other: nothing to convert or check here
    x = float_array("x", x, ndim=2)
    non_empty_batch("x", x)
    return np.ascontiguousarray(x if x.dtype in (np.float32, np.float64) else x.astype(np.float64))


def _standard_weight_dtypes(params):
    """ValueError unless W and b are float32/float64 arrays (the dtype look-ups inlined: this
    runs on every read)."""
    W, b = params["W"], params["b"]
    if getattr(W, "dtype", None) not in _FLOATS or getattr(b, "dtype", None) not in _FLOATS:
        weight_dtype("W", W)
        weight_dtype("b", b)


def _input_error(x):
    """The ValueError for inputs x that failed a scan: not finite, or outside [0, 1]."""
    finite_array("x", x)
    unit_interval("x", x)
    raise AssertionError("the input scan and the NumPy check disagree")  # pragma: no cover


def _take_rows(draws, rows, shape):
    """The draws of the devices in ``rows``: every array whose last two axes are the crossbar's
    (m, n) ``shape`` is indexed on its row axis (tuples element by element)."""
    if isinstance(draws, dict):
        return type(draws)((name, _take_rows(item, rows, shape)) for name, item in draws.items())
    if isinstance(draws, tuple):
        return tuple(_take_rows(item, rows, shape) for item in draws)
    draws = np.asarray(draws)
    if draws.shape[-2:] != tuple(shape):
        raise ValueError(f"draws must end in the crossbar's shape {tuple(shape)}; got {draws.shape}")
    return draws[..., rows, :]
