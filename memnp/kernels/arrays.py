"""Which arrays the one-pass CPU loops take (anything else goes the NumPy way)."""
import numpy as np

FLOATS = (np.float32, np.float64)


def contiguous_floats(*arrays, dtypes=FLOATS, ndim=None):
    """True when every array is a C-contiguous NumPy array of one of ``dtypes``, all of the first
    one's dtype and, unless ``ndim`` is given (then: that many dimensions each), of its shape."""
    first = arrays[0]
    if not (isinstance(first, np.ndarray) and first.dtype in dtypes):
        return False
    dtype, shape = first.dtype, first.shape
    for a in arrays:        # a plain loop: this runs several times per training step
        if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous):
            return False
        if (a.shape != shape) if ndim is None else (a.ndim != ndim):
            return False
    return True
