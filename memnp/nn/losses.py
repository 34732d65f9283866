"""Sparse categorical cross-entropy (docs/model.md §4), with its gradient.

The paper's networks end in a softmax layer; Keras then computes the loss from the softmax's
input (the logits) with a log-softmax, exactly and without clipping. :func:`cross_entropy_from_logits`
is that computation; :class:`~memnp.nn.model.Sequential` uses it whenever its last layer is a
Softmax. :func:`cross_entropy_from_probabilities` is Keras's rule for any other final layer.
"""
import numpy as np

from ..kernels.softmax import softmax_cross_entropy


def _labels(labels, p, k):
    labels = np.asarray(labels)
    if labels.shape != (p,):
        raise ValueError(f"labels must have shape ({p},) (one class index per example); got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be class indices in [0, {k - 1}]; got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def log_softmax(z):
    """Row-wise log-softmax of z (p, k): z - max - log(sum(exp(z - max)))."""
    shifted = z - z.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def cross_entropy_from_logits(logits, labels):
    """(mean loss (float), dL/dlogits (p, k)) for logits (p, k) and integer labels (p,).

    loss = -mean_i log_softmax(z_i)[y_i];  dL/dz = (softmax(z) - onehot(y)) / p.
    """
    loss, _, grad = cross_entropy_and_accuracy_from_logits(logits, labels)
    return loss, grad


def cross_entropy_and_accuracy_from_logits(logits, labels):
    """(mean loss, accuracy, dL/dlogits (p, k)) in one pass (:mod:`memnp.kernels.softmax`) for
    C-contiguous float32/float64 logits; other arrays take the NumPy reference
    (:func:`cross_entropy_from_logits_numpy` and :func:`accuracy`)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (examples, classes); got {logits.shape}")
    p, k = logits.shape
    labels = _labels(labels, p, k)
    if logits.dtype in (np.float32, np.float64) and logits.flags.c_contiguous and p:
        loss, grad, hits = softmax_cross_entropy(logits, labels)
        return loss, hits / p, grad
    loss, grad = cross_entropy_from_logits_numpy(logits, labels)
    return loss, accuracy(logits, labels), grad


def cross_entropy_from_logits_numpy(logits, labels):
    """:func:`cross_entropy_from_logits` in NumPy passes (the reference of the one-pass kernel)."""
    p, k = logits.shape
    labels = _labels(labels, p, k)
    log_probs = log_softmax(logits)
    rows = np.arange(p)
    loss = -float(np.mean(log_probs[rows, labels], dtype=np.float64))
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    grad /= p
    return loss, grad


#: Keras's backend epsilon, used to clip probabilities when the loss is given probabilities.
EPSILON = 1e-7


def cross_entropy_from_probabilities(probs, labels):
    """(mean loss, dL/dprobs (p, k)) as Keras computes it from probabilities: clip to
    [EPSILON, 1 - EPSILON], take logs and apply the log-softmax cross-entropy to them."""
    p, k = probs.shape
    clipped = np.clip(probs, EPSILON, 1 - EPSILON)
    loss, grad_log = cross_entropy_from_logits(np.log(clipped), labels)
    inside = (probs >= EPSILON) & (probs <= 1 - EPSILON)
    return loss, np.where(inside, grad_log / clipped, 0).astype(probs.dtype, copy=False)


def accuracy(scores, labels):
    """Fraction of rows of scores (p, k) whose argmax is the label."""
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(labels)))
