"""Keeping glibc's malloc from returning memory to the system after every training step.

A training step allocates and frees arrays of 100-300 kB (the Generator's raw words, the PF
residuals, the gradient of a layer's double weights). glibc serves those from the top of its heap
and, once more than its trim threshold is free there, gives the pages back to the kernel; the next
step then takes page faults to get them again. On the MNIST PF-aware step that was 31 minor page
faults and 40 us of system time per batch of 64, plus colder caches (about 7 % of the step).

:func:`tune` raises the mmap threshold to 4 MiB (smaller blocks come from the heap) and the trim
threshold to 64 MiB (up to that much freed heap is kept for reuse), which removes those faults.
``import memnp`` calls it unless the environment variable ``MEMNP_MALLOC_TUNING`` is ``0``, or the
user tunes malloc already (``GLIBC_TUNABLES`` mentioning malloc, or ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` set). Blocks of 4 MiB or more are still mapped and unmapped one by
one, so large arrays go back to the system when freed. Elsewhere than glibc (macOS, musl,
Windows) it does nothing.
"""
import ctypes
import ctypes.util
import os

#: mallopt parameter numbers of glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: The values :func:`tune` sets (bytes).
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 64 << 20


def user_tunes_malloc(environ=os.environ):
    """True when the environment already tunes glibc's malloc (then memnp leaves it alone)."""
    return ("malloc" in environ.get("GLIBC_TUNABLES", "")
            or any(name in environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")))


def tune(environ=os.environ):
    """Set glibc's mmap and trim thresholds (see the module docstring); returns True if it did."""
    if environ.get("MEMNP_MALLOC_TUNING", "1").strip() == "0" or user_tunes_malloc(environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
