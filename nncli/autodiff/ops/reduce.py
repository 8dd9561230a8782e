"""Reductions and the normalising ops: sum, max, min, logsumexp, softmax, log_softmax.

Axes reach these ops normalised (``base.axes_of``: a sorted tuple of non-negative ints, or
None for all), so backward rules and kernels never see a negative axis.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, Primitive, keep_shape, same_float
from nncli.autodiff.ops.elementwise import Mask


class Sum(Primitive):
    """attrs: (axes or None, keepdims)."""

    forward = staticmethod(lambda attrs, x: (np.sum(x, axis=attrs[0], keepdims=attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        shape = xs[0].shape
        return (F.broadcast_to(F.reshape(g, keep_shape(shape, attrs[0])), shape),)

    @classmethod
    def kernel(cls, attrs, shapes, dtypes):
        if not same_float(dtypes):
            return None
        axis, keepdims = attrs
        reduce = np.add.reduce  # what np.sum calls: the same pairwise summation
        return Kernel(lambda out, x: reduce(x, axis, None, out, keepdims), (0,))

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        shape = shapes[0]
        keep = keep_shape(shape, attrs[0])
        return Kernel(lambda g: np.broadcast_to(np.reshape(g, keep), shape), ("g",), view=True)


class _TiesOver:
    """Where ``x`` reaches its extreme ``y`` over ``axis``, each tie weighted 1/count."""

    def __init__(self, axis):
        self.axis = axis

    def __call__(self, x, y):
        mask = x == np.reshape(y, keep_shape(x.shape, self.axis))
        return mask / np.sum(mask, axis=self.axis, keepdims=True, dtype=x.dtype)


class _Extreme(Primitive):
    """max/min over axes; the gradient is split evenly between tied extremes (as TensorFlow)."""

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        keep = keep_shape(xs[0].shape, attrs[0])
        return (F.reshape(g, keep) * F.apply(Mask, (xs[0], y), _TiesOver(attrs[0])),)


class Max(_Extreme):
    forward = staticmethod(lambda attrs, x: (np.max(x, axis=attrs[0], keepdims=attrs[1]), None))


class Min(_Extreme):
    forward = staticmethod(lambda attrs, x: (np.min(x, axis=attrs[0], keepdims=attrs[1]), None))


def _shift(x, axis):
    """The max over ``axis`` (keepdims), with rows of infinities shifted by 0 instead."""
    m = np.max(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) rows: leave them to exp
    return m


def logsumexp(x, axis, keepdims):
    m = _shift(x, axis)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


class LogSumExp(Primitive):
    forward = staticmethod(lambda attrs, x: (logsumexp(x, attrs[0], attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        keep = keep_shape(xs[0].shape, attrs[0])
        return (F.reshape(g, keep) * F.exp(xs[0] - F.reshape(y, keep)),)


def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


class Softmax(Primitive):
    """attrs: the axis (one, non-negative)."""

    forward = staticmethod(lambda axis, x: (softmax(x, axis), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        return (y * (g - F.sum(g * y, axis=axis, keepdims=True)),)


def log_softmax(x, axis):
    """``(x - m) - log(sum(exp(x - m)))``: subtracting the shift first keeps the result exact
    where ``x - logsumexp(x)`` would round at the scale of ``x`` (float32 at 1000: 6e-5)."""
    shifted = x - _shift(x, axis)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


class LogSoftmax(Primitive):
    forward = staticmethod(lambda axis, x: (log_softmax(x, axis), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        return (g - F.exp(y) * F.sum(g, axis=axis, keepdims=True),)
