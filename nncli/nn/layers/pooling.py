"""Pooling: max/average pools as primitives over strided windows, global pools as reductions.

Channels-last. A pool visits its windows one kernel offset at a time: for a 2x2 pool,
four strided slices of the padded input, each an elementwise max/add over all windows
at once (no loop over pixels). Max pooling sends each window's gradient to one winner,
the first maximum in row-major order, as TensorFlow and PyTorch do; "same" average
pooling divides by the number of real (unpadded) inputs in each window, as Keras does.
Each backward is itself a primitive, so gradients of any order and traced Functions work.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

import nncli.autodiff as ad
from nncli.nn.module import Layer
from nncli.nn.registry import register
from nncli.nn.layers.conv import SpatialLayer, as_pair, padding_and_size

# -- raw numpy kernels: attrs = (pool, strides, pads) -------------------------


def _pad(x: np.ndarray, pads, value: float) -> np.ndarray:
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(padded_hw, pool, strides):
    """One index per kernel offset: the slice of the padded input it covers in every window."""
    oh = (padded_hw[0] - pool[0]) // strides[0] + 1
    ow = (padded_hw[1] - pool[1]) // strides[1] + 1
    for i in range(pool[0]):
        for j in range(pool[1]):
            yield (slice(None), slice(i, i + strides[0] * (oh - 1) + 1, strides[0]),
                   slice(j, j + strides[1] * (ow - 1) + 1, strides[1]))


def _padded_shape(shape, pads):
    return (shape[0], shape[1] + sum(pads[0]), shape[2] + sum(pads[1]), shape[3])


def _crop(xp: np.ndarray, pads) -> np.ndarray:
    (top, bottom), (left, right) = pads
    return xp[:, top:xp.shape[1] - bottom, left:xp.shape[2] - right, :]


def _max_pool(x, pool, strides, pads):
    xp = _pad(x, pads, -np.inf)
    out = None
    for index in _windows(xp.shape[1:3], pool, strides):
        out = xp[index].copy() if out is None else np.maximum(out, xp[index], out=out)
    return out


def _winners(xp, y, pool, strides):
    """(index, mask) per offset: where that offset holds its window's first maximum."""
    taken = None
    for index in _windows(xp.shape[1:3], pool, strides):
        win = xp[index] == y
        if taken is None:
            taken = win.copy()
        else:
            np.greater(win, taken, out=win)  # win and not taken: a tie loses to an earlier offset
            taken |= win
        yield index, win


def _max_route(x, y, g, pool, strides, pads):
    """The max pool's input gradient: each window's ``g`` added at its winner."""
    xp = _pad(x, pads, -np.inf)
    dxp = np.zeros(xp.shape, dtype=g.dtype)
    disjoint = strides[0] >= pool[0] and strides[1] >= pool[1]  # each input in at most one window
    for index, win in _winners(xp, y, pool, strides):
        if disjoint:
            np.multiply(g, win, out=dxp[index])
        else:
            dxp[index] += g * win
    return _crop(dxp, pads)


def _max_gather(x, y, h, pool, strides, pads):
    """The adjoint of ``_max_route`` in ``g``: ``h`` read at each window's winner."""
    xp, hp = _pad(x, pads, -np.inf), _pad(h, pads, 0)
    out = np.zeros(y.shape, dtype=h.dtype)
    for index, win in _winners(xp, y, pool, strides):
        out += hp[index] * win
    return out


def _counts(shape, pool, strides, pads, dtype) -> np.ndarray | float:
    """The number of real inputs in each window: (1, oh, ow, 1), or a scalar without padding."""
    if not any(pads[0] + pads[1]):
        return float(pool[0] * pool[1])
    per_axis = []
    for n, k, s, (before, after) in zip(shape[1:3], pool, strides, pads):
        starts = np.arange((n + before + after - k) // s + 1) * s - before
        per_axis.append(np.minimum(starts + k, n) - np.maximum(starts, 0))
    return np.multiply.outer(*per_axis).astype(dtype)[None, :, :, None]


def _avg_pool(x, pool, strides, pads):
    xp = _pad(x, pads, 0)
    out = None
    for index in _windows(xp.shape[1:3], pool, strides):
        out = xp[index].copy() if out is None else np.add(out, xp[index], out=out)
    out /= _counts(x.shape, pool, strides, pads, x.dtype)
    return out


def _avg_spread(g, x_shape, pool, strides, pads):
    """The average pool's input gradient: each window's share of ``g`` added to its inputs."""
    share = g / _counts(x_shape, pool, strides, pads, g.dtype)
    dxp = np.zeros(_padded_shape(x_shape, pads), dtype=g.dtype)
    for index in _windows(dxp.shape[1:3], pool, strides):
        dxp[index] += share
    return _crop(dxp, pads)


# -- primitives ------------------------------------------------------------------


class MaxPool2DOp(ad.Primitive):
    """Max over each (ph, pw) window of x (b, h, w, c); attrs (pool, strides, pads)."""

    forward = staticmethod(lambda attrs, x: (_max_pool(x, *attrs), None))

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        return (F.apply(MaxPoolRoute, (xs[0], y, g), attrs),)


class MaxPoolRoute(ad.Primitive):
    """``(x, y, g) -> dx``: g sent to each window's winner (piecewise constant in x and y)."""

    forward = staticmethod(lambda attrs, x, y, g: (_max_route(x, y, g, *attrs), None))

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        return None, None, F.apply(MaxPoolGather, (xs[0], xs[1], h), attrs)


class MaxPoolGather(ad.Primitive):
    """``(x, y, h) -> h at the winners``, the adjoint of MaxPoolRoute."""

    forward = staticmethod(lambda attrs, x, y, h: (_max_gather(x, y, h, *attrs), None))

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        return None, None, F.apply(MaxPoolRoute, (xs[0], xs[1], g), attrs)


class AvgPool2DOp(ad.Primitive):
    """Mean over each window of x (b, h, w, c), padding excluded; attrs (pool, strides, pads)."""

    forward = staticmethod(lambda attrs, x: (_avg_pool(x, *attrs), None))

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        return (F.apply(AvgPoolSpread, (g,), (xs[0].shape,) + attrs),)


class AvgPoolSpread(ad.Primitive):
    """``g -> dx`` of the average pool (linear); attrs (x_shape, pool, strides, pads)."""

    forward = staticmethod(lambda attrs, g: (_avg_spread(g, *attrs), None))

    @staticmethod
    def backward(F, h, xs, y, saved, attrs, needs):
        return (F.apply(AvgPool2DOp, (h,), attrs[1:]),)


# -- the differentiable functions ----------------------------------------------


def _attrs(x: ad.Tensor, rank: int, pool_size, strides, padding: str, name: str):
    if x.ndim != rank + 2:
        raise ValueError(f"{name} takes inputs of rank {rank + 2} (batch, ..., channels), found shape {x.shape}")
    pool = as_pair(pool_size, "pool_size")
    strides = pool if strides is None else as_pair(strides, "strides")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', found {padding!r}")
    pads = tuple(padding_and_size(n, k, s, 1, padding)[0] for n, k, s in zip(x.shape[1:3], pool, strides))
    return pool, strides, pads


def _pool2d(op, x, pool_size, strides, padding, name):
    x = ad.as_tensor(x)
    return ad.apply(op, (x,), _attrs(x, 2, pool_size, strides, padding, name))


def _pool1d(op, x, pool_size, strides, padding, name):
    x = ad.as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"{name} takes inputs of rank 3 (batch, steps, channels), found shape {x.shape}")
    x4 = ad.reshape(x, (x.shape[0], 1) + x.shape[1:])  # a height-1 image
    attrs = _attrs(x4, 2, (1, pool_size), None if strides is None else (1, strides), padding, name)
    y = ad.apply(op, (x4,), attrs)
    return ad.reshape(y, (y.shape[0],) + y.shape[2:])


def max_pool2d(x, pool_size: int | tuple[int, int] = 2, strides: int | tuple[int, int] | None = None,
               padding: str = "valid") -> ad.Tensor:
    """Max over (ph, pw) windows of NHWC ``x``; ``strides`` default to ``pool_size``.

    Example:
        >>> max_pool2d(np.arange(16, dtype="f4").reshape(1, 4, 4, 1)).numpy()[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """
    return _pool2d(MaxPool2DOp, x, pool_size, strides, padding, "max_pool2d")


def avg_pool2d(x, pool_size: int | tuple[int, int] = 2, strides: int | tuple[int, int] | None = None,
               padding: str = "valid") -> ad.Tensor:
    """Mean over (ph, pw) windows of NHWC ``x``; "same" padding is left out of the count.

    Example:
        >>> avg_pool2d(np.ones((1, 3, 3, 1), "f4"), padding="same").shape
        (1, 2, 2, 1)
    """
    return _pool2d(AvgPool2DOp, x, pool_size, strides, padding, "avg_pool2d")


def max_pool1d(x, pool_size: int = 2, strides: int | None = None, padding: str = "valid") -> ad.Tensor:
    """Max over windows of ``pool_size`` steps of ``x`` (batch, steps, channels).

    Example:
        >>> max_pool1d(np.array([[[1.0], [3.0], [2.0], [0.0]]], "f4")).numpy().ravel()
        array([3., 2.], dtype=float32)
    """
    return _pool1d(MaxPool2DOp, x, pool_size, strides, padding, "max_pool1d")


def avg_pool1d(x, pool_size: int = 2, strides: int | None = None, padding: str = "valid") -> ad.Tensor:
    """Mean over windows of ``pool_size`` steps of ``x`` (batch, steps, channels).

    Example:
        >>> avg_pool1d(np.array([[[1.0], [3.0], [2.0], [0.0]]], "f4")).numpy().ravel()
        array([2., 1.], dtype=float32)
    """
    return _pool1d(AvgPool2DOp, x, pool_size, strides, padding, "avg_pool1d")


# -- the layers ----------------------------------------------------------------------


class _Pool(SpatialLayer):
    """What the windowed pools share; ``rank`` spatial axes, ``op`` the pooling function."""

    op = None

    def __init__(self, pool_size, strides, padding, *, name, trainable, dtype):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        kind = type(self).__name__
        if padding not in ("valid", "same"):
            raise ValueError(f"{kind} padding must be 'valid' or 'same', found {padding!r}")
        pool = as_pair(pool_size, f"{kind} pool_size")
        step = None if strides is None else as_pair(strides, f"{kind} strides")
        if self.rank == 1:
            self.pool_size, self.strides = pool[0], None if step is None else step[0]
        else:
            self.pool_size, self.strides = pool, step
        self.padding = padding

    def build(self, input_shape) -> None:
        self._check_input(input_shape)  # too small an input fails at build time

    def call(self, inputs, training: bool = False):
        return type(self).op(inputs, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        pool = self._per_axis(self.pool_size)
        strides = pool if self.strides is None else self._per_axis(self.strides)
        sizes = [padding_and_size(n, k, s, 1, self.padding)[1] for n, k, s in zip(input_shape[:-1], pool, strides)]
        return (*sizes, input_shape[-1])

    def get_config(self) -> dict:
        def plain(v):
            return list(v) if isinstance(v, tuple) else v

        return {"pool_size": plain(self.pool_size), "strides": plain(self.strides), "padding": self.padding,
                **super().get_config()}


@register("layers")
class MaxPooling2D(_Pool):
    """Max over windows of NHWC images; the gradient goes to each window's first maximum.

    Args:
        pool_size: the window, an int or ``[rows, columns]``.
        strides: the step, likewise; None means ``pool_size`` (windows side by side).
        padding: "valid" (windows inside the input) or "same" (``ceil(size / strides)`` outputs).

    Example:
        >>> MaxPooling2D(2)(np.ones((64, 26, 26, 32), np.float32)).shape
        (64, 13, 13, 32)
    """

    op = staticmethod(max_pool2d)

    def __init__(self, pool_size: int | tuple[int, int] = 2, strides: int | tuple[int, int] | None = None,
                 padding: Literal["valid", "same"] = "valid", *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(pool_size, strides, padding, name=name, trainable=trainable, dtype=dtype)


@register("layers")
class AveragePooling2D(_Pool):
    """Mean over windows of NHWC images; "same" padding is left out of each mean (as Keras).

    Args:
        pool_size, strides, padding: as in MaxPooling2D.

    Example:
        >>> AveragePooling2D(2)(np.ones((8, 6, 6, 3), np.float32)).shape
        (8, 3, 3, 3)
    """

    op = staticmethod(avg_pool2d)

    def __init__(self, pool_size: int | tuple[int, int] = 2, strides: int | tuple[int, int] | None = None,
                 padding: Literal["valid", "same"] = "valid", *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(pool_size, strides, padding, name=name, trainable=trainable, dtype=dtype)


@register("layers")
class MaxPooling1D(_Pool):
    """Max over windows of steps of (batch, steps, channels).

    Args:
        pool_size: the window; strides: the step (None: ``pool_size``); padding: "valid" or "same".

    Example:
        >>> MaxPooling1D(3)(np.ones((4, 12, 5), np.float32)).shape
        (4, 4, 5)
    """

    rank = 1
    op = staticmethod(max_pool1d)

    def __init__(self, pool_size: int = 2, strides: int | None = None, padding: Literal["valid", "same"] = "valid",
                 *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(pool_size, strides, padding, name=name, trainable=trainable, dtype=dtype)


@register("layers")
class AveragePooling1D(_Pool):
    """Mean over windows of steps of (batch, steps, channels); padding left out of each mean.

    Args:
        pool_size: the window; strides: the step (None: ``pool_size``); padding: "valid" or "same".

    Example:
        >>> AveragePooling1D(2)(np.ones((4, 12, 5), np.float32)).shape
        (4, 6, 5)
    """

    rank = 1
    op = staticmethod(avg_pool1d)

    def __init__(self, pool_size: int = 2, strides: int | None = None, padding: Literal["valid", "same"] = "valid",
                 *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(pool_size, strides, padding, name=name, trainable=trainable, dtype=dtype)


class _GlobalPool(Layer):
    """A mean or max over every spatial axis: (batch, ..., channels) -> (batch, channels)."""

    rank = 2
    reduce = None

    def __init__(self, keepdims: bool = False, *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self.keepdims = bool(keepdims)

    def build(self, input_shape) -> None:
        if len(input_shape) != self.rank + 1:
            raise ValueError(f"{self.name}: {type(self).__name__} takes inputs of {self.rank + 1} axes per "
                             f"sample, found shape {tuple(input_shape)}")

    def call(self, inputs, training: bool = False):
        return type(self).reduce(inputs, axis=tuple(range(1, self.rank + 1)), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        return (*(1,) * self.rank, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def get_config(self) -> dict:
        return {"keepdims": self.keepdims, **super().get_config()}


@register("layers")
class GlobalAveragePooling2D(_GlobalPool):
    """The mean over height and width of each channel: (batch, h, w, channels) -> (batch, channels).

    Args:
        keepdims: keep the reduced axes, with size 1.

    Example:
        >>> GlobalAveragePooling2D()(np.ones((2, 5, 5, 3), np.float32)).shape
        (2, 3)
    """

    reduce = staticmethod(ad.mean)


@register("layers")
class GlobalMaxPooling2D(_GlobalPool):
    """The max over height and width of each channel: (batch, h, w, channels) -> (batch, channels).

    Args:
        keepdims: keep the reduced axes, with size 1.

    Example:
        >>> GlobalMaxPooling2D()(np.ones((2, 5, 5, 3), np.float32)).shape
        (2, 3)
    """

    reduce = staticmethod(ad.max)


@register("layers")
class GlobalAveragePooling1D(_GlobalPool):
    """The mean over the steps of each channel: (batch, steps, channels) -> (batch, channels).

    Args:
        keepdims: keep the reduced axes, with size 1.

    Example:
        >>> GlobalAveragePooling1D()(np.ones((2, 7, 3), np.float32)).shape
        (2, 3)
    """

    rank = 1
    reduce = staticmethod(ad.mean)


@register("layers")
class GlobalMaxPooling1D(_GlobalPool):
    """The max over the steps of each channel: (batch, steps, channels) -> (batch, channels).

    Args:
        keepdims: keep the reduced axes, with size 1.

    Example:
        >>> GlobalMaxPooling1D()(np.ones((2, 7, 3), np.float32)).shape
        (2, 3)
    """

    rank = 1
    reduce = staticmethod(ad.max)
