"""Checks of user input shared by the crossbar modules: each raises ValueError naming the parameter."""
import math

import numpy as np


def _number(name, value, accept, allowed):
    """value as a float when ``accept(float)`` holds, else ValueError '<name> must be <allowed>'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}; got {value!r}") from None
    if not accept(number):
        raise ValueError(f"{name} must be {allowed}; got {number!r}")
    return number


def positive(name, value):
    """A finite number > 0, returned as float."""
    return _number(name, value, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative(name, value):
    """A finite number >= 0, returned as float."""
    return _number(name, value, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def probability(name, value):
    """A number in [0, 1], returned as float."""
    return _number(name, value, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")


def conductance_range(G_off, G_on):
    """G_off and G_on as floats with 0 < G_off < G_on (siemens)."""
    G_off, G_on = positive("G_off", G_off), positive("G_on", G_on)
    if G_off >= G_on:
        raise ValueError(f"G_off must be smaller than G_on; got G_off={G_off!r} S, G_on={G_on!r} S")
    return G_off, G_on


def float_array(name, array, ndim=None):
    """A floating-point array (other numbers as float64) with ``ndim`` dimensions, if given."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a numeric array; got dtype {array.dtype}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {array.shape}")
    return array


def finite_array(name, array, ndim=None):
    """A floating-point array with only finite values (and ``ndim`` dimensions, if given)."""
    array = float_array(name, array, ndim)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return array


def positive_array(name, array, ndim=None):
    """A finite array whose values are all > 0."""
    array = finite_array(name, array, ndim)
    if array.size and array.min() <= 0:
        raise ValueError(f"{name} must contain only values > 0; its minimum is {array.min()!r}")
    return array


def same_shape(name_a, a, name_b, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{name_b} must have the shape of {name_a} {np.shape(a)}; got {np.shape(b)}")
