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
