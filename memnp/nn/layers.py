"""Structural layers with hand-written forward and backward passes: Dense, Conv2D, MaxPool2D,
Flatten (and im2col / col2im, the convolution's rows of receptive fields).

Image tensors are NHWC: (examples, height, width, channels). Convolutions are 'valid' with
stride 1; pooling is 2 x 2 with stride 2 (odd trailing rows and columns are dropped, as Keras does).
Parameters are held in the layer's dtype (float32 by default); inputs are used in their own dtype.

The protocol every layer follows (``forward``, ``backward``, ``config``), :class:`Layer`,
:class:`PassContext` and the registry are in :mod:`memnp.nn.base`; Sigmoid, ReLU and Softmax in
:mod:`memnp.nn.activations`. Both are imported here too, so ``memnp.nn.layers`` still offers every
layer.
"""
import math

import numpy as np

from .activations import ReLU, Sigmoid, Softmax, softmax  # noqa: F401  (also offered from here)
from .base import (DRAW_POLICIES, Layer, PassContext, _batch_of, _count,  # noqa: F401  (idem)
                   _dtype, _generator, _image_batch, glorot_uniform, layer_from_config, register,
                   stage_or_none)


@register
class Dense(Layer):
    """y = x W + b: x (p, n_in), W (n_in, n_out), b (n_out,), y (p, n_out)."""

    def __init__(self, n_in, n_out, dtype="float32"):
        super().__init__(dtype)
        self.n_in, self.n_out = _count("n_in", n_in), _count("n_out", n_out)
        self.params = {"W": np.zeros((self.n_in, self.n_out), self.dtype),
                       "b": np.zeros(self.n_out, self.dtype)}

    def config(self):
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out}

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.n_in,):
            raise ValueError(f"Dense expects inputs ({self.n_in},); got {tuple(input_shape)}")
        return (self.n_out,)

    def input_width(self):
        return self.n_in

    def output_width(self, width):
        return self.n_out

    def initialize(self, rng):
        _generator(rng)
        self.params["W"] = glorot_uniform(rng, (self.n_in, self.n_out), self.n_in, self.n_out, self.dtype)
        self.params["b"] = np.zeros(self.n_out, self.dtype)

    def forward(self, x, ctx=None):
        _batch_of(x, self.n_in, "Dense")
        self._x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy, need_dx=True):
        x = self._forward_cache("_x")
        self._gradient(dy, (x.shape[0], self.n_out))
        self.grads["W"] = x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T if need_dx else None


def _conv_outputs(x_shape, kernel_size, c_out):
    """The outputs' shape (N, H - kh + 1, W - kw + 1, c_out) of a 'valid' convolution of x (N, H, W, .)."""
    (N, H, W, _), (kh, kw) = x_shape, kernel_size
    return (N, H - kh + 1, W - kw + 1, c_out)


def im2col(x, kh, kw):
    """Receptive fields of x (N, H, W, C) as rows: (N * Ho * Wo, kh * kw * C), Ho = H - kh + 1,
    Wo = W - kw + 1, columns ordered (row offset, column offset, channel)."""
    N, H, W, C = x.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    cols = np.empty((N, Ho, Wo, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[:, i:i + Ho, j:j + Wo, :]
    return cols.reshape(N * Ho * Wo, kh * kw * C)


def col2im(cols, x_shape, kh, kw):
    """Adjoint of :func:`im2col`: sum the rows' gradients (N * Ho * Wo, kh * kw * C) back onto x."""
    N, H, W, C = x_shape
    Ho, Wo = H - kh + 1, W - kw + 1
    cols = cols.reshape(N, Ho, Wo, kh, kw, C)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + Ho, j:j + Wo, :] += cols[:, :, :, i, j, :]
    return dx


def _conv_output_shape(input_shape, kh, kw, c_in, c_out, name):
    if len(input_shape) != 3 or input_shape[2] != c_in:
        raise ValueError(f"{name} expects inputs (height, width, {c_in}); got {tuple(input_shape)}")
    Ho, Wo = input_shape[0] - kh + 1, input_shape[1] - kw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{name} with a {kh} x {kw} kernel needs inputs at least that large; "
                         f"got {tuple(input_shape)}")
    return (Ho, Wo, c_out)


@register
class Conv2D(Layer):
    """'valid', stride-1 convolution (cross-correlation, as Keras) by im2col and one GEMM.

    x (N, H, W, c_in) -> y (N, H - kh + 1, W - kw + 1, c_out); kernel (kh, kw, c_in, c_out), bias (c_out,).
    """

    def __init__(self, c_in, c_out, kernel_size=(3, 3), dtype="float32"):
        super().__init__(dtype)
        self.c_in, self.c_out = _count("c_in", c_in), _count("c_out", c_out)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        self.kernel_size = (_count("kernel_size", kh), _count("kernel_size", kw))
        self.params = {"kernel": np.zeros(self.kernel_size + (self.c_in, self.c_out), self.dtype),
                       "bias": np.zeros(self.c_out, self.dtype)}

    def config(self):
        return {"type": "Conv2D", "c_in": self.c_in, "c_out": self.c_out,
                "kernel_size": list(self.kernel_size)}

    def output_shape(self, input_shape):
        return _conv_output_shape(input_shape, *self.kernel_size, self.c_in, self.c_out, "Conv2D")

    def input_width(self):
        return self.c_in

    def output_width(self, width):
        return self.c_out

    def initialize(self, rng):
        _generator(rng)
        kh, kw = self.kernel_size
        shape = self.params["kernel"].shape
        self.params["kernel"] = glorot_uniform(rng, shape, kh * kw * self.c_in, kh * kw * self.c_out,
                                               self.dtype)
        self.params["bias"] = np.zeros(self.c_out, self.dtype)

    def forward(self, x, ctx=None):
        kh, kw = self.kernel_size
        _image_batch(x, self.c_in, "Conv2D")
        self._x_shape = x.shape
        self._cols = im2col(x, kh, kw)
        y = self._cols @ self.params["kernel"].reshape(-1, self.c_out)
        y += self.params["bias"]
        N, H, W, _ = x.shape
        return y.reshape(N, H - kh + 1, W - kw + 1, self.c_out)

    def backward(self, dy, need_dx=True):
        cols = self._forward_cache("_cols")
        self._gradient(dy, _conv_outputs(self._x_shape, self.kernel_size, self.c_out))
        dy2 = dy.reshape(-1, self.c_out)
        kernel = self.params["kernel"]
        self.grads["kernel"] = (cols.T @ dy2).reshape(kernel.shape)
        self.grads["bias"] = dy2.sum(axis=0)
        if not need_dx:
            return None
        return col2im(dy2 @ kernel.reshape(-1, self.c_out).T, self._x_shape, *self.kernel_size)


@register
class MaxPool2D(Layer):
    """2 x 2 max pooling, stride 2: x (N, H, W, C) -> (N, H // 2, W // 2, C).

    The gradient goes to the first maximum of each window (row-major order), as TensorFlow's does.
    """

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"MaxPool2D expects inputs (height, width, channels); got {tuple(input_shape)}")
        return (input_shape[0] // 2, input_shape[1] // 2, input_shape[2])

    def forward(self, x, ctx=None):
        N, H, W, C = x.shape
        H2, W2 = H // 2, W // 2
        self._x_shape = x.shape
        quads = [x[:, i:2 * H2:2, j:2 * W2:2, :] for i in (0, 1) for j in (0, 1)]
        y = np.maximum(np.maximum(quads[0], quads[1]), np.maximum(quads[2], quads[3]))
        # Route the gradient to the first maximum: a window position takes it if it equals the max
        # and no earlier position did.
        taken = np.zeros(y.shape, dtype=bool)
        masks = []
        for quad in quads:
            mask = (quad == y) & ~taken
            taken |= mask
            masks.append(mask)
        self._masks = masks
        return y

    def backward(self, dy, need_dx=True):
        masks = self._forward_cache("_masks")
        if not need_dx:
            return None
        N, H, W, C = self._x_shape
        H2, W2 = H // 2, W // 2
        self._gradient(dy, (N, H2, W2, C))
        # Every covered position is written, so only odd trailing rows/columns need zeroing.
        dx = np.empty(self._x_shape, dtype=dy.dtype)
        dx[:, 2 * H2:] = 0
        dx[:, :, 2 * W2:] = 0
        for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            np.multiply(masks[k], dy, out=dx[:, i:2 * H2:2, j:2 * W2:2, :])
        return dx


@register
class Flatten(Layer):
    """(N, ...) -> (N, product of the rest)."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def output_width(self, width):
        return None

    def forward(self, x, ctx=None):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        shape = self._forward_cache("_x_shape")
        self._gradient(dy, (shape[0], math.prod(shape[1:])))
        return dy.reshape(shape) if need_dx else None
