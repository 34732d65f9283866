"""Softmax cross-entropy from logits, its gradient and the hit count, in one Numba pass.

The same quantities as :func:`memnp.nn.losses.cross_entropy_from_logits` and
:func:`memnp.nn.losses.accuracy` (the NumPy reference), per row i of logits z (p, k) with label y_i:

    log_softmax(z_i) = z_i - max(z_i) - ln sum_j exp(z_ij - max(z_i)),
    loss = -mean_i log_softmax(z_i)[y_i],   dL/dz_i = (softmax(z_i) - onehot(y_i)) / p,
    hits = #{i : argmax_j z_ij == y_i}   (the first maximum, as np.argmax).

The sums, logarithms and the loss are taken in float64 whatever the logits' dtype; the gradient
is returned in the logits' dtype. Exact at extreme logits (no clipping), like the reference.
"""
import math

import numpy as np
from numba import njit


@njit(error_model="numpy", cache=True)
def _softmax_cross_entropy(z, labels, grad):
    p, k = z.shape
    total = 0.0
    hits = 0
    for i in range(p):
        top = z[i, 0]
        best = 0
        for j in range(1, k):
            if z[i, j] > top:
                top = z[i, j]
                best = j
        s = 0.0
        for j in range(k):
            s += math.exp(np.float64(z[i, j]) - np.float64(top))
        lse = np.float64(top) + math.log(s)
        y = labels[i]
        total += lse - np.float64(z[i, y])
        hits += best == y
        for j in range(k):
            grad[i, j] = (math.exp(np.float64(z[i, j]) - lse) - (1.0 if j == y else 0.0)) / p
    return total / p if p else math.nan, hits


def softmax_cross_entropy(logits, labels):
    """(mean loss (float), dL/dlogits (p, k) in the logits' dtype, hits (int)) for C-contiguous
    float32/float64 logits (p, k) and integer labels (p,) already checked to lie in [0, k)."""
    grad = np.empty_like(logits)
    loss, hits = _softmax_cross_entropy(logits, labels.astype(np.int64, copy=False), grad)
    return float(loss), grad, int(hits)
