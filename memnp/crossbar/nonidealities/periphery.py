"""The periphery of a crossbar (memnp.crossbar.pipeline): digital-to-analog converters on the rows
(:class:`DAC`), analog-to-digital converters on the columns (:class:`ADC`) and the split of a
large crossbar into arrays (:class:`Tiles`, read by :mod:`memnp.crossbar.tiling`).

Quantisers have no useful derivative (zero almost everywhere), so their VJPs use the
straight-through estimator: the gradient passes unchanged inside the converter's range and is zero
outside it.
"""
import dataclasses
import math
import numbers

import numpy as np

from ...kernels import periphery as periphery_loops
from ..validation import positive
from .base import Periphery, register

WORST_CASE = "worst-case"


def _bits(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= 16:
        raise ValueError(f"bits must be an integer from 1 to 16; got {value!r}")
    return int(value)


def _size(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 2:
        raise ValueError(f"{name} must be an integer >= 2 (devices per array side); got {value!r}")
    return int(value)


@register
@dataclasses.dataclass(frozen=True)
class DAC(Periphery):
    """Row drivers of ``bits`` bits (1 to 16): inputs x = V / k_V in [0, 1] are rounded to the
    nearest of the levels k / (2^bits - 1), k = 0 .. 2^bits - 1, before V = k_V x. Inputs outside
    [0, 1] are refused (ValueError). Gradient: the straight-through estimator (identity inside the
    range, zero outside)."""

    bits: int

    phase = "dac"

    def __post_init__(self):
        object.__setattr__(self, "bits", _bits(self.bits))

    @property
    def label(self):
        return f"DAC(bits={self.bits})"

    @property
    def levels(self):
        """2^bits - 1, the largest level index."""
        return (1 << self.bits) - 1

    def apply(self, V, k_V, checked=False):
        """Quantised voltages (shape and dtype of V (p, m), volts): k dtype(k_V / L), k = round(L V / k_V).
        ValueError when an input x = V / k_V lies outside [0, 1] (beyond rounding), unless the
        caller has ``checked`` that already (the memristive layers' input scan keeps x in [0, 1]).
        One Numba pass (:mod:`memnp.kernels.periphery`) for contiguous float arrays, else
        :meth:`apply_numpy`."""
        if periphery_loops.supported(V):
            Vq, low, high = periphery_loops.quantise(V, k_V, self.levels, bounds=not checked)
        else:
            Vq, low, high = self.apply_numpy(V, k_V)
        if not checked:
            self._check(V, k_V, low, high)
        return Vq

    @staticmethod
    def _check(V, k_V, low, high):
        slack = 8 * float(np.finfo(V.dtype).eps) if V.dtype.kind == "f" else 0.0
        if V.size and not (low >= -slack and high <= 1 + slack):
            raise ValueError(f"DAC inputs x = V / k_V must be in [0, 1]; got values from {low!r} to "
                             f"{high!r} (V from {low * k_V!r} to {high * k_V!r} V, k_V = {k_V!r} V)")

    def apply_numpy(self, V, k_V):
        """(V_q, min x, max x) in NumPy passes (the reference of :meth:`apply`, unchecked)."""
        dtype = V.dtype.type
        L = self.levels
        x = np.multiply(V, dtype(1.0 / k_V))
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        x *= dtype(L)
        np.rint(x, out=x)
        np.clip(x, dtype(0), dtype(L), out=x)
        x *= dtype(k_V / L)
        return x, low, high

    def apply_vjp(self, V, k_V, grad):
        """Straight-through estimator: dL/dV = dL/dV_q inside the range 0 <= V <= k_V, 0 outside.
        :meth:`apply` refuses inputs outside the range, so every input of a pass is inside and
        ``grad`` passes through unchanged."""
        return grad


@register
@dataclasses.dataclass(frozen=True)
class ADC(Periphery):
    """Column converters of ``bits`` bits (1 to 16), one per column of every array: a current I is
    rounded to the nearest of the levels k full_scale / (2^bits - 1) and clipped to [0, full_scale].

    ``full_scale``: "worst-case" (the array's largest possible column current, every row at k_V
    and every device at G_on under the stage's I-V model; see :func:`memnp.crossbar.tiling.worst_case_current`)
    or a current in amperes (> 0). Gradient: the straight-through estimator (identity where
    0 <= I <= full_scale, zero where the ADC clips).
    """

    bits: int
    full_scale: object = WORST_CASE

    phase = "adc"

    def __post_init__(self):
        object.__setattr__(self, "bits", _bits(self.bits))
        if isinstance(self.full_scale, str):
            if self.full_scale != WORST_CASE:
                raise ValueError(f"full_scale must be {WORST_CASE!r} or a current > 0 (A); got {self.full_scale!r}")
        else:
            if isinstance(self.full_scale, bool):
                raise ValueError(f"full_scale must be {WORST_CASE!r} or a current > 0 (A); got {self.full_scale!r}")
            object.__setattr__(self, "full_scale", positive("full_scale (A)", self.full_scale))

    def check_stage(self, stage):
        """A fixed full scale must be at least k_V G_off, the current of one device at G_off read
        at k_V by Ohm's law (the current scale of one device; a full scale below it saturates the
        converters as soon as a few rows are driven, whatever the I-V model)."""
        if isinstance(self.full_scale, str):
            return
        smallest = stage.k_V * stage.G_off
        if self.full_scale < smallest:
            raise ValueError(f"ADC full_scale (A) must be at least k_V G_off, the current of one device at G_off "
                             f"read at k_V ({smallest:.4g} A for this stage), or {WORST_CASE!r}; got "
                             f"{self.full_scale!r} A")

    def check_full_scale(self, largest, rows):
        """A fixed full scale must let the largest column current of an array of ``rows`` rows
        (``largest``, A) reach the first level: full_scale <= 2 (2^bits - 1) largest (above it
        every current rounds to 0)."""
        if not isinstance(self.full_scale, str) and self.full_scale > 2 * self.levels * largest:
            raise ValueError(f"ADC full_scale (A) must be at most 2 (2^bits - 1) = {2 * self.levels} times the "
                             f"largest column current of an array of {rows} rows ({largest:.4g} A), or every "
                             f"current reads 0; got {self.full_scale!r} A")

    @property
    def label(self):
        fs = self.full_scale if isinstance(self.full_scale, str) else f"{self.full_scale:.4g}"
        return f"ADC(bits={self.bits},full_scale={fs})"

    @property
    def levels(self):
        return (1 << self.bits) - 1

    def apply(self, I, full_scale):
        """Quantised currents (shape and dtype of I (..., n), A): clip(round(L I / fs), 0, L) (fs / L)
        in I's dtype. ``full_scale`` (A): a number, or an array that broadcasts against I (one
        full scale per array of a tiled read)."""
        dtype = I.dtype
        L = self.levels
        q = np.multiply(I, np.asarray(L / np.asarray(full_scale, np.float64), dtype))
        np.rint(q, out=q)
        np.clip(q, dtype.type(0), dtype.type(L), out=q)
        q *= np.asarray(np.asarray(full_scale, np.float64) / L, dtype)
        return q

    def apply_vjp(self, I, full_scale, grad):
        """Straight-through estimator: dL/dI = dL/dI_q where 0 <= I <= full_scale, 0 outside."""
        inside = (I >= 0) & (I <= np.asarray(full_scale, I.dtype))
        return np.where(inside, grad, 0).astype(grad.dtype, copy=False)


@register
@dataclasses.dataclass(frozen=True)
class Tiles(Periphery):
    """Arrays of at most ``rows`` x ``cols`` devices (each >= 2). A crossbar of m x n devices is
    cut into ceil(m / rows) x ceil(n / cols) arrays; each has its own ADCs (and wires), and the
    arrays' partial column currents are added digitally. Not a disturbance: it only changes what
    the ADCs and the wires see (without them, the outputs are unchanged)."""

    rows: int
    cols: int

    phase = "tiles"

    def __post_init__(self):
        object.__setattr__(self, "rows", _size("rows", self.rows))
        object.__setattr__(self, "cols", _size("cols", self.cols))

    @property
    def label(self):
        return f"Tiles(rows={self.rows},cols={self.cols})"

    def row_bounds(self, m):
        """[(start, stop)] of the row blocks of an m-row crossbar."""
        return [(i, min(i + self.rows, m)) for i in range(0, m, self.rows)]

    def col_bounds(self, n):
        return [(j, min(j + self.cols, n)) for j in range(0, n, self.cols)]

    def count(self, m, n):
        """Number of arrays of an m x n crossbar."""
        return math.ceil(m / self.rows) * math.ceil(n / self.cols)
