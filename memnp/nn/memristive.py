"""Memristive synaptic layers: weights mapped onto a crossbar and read under a stage (docs/model.md §1-3).

A layer with inputs x (p, n_in) and n_out outputs is one crossbar of m = n_in + 1 rows (the bias
row is an input fixed to 1) and 2 n_out columns (differential pairs, positive device first):

    V = k_V [x, 1]  ->  G from the weights  ->  I = CrossbarPass(stage).forward(V, G)  ->  y = I_to_y(I)

Weights are either *double* (non-negative w_pos, w_neg (n_in, n_out) and b_pos, b_neg (n_out,),
one parameter per device, kept in the crossbar's own layout: the four arrays are views of one
matrix D (n_in + 1, 2 n_out), so reads and optimiser steps work on D directly) or *standard*
(signed W (n_in, n_out) and b (n_out,), mapped with the stage's mapping rule). Standard weights
in a stage without nonidealities skip the crossbar and compute y = x W + b (the reference's
digital shortcut); double weights always go through it.

The backward pass runs the same stairs in reverse with the draws of the forward pass, including
the path through max_weight (k_G depends on it in the mapping and in the output conversion).

The read, its VJP and the power are :class:`memnp.nn.crossbar_layer.CrossbarLayer`'s, which both
layers here extend (it and its helpers are offered from this module too).
"""
import numpy as np

from .base import _count, _image_batch, register
from .crossbar_layer import (DOUBLE, WEIGHTS, CrossbarLayer, _input_error,  # noqa: F401  (also here)
                             _take_rows)
from .layers import _conv_output_shape, _conv_outputs, col2im, im2col


@register
class MemristiveDense(CrossbarLayer):
    """Fully connected memristive layer: x (p, n_in) -> y (p, n_out), one crossbar of
    (n_in + 1) x 2 n_out devices. ``weights``: "double" (w_pos, w_neg, b_pos, b_neg) or
    "standard" (W, b)."""

    def __init__(self, n_in, n_out, weights="double", dtype="float32"):
        n_in, n_out = _count("n_in", n_in), _count("n_out", n_out)
        super().__init__(n_in, n_out, (n_in, n_out), weights, dtype)
        self.n_in = n_in

    def config(self):
        return {"type": "MemristiveDense", "n_in": self.n_in, "n_out": self.n_out, "weights": self.weights}

    def input_width(self):
        return self.n_in

    def output_width(self, width):
        return self.n_out

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.n_in,):
            raise ValueError(f"MemristiveDense expects inputs ({self.n_in},); got {tuple(input_shape)}")
        return (self.n_out,)

    def forward(self, x, ctx=None):
        return self._read(x, ctx)

    def backward(self, dy, need_dx=True):
        return self._read_vjp(dy, need_dx)


@register
class MemristiveConv2D(CrossbarLayer):
    """'valid', stride-1 convolution on one crossbar of (kh kw c_in + 1) x 2 c_out devices: every
    receptive field is one input vector. x (N, H, W, c_in) -> (N, H - kh + 1, W - kw + 1, c_out).
    Weight parameters have shape (kh, kw, c_in, c_out), biases (c_out,)."""

    def __init__(self, c_in, c_out, kernel_size=(3, 3), weights="double", dtype="float32"):
        c_in, c_out = _count("c_in", c_in), _count("c_out", c_out)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        kh, kw = _count("kernel_size", kh), _count("kernel_size", kw)
        super().__init__(kh * kw * c_in, c_out, (kh, kw, c_in, c_out), weights, dtype)
        self.c_in, self.c_out, self.kernel_size = c_in, c_out, (kh, kw)

    def config(self):
        return {"type": "MemristiveConv2D", "c_in": self.c_in, "c_out": self.c_out,
                "kernel_size": list(self.kernel_size), "weights": self.weights}

    def output_shape(self, input_shape):
        return _conv_output_shape(input_shape, *self.kernel_size, self.c_in, self.c_out, "MemristiveConv2D")

    def input_width(self):
        return self.c_in

    def output_width(self, width):
        return self.c_out

    def forward(self, x, ctx=None):
        kh, kw = self.kernel_size
        _image_batch(x, self.c_in, "MemristiveConv2D")
        N, H, W, _ = x.shape
        self._x_shape = x.shape
        y = self._read(im2col(x, kh, kw), ctx)
        return y.reshape(N, H - kh + 1, W - kw + 1, self.c_out)

    def backward(self, dy, need_dx=True):
        self._forward_cache("_last")
        self._gradient(dy, _conv_outputs(self._x_shape, self.kernel_size, self.c_out))
        grad_cols = self._read_vjp(dy.reshape(-1, self.c_out), need_dx)
        return None if grad_cols is None else col2im(grad_cols, self._x_shape, *self.kernel_size)
