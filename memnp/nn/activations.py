"""Elementwise and row-wise activation layers with hand-written backward passes: Sigmoid, ReLU
(optionally capped), Softmax, and :func:`softmax`. Shapes: any (p, ...) for Sigmoid and ReLU,
(p, k) for Softmax; the output has the input's shape. Protocol: :mod:`memnp.nn.base`.
"""
import math

import numpy as np
from scipy import special

from .base import Layer, register


@register
class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x, ctx=None):
        self._y = special.expit(x)
        return self._y

    def backward(self, dy, need_dx=True):
        y = self._forward_cache("_y")
        self._gradient(dy, y.shape)
        if not need_dx:
            return None
        return dy * y * (1 - y)


@register
class ReLU(Layer):
    """y = min(max(x, 0), max_value) elementwise (max_value None: no cap).

    Gradient 1 where 0 < x <= max_value, else 0 (TensorFlow's relu and clip_by_value rules).
    """

    def __init__(self, max_value=None, dtype="float32"):
        super().__init__(dtype)
        if max_value is not None:
            if isinstance(max_value, (bool, np.bool_)):
                raise ValueError(f"max_value must be None or a finite number > 0, not a boolean; got {max_value!r}")
            max_value = float(max_value)
            if not math.isfinite(max_value) or max_value <= 0:
                raise ValueError(f"max_value must be None or a finite number > 0; got {max_value!r}")
        self.max_value = max_value

    def config(self):
        return {"type": "ReLU", "max_value": self.max_value}

    def forward(self, x, ctx=None):
        if self.max_value is None:
            self._pass = x > 0
            return np.maximum(x, 0)
        self._pass = (x > 0) & (x <= self.max_value)
        return np.clip(x, 0, self.max_value)

    def backward(self, dy, need_dx=True):
        passed = self._forward_cache("_pass")
        self._gradient(dy, passed.shape)
        return dy * passed if need_dx else None


def softmax(z):
    """Row-wise softmax of z (p, k), computed stably."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


@register
class Softmax(Layer):
    """Row-wise softmax (p, k) -> (p, k). A :class:`~memnp.nn.model.Sequential` ending in Softmax
    computes its loss from the logits (the Softmax input) instead of calling this backward."""

    def forward(self, x, ctx=None):
        self._y = softmax(x)
        return self._y

    def backward(self, dy, need_dx=True):
        y = self._forward_cache("_y")
        self._gradient(dy, y.shape)
        if not need_dx:
            return None
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))
