"""Choosing the kernel backend: ``cpu`` (Numba, parallel; default), ``cuda`` (numba.cuda) or
``numpy`` (the materializing reference, the tests' oracle).

Every backend module offers the same functions with the same shapes and units:

- ``pf_currents(V, c, d_eps) -> I``                (p, m), (m, n), (m, n) -> (p, n)
- ``pf_currents_vjp(V, c, d_eps, grad_I, need_V=True) -> (grad_V, grad_c, grad_d_eps)``
  (grad_V None when need_V is false)
- ``pf_power(V, c, d_eps) -> float``               average power over the batch (W)
- ``ideal_currents(V, G) -> I``                    V @ G
- ``ideal_power(V, G) -> float``                   average power over the batch (W)

V in volts, c in A/V, d_eps in F/m, G in siemens, I in amperes. float32 and float64 inputs give
outputs of the same dtype.
"""
import importlib
import os

BACKENDS = ("cpu", "cuda", "numpy")
_MODULES = {"cpu": "memnp.kernels.cpu_auto", "cuda": "memnp.kernels.cuda", "numpy": "memnp.kernels.reference"}


def backend_name(name=None):
    """Resolve a backend name: the argument, else ``MEMNP_BACKEND``, else ``cpu``."""
    if name is None:
        name = os.environ.get("MEMNP_BACKEND", "") or "cpu"
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r} "
                         "(set by the backend argument or the MEMNP_BACKEND environment variable)")
    return name


def get_backend(name=None):
    """Return the kernel module of a backend (see the module docstring for its functions)."""
    name = backend_name(name)
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError as exc:
        if name == "cuda":
            raise ImportError("the cuda backend needs numba-cuda: pip install 'memnp[cuda]'") from exc
        raise


# -- whether a backend can run here, and on what -------------------------------------------------------
class BackendUnavailable(RuntimeError):
    """A backend that cannot run here; the message (one line) says why and how to fix it. Not an
    ImportError, so that no "install numba-cuda" fallback message hides it."""


def check_cuda_numpy(np_module=None, import_module=importlib.import_module):
    """BackendUnavailable when numba-cuda cannot work with the installed numpy: numba-cuda up to at
    least 0.30 registers ``np.row_stack``, which numpy 2.5 removed, so its array module (imported
    at the first kernel compile) fails. Checked only where numpy lacks ``row_stack``; a numba-cuda
    that copes passes. memnp.kernels.cuda and memnp.circuit.cuda call it on import. np_module,
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


def _cuda_kernels():
    """memnp.kernels.cuda, or BackendUnavailable (one line) when it cannot be imported."""
    try:
        return importlib.import_module("memnp.kernels.cuda")
    except ImportError as exc:
        raise BackendUnavailable(f"the cuda backend needs numba-cuda: pip install 'memnp[cuda]' ({exc})") from None


def require_backend(name=None):
    """The resolved backend name (see :func:`backend_name`) once its kernels can run here;
    BackendUnavailable (one line naming the fix) when the cuda backend lacks numba-cuda, meets the
    numba-cuda / numpy 2.5 mismatch, or finds no usable GPU (the CUDA simulator counts as one)."""
    name = backend_name(name)
    if name == "cuda":
        try:
            _cuda_kernels()._require_device()
        except RuntimeError as exc:
            raise BackendUnavailable(str(exc)) from None
    return name


def device_description(name=None):
    """What a backend computes on, for run records: for cuda the GPU's name and compute capability
    (e.g. ``"NVIDIA H200 (compute capability 9.0)"``), or ``"CUDA simulator"``; None for the cpu and
    numpy backends (and for a cuda backend that cannot run here)."""
    try:
        if require_backend(name) != "cuda":
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
