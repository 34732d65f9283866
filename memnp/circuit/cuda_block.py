"""Block-level pieces of the cuda circuit kernels (:mod:`memnp.circuit.cuda`,
:mod:`memnp.circuit.cuda_linestep`): the threads per block and the block sums.

One block of :data:`NT` threads owns one example; a block sum gives every thread of the block the
same value, so loops that branch on sums branch alike across the block.
"""
import numba_cuda  # noqa: F401  (ImportError: numba-cuda is not installed)
from numba import cuda
from numba.core import config as _numba_config

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)
#: Threads per block (a power of two; shared-memory sizes are compile-time constants).
NT = 4 if SIMULATOR else 128


@cuda.jit(device=True)
def block_sum3(a, b, c, sh):
    """(sum a, sum b, sum c) over the block's threads (sh: shared (3, NT))."""
    tid = cuda.threadIdx.x
    sh[0, tid] = a
    sh[1, tid] = b
    sh[2, tid] = c
    cuda.syncthreads()
    step = NT // 2
    while step > 0:
        if tid < step:
            sh[0, tid] += sh[0, tid + step]
            sh[1, tid] += sh[1, tid + step]
            sh[2, tid] += sh[2, tid + step]
        cuda.syncthreads()
        step //= 2
    out = (sh[0, 0], sh[1, 0], sh[2, 0])
    cuda.syncthreads()
    return out
