"""The differentiable functions users call: primitives applied, and composites.

Composites (mean, stack, split, take, ...) are built from primitives and carry no derivative
code of their own. This module is also the namespace ``F`` that backward rules compute in
when their gradients must themselves be differentiable or traced (``graph`` is True here;
``ops.NP`` is the array namespace of first-order gradients).
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff import ops as P
from nncli.autodiff.ops.base import axes_of, broadcast_axes
from nncli.autodiff.tensor import (
    DEFAULT_FLOAT, Tensor, apply, as_tensor, binary, cast, getitem, mean, pair, reduction, reshape, transpose,
    unary,
)

graph = True  # read by backward rules: tensors here, arrays in ops.NP

__all__ = [
    "abs", "add", "apply", "as_tensor", "broadcast_to", "cast", "clip", "concat", "cos", "div", "exp",
    "expand_dims", "getitem", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mul", "neg", "one_hot", "pow", "relu", "reshape", "sigmoid", "sin", "softmax", "softplus",
    "split", "sqrt", "square", "stack", "stop_gradient", "sub", "sum", "sum_to", "take", "tanh", "transpose",
    "where",
]


# -- elementwise -------------------------------------------------------------
def add(a, b): return binary(P.Add, a, b)
def sub(a, b): return binary(P.Sub, a, b)
def mul(a, b): return binary(P.Mul, a, b)
def div(a, b): return binary(P.Div, a, b)
def pow(a, b): return binary(P.Pow, a, b)  # noqa: A001 - the SPEC's name
def maximum(a, b): return binary(P.Maximum, a, b)
def minimum(a, b): return binary(P.Minimum, a, b)
def neg(x): return apply(P.Neg, (x,)) if type(x) is Tensor else unary(P.Neg, x)
def exp(x): return apply(P.Exp, (x,)) if type(x) is Tensor else unary(P.Exp, x)
def log(x): return apply(P.Log, (x,)) if type(x) is Tensor else unary(P.Log, x)
def sqrt(x): return apply(P.Sqrt, (x,)) if type(x) is Tensor else unary(P.Sqrt, x)
def square(x): return apply(P.Square, (x,)) if type(x) is Tensor else unary(P.Square, x)
def abs(x): return apply(P.Abs, (x,)) if type(x) is Tensor else unary(P.Abs, x)  # noqa: A001
def sin(x): return apply(P.Sin, (x,)) if type(x) is Tensor else unary(P.Sin, x)
def cos(x): return apply(P.Cos, (x,)) if type(x) is Tensor else unary(P.Cos, x)
def tanh(x): return apply(P.Tanh, (x,)) if type(x) is Tensor else unary(P.Tanh, x)
def relu(x): return apply(P.Relu, (x,)) if type(x) is Tensor else unary(P.Relu, x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, in two branches so that neither overflows nor loses precision."""
    return apply(P.Sigmoid, (x,)) if type(x) is Tensor else unary(P.Sigmoid, x)


def softplus(x):
    """``log(1 + exp(x))`` without overflow."""
    return apply(P.Softplus, (x,)) if type(x) is Tensor else unary(P.Softplus, x)


def clip(x, min_value, max_value):
    """Limit values to ``[min_value, max_value]``; gradient 1 inside, 0 outside."""
    return unary(P.Clip, x, (min_value, max_value))


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (condition has no gradient)."""
    if isinstance(condition, Tensor):
        cond = condition if condition._data.dtype == bool and not condition._weak else \
            apply(P.Mask, (condition,), _as_bool)
    else:
        cond = Tensor._make(np.asarray(condition, dtype=bool))
    a, b = pair(a, b)
    return apply(P.Where, (cond, a, b))


def _as_bool(x):
    return x.astype(bool)


def stop_gradient(x) -> Tensor:
    """The same value, cut from the graph: no gradient flows through it (traces recompute it)."""
    x = as_tensor(x)
    return apply(P.Mask, (x,), np.array if x._variable else _same)


def _same(x):
    return x


# -- reductions ---------------------------------------------------------------
def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``axis`` (all axes when None; negative axes count from the end)."""
    return reduction(P.Sum, x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Largest value over ``axis``; ties share the gradient."""
    return reduction(P.Max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Smallest value over ``axis``; ties share the gradient."""
    return reduction(P.Min, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` computed without overflow."""
    return reduction(P.LogSumExp, x, axis, keepdims)


def _one_axis(x, axis) -> int:
    return axes_of(axis, x._data.ndim)[0]


def softmax(x, axis=-1):
    """Normalised exponentials along ``axis`` (shifted by the max: no overflow)."""
    x = as_tensor(x)
    return apply(P.Softmax, (x,), _one_axis(x, axis))


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``, computed from the shifted values: stable and exact
    where ``log(softmax(x))`` is not."""
    x = as_tensor(x)
    return apply(P.LogSoftmax, (x,), _one_axis(x, axis))


# -- linear algebra and shapes -----------------------------------------------
def matmul(a, b):
    """Matrix product; batch axes broadcast like numpy's ``@``."""
    return binary(P.MatMul, a, b)


def expand_dims(x, axis):
    """Insert a size-1 axis at ``axis``."""
    x = as_tensor(x)
    return reshape(x, np.expand_dims(x._data, axis).shape)


def broadcast_to(x, shape):
    """``x`` repeated (without copying) to ``shape``."""
    x = as_tensor(x)
    shape = tuple(shape)
    if x._data.shape == shape:
        return x
    return apply(P.OWNED_BROADCAST if x._variable else P.BroadcastTo, (x,), shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, undoing broadcasting; the engine's one ``unbroadcast``."""
    x = as_tensor(x)
    shape = tuple(shape)
    if x._data.shape == shape:
        return x
    return reshape(sum(x, broadcast_axes(x._data.shape, shape), keepdims=True), shape)


def take(x, indices, axis=0):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (numpy's ``take``), differentiable
    in ``x``; the indices may be a tensor, read afresh on every call of a traced Function.

    Example:
        >>> ad.take(ad.Tensor([[1.0, 2.0], [3.0, 4.0]]), ad.Tensor([1, 1, 0])).numpy()
        array([[3., 4.],
               [3., 4.],
               [1., 2.]], dtype=float32)
    """
    x = as_tensor(x)
    return getitem(x, (slice(None),) * _one_axis(x, axis) + (indices,))


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    first = as_tensor(tensors[0]) if first is None else first
    ts = tuple(pair(first, t)[1] for t in tensors)
    return apply(P.Concat, ts, _one_axis(ts[0], axis))


def stack(tensors, axis=0):
    """Join tensors along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    axis = axes_of(axis, tensors[0].ndim + 1)[0]
    return concat([expand_dims(t, axis) for t in tensors], axis)


def split(x, indices_or_sections, axis=0):
    """Split into a list of tensors, like ``np.split``."""
    x = as_tensor(x)
    axis = _one_axis(x, axis)
    n = x.shape[axis]
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(f"cannot split an axis of {n} into {sections} equal parts")
        bounds = list(range(0, n + 1, n // sections))
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def one_hot(indices, depth, dtype=DEFAULT_FLOAT):
    """``(..., depth)`` rows with a 1 at each index; an op of the indices, so a traced Function
    reads each call's indices. Not differentiable (indices are integers); an index outside
    ``[0, depth)`` raises ValueError."""
    return apply(P.OneHot, (as_tensor(indices),), (int(depth), np.dtype(dtype)))
