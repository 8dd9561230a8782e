"""Primitive ops: each one forward and backward side by side.

``forward(attrs, *arrays) -> (out, saved)`` works on numpy arrays and saves only
what backward needs beyond the inputs and the output.
``backward(F, g, xs, y, saved, attrs, needs) -> grads`` returns one gradient per
input (None where ``needs`` says it is not wanted). It is written once against a
namespace ``F``: plain numpy (``NP``, for a first-order gradient) or the
differentiable functions (for higher order, or inside a traced Function), in
which case ``g``, ``xs`` and ``y`` are tensors. Broadcasting is undone by the
tape, not here.
"""

from __future__ import annotations

import numpy as np


def data(v):
    """The numpy array behind a tensor (or the array itself)."""
    return getattr(v, "_data", v)


class Primitive:
    """Base of the primitive ops; subclasses define ``forward`` and ``backward``.

    Masks a backward rule needs (``x > 0`` for relu) come from ``F.mask(fn, *values)``:
    a plain array in first-order mode, a recorded op otherwise, so that a traced
    Function recomputes them from the live values instead of keeping the traced ones.
    """

    stateful = False  # True for ops with side effects or randomness: a trace always replays them

    @staticmethod
    def forward(attrs, *xs):
        raise NotImplementedError

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        raise NotImplementedError


class Mask(Primitive):
    """A value with no gradient computed from others by ``fn`` (attrs): masks, signs, comparisons."""

    forward = staticmethod(lambda fn, *xs: (fn(*xs), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (None,) * len(xs))


def _ge(a, b): return a >= b
def _le(a, b): return a <= b
def _positive(x): return x > 0
def _ties(x, y, axis):
    """Where ``x`` reaches its extreme ``y`` over ``axis``, each tie weighted 1/count."""
    mask = x == np.reshape(y, _keep_shape(x.shape, axis))
    return mask / np.sum(mask, axis=axis, keepdims=True, dtype=x.dtype)


# -- elementwise binary ---------------------------------------------------
class Add(Primitive):
    forward = staticmethod(lambda attrs, a, b: (a + b, None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g, g))


class Sub(Primitive):
    forward = staticmethod(lambda attrs, a, b: (a - b, None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g, -g if needs[1] else None))


class Mul(Primitive):
    forward = staticmethod(lambda attrs, a, b: (a * b, None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        return (g * b if needs[0] else None, g * a if needs[1] else None)


class Div(Primitive):
    forward = staticmethod(lambda attrs, a, b: (a / b, None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        b = xs[1]
        ga = g / b if needs[0] else None
        return ga, (-(g * y) / b if needs[1] else None)


class Pow(Primitive):
    forward = staticmethod(lambda attrs, a, b: (a ** b, None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        ga = g * b * a ** (b - 1) if needs[0] else None
        gb = None
        if needs[1]:
            positive = F.mask(_positive, a)  # d(a**b)/db = a**b log a, taken as 0 where a <= 0
            gb = F.where(positive, g * y * F.log(F.where(positive, a, 1)), 0)
        return ga, gb


class Maximum(Primitive):
    forward = staticmethod(lambda attrs, a, b: (np.maximum(a, b), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        first = F.mask(_ge, xs[0], xs[1])  # ties go to the first argument
        ga = g * first
        return ga, g - ga


class Minimum(Primitive):
    forward = staticmethod(lambda attrs, a, b: (np.minimum(a, b), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        first = F.mask(_le, xs[0], xs[1])
        ga = g * first
        return ga, g - ga


class Where(Primitive):
    """``where(cond, a, b)``; the boolean condition is an input without a gradient."""

    forward = staticmethod(lambda attrs, cond, a, b: (np.where(cond, a, b), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        cond = xs[0]
        return None, F.where(cond, g, 0) if needs[1] else None, F.where(cond, 0, g) if needs[2] else None


# -- elementwise unary ----------------------------------------------------
class Neg(Primitive):
    forward = staticmethod(lambda attrs, x: (-x, None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (-g,))


class Exp(Primitive):
    forward = staticmethod(lambda attrs, x: (np.exp(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * y,))


class Log(Primitive):
    forward = staticmethod(lambda attrs, x: (np.log(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g / xs[0],))


class Sqrt(Primitive):
    forward = staticmethod(lambda attrs, x: (np.sqrt(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g / (y + y),))


class Square(Primitive):
    forward = staticmethod(lambda attrs, x: (np.square(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * (xs[0] + xs[0]),))


class Abs(Primitive):
    forward = staticmethod(lambda attrs, x: (np.abs(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.mask(np.sign, xs[0]),))


class Sin(Primitive):
    forward = staticmethod(lambda attrs, x: (np.sin(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.cos(xs[0]),))


class Cos(Primitive):
    forward = staticmethod(lambda attrs, x: (np.cos(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (-(g * F.sin(xs[0])),))


class Tanh(Primitive):
    forward = staticmethod(lambda attrs, x: (np.tanh(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g - g * y * y,))


_HALVES: dict = {}


def _half(dtype) -> np.ndarray:
    """0.5 as a 0-d array of ``dtype``: numpy combines it with arrays faster than a Python float."""
    half = _HALVES.get(dtype)
    if half is None:
        half = _HALVES[dtype] = np.array(0.5, dtype=dtype)
    return half


def _sigmoid(x):
    # 0.5 + 0.5 tanh(x / 2) never overflows, unlike 1 / (1 + exp(-x)).
    half = _half(x.dtype)
    out = np.multiply(x, half)
    np.tanh(out, out=out)
    out *= half
    out += half
    return out


class Sigmoid(Primitive):
    forward = staticmethod(lambda attrs, x: (_sigmoid(x), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * (y - y * y),))


class Relu(Primitive):
    forward = staticmethod(lambda attrs, x: (np.maximum(x, 0), None))
    # g * mask, not where(mask, g, 0): numpy's where is several times slower on large arrays
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.mask(_positive, y),))


class Softplus(Primitive):
    forward = staticmethod(lambda attrs, x: (np.logaddexp(x, 0), None))  # log(1 + e^x), stable
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.sigmoid(xs[0]),))


class Clip(Primitive):
    forward = staticmethod(lambda attrs, x: (np.clip(x, attrs[0], attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        return (g * F.mask(_Inside(*attrs), xs[0]),)


class _Inside:
    """``lo <= x <= hi`` (a class, not a closure: traced graphs keep it as a value)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def __call__(self, x):
        return (x >= self.lo) & (x <= self.hi)


class Cast(Primitive):
    forward = staticmethod(lambda dtype, x: (x.astype(dtype), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.cast(g, data(xs[0]).dtype),))


# -- reductions -------------------------------------------------------------
def _keep_shape(shape, axis):
    """The shape of a reduction over ``axis`` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    axes = {a % len(shape) for a in axes}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Primitive):
    forward = staticmethod(lambda attrs, x: (np.sum(x, axis=attrs[0], keepdims=attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        shape = data(xs[0]).shape
        return (F.broadcast_to(F.reshape(g, _keep_shape(shape, attrs[0])), shape),)


class _Extreme(Primitive):
    """max/min over axes; the gradient is split evenly between tied extremes."""

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        keep = _keep_shape(data(xs[0]).shape, attrs[0])
        return (F.reshape(g, keep) * F.mask(_TiesOver(attrs[0]), xs[0], y),)


class _TiesOver:
    def __init__(self, axis):
        self.axis = axis

    def __call__(self, x, y):
        return _ties(x, y, self.axis)


class Max(_Extreme):
    forward = staticmethod(lambda attrs, x: (np.max(x, axis=attrs[0], keepdims=attrs[1]), None))


class Min(_Extreme):
    forward = staticmethod(lambda attrs, x: (np.min(x, axis=attrs[0], keepdims=attrs[1]), None))


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) rows: leave them to exp
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


class LogSumExp(Primitive):
    forward = staticmethod(lambda attrs, x: (_logsumexp(x, attrs[0], attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        keep = _keep_shape(data(xs[0]).shape, attrs[0])
        return (F.reshape(g, keep) * F.exp(xs[0] - F.reshape(y, keep)),)


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


class Softmax(Primitive):
    forward = staticmethod(lambda axis, x: (_softmax(x, axis), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        return (y * (g - F.sum(g * y, axis=axis, keepdims=True)),)


class LogSoftmax(Primitive):
    forward = staticmethod(lambda axis, x: (x - _logsumexp(x, axis, True), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        return (g - F.exp(y) * F.sum(g, axis=axis, keepdims=True),)


# -- linear algebra and shapes -------------------------------------------
def _swap(F, x):
    n = data(x).ndim
    return F.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


class MatMul(Primitive):
    forward = staticmethod(lambda attrs, a, b: (np.matmul(a, b), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        na, nb = data(a).ndim, data(b).ndim
        if na == 1 and nb == 1:  # inner product
            return (g * b if needs[0] else None, g * a if needs[1] else None)
        if na == 1:  # (n,) @ (..., n, m) -> (..., m)
            ga = F.reshape(F.matmul(F.reshape(g, data(g).shape[:-1] + (1, data(g).shape[-1])), _swap(F, b)),
                           data(g).shape[:-1] + (data(a).shape[0],)) if needs[0] else None
            gb = F.reshape(a, (-1, 1)) * F.reshape(g, data(g).shape[:-1] + (1, data(g).shape[-1])) if needs[1] else None
            return ga, gb
        if nb == 1:  # (..., n, m) @ (m,) -> (..., n)
            gcol = F.reshape(g, data(g).shape + (1,))
            ga = gcol * b if needs[0] else None
            gb = F.reshape(F.matmul(_swap(F, a), gcol), data(g).shape[:-1] + (data(b).shape[0],)) if needs[1] else None
            return ga, gb
        ga = F.matmul(g, _swap(F, b)) if needs[0] else None
        gb = F.matmul(_swap(F, a), g) if needs[1] else None
        return ga, gb


class Transpose(Primitive):
    forward = staticmethod(lambda axes, x: (np.transpose(x, axes), None))

    @staticmethod
    def backward(F, g, xs, y, s, axes, needs):
        if axes is None:
            return (F.transpose(g, None),)
        return (F.transpose(g, tuple(np.argsort(axes))),)


class Reshape(Primitive):
    forward = staticmethod(lambda shape, x: (np.reshape(x, shape), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.reshape(g, data(xs[0]).shape),))


class BroadcastTo(Primitive):
    forward = staticmethod(lambda shape, x: (np.broadcast_to(x, shape), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.sum_to(g, data(xs[0]).shape),))


def _is_basic(index) -> bool:
    """True when ``x[index]`` is a view (no integer or boolean arrays inside)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, int | slice | np.integer) for i in items)


class Slot:
    """In an index template: the place of the n-th index tensor (an op input, not a constant)."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n


def fill_index(template, tensors):
    """The index with each :class:`Slot` replaced by its tensor (or array)."""
    if isinstance(template, tuple):
        return tuple(tensors[i.n] if isinstance(i, Slot) else i for i in template)
    return tensors[template.n] if isinstance(template, Slot) else template


class GetItem(Primitive):
    """``x[index]``; integer index arrays that are tensors come in as inputs (attrs: the template)."""

    forward = staticmethod(lambda template, x, *idx: (x[fill_index(template, idx)], None))

    @staticmethod
    def backward(F, g, xs, y, s, template, needs):
        gx = F.scatter_add(g, data(xs[0]).shape, fill_index(template, xs[1:]))
        return (gx,) + (None,) * (len(xs) - 1)


class ScatterAdd(Primitive):
    """The adjoint of indexing: zeros of ``shape`` with ``g`` added at ``index``."""

    @staticmethod
    def forward(attrs, g, *idx):
        shape, template = attrs
        index = fill_index(template, idx)
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out, None

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        return (F.getitem(g, fill_index(attrs[1], xs[1:])),) + (None,) * (len(xs) - 1)


class Concat(Primitive):
    forward = staticmethod(lambda axis, *xs: (np.concatenate(xs, axis=axis), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        ndim = data(g).ndim
        axis = axis % ndim
        grads, start = [], 0
        for x, need in zip(xs, needs):
            stop = start + data(x).shape[axis]
            if need:
                index = (slice(None),) * axis + (slice(start, stop),)
                grads.append(F.getitem(g, index))
            else:
                grads.append(None)
            start = stop
        return grads


def _owned(view_op):
    """The same op on a Variable: copy the result, since a view would change under assign()."""

    def forward(attrs, x, *rest):
        out, saved = view_op.forward(attrs, x, *rest)
        return np.array(out), saved

    return type(view_op.__name__, (view_op,), {"forward": staticmethod(forward)})


OWNED = {op: _owned(op) for op in (Transpose, Reshape, BroadcastTo, GetItem)}


# -- the namespace first-order backward runs in ----------------------------
def broadcast_axes(shape, target) -> tuple[int, ...]:
    """The axes of ``shape`` to sum over to undo its broadcasting from ``target``:
    the leading ones, and those where ``target`` has size 1 (kept, with keepdims)."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1)


def _np_sum_to(g, shape):
    """Sum ``g`` down to ``shape``: undo numpy broadcasting (leading and size-1 axes)."""
    if g.shape == shape:
        return g
    out = np.sum(g, axis=broadcast_axes(g.shape, shape), keepdims=True)
    return out.reshape(shape) if g.ndim != len(shape) else out


class NP:
    """numpy stand-ins for the differentiable functions backward rules call."""

    where = staticmethod(np.where)

    @staticmethod
    def mask(fn, *xs):
        return fn(*xs)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    sigmoid = staticmethod(_sigmoid)
    matmul = staticmethod(np.matmul)
    reshape = staticmethod(np.reshape)
    broadcast_to = staticmethod(np.broadcast_to)
    sum_to = staticmethod(_np_sum_to)

    @staticmethod
    def transpose(x, axes):
        return np.transpose(x, axes)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def cast(x, dtype):
        return x.astype(dtype, copy=False)

    @staticmethod
    def getitem(x, index):
        return x[index]

    @staticmethod
    def scatter_add(g, shape, index):
        return ScatterAdd.forward((shape, index), g)[0]
