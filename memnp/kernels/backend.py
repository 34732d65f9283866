"""The kernel backends: one object per device, chosen once and passed down (layers ->
CrossbarPass -> tiling -> the wires' circuit solver).

``get_backend(name)`` returns the (cached) :class:`Backend` of ``cpu`` (Numba, parallel;
default), ``cuda`` (numba.cuda) or ``numpy`` (the materializing reference, the tests' oracle); an
unknown name is a ValueError. Every backend offers the same methods with the same shapes and
units:

- ``pf_currents(V, c, d_eps) -> I``                (p, m), (m, n), (m, n) -> (p, n)
- ``pf_currents_vjp(V, c, d_eps, grad_I, need_V=True) -> (grad_V, grad_c, grad_d_eps)``
  (grad_V None when need_V is false)
- ``pf_power(V, c, d_eps) -> float``               average power over the batch (W)
- ``ideal_currents(V, G) -> I``                    V @ G
- ``ideal_power(V, G) -> float``                   average power over the batch (W)
- ``pf_partial_currents(V, c, d_eps, tile_of_row, T) -> I_parts`` (T, p, n): every row of
  arrays' own PF column currents (the tiles phase, memnp.crossbar.tiling)
- ``pf_tiled_adc(V, c, d_eps, tile_of_row, T, full_scale, levels, constants)`` -> (I, clipped)
  or None: the arrays' currents, their ADCs and the digital sum in one pass, where the device
  has that loop (None: the caller quantises :meth:`pf_partial_currents`)
- ``ensemble``: the device's K-axis reads for memnp.nn.Ensemble (:mod:`memnp.kernels.ensemble` on
  the cpu backend), or None (the ensemble then runs its members one by one)
- ``circuit``: the line-resistance solver of the device (forward, VJP, power), attached by
  :mod:`memnp.circuit.dispatch` (the circuit package sits above the kernels).

V in volts, c in A/V, d_eps in F/m, G in siemens, I in amperes. float32 and float64 inputs give
outputs of the same dtype. The cpu backend picks dense or zero-skipping kernels and one thread
or all per call (:mod:`memnp.kernels.cpu_auto`, its one dispatcher).
"""
import importlib
import os

import numpy as np

BACKENDS = ("cpu", "cuda", "numpy")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def backend_name(name=None):
    """Resolve a backend name: the argument (a name or a :class:`Backend`), else ``MEMNP_BACKEND``,
    else ``cpu``."""
    if isinstance(name, Backend):
        return name.name
    if name is None:
        name = os.environ.get("MEMNP_BACKEND", "") or "cpu"
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r} "
                         "(set by the backend argument or the MEMNP_BACKEND environment variable)")
    return name


def stack_rows(V, tile_of_row, T):
    """(T p, m): copy t of V (p, m) keeps only the rows i with tile_of_row[i] == t (zeros
    elsewhere)."""
    p, m = V.shape
    stacked = np.zeros((T, p, m), V.dtype)
    for k in range(T):
        rows = tile_of_row == k
        stacked[k][:, rows] = V[:, rows]
    return stacked.reshape(T * p, m)


class Backend:
    """The hot loops of one device (see the module docstring); ``kernels`` is the module whose
    functions ``pf_currents``, ``pf_currents_vjp``, ``pf_power``, ``ideal_currents`` and
    ``ideal_power`` it runs."""

    #: The backend's name (BACKENDS), for messages and results.
    name = None
    #: The line-resistance solver (memnp.circuit.dispatch attaches one per device class).
    circuit = None
    #: The K-axis crossbar reads of the device (memnp.kernels.ensemble's functions), or None where
    #: it has none (memnp.nn.Ensemble then runs its members one by one).
    ensemble = None

    def __init__(self, kernels):
        self.kernels = kernels
        self.pf_currents = kernels.pf_currents
        self.pf_currents_vjp = kernels.pf_currents_vjp
        self.pf_power = kernels.pf_power
        self.ideal_currents = kernels.ideal_currents
        self.ideal_power = kernels.ideal_power

    def __repr__(self):
        return f"<memnp {self.name} backend>"

    def __reduce__(self):
        # Pickled by name (a layer's last read holds its backend): the same cached object back.
        return get_backend, (self.name,)

    def require(self):
        """This backend, once its kernels can run here (host backends always can); else
        BackendUnavailable with one line naming the fix."""
        return self

    def device(self):
        """What the backend computes on, for run records: None for a host backend."""
        return None

    def pf_partial_currents(self, V, c, d_eps, tile_of_row, T):
        """I_parts (T, p, n): one kernel call on a stack of copies of the batch, copy t zero outside
        the rows of row of arrays t (a device at 0 V carries no current and gets no gradient, so
        the stacked sums are the arrays' own)."""
        if T == 1:
            return self.pf_currents(V, c, d_eps)[None]
        return self.pf_currents(stack_rows(V, tile_of_row, T), c, d_eps).reshape(T, V.shape[0], -1)

    def pf_tiled_adc(self, V, c, d_eps, tile_of_row, T, full_scale, levels, constants):
        """None: this device has no one-pass tiled ADC loop."""
        return None


class NumpyBackend(Backend):
    """The materializing NumPy reference (:mod:`memnp.kernels.reference`)."""

    name = "numpy"

    def __init__(self):
        from . import reference
        super().__init__(reference)


class CpuBackend(Backend):
    """Numba on the CPU: :mod:`memnp.kernels.cpu_auto` (dense or zero-skipping kernels, one thread
    or all, per call) and the one-pass tiled loops of :mod:`memnp.kernels.tiling`."""

    name = "cpu"

    def __init__(self):
        from . import cpu_auto
        super().__init__(cpu_auto)

    @property
    def ensemble(self):
        """The K-axis reads of :mod:`memnp.kernels.ensemble` (imported when first asked for)."""
        from . import ensemble
        return ensemble

    def pf_partial_currents(self, V, c, d_eps, tile_of_row, T):
        """The one-pass tiled loop (:func:`memnp.kernels.tiling.pf_currents_tiled`, tested against
        the stacked read) for several rows of arrays of float32 or float64 voltages."""
        if T > 1 and V.dtype in _FLOATS:
            from . import tiling
            return tiling.pf_currents_tiled(V, c, d_eps, tile_of_row, T)
        return super().pf_partial_currents(V, c, d_eps, tile_of_row, T)

    def pf_tiled_adc(self, V, c, d_eps, tile_of_row, T, full_scale, levels, constants):
        """(I (p, n), clipped) from one pass over the devices (memnp.kernels.tiling: the same numbers
        as the partial currents quantised and summed) for several rows of arrays of float32 or
        float64 voltages; ``constants``: memnp.kernels.tiling.adc_constants of the full scales."""
        if T <= 1 or V.dtype not in _FLOATS:
            return None
        from . import tiling
        m = V.shape[1]
        if c.dtype == V.dtype == d_eps.dtype and c.flags.c_contiguous and d_eps.flags.c_contiguous \
                and V.flags.c_contiguous and c.shape == d_eps.shape == (m, c.shape[1]):
            return tiling.tiled_adc(V, c, d_eps, tile_of_row, constants)
        return tiling.pf_currents_tiled_adc(V, c, d_eps, tile_of_row, T, full_scale, levels)


class CudaBackend(Backend):
    """numba.cuda (:mod:`memnp.kernels.cuda`)."""

    name = "cuda"

    def __init__(self):
        try:
            kernels = importlib.import_module("memnp.kernels.cuda")
        except ImportError as exc:
            raise ImportError("the cuda backend needs numba-cuda: pip install 'memnp[cuda]'") from exc
        super().__init__(kernels)

    def require(self):
        """This backend once a GPU (or the CUDA simulator) can run its kernels; else
        BackendUnavailable naming the fix."""
        try:
            self.kernels._require_device()
        except RuntimeError as exc:
            raise BackendUnavailable(str(exc)) from None
        return self

    def device(self):
        """The GPU's name and compute capability, or "CUDA simulator"."""
        self.require()
        if self.kernels.SIMULATOR:
            return "CUDA simulator"
        from numba import cuda
        gpu = cuda.get_current_device()
        label = gpu.name.decode() if isinstance(gpu.name, bytes) else str(gpu.name)
        major, minor = gpu.compute_capability
        return f"{label} (compute capability {major}.{minor})"


_CLASSES = {"cpu": CpuBackend, "cuda": CudaBackend, "numpy": NumpyBackend}
_CACHE = {}


def get_backend(name=None):
    """The :class:`Backend` of ``name`` (a name, None for ``MEMNP_BACKEND`` or ``cpu``, or a Backend,
    returned as it is), made once per name; ValueError for anything else."""
    if isinstance(name, Backend):
        return name
    if name is not None and not isinstance(name, str):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or a Backend; got {name!r}")
    name = backend_name(name)
    backend = _CACHE.get(name)
    if backend is None:
        backend = _CACHE[name] = _CLASSES[name]()
    return backend


# -- whether a backend can run here, and on what -------------------------------------------------------
class BackendUnavailable(RuntimeError):
    """A backend that cannot run here; the message (one line) says why and how to fix it. Not an
    ImportError, so that no "install numba-cuda" fallback message hides it."""


def check_cuda_numpy(np_module=None, import_module=importlib.import_module):
    """BackendUnavailable when numba-cuda cannot work with the installed numpy: numba-cuda up to at
    least 0.30 registers ``np.row_stack``, which numpy 2.5 removed, so its array module (imported
    at the first kernel compile) fails. Checked only where numpy lacks ``row_stack``; a numba-cuda
    that copes passes. memnp.kernels.cuda_common and memnp.circuit.cuda call it on import. np_module,
    import_module: for tests."""
    import numpy
    np_module = numpy if np_module is None else np_module
    if hasattr(np_module, "row_stack"):
        return
    try:
        import_module("numba.cuda.np.arrayobj")
    except AttributeError as exc:
        if "row_stack" not in str(exc):
            raise
        try:
            from importlib.metadata import version
            cuda_version = version("numba-cuda")
        except Exception:  # metadata missing: the message just lacks the version
            cuda_version = "?"
        raise BackendUnavailable(
            f"numba-cuda {cuda_version} does not work with numpy {getattr(np_module, '__version__', '?')} (it "
            "registers np.row_stack, which numpy 2.5 removed): pip install 'numpy<2.5', or a numba-cuda "
            "release that supports numpy 2.5; or use the cpu backend (MEMNP_BACKEND=cpu)") from None


def require_backend(name=None):
    """The resolved backend name (see :func:`backend_name`) once its kernels can run here
    (:meth:`Backend.require`); BackendUnavailable (one line naming the fix) when the cuda backend
    lacks numba-cuda, meets the numba-cuda / numpy 2.5 mismatch, or finds no usable GPU (the CUDA
    simulator counts as one)."""
    name = backend_name(name)
    try:
        backend = get_backend(name)
    except ImportError as exc:
        raise BackendUnavailable(str(exc)) from None
    backend.require()
    return name


def device_description(name=None):
    """What a backend computes on, for run records (:meth:`Backend.device`): for cuda the GPU's
    name and compute capability (e.g. ``"NVIDIA H200 (compute capability 9.0)"``), or ``"CUDA
    simulator"``; None for the cpu and numpy backends (and for a backend that cannot run here)."""
    try:
        return get_backend(require_backend(name)).device()
    except (ValueError, RuntimeError, AttributeError):
        return None
        if _cuda_kernels().SIMULATOR:
            return "CUDA simulator"
        from numba import cuda
        device = cuda.get_current_device()
        label = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        major, minor = device.compute_capability
        return f"{label} (compute capability {major}.{minor})"
    except (ValueError, RuntimeError, AttributeError):
        return None
