"""Convolutions: ``conv1d``/``conv2d`` as fused primitives, and the Conv1D/Conv2D layers.

Channels-last (NHWC), Keras kernel layout ``(kh, kw, in, filters)``. The forward pass
pads, takes every receptive field as one strided view of the input, flattens it once
(im2col, with a column of ones for the bias) and multiplies by the kernel in one BLAS
call; a relu activation is applied in place. Its linear maps are primitives that
differentiate into each other, as in TensorFlow, so gradients of any order and traced
Functions work:

    y  = Conv2DOp(x, w[, b])             dx = Conv2DBackpropInput(g, w)
                                         dw[, db] = Conv2DBackpropFilter(x, g)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided

import nncli.autodiff as ad
from nncli.nn import activations, initializers
from nncli.nn.layers.core import config_name
from nncli.nn.module import Layer
from nncli.nn.registry import register

# -- geometry ------------------------------------------------------------------


def as_pair(value, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[2, 3]`` -> ``(2, 3)``; every entry a positive int."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, found {value!r}")
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
        raise ValueError(f"padding must be 'valid', 'same' or (1-D only) 'causal', found {padding!r}")
    out = (size + pads[0] + pads[1] - span) // stride + 1
    if out < 1:
        raise ValueError(f"an input of size {size} is smaller than the kernel's receptive field "
                          f"({span} = dilation {dilation} x (kernel {k} - 1) + 1) with padding '{padding}'")
    return pads, out


def _pad(x: np.ndarray, pads) -> np.ndarray:
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _out_size(padded: tuple[int, int], k: tuple[int, int], strides, dilation) -> tuple[int, int]:
    return tuple((n - d * (kk - 1) - 1) // s + 1 for n, kk, s, d in zip(padded, k, strides, dilation))


def _im2col(x: np.ndarray, k: tuple[int, int], strides, dilation, pads, ones: bool = False) -> np.ndarray:
    """Every receptive field of ``x`` (b, h, w, c) as a row: (b, oh, ow, kh * kw * c), in one copy.

    With ``ones``, a last column of ones is appended, so that one matmul also adds the bias.
    """
    xp = _pad(x, pads)
    b, hp, wp, c = xp.shape
    oh, ow = _out_size((hp, wp), k, strides, dilation)
    size = k[0] * k[1] * c
    buf = np.empty((b, oh, ow, size + ones), dtype=x.dtype)
    if ones:
        buf[..., size] = 1
    cols = np.reshape(buf[..., :size], (b, oh, ow, k[0], k[1], c), copy=False)  # a view into buf
    if c == 1:  # one channel (a first layer): kh * kw slice copies beat the 6-d strided copy 3x
        for i in range(k[0]):
            for j in range(k[1]):
                r, s = i * dilation[0], j * dilation[1]
                cols[..., i, j, 0] = xp[:, r:r + strides[0] * (oh - 1) + 1:strides[0],
                                        s:s + strides[1] * (ow - 1) + 1:strides[1], 0]
    else:
        sb, sh, sw, sc = xp.strides
        view = as_strided(xp, (b, oh, ow, k[0], k[1], c),
                          (sb, sh * strides[0], sw * strides[1], sh * dilation[0], sw * dilation[1], sc),
                          writeable=False)  # (b, oh, ow, kh, kw, c), no copy
        np.copyto(cols, view)
    return buf


def _conv(x, w, b, strides, dilation, pads):
    """``conv(x, w) (+ b)`` and the patches (with their ones column when there is a bias)."""
    f = w.shape[-1]
    cols = _im2col(x, w.shape[:2], strides, dilation, pads, ones=b is not None)  # (b, oh, ow, K [+ 1])
    kernel = w.reshape(-1, f) if b is None else np.concatenate([w.reshape(-1, f), b.reshape(1, f)])
    out = cols.reshape(-1, cols.shape[-1]) @ kernel  # one BLAS call: (b*oh*ow, K [+ 1]) @ (K [+ 1], f)
    return out.reshape(cols.shape[:3] + (f,)), cols


def _input_grad(g, w, x_shape, strides, dilation, pads):
    """The transposed convolution: each kernel offset's ``g @ w[i, j].T`` added where it was read.

    One small matmul and one strided add per kernel offset (kh * kw of them), none per pixel;
    no (b*oh*ow, kh*kw*c) intermediate.
    """
    kh, kw, c, f = w.shape
    b, h, width, _ = x_shape
    (top, bottom), (left, right) = pads
    _, oh, ow, _ = g.shape
    dxp = np.zeros((b, h + top + bottom, width + left + right, c), dtype=g.dtype)
    g2 = g.reshape(-1, f)  # (b*oh*ow, f)
    sh, sw = strides
    for i in range(kh):
        r = i * dilation[0]
        for j in range(kw):
            s = j * dilation[1]
            dxp[:, r:r + sh * (oh - 1) + 1:sh, s:s + sw * (ow - 1) + 1:sw, :] += \
                (g2 @ w[i, j].T).reshape(b, oh, ow, c)
    return dxp[:, top:top + h, left:left + width, :]


def _filter_grad(cols, g):
    """``cols^T @ g``: (K [+ 1], f), the kernel's gradient (and the bias's, from the ones column).

    Computed as ``(g^T @ cols)^T``, which BLAS runs faster for these shapes (K, f << b*oh*ow).
    """
    return (g.reshape(-1, g.shape[-1]).T @ cols.reshape(-1, cols.shape[-1])).T


# -- primitives: attrs = (strides, dilation, pads, relu | shape) -----------------


class Conv2DOp(ad.Primitive):
    """``y = conv(x, w) [+ b]``, then relu when attrs[3]: x (b, h, w, c), w (kh, kw, c, f), b (f,)."""

    @staticmethod
    def forward(attrs, x, w, b=None):
        y, cols = _conv(x, w, b, *attrs[:3])
        if attrs[3]:
            np.maximum(y, 0, out=y)
        return y, cols

    @staticmethod
    def backward(F, g, xs, y, cols, attrs, needs):
        x, w = xs[0], xs[1]
        bias, geometry = len(xs) == 3, attrs[:3]
        if attrs[3]:
            g = F.apply(ReluMask, (g, y), None)
        if not F.graph:  # first order: reuse the saved patches; one matmul gives dw and db
            dx = _input_grad(g, w, x.shape, *geometry) if needs[0] else None
            if not any(needs[1:]):
                return (dx, None, None)[:len(xs)]
            dwb = _filter_grad(cols, g)  # (K [+ 1], f)
            if not bias:
                return dx, dwb.reshape(w.shape)
            return dx, dwb[:-1].reshape(w.shape), dwb[-1]
        dx = F.apply(Conv2DBackpropInput, (g, w), geometry + (x.shape,)) if needs[0] else None
        if not any(needs[1:]):
            return (dx, None, None)[:len(xs)]
        dwb = F.apply(Conv2DBackpropFilter, (x, g), geometry + (w.shape, bias))
        if not bias:
            return dx, dwb
        return dx, F.reshape(F.getitem(dwb, slice(0, -1)), w.shape), F.getitem(dwb, -1)


class ReluMask(ad.Primitive):
    """``g * (y > 0)``: a gradient through a fused relu whose output is y (no gradient for y)."""

    forward = staticmethod(lambda attrs, g, y: (g * (y > 0), None))

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        return F.apply(ReluMask, (h, xs[1]), None), None


class Conv2DBackpropInput(ad.Primitive):
    """``dx = J_x(conv)^T g``: a transposed convolution; attrs end with x's shape."""

    @staticmethod
    def forward(attrs, g, w):
        return _input_grad(g, w, attrs[3], *attrs[:3]), None

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        g, w = xs  # <h, dx(g, w)> = <conv(h, w), g>
        dg = F.apply(Conv2DOp, (h, w), attrs[:3] + (False,)) if needs[0] else None
        dw = F.apply(Conv2DBackpropFilter, (h, g), attrs[:3] + (w.shape, False)) if needs[1] else None
        return dg, dw


class Conv2DBackpropFilter(ad.Primitive):
    """``dw = J_w(conv)^T g`` for input x; attrs end with w's shape and a bias flag: with it,
    the bias gradient comes from the same matmul as a last row, ``(kh*kw*c + 1, f)``."""

    @staticmethod
    def forward(attrs, x, g):
        strides, dilation, pads, w_shape, bias = attrs
        dwb = _filter_grad(_im2col(x, w_shape[:2], strides, dilation, pads, ones=bias), g)
        return (dwb if bias else dwb.reshape(w_shape)), None

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        x, g = xs  # <h, dw(x, g)> = <conv(x, h_w) + h_b, g>
        h_w, h_b = h, None
        if attrs[4]:
            h_w, h_b = F.reshape(F.getitem(h, slice(0, -1)), attrs[3]), F.getitem(h, -1)
        dx = F.apply(Conv2DBackpropInput, (g, h_w), attrs[:3] + (x.shape,)) if needs[0] else None
        dg = None
        if needs[1]:
            dg = F.apply(Conv2DOp, (x, h_w) if h_b is None else (x, h_w, h_b), attrs[:3] + (False,))
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


def _same_dtype(bias, x, name):
    bias = ad.as_tensor(bias)
    if bias.dtype != x.dtype or bias.ndim != 1:
        raise ValueError(f"{name}: the bias must be a vector of dtype {x.dtype}, found {bias.dtype} {bias.shape}")
    return bias


def conv2d(x, kernel, strides: int | tuple[int, int] = 1, padding: str = "valid",
           dilation_rate: int | tuple[int, int] = 1, bias=None, relu: bool = False) -> ad.Tensor:
    """2-D cross-correlation of NHWC ``x`` with ``kernel`` (kh, kw, in, out), as Keras computes it.

    Args:
        x: (batch, height, width, in) tensor.
        kernel: (kh, kw, in, out) tensor.
        strides, dilation_rate: an int or a pair (rows, columns).
        padding: "valid" (none) or "same" (output size ``ceil(in / stride)``).
        bias: an optional (out,) tensor added to every output (inside the same matmul).
        relu: apply relu to the result in place (fused: no extra array, and a cheap backward).

    Example:
        >>> conv2d(np.ones((1, 5, 5, 1), "f4"), np.ones((3, 3, 1, 2), "f4"), padding="same").shape
        (1, 5, 5, 2)
    """
    x, kernel = ad.as_tensor(x), ad.as_tensor(kernel)
    _check(x, kernel, 2, "conv2d")
    if padding not in ("valid", "same"):
        raise ValueError(f"conv2d padding must be 'valid' or 'same', found {padding!r}")
    strides, dilation = as_pair(strides, "strides"), as_pair(dilation_rate, "dilation_rate")
    pads = tuple(padding_and_size(n, k, s, d, padding)[0]
                 for n, k, s, d in zip(x.shape[1:3], kernel.shape[:2], strides, dilation))
    inputs = (x, kernel) if bias is None else (x, kernel, _same_dtype(bias, x, "conv2d"))
    return ad.apply(Conv2DOp, inputs, (strides, dilation, pads, bool(relu)))


def conv1d(x, kernel, strides: int = 1, padding: str = "valid", dilation_rate: int = 1, bias=None,
           relu: bool = False) -> ad.Tensor:
    """1-D cross-correlation of ``x`` (batch, steps, in) with ``kernel`` (k, in, out).

    ``padding`` is "valid", "same" or "causal" (left padding only: output t sees inputs <= t);
    ``bias`` an optional (out,) tensor; ``relu`` applies relu, fused, as in :func:`conv2d`.

    Example:
        >>> conv1d(np.ones((2, 10, 3), "f4"), np.ones((3, 3, 4), "f4"), strides=2).shape
        (2, 4, 4)
    """
    x, kernel = ad.as_tensor(x), ad.as_tensor(kernel)
    _check(x, kernel, 1, "conv1d")
    strides, dilation_rate = as_pair(strides, "strides")[0], as_pair(dilation_rate, "dilation_rate")[0]
    pads, _ = padding_and_size(x.shape[1], kernel.shape[0], strides, dilation_rate, padding)
    x4 = ad.reshape(x, (x.shape[0], 1) + x.shape[1:])  # a height-1 image
    k4 = ad.reshape(kernel, (1,) + kernel.shape)
    inputs = (x4, k4) if bias is None else (x4, k4, _same_dtype(bias, x, "conv1d"))
    y = ad.apply(Conv2DOp, inputs, ((1, strides), (1, dilation_rate), ((0, 0), pads), bool(relu)))
    return ad.reshape(y, (y.shape[0],) + y.shape[2:])


# -- the layers ----------------------------------------------------------------------


class SpatialLayer(Layer):
    """A layer over ``rank`` spatial axes plus channels (convolutions and windowed pools)."""

    rank = 2

    def _per_axis(self, value) -> tuple[int, ...]:
        return (value,) if self.rank == 1 else value

    def _check_input(self, input_shape) -> None:
        """Refuse inputs of the wrong rank, and (via compute_output_shape) too small ones, at build."""
        if len(input_shape) != self.rank + 1:
            axes = "(steps, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ValueError(f"{self.name}: {type(self).__name__} takes inputs {axes} per sample, "
                             f"found shape {tuple(input_shape)}")
        self.compute_output_shape(input_shape)


class _Conv(SpatialLayer):
    """What Conv1D and Conv2D share; ``rank`` is the number of spatial axes."""

    def __init__(self, filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
                 kernel_initializer, bias_initializer, *, name, trainable, dtype):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        kind = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, int | np.integer) or filters < 1:
            raise ValueError(f"{kind} filters must be a positive integer, found {filters!r}")
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        if padding not in allowed:
            raise ValueError(f"{kind} padding must be one of {', '.join(allowed)}, found {padding!r}")
        self.filters, self.padding = int(filters), padding
        if self.rank == 1:
            self.kernel_size, self.strides, self.dilation_rate = (
                as_pair(v, f"{kind} {n}")[0] for v, n in
                ((kernel_size, "kernel_size"), (strides, "strides"), (dilation_rate, "dilation_rate")))
        else:
            self.kernel_size = as_pair(kernel_size, f"{kind} kernel_size")
            self.strides = as_pair(strides, f"{kind} strides")
            self.dilation_rate = as_pair(dilation_rate, f"{kind} dilation_rate")
        self.activation, self.use_bias = activation, bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self._activation = activations.get(activation)
        self._relu = getattr(self._activation, "_registry_name", None) == "relu"  # fused into the conv op
        initializers.get(kernel_initializer), initializers.get(bias_initializer)  # fail early on a typo

    def build(self, input_shape) -> None:
        self._check_input(input_shape)  # too small an input fails here, not in the first call
        shape = (*self._per_axis(self.kernel_size), input_shape[-1], self.filters)
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, inputs, training: bool = False):
        conv = conv1d if self.rank == 1 else conv2d
        bias = self.bias if self.use_bias else None
        y = conv(inputs, self.kernel, self.strides, self.padding, self.dilation_rate, bias, relu=self._relu)
        return y if self._relu else self._activation(y)

    def compute_output_shape(self, input_shape):
        sizes = [padding_and_size(n, k, s, d, self.padding)[1] for n, k, s, d in zip(
            input_shape[:-1], self._per_axis(self.kernel_size), self._per_axis(self.strides),
            self._per_axis(self.dilation_rate))]
        return (*sizes, self.filters)

    def get_config(self) -> dict:
        def plain(v):
            return list(v) if isinstance(v, tuple) else v

        return {"filters": self.filters, "kernel_size": plain(self.kernel_size), "strides": plain(self.strides),
                "padding": self.padding, "dilation_rate": plain(self.dilation_rate),
                "activation": config_name(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": config_name(self.kernel_initializer),
                "bias_initializer": config_name(self.bias_initializer), **super().get_config()}


@register("layers")
class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels): ``activation(conv1d(x, kernel) + bias)``.

    Weights: ``kernel (kernel_size, in, filters)``, ``bias (filters,)``.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: positive integers.
        padding: "valid", "same" (``ceil(steps / strides)`` outputs) or "causal" (left padding).
        activation: a registered activation name; None for linear.
        use_bias, kernel_initializer, bias_initializer: as in Dense.

    Example:
        >>> Conv1D(8, 3, padding="same")(np.ones((2, 10, 4), np.float32)).shape
        (2, 10, 8)
    """

    rank = 1

    def __init__(self, filters: int, kernel_size: int, strides: int = 1,
                 padding: Literal["valid", "same", "causal"] = "valid", dilation_rate: int = 1,
                 activation: str | None = None, use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 bias_initializer: str = "zeros", *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
                         kernel_initializer, bias_initializer, name=name, trainable=trainable, dtype=dtype)


@register("layers")
class Conv2D(_Conv):
    """2-D convolution over NHWC images: ``activation(conv2d(x, kernel) + bias)``.

    Weights: ``kernel (kh, kw, in, filters)``, ``bias (filters,)``.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: an int or a pair ``[rows, columns]``.
        padding: "valid" or "same" (``ceil(size / strides)`` outputs, extra padding bottom/right).
        activation: a registered activation name; None for linear.
        use_bias, kernel_initializer, bias_initializer: as in Dense.

    Example:
        >>> Conv2D(32, 3, activation="relu")(np.ones((64, 28, 28, 1), np.float32)).shape
        (64, 26, 26, 32)
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], strides: int | tuple[int, int] = 1,
                 padding: Literal["valid", "same"] = "valid", dilation_rate: int | tuple[int, int] = 1,
                 activation: str | None = None, use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 bias_initializer: str = "zeros", *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
                         kernel_initializer, bias_initializer, name=name, trainable=trainable, dtype=dtype)
