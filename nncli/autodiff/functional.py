"""The differentiable functions users call: primitives wrapped, and composites.

Composites (mean, stack, split, ...) are built from primitives and carry no
derivative code of their own. Numbers and arrays mixed with a tensor take the
tensor's dtype, so a float32 computation stays float32.
"""

from __future__ import annotations

import builtins

import numpy as np

from nncli.autodiff import ops as P
from nncli.autodiff.tape import apply
from nncli.autodiff.tensor import _OPERATORS, DEFAULT_FLOAT, Tensor, Variable


def as_tensor(x, dtype=None) -> Tensor:
    """``x`` itself when it is a tensor, else a new constant tensor (float32 by default)."""
    if isinstance(x, Tensor):
        return x
    return Tensor(x, dtype)


def _const(x, like: Tensor) -> Tensor:
    """A non-tensor operand as a constant of ``like``'s dtype (no promotion)."""
    arr = np.asarray(x)
    if like._data.dtype.kind == "f":
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot combine a {arr.dtype} value with a {like.dtype} tensor")
        arr = arr.astype(like._data.dtype, copy=False)
    return Tensor._make(np.array(arr))


def _pair(a, b) -> tuple[Tensor, Tensor]:
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a._data.dtype, b._data.dtype
        if da != db:
            fa, fb = da.kind == "f", db.kind == "f"
            if fa and fb:
                raise TypeError(
                    f"cannot combine {da} and {db} tensors; convert one with ad.cast(x, '{da}')")
            if fa:
                b = cast(b, da)
            elif fb:
                a = cast(a, db)
        return a, b
    if ta:
        return a, _const(b, a)
    if tb:
        return _const(a, b), b
    a = as_tensor(a)
    return a, _const(b, a)


def _binary(op, a, b):
    if type(a) is Tensor and type(b) is Tensor and a._data.dtype is b._data.dtype:
        return apply(op, (a, b))
    if isinstance(a, Tensor) and isinstance(b, float | int) and a._data.dtype.kind == "f":
        return apply(op, (a, Tensor._make(np.array(b, dtype=a._data.dtype))))
    a, b = _pair(a, b)
    return apply(op, (a, b))


def _unary(op, x, attrs=None):
    return apply(op, (x if isinstance(x, Tensor) else as_tensor(x),), attrs)


def _view_op(op, x):
    """Ops that return views copy when they read a Variable (assign() would change the view)."""
    return P.OWNED[op] if type(x) is Variable else op


# -- elementwise -------------------------------------------------------------
def add(a, b): return _binary(P.Add, a, b)
def sub(a, b): return _binary(P.Sub, a, b)
def mul(a, b): return _binary(P.Mul, a, b)
def div(a, b): return _binary(P.Div, a, b)
def pow(a, b): return _binary(P.Pow, a, b)  # noqa: A001 - the SPEC's name
def maximum(a, b): return _binary(P.Maximum, a, b)
def minimum(a, b): return _binary(P.Minimum, a, b)
def neg(x): return _unary(P.Neg, x)
def exp(x): return _unary(P.Exp, x)
def log(x): return _unary(P.Log, x)
def sqrt(x): return _unary(P.Sqrt, x)
def square(x): return _unary(P.Square, x)
def abs(x): return _unary(P.Abs, x)  # noqa: A001
def sin(x): return _unary(P.Sin, x)
def cos(x): return _unary(P.Cos, x)
def tanh(x): return _unary(P.Tanh, x)
def sigmoid(x): return _unary(P.Sigmoid, x)
def relu(x): return _unary(P.Relu, x)
def softplus(x): return _unary(P.Softplus, x)


def clip(x, min_value, max_value):
    """Limit values to ``[min_value, max_value]``; gradient 1 inside, 0 outside."""
    return _unary(P.Clip, x, (min_value, max_value))


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (condition has no gradient)."""
    if isinstance(condition, Tensor):
        cond = condition if condition._data.dtype == bool else mask(_as_bool, condition)
    else:
        cond = Tensor._make(np.asarray(condition, dtype=bool))
    a, b = _pair(a, b)
    return apply(P.Where, (cond, a, b))


def _as_bool(x):
    return x.astype(bool)


def mask(fn, *tensors) -> Tensor:
    """``fn`` of the tensors' arrays as a tensor without gradient, recorded so traces recompute it.

    Example:
        >>> positive = ad.mask(lambda x: x > 0, t)
    """
    return apply(P.Mask, tuple(as_tensor(t) for t in tensors), fn)


def cast(x, dtype):
    """``x`` converted to ``dtype`` (the gradient is cast back)."""
    x = as_tensor(x)
    dtype = np.dtype(dtype)
    if x._data.dtype == dtype:
        return x
    return apply(P.Cast, (x,), dtype)


def stop_gradient(x) -> Tensor:
    """The same value, cut from the graph: no gradient flows through it (traces recompute it)."""
    x = as_tensor(x)
    return apply(P.Mask, (x,), np.array if type(x) is Variable else _same)


def _same(x):
    return x


# -- reductions ---------------------------------------------------------------
def _axis(axis):
    if isinstance(axis, list):
        return tuple(axis)
    return axis


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    return _unary(P.Sum, x, (_axis(axis), keepdims))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``: a sum scaled by the count, in the input's dtype."""
    x = as_tensor(x)
    total = sum(x, axis, keepdims)
    count = x.size // builtins.max(total.size, 1) if x.size else 1
    return total * (1.0 / count)


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Largest value over ``axis``; ties share the gradient."""
    return _unary(P.Max, x, (_axis(axis), keepdims))


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Smallest value over ``axis``; ties share the gradient."""
    return _unary(P.Min, x, (_axis(axis), keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` computed without overflow."""
    return _unary(P.LogSumExp, x, (_axis(axis), keepdims))


def softmax(x, axis=-1):
    """Normalised exponentials along ``axis`` (shifted by the max: no overflow)."""
    return _unary(P.Softmax, x, axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``: stable where ``log(softmax(x))`` is not."""
    return _unary(P.LogSoftmax, x, axis)


# -- linear algebra and shapes -----------------------------------------------
def matmul(a, b):
    """Matrix product; batch axes broadcast like numpy's ``@``."""
    return _binary(P.MatMul, a, b)


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    x = as_tensor(x)
    return apply(_view_op(P.Transpose, x), (x,), None if axes is None else tuple(axes))


def reshape(x, shape):
    """The same values in a new shape (one entry may be -1)."""
    x = as_tensor(x)
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(int(n) for n in shape)
    if x._data.shape == shape:
        return x
    return apply(_view_op(P.Reshape, x), (x,), shape)


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
    return apply(_view_op(P.BroadcastTo, x), (x,), shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, undoing broadcasting; the engine's one ``unbroadcast``."""
    x = as_tensor(x)
    shape = tuple(shape)
    if x._data.shape == shape:
        return x
    return reshape(sum(x, P.broadcast_axes(x._data.shape, shape), keepdims=True), shape)


def _index(index, tensors: list):
    """An index template: tensors in it become :class:`ops.Slot` places (op inputs)."""
    if isinstance(index, tuple):
        return tuple(_index(i, tensors) for i in index)
    if isinstance(index, Tensor):
        tensors.append(index)
        return P.Slot(len(tensors) - 1)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x, index):
    """``x[index]``: basic and advanced indexing (index tensors included), differentiable."""
    x = as_tensor(x)
    tensors: list = []
    template = _index(index, tensors)
    return apply(_view_op(P.GetItem, x), (x, *tensors), template)


def scatter_add(g, shape, index):
    """Zeros of ``shape`` with ``g`` added at ``index`` (the adjoint of ``getitem``)."""
    tensors: list = []
    template = _index(index, tensors)
    return apply(P.ScatterAdd, (as_tensor(g), *tensors), (tuple(shape), template))


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    if first is None:
        first = as_tensor(tensors[0])
    ts = []
    for t in tensors:
        t = _pair(first, t)[1]
        ts.append(t)
    return apply(P.Concat, tuple(ts), axis)


def stack(tensors, axis=0):
    """Join tensors along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    ndim = tensors[0].ndim + 1
    axis = axis % ndim
    return concat([expand_dims(t, axis) for t in tensors], axis)


def split(x, indices_or_sections, axis=0):
    """Split into a list of tensors, like ``np.split``."""
    x = as_tensor(x)
    n = x.shape[axis]
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(f"cannot split an axis of {n} into {sections} equal parts")
        bounds = list(range(0, n + 1, n // sections))
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    axis = axis % x.ndim
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def one_hot(indices, depth, dtype=DEFAULT_FLOAT):
    """``(..., depth)`` rows with a 1 at each index (not differentiable: indices are integers)."""
    idx = np.asarray(P.data(indices))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot takes integer indices, not {idx.dtype}")
    out = np.zeros(idx.shape + (int(depth),), dtype=dtype)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return Tensor._make(out)


def _swapped(f):
    return lambda a, b: f(b, a)


# Bind the operators straight to the functions (one call less per op than a method).
for _name, _f in dict(add=add, sub=sub, mul=mul, truediv=div, pow=pow, matmul=matmul).items():
    setattr(Tensor, f"__{_name}__", _f)
    setattr(Tensor, f"__r{_name}__", _swapped(_f))
Tensor.__neg__ = neg

def _comparison(fn):
    return lambda a, b: mask(fn, a, _pair(a, b)[1] if isinstance(a, Tensor) else b)


# Comparisons give boolean tensors without gradient (usable in where() and indexing, also traced).
for _name, _fn in dict(lt=np.less, le=np.less_equal, gt=np.greater, ge=np.greater_equal).items():
    setattr(Tensor, f"__{_name}__", _comparison(_fn))

_OPERATORS.update(add=add, sub=sub, mul=mul, div=div, pow=pow, matmul=matmul, neg=neg, abs=abs,
                  getitem=getitem, transpose=transpose, reshape=reshape, sum=sum, mean=mean)
