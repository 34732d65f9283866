"""What memnp's CUDA kernels share (numba.cuda, from the optional package ``numba-cuda``): whether
a GPU (or the simulator) is usable, the block shape and grid, the block sum, the compiled
float32/float64 kernel pairs, and the checks and copies of the arrays passed in.

- ``SIMULATOR``: numba runs CUDA kernels in its Python simulator (NUMBA_ENABLE_CUDASIM=1);
- ``TX``, ``TY``, ``TXY``: threads per block, 32 x 8 on a GPU, 4 x 2 in the simulator; the
  environment variable MEMNP_CUDA_BLOCK="TXxTY" (powers of two, at most 1024 threads) overrides
  it at import time;
- ``_grid_cols(p, n)``: the grid of TX columns of one example per block, striding over the
  examples past 65535 blocks; ``_block_sum_to(acc, partial)``: a block's float64 tree sum;
- ``_pair(body)``: the float32 kernel (fast-math) and the float64 kernel (without) of one body;
- ``_require_device()``: RuntimeError unless a CUDA GPU (or the simulator) is usable;
- ``_prepare(V, mats)``: V (p, m) and the (m, n) matrices checked (float32 or float64, shapes) and
  on the device; ``_out``, ``_zeros``: results as the caller wants them (device or host arrays).

Used by :mod:`memnp.kernels.cuda` (the PF and ideal kernels), :mod:`memnp.kernels.cuda_random` and
the K-member kernels. Importing this module raises ImportError when numba-cuda is not installed.
"""
import os

import numpy as np

import numba_cuda  # noqa: F401  (ImportError here means: numba-cuda is not installed)
from numba import cuda
from numba.core import config as _numba_config

from .backend import check_cuda_numpy

check_cuda_numpy()   # one clear line (BackendUnavailable) where numba-cuda breaks on this numpy

#: True when numba runs CUDA kernels in its Python simulator (NUMBA_ENABLE_CUDASIM=1).
SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)


def _block_shape(text):
    """Parse MEMNP_CUDA_BLOCK ("TXxTY", e.g. "32x8"): two powers of two, TX * TY <= 1024."""
    try:
        tx, ty = (int(part) for part in text.lower().split("x"))
    except ValueError:
        tx = ty = 0
    if tx < 1 or ty < 1 or tx & (tx - 1) or ty & (ty - 1) or tx * ty > 1024:
        raise ValueError(f"MEMNP_CUDA_BLOCK must be 'TXxTY' with powers of two TX, TY and "
                         f"TX * TY <= 1024 (e.g. '32x8'); got {text!r}")
    return tx, ty


# Threads per block: TX along the contiguous axis (columns), TY along the split axis (rows). The
# kernels are correct for any powers of two; 32 x 8 suits GPUs (one warp per row of the block).
# The simulator runs every thread as a Python thread, so it defaults to tiny 4 x 2 blocks, which
# also makes small test shapes span several, partly filled blocks.
TX, TY = _block_shape(os.environ.get("MEMNP_CUDA_BLOCK", "") or ("4x2" if SIMULATOR else "32x8"))
#: Threads per block (a module constant: shared-memory sizes must be compile-time constants).
TXY = TX * TY
#: Largest grid dimension used along y (CUDA allows 65535); kernels stride over larger extents.
_MAX_GRID_Y = 65535

# Compiled kernels are cached on disk (reused across processes), except in the simulator and with a
# non-default MEMNP_CUDA_BLOCK: Numba's cache key ignores module globals such as TX and TY.
_CACHE = not SIMULATOR and (TX, TY) == (32, 8)


def _block_sum_to(acc, partial):
    """Tree-reduce one float64 value per thread of a (TX, TY) block into partial[by, bx]."""
    sm = cuda.shared.array(TXY, dtype=np.float64)
    t = cuda.threadIdx.y * TX + cuda.threadIdx.x
    sm[t] = acc
    cuda.syncthreads()
    s = TXY // 2
    while s > 0:
        if t < s:
            sm[t] += sm[t + s]
        cuda.syncthreads()
        s //= 2
    if t == 0:
        partial[cuda.blockIdx.y, cuda.blockIdx.x] = sm[0]


_block_sum_to = cuda.jit(device=True)(_block_sum_to)


def _grid_cols(p, n):
    """Grid for the (TX columns, TY row groups) per example layout."""
    return ((n + TX - 1) // TX, min(p, _MAX_GRID_Y))


def _pair(body):
    """(float32 kernel with fast-math, float64 kernel without) compiled lazily from one body."""
    return {np.dtype(np.float32): cuda.jit(fastmath=True, cache=_CACHE)(body),
            np.dtype(np.float64): cuda.jit(cache=_CACHE)(body)}


_DEVICE_OK = None


def _require_device():
    """Raise RuntimeError unless a CUDA GPU (or the simulator) is usable; checked once."""
    global _DEVICE_OK
    if _DEVICE_OK is None:
        try:
            _DEVICE_OK = bool(cuda.is_available())
        except Exception:  # driver problems surface as various exceptions
            _DEVICE_OK = False
    if not _DEVICE_OK:
        raise RuntimeError("the cuda backend found no usable CUDA GPU "
                           "(numba.cuda.is_available() is "
                           "False); use the cpu backend (MEMNP_BACKEND=cpu), or set "
                           "NUMBA_ENABLE_CUDASIM=1 before importing numba for the (slow) simulator")


def _is_device(x):
    if cuda.devicearray.is_cuda_ndarray(x):
        return True
    is_cuda_array = getattr(cuda, "is_cuda_array", None)  # absent in the simulator
    return bool(is_cuda_array is not None and is_cuda_array(x))


def _float_dtype(V):
    dtype = np.dtype(V.dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"V must be a float32 or float64 array; got dtype {dtype}")
    return dtype


def _to_device(name, x, dtype, shape):
    """Return x as a device array of the given dtype, checking its shape (None: any 2-D)."""
    if _is_device(x):
        if not cuda.devicearray.is_cuda_ndarray(x):
            x = cuda.as_cuda_array(x)
        if np.dtype(x.dtype) != dtype:
            raise ValueError(f"{name} is a device array of dtype {x.dtype}; it must have V's dtype "
                             f"{dtype} (device arrays are not converted)")
    else:
        x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 2 or (shape is not None and tuple(x.shape) != shape):
        want = "a 2-D array" if shape is None else f"shape {shape}"
        raise ValueError(f"{name} must have {want}; got shape {tuple(x.shape)}")
    if not _is_device(x):
        x = cuda.to_device(x)
    return x


def _prepare(V, mats):
    """Check dtypes and shapes; return (dtype, on_device, p, m, n, dV, [device matrices])."""
    _require_device()
    on_device = _is_device(V)
    if not on_device:
        V = np.asarray(V)
    dtype = _float_dtype(V)
    if len(V.shape) != 2:
        raise ValueError(f"V must be a 2-D array (examples, rows); got shape {tuple(V.shape)}")
    p, m = V.shape
    first_name, first = mats[0]
    shape = tuple(first.shape) if _is_device(first) else np.shape(first)
    if len(shape) != 2 or shape[0] != m:
        raise ValueError(f"{first_name} must have shape ({m}, n) to match V's {m} rows; "
                         f"got shape {shape}")
    n = shape[1]
    dV = _to_device("V", V, dtype, None)
    return dtype, on_device, p, m, n, dV, [_to_device(nm, x, dtype, (m, n)) for nm, x in mats]


def _out(x, on_device):
    """A result as the caller wants it: the device array itself, or a host copy."""
    return x if on_device else x.copy_to_host()


def _zeros(shape, dtype, on_device):
    """A zero result (for empty batches or crossbars) without launching a kernel."""
    x = np.zeros(shape, dtype=dtype)
    return cuda.to_device(x) if on_device else x
