"""Convolutions: ``conv1d``/``conv2d`` as fused primitives, and the Conv1D/Conv2D layers.

Channels-last (NHWC), Keras kernel layout ``(kh, kw, in, filters)``. The forward pass
pads, takes every receptive field as one strided view of the input (no copy), flattens
it once (im2col) and multiplies by the kernel in one BLAS call. Its three linear maps
are primitives that differentiate into each other, as in TensorFlow, so gradients of
any order and traced Functions work:

    y  = Conv2DOp(x, w)                  dx = Conv2DBackpropInput(g, w)
                                         dw = Conv2DBackpropFilter(x, g)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided

import nncli.autodiff as ad
from nncli.autodiff.ops import NP, Primitive
from nncli.autodiff.tape import apply
from nncli.errors import ConfigError

# -- geometry ------------------------------------------------------------------


def as_pair(value, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[2, 3]`` -> ``(2, 3)``; every entry a positive int."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in pair):
        raise ConfigError(f"{name} must be a positive integer or a pair of them, found {value!r}")
    return int(pair[0]), int(pair[1])


def padding_and_size(size: int, k: int, stride: int, dilation: int, padding: str) -> tuple[tuple[int, int], int]:
    """``((before, after), output size)`` along one axis, with TensorFlow's padding rules.

    "same" gives ``ceil(size / stride)`` outputs, the odd padding element going after
    (bottom/right); "causal" pads only before (Conv1D); "valid" does not pad.
    """
    span = dilation * (k - 1) + 1  # the receptive field of one output
    if padding == "valid":
        pads = (0, 0)
    elif padding == "causal":
        pads = (span - 1, 0)
    elif padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        pads = (total // 2, total - total // 2)
    else:
        raise ConfigError(f"padding must be 'valid' or 'same', found {padding!r}")
    out = (size + pads[0] + pads[1] - span) // stride + 1
    if out < 1:
        raise ConfigError(f"an input of size {size} is smaller than the kernel's receptive field "
                          f"({span} = dilation {dilation} x (kernel {k} - 1) + 1) with padding '{padding}'")
    return pads, out


def _pad(x: np.ndarray, pads) -> np.ndarray:
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _out_size(padded: tuple[int, int], k: tuple[int, int], strides, dilation) -> tuple[int, int]:
    return tuple((n - d * (kk - 1) - 1) // s + 1 for n, kk, s, d in zip(padded, k, strides, dilation))


def _im2col(x: np.ndarray, k: tuple[int, int], strides, dilation, pads) -> np.ndarray:
    """Every receptive field of ``x`` (b, h, w, c) as a row: (b, oh, ow, kh * kw * c), one copy."""
    xp = _pad(x, pads)
    b, hp, wp, c = xp.shape
    oh, ow = _out_size((hp, wp), k, strides, dilation)
    sb, sh, sw, sc = xp.strides
    view = as_strided(xp, (b, oh, ow, k[0], k[1], c),
                      (sb, sh * strides[0], sw * strides[1], sh * dilation[0], sw * dilation[1], sc),
                      writeable=False)  # (b, oh, ow, kh, kw, c), no copy
    return np.ascontiguousarray(view).reshape(b, oh, ow, k[0] * k[1] * c)


def _col2im(cols: np.ndarray, x_shape, strides, dilation, pads) -> np.ndarray:
    """The adjoint of ``_im2col``: add each row's (kh, kw, c) entries back where they came from.

    ``cols`` is (b, oh, ow, kh, kw, c); one strided add per kernel offset, none per pixel.
    """
    b, h, w, c = x_shape
    (top, bottom), (left, right) = pads
    _, oh, ow, kh, kw, _ = cols.shape
    dxp = np.zeros((b, h + top + bottom, w + left + right, c), dtype=cols.dtype)
    sh, sw = strides
    for i in range(kh):
        r = i * dilation[0]
        for j in range(kw):
            s = j * dilation[1]
            dxp[:, r:r + sh * (oh - 1) + 1:sh, s:s + sw * (ow - 1) + 1:sw, :] += cols[:, :, :, i, j, :]
    return dxp[:, top:top + h, left:left + w, :]


def _conv(x, w, strides, dilation, pads):
    cols = _im2col(x, w.shape[:2], strides, dilation, pads)  # (b, oh, ow, K)
    out = cols.reshape(-1, cols.shape[-1]) @ w.reshape(-1, w.shape[-1])  # one BLAS call
    return out.reshape(cols.shape[:3] + (w.shape[-1],)), cols


def _input_grad(g, w, x_shape, strides, dilation, pads):
    kh, kw, c, f = w.shape
    cols = g.reshape(-1, f) @ w.reshape(-1, f).T  # (b*oh*ow, kh*kw*c)
    return _col2im(cols.reshape(g.shape[:3] + (kh, kw, c)), x_shape, strides, dilation, pads)


def _filter_grad(cols, g, w_shape):
    f = g.shape[-1]
    return (cols.reshape(-1, cols.shape[-1]).T @ g.reshape(-1, f)).reshape(w_shape)


# -- primitives: attrs = (strides, dilation, pads[, shape]) ---------------------


def _run(F, op, inputs, attrs):
    """Apply a primitive in a backward rule: on arrays for first order, recorded otherwise."""
    if F is NP:
        return op.forward(attrs, *inputs)[0]
    return apply(op, tuple(inputs), attrs)


class Conv2DOp(Primitive):
    """``y = conv(x, w)``: x (b, h, w, c), w (kh, kw, c, f) -> (b, oh, ow, f)."""

    @staticmethod
    def forward(attrs, x, w):
        return _conv(x, w, *attrs)

    @staticmethod
    def backward(F, g, xs, y, cols, attrs, needs):
        x, w = xs
        if F is NP:  # first order: reuse the saved patches
            dx = _input_grad(g, w, x.shape, *attrs) if needs[0] else None
            return dx, (_filter_grad(cols, g, w.shape) if needs[1] else None)
        dx = apply(Conv2DBackpropInput, (g, w), attrs + (x.shape,)) if needs[0] else None
        dw = apply(Conv2DBackpropFilter, (x, g), attrs + (w.shape,)) if needs[1] else None
        return dx, dw


class Conv2DBackpropInput(Primitive):
    """``dx = J_x(conv)^T g``: a transposed convolution; attrs end with x's shape."""

    @staticmethod
    def forward(attrs, g, w):
        return _input_grad(g, w, attrs[3], *attrs[:3]), None

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        g, w = xs  # <h, dx(g, w)> = <conv(h, w), g>
        dg = _run(F, Conv2DOp, (h, w), attrs[:3]) if needs[0] else None
        dw = _run(F, Conv2DBackpropFilter, (h, g), attrs[:3] + (w.shape,)) if needs[1] else None
        return dg, dw


class Conv2DBackpropFilter(Primitive):
    """``dw = J_w(conv)^T g`` for input x; attrs end with w's shape."""

    @staticmethod
    def forward(attrs, x, g):
        strides, dilation, pads, w_shape = attrs
        cols = _im2col(x, w_shape[:2], strides, dilation, pads)
        return _filter_grad(cols, g, w_shape), None

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        x, g = xs  # <h, dw(x, g)> = <conv(x, h), g>
        dx = _run(F, Conv2DBackpropInput, (g, h), attrs[:3] + (x.shape,)) if needs[0] else None
        dg = _run(F, Conv2DOp, (x, h), attrs[:3]) if needs[1] else None
        return dx, dg


# -- the differentiable functions ----------------------------------------------


def _check(x: ad.Tensor, kernel: ad.Tensor, rank: int, name: str) -> None:
    if x.ndim != rank + 2 or kernel.ndim != rank + 2:
        raise ValueError(f"{name} takes inputs of rank {rank + 2} and a kernel of rank {rank + 2}, "
                         f"found {x.shape} and {kernel.shape}")
    if x.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"{name}: the input has {x.shape[-1]} channels, the kernel expects {kernel.shape[-2]}")
    if x.dtype != kernel.dtype:
        raise TypeError(f"{name}: input dtype {x.dtype} differs from kernel dtype {kernel.dtype}")


def conv2d(x, kernel, strides: int | tuple[int, int] = 1, padding: str = "valid",
           dilation_rate: int | tuple[int, int] = 1) -> ad.Tensor:
    """2-D cross-correlation of NHWC ``x`` with ``kernel`` (kh, kw, in, out), as Keras computes it.

    Args:
        x: (batch, height, width, in) tensor.
        kernel: (kh, kw, in, out) tensor.
        strides, dilation_rate: an int or a pair (rows, columns).
        padding: "valid" (none) or "same" (output size ``ceil(in / stride)``).

    Example:
        >>> conv2d(np.ones((1, 5, 5, 1), "f4"), np.ones((3, 3, 1, 2), "f4"), padding="same").shape
        (1, 5, 5, 2)
    """
    x, kernel = ad.as_tensor(x), ad.as_tensor(kernel)
    _check(x, kernel, 2, "conv2d")
    strides, dilation = as_pair(strides, "strides"), as_pair(dilation_rate, "dilation_rate")
    pads = tuple(padding_and_size(n, k, s, d, padding)[0]
                 for n, k, s, d in zip(x.shape[1:3], kernel.shape[:2], strides, dilation))
    return apply(Conv2DOp, (x, kernel), (strides, dilation, pads))


def conv1d(x, kernel, strides: int = 1, padding: str = "valid", dilation_rate: int = 1) -> ad.Tensor:
    """1-D cross-correlation of ``x`` (batch, steps, in) with ``kernel`` (k, in, out).

    ``padding`` is "valid", "same" or "causal" (left padding only: output t sees inputs <= t).

    Example:
        >>> conv1d(np.ones((2, 10, 3), "f4"), np.ones((3, 3, 4), "f4"), strides=2).shape
        (2, 4, 4)
    """
    x, kernel = ad.as_tensor(x), ad.as_tensor(kernel)
    _check(x, kernel, 1, "conv1d")
    pads, _ = padding_and_size(x.shape[1], kernel.shape[0], strides, dilation_rate, padding)
    x4 = ad.reshape(x, (x.shape[0], 1) + x.shape[1:])  # a height-1 image
    k4 = ad.reshape(kernel, (1,) + kernel.shape)
    y = apply(Conv2DOp, (x4, k4), ((1, strides), (1, dilation_rate), ((0, 0), pads)))
    return ad.reshape(y, (y.shape[0],) + y.shape[2:])
