"""memnp's command line: ``python run.py`` (``reproduce`` with the default preset) or
``python run.py COMMAND --help``. Everything else is in memnp.cli.

BLAS libraries are limited to one thread unless you set OPENBLAS_NUM_THREADS (MKL_NUM_THREADS)
yourself: the paper's networks multiply small matrices, which multi-threaded BLAS makes slower
(up to 100x on a busy machine), and the parallel kernels use Numba's threads (NUMBA_NUM_THREADS).
"""
import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from memnp.cli import main  # noqa: E402  (after the thread settings, before numpy loads)

if __name__ == "__main__":
    main()
