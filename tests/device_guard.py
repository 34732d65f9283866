"""What the device-training tests share at import: :func:`require_device`."""
import importlib

import pytest


def require_device():
    """numba.cuda, after skipping the calling test module where numba-cuda is not installed, where
    memnp's device modules cannot be imported, or where ``NUMBA_ENABLE_CUDASIM=0`` and no CUDA GPU
    is usable. Call it before importing memnp's device modules."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")
    api = pytest.importorskip("numba.cuda")
    try:
        cuda_step = importlib.import_module("memnp.kernels.cuda_step")
        for name in ("memnp.kernels.cuda_eval", "memnp.nn.device", "memnp.nn.device_eval"):
            importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - numba-cuda present but broken
        pytest.skip(f"memnp's device modules cannot be imported: {exc}", allow_module_level=True)
    if not cuda_step.SIMULATOR and not api.is_available():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no usable CUDA GPU", allow_module_level=True)
    return api
