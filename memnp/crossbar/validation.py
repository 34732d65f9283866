"""Checks of user input shared by the crossbar modules: each raises ValueError naming the parameter."""
import math

import numpy as np

from ..kernels import checks

#: Floating-point types that weights, voltages and conductances may have.
FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _number(name, value, accept, allowed):
    """value as a float when ``accept(float)`` holds, else ValueError '<name> must be <allowed>'.
    Booleans are refused (``True`` would otherwise pass as 1.0)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be {allowed}, not a boolean; got {value!r}")
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


def in_range(name, value, low, high):
    """A finite number in [low, high], returned as float."""
    return _number(name, value, lambda v: math.isfinite(v) and low <= v <= high,
                   f"a finite number in [{low!r}, {high!r}]")


#: The conductances (S) a range may span: 1 fS (1 POhm) to 1 kS (1 mOhm), far beyond any device;
#: outside it G, k_V G and the currents leave float32's normal range or lose its precision.
MIN_CONDUCTANCE, MAX_CONDUCTANCE = 1e-15, 1e3


def conductance_range(G_off, G_on):
    """G_off and G_on as floats with MIN_CONDUCTANCE <= G_off < G_on <= MAX_CONDUCTANCE (siemens)."""
    G_off, G_on = positive("G_off", G_off), positive("G_on", G_on)
    for name, value in (("G_off", G_off), ("G_on", G_on)):
        if not MIN_CONDUCTANCE <= value <= MAX_CONDUCTANCE:
            raise ValueError(f"{name} must be a conductance in [{MIN_CONDUCTANCE:g}, {MAX_CONDUCTANCE:g}] S; "
                             f"got {value!r} S")
    if G_off >= G_on:
        raise ValueError(f"G_off must be smaller than G_on; got G_off={G_off!r} S, G_on={G_on!r} S")
    return G_off, G_on


def float_array(name, array, ndim=None):
    """A floating-point array (other numbers as float64) with ``ndim`` dimensions, if given."""
    array = np.asarray(array)
    if array.dtype.kind == "c":
        raise ValueError(f"{name} must be a real numeric array, not complex; got dtype {array.dtype}")
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


def weight_array(name, array, ndim=None):
    """A finite float32 or float64 weight array (``ndim`` dimensions, if given). Other dtypes
    (float16, integers, booleans, complex) are refused rather than converted: weights of another
    type are a mistake upstream, and float16 loses the precision the mapping needs."""
    array = np.asarray(array)
    if array.dtype not in FLOAT_TYPES:
        raise ValueError(f"{name} must be a float32 or float64 array; got dtype {array.dtype}")
    return finite_array(name, array, ndim)


def weight_dtype(name, array):
    """ValueError unless ``array`` (a layer parameter) is float32 or float64 (a dtype look-up only)."""
    dtype = getattr(array, "dtype", None)
    if dtype not in FLOAT_TYPES:
        shown = "no dtype (not an array)" if dtype is None else f"dtype {dtype}"
        raise ValueError(f"{name} must be a float32 or float64 array; got {shown}")


def unit_interval(name, array):
    """ValueError unless every entry of the float array is in [0, 1] (NaN fails)."""
    if array.size and not (array.min() >= 0 and array.max() <= 1):
        raise ValueError(f"{name} must hold values in [0, 1]; got values from {array.min()!r} to "
                         f"{array.max()!r}" + _scale_hint(array))


def _scale_hint(array):
    high = float(np.nanmax(array)) if array.size and not np.all(np.isnan(array)) else 0.0
    return " (images of 0-255 pixels: divide by 255)" if 1 < high <= 255 else ""


def non_empty_batch(name, array):
    """ValueError unless the array has at least one example (row)."""
    if np.ndim(array) == 0 or np.shape(array)[0] == 0:
        raise ValueError(f"{name} must hold at least one example (a batch of >= 1 rows); got shape "
                         f"{np.shape(array)}")


def generator(name, rng):
    """ValueError unless ``rng`` is a numpy.random.Generator."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)); "
                         f"got {type(rng).__name__}")
    return rng


def draw_args(rng, dtype):
    """The checks of a nonideality's ``sample``: rng a numpy.random.Generator, dtype a floating-point
    type; returns the dtype (a type test and a dtype look-up: it runs for every pass that draws)."""
    if not isinstance(rng, np.random.Generator):
        generator("rng", rng)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type (the conductances' dtype); got {dtype}")
    return dtype


_STAGE_CLASS = []


def stage(name, value):
    """ValueError unless ``value`` is a memnp.crossbar.Stage (a type test: a pass is built per read)."""
    if not _STAGE_CLASS:
        from .stage import Stage     # imported here: stage.py imports this module
        _STAGE_CLASS.append(Stage)
    if not isinstance(value, _STAGE_CLASS[0]):
        raise ValueError(f"{name} must be a memnp.crossbar.Stage; got {type(value).__name__}")
    return value


# --- a crossbar pass ---------------------------------------------------------------------------
#: |V| may exceed the stage's k_V by this many units in the last place of V's dtype (rounding of
#: k_V and of k_V x).
V_ULPS = 4
#: G may leave the stage's [G_off, G_on] by this many units in the last place of G's dtype (the
#: rounding of G = k_G w + G_off).
G_ULPS = 8


def forward_done(crossbar, what):
    """ValueError unless ``crossbar`` (a CrossbarPass) has run a forward pass: ``what`` (say
    "CrossbarPass.power()") reads the state of the last one."""
    if crossbar._cache is None:
        raise ValueError(f"{what} needs a forward pass first (call forward)")


#: (G_off, G_on, dtype) -> _conductance_bounds (a dict: looked up on every direct pass).
_BOUNDS = {}


def _conductance_bounds(G_off, G_on, dtype):
    """(low, high, low bits, high bits): the conductances (S) a pass accepts in ``dtype``."""
    key = (G_off, G_on, dtype)
    bounds = _BOUNDS.get(key)
    if bounds is None:
        slack = G_ULPS * float(np.finfo(dtype).eps)
        low, high = G_off * (1 - slack), G_on * (1 + slack)
        if len(_BOUNDS) > 256:
            _BOUNDS.clear()
        bounds = _BOUNDS[key] = (low, high, checks.bits_of(low, dtype), checks.bits_of(high, dtype))
    return bounds


def crossbar_inputs(crossbar, V, G, rng, draws):
    """The checks of CrossbarPass.forward: V (p, m) and G (m, n) float32/float64, p >= 1, V finite
    with |V| <= the stage's k_V (up to rounding), G finite and in the stage's [G_off, G_on] (up to
    rounding), and a Generator when the stage draws something and no ``draws`` are replayed. Each
    array is scanned once, on its bits.

    A caller that built V and G itself under these guarantees marks the pass with
    ``crossbar.inputs_checked = True`` and the scans are skipped: the memristive layers do (their
    input scan keeps x in [0, 1], so V = k_V [x, 1] is in range, and G is k_G D + G_off >= G_off
    from weights they checked), so their hot path pays nothing twice."""
    if getattr(crossbar, "inputs_checked", False):
        return
    stage = crossbar.stage
    for name, a in (("V", V), ("G", G)):
        dtype = getattr(a, "dtype", None)
        if dtype is None or a.ndim != 2 or dtype not in FLOAT_TYPES:
            _array_kind(name, a)
    if V.shape[0] == 0:
        raise ValueError(f"V must hold at least one example (a batch of >= 1 rows); got shape {V.shape}")
    if V.shape[1] != G.shape[0]:
        raise ValueError(f"G must have one row per column of V ({V.shape[1]}); got shape {G.shape}")
    k_V = stage.k_V
    bound = k_V * (1 + V_ULPS * np.finfo(V.dtype).eps)
    b = checks.bits(V)
    if b is None:
        _voltage_range(V, k_V, bound)
    else:
        lo, hi = checks.bit_extremes(b)
        limit = checks.bits_of(bound, V.dtype)
        if hi > limit or (lo < 0 and checks.unsigned_max(b) > checks.SIGN_BITS[V.dtype] + limit):
            _voltage_range(V, k_V, bound)
    b = checks.bits(G)
    if b is None:
        _conductances(G, stage)
    else:
        lo, hi = checks.bit_extremes(b)
        _, _, low, high = _conductance_bounds(stage.G_off, stage.G_on, G.dtype)
        if lo < low or hi > high:    # NaN, inf and G <= 0 included (their bits are outside)
            _conductances(G, stage)
    if draws is None and stage.random:
        generator("rng", rng)


def replayed_draws(crossbar, draws, G):
    """The check of the ``draws`` CrossbarPass.forward replays (skipped for a pass marked
    ``inputs_checked``): a dict by phase name (or a paper stage's (preserving, nonpreserving) pair)
    holding the draws of every phase of the stage that draws, and only those; each array in it
    finite, with G's shape (m, n) as its last two axes."""
    if draws is None or getattr(crossbar, "inputs_checked", False):
        return
    from .pipeline import Draws     # imported here: pipeline's modules import this one
    stage = crossbar.stage
    if isinstance(draws, tuple):
        if len(draws) != 2:
            raise ValueError(f"draws given as a tuple must be a paper stage's (preserving, nonpreserving) pair; "
                             f"got {len(draws)} items")
        draws = Draws.from_pair(stage, draws)
    if not isinstance(draws, dict):
        raise ValueError(f"draws must be a dict by phase name (CrossbarPass.draws of an earlier pass); got "
                         f"{type(draws).__name__}")
    wanted = [name for name, item in stage.phases.items() if item.draws is not None]
    missing, extra = [n for n in wanted if n not in draws], [n for n in draws if n not in wanted]
    if missing or extra:
        listed = [", ".join(map(str, names)) or "none" for names in (wanted, missing, extra)]
        raise ValueError(f"draws must hold the draws of the stage's random phases ({listed[0]}); missing "
                         f"{listed[1]}, unexpected {listed[2]}")
    for name in wanted:
        parts = draws[name] if isinstance(draws[name], (tuple, list)) else (draws[name],)
        for part in parts:
            shape = np.shape(part)
            if shape[-2:] != G.shape:
                raise ValueError(f"draws[{name!r}] must hold arrays whose last two axes are G's shape {G.shape}; "
                                 f"got shape {shape}")
            if np.asarray(part).dtype.kind == "f" and not np.all(np.isfinite(part)):
                raise ValueError(f"draws[{name!r}] must contain only finite values (no NaN or inf)")


def crossbar_rows(crossbar, V, rows, n_rows):
    """The check of CrossbarPass.forward's ``rows`` and ``n_rows`` (skipped, as
    :func:`crossbar_inputs`, for a pass marked ``inputs_checked``): without ``rows``, ``n_rows``
    is None or V's column count m; with them, ``rows`` holds m strictly ascending integer indices
    in [0, n_rows)."""
    if (rows is None and n_rows is None) or getattr(crossbar, "inputs_checked", False):
        return
    m = V.shape[1]
    if rows is None:
        if isinstance(n_rows, (bool, np.bool_)) or not isinstance(n_rows, (int, np.integer)) or n_rows != m:
            raise ValueError(f"n_rows must be None or V's column count {m} when rows is None; got {n_rows!r}")
        return
    if isinstance(n_rows, (bool, np.bool_)) or not isinstance(n_rows, (int, np.integer)) or n_rows < m:
        raise ValueError(f"n_rows must be an integer >= the number of rows given ({m}): the crossbar's row "
                         f"count; got {n_rows!r}")
    index = np.asarray(rows)
    if index.dtype.kind not in "iu" or index.shape != (m,):
        raise ValueError(f"rows must be a 1-D integer array of V's column count ({m}): the indices of the rows "
                         f"given in the crossbar; got dtype {index.dtype}, shape {index.shape}")
    if m and not (index[0] >= 0 and index[-1] < n_rows and np.all(np.diff(index) > 0)):
        shown = index.tolist() if m <= 20 else f"values from {index.min()} to {index.max()}"
        raise ValueError(f"rows must be strictly ascending row indices in [0, n_rows) = [0, {int(n_rows)}); "
                         f"got {shown}")


def crossbar_gradient(crossbar, grad_I):
    """The checks of CrossbarPass.backward: a forward pass first, and dL/dI (p, n) of the forward
    pass's currents' shape, float32/float64 and finite (skipped, but for the first, when the
    caller marked the pass ``gradients_checked``: the memristive layers check dL/dy instead)."""
    cache = crossbar._cache
    if cache is None:
        raise ValueError("CrossbarPass.backward needs a forward pass first (call forward)")
    if getattr(crossbar, "gradients_checked", False):
        return
    V, G = cache.V, cache.G
    dtype = getattr(grad_I, "dtype", None)
    if dtype is None or dtype not in FLOAT_TYPES:
        _array_kind("grad_I", grad_I)
    if grad_I.shape != (V.shape[0], G.shape[1]):
        raise ValueError(f"grad_I must have the shape of the forward pass's currents "
                         f"{(V.shape[0], G.shape[1])}; got {grad_I.shape}")
    if not np.isfinite(grad_I).all():
        raise ValueError("grad_I must contain only finite values (no NaN or inf)")


def _array_kind(name, a):
    """The error for an array that is not a 2-D float32/float64 NumPy array."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise ValueError(f"{name} must be real (float32 or float64), not complex; got dtype {a.dtype}")
    if a.dtype not in FLOAT_TYPES:
        raise ValueError(f"{name} must be a float32 or float64 array; got dtype {a.dtype}")
    if name != "grad_I" and a.ndim != 2:
        raise ValueError(f"{name} must have 2 dimensions; got shape {a.shape}")


def _voltage_range(V, k_V, bound):
    finite_array("V", V)
    top = float(np.abs(V).max()) if V.size else 0.0
    if top > bound:
        raise ValueError(f"V must have |V| <= the stage's k_V = {k_V!r} V (inputs x in [0, 1]); "
                         f"got max |V| = {top!r} V")


def _conductances(G, stage):
    finite_array("G", G)
    if G.size and G.min() <= 0:
        raise ValueError(f"G must hold conductances > 0 S; its minimum is {float(G.min())!r} S")
    low, high, _, _ = _conductance_bounds(stage.G_off, stage.G_on, np.dtype(G.dtype))
    if G.size and not (G.min() >= low and G.max() <= high):
        raise ValueError(f"G must hold conductances in the stage's range [G_off, G_on] = [{stage.G_off!r}, "
                         f"{stage.G_on!r}] S; got values from {float(G.min())!r} to {float(G.max())!r} S")


def finite_pair(name, value):
    """``value`` as a tuple of two finite floats, or ValueError naming ``name``."""
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of finite numbers; got {value!r}") from None
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be a pair of finite numbers; got {value!r}")
    return pair


def covariance_2x2(value):
    """``value`` as a symmetric positive semi-definite 2 x 2 matrix of finite floats (a tuple of
    two row tuples), or ValueError naming what is wrong (the PF residuals' covariance)."""
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"covariance must be a 2 x 2 matrix of numbers; got {value!r}") from None
    if matrix.shape != (2, 2):
        raise ValueError(f"covariance must have shape (2, 2); got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("covariance must contain only finite values")
    scale = max(np.abs(matrix).max(), 1e-300)
    if abs(matrix[0, 1] - matrix[1, 0]) > 1e-12 * scale:
        raise ValueError(f"covariance must be symmetric; got {matrix.tolist()}")
    if np.linalg.eigvalsh(matrix).min() < -1e-12 * scale:
        raise ValueError(f"covariance must be positive semi-definite; got {matrix.tolist()}")
    return tuple(tuple(row) for row in matrix.tolist())
