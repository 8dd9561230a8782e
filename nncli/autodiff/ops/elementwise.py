"""Elementwise primitives: arithmetic, maths functions, activations, casts and masks.

Where an op takes several numpy calls (sigmoid, its gradient, tanh's gradient), they are
written once as a function of an optional ``out`` buffer: the eager forward/backward calls
it without one, the compiled kernel with one, so both run the same calls in the same order.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, NoGrad, Primitive, constant, filled, grad_ufunc, same_float, \
    ufunc_kernel


# -- masks and comparisons (no gradient) ------------------------------------------
class Mask(NoGrad):
    """``fn(*arrays)`` (attrs: fn) as a value without gradient: masks, signs, ``stop_gradient``.
    Recorded, so a traced Function recomputes it from the live values."""

    forward = staticmethod(lambda fn, *xs: (fn(*xs), None))


class Compare(NoGrad):
    """A comparison ufunc (attrs: ``np.less``, ...) giving a boolean tensor."""

    forward = staticmethod(lambda ufunc, a, b: (ufunc(a, b), None))

    @classmethod
    def kernel(cls, ufunc, shapes, dtypes):
        return Kernel(ufunc, (0, 1), ufunc=True) if dtypes[0] == dtypes[1] else None


def _ge(a, b): return a >= b
def _le(a, b): return a <= b
def _positive(x): return x > 0
def _is_zero(x): return x == 0


# -- binary arithmetic ------------------------------------------------------------
class Add(Primitive):
    array_fn = np.add
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g, g))
    kernel = ufunc_kernel(np.add, 2)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return "g"


class Sub(Primitive):
    array_fn = np.subtract
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g, -g if needs[1] else None))
    kernel = ufunc_kernel(np.subtract, 2)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return "g" if i == 0 else Kernel(np.negative, ("g",), ufunc=True, inplace=(0,))


class Mul(Primitive):
    array_fn = np.multiply
    kernel = ufunc_kernel(np.multiply, 2)

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        return (g * b if needs[0] else None, g * a if needs[1] else None)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(np.multiply, ("g", 1 - i), ufunc=True, inplace=(0, 1))


def _div_b(out, g, y, b, mul=np.multiply, neg=np.negative, div=np.true_divide):
    """``-(g * y) / b`` into ``out``: the rule's numpy calls, in its order."""
    mul(g, y, out=out)
    neg(out, out=out)
    return div(out, b, out=out)


class Div(Primitive):
    array_fn = np.true_divide
    kernel = ufunc_kernel(np.true_divide, 2)

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        b = xs[1]
        ga = g / b if needs[0] else None
        if not needs[1]:
            return ga, None
        return ga, -(g * y) / b

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        if i == 0:
            return Kernel(np.true_divide, ("g", 1), ufunc=True, inplace=(0, 1))
        return Kernel(_div_b, ("g", "y", 1), inplace=(0, 1))


class Pow(Primitive):
    """``a ** b``; like torch, d/da is 0 where b == 0 (also at a == 0, where b a^(b-1) is 0 * inf)."""

    forward = staticmethod(lambda attrs, a, b: (a ** b, None))
    kernel = ufunc_kernel(np.power, 2)

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        ga = gb = None
        if needs[0]:
            exponent = F.where(F.apply(Mask, (b,), _is_zero), 1, b - 1)  # b a^(b-1), with 0 a^1 where b == 0
            ga = g * b * a ** exponent
        if needs[1]:
            positive = F.apply(Mask, (a,), _positive)  # d(a**b)/db = a**b log a, taken as 0 where a <= 0
            gb = F.where(positive, g * y * F.log(F.where(positive, a, 1)), 0)
        return ga, gb


class Maximum(Primitive):
    array_fn = np.maximum
    kernel = ufunc_kernel(np.maximum, 2)

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        ga = g * F.apply(Mask, (xs[0], xs[1]), _ge)  # ties go to the first argument
        return ga, g - ga


class Minimum(Primitive):
    array_fn = np.minimum
    kernel = ufunc_kernel(np.minimum, 2)

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        ga = g * F.apply(Mask, (xs[0], xs[1]), _le)
        return ga, g - ga


class Where(Primitive):
    """``where(cond, a, b)``; the boolean condition is an input without a gradient."""

    forward = staticmethod(lambda attrs, cond, a, b: (np.where(cond, a, b), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        cond = xs[0]
        return None, F.where(cond, g, 0) if needs[1] else None, F.where(cond, 0, g) if needs[2] else None


# -- unary maths --------------------------------------------------------------------
class Neg(Primitive):
    array_fn = np.negative
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (-g,))
    kernel = ufunc_kernel(np.negative, 1)
    grad_kernel = grad_ufunc(np.negative, "g", inplace=(0,))


class Exp(Primitive):
    array_fn = np.exp
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * y,))
    kernel = ufunc_kernel(np.exp, 1)
    grad_kernel = grad_ufunc(np.multiply, "g", "y")


class Log(Primitive):
    array_fn = np.log
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g / xs[0],))
    kernel = ufunc_kernel(np.log, 1)
    grad_kernel = grad_ufunc(np.true_divide, "g", 0)


def _sqrt_grad(out, g, y):  # g / (y + y)
    out = np.add(y, y, out=out)
    return np.true_divide(g, out, out=out)


class Sqrt(Primitive):
    array_fn = np.sqrt
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g / (y + y),))
    kernel = ufunc_kernel(np.sqrt, 1)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(_sqrt_grad, ("g", "y"), inplace=(1,))


def _square_grad(out, g, x):  # g * (x + x)
    out = np.add(x, x, out=out)
    return np.multiply(g, out, out=out)


class Square(Primitive):
    array_fn = np.square
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * (xs[0] + xs[0]),))
    kernel = ufunc_kernel(np.square, 1)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(_square_grad, ("g", 0), inplace=(1,))


class Abs(Primitive):
    array_fn = np.abs
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.apply(Mask, (xs[0],), np.sign),))
    kernel = ufunc_kernel(np.abs, 1)


class Sin(Primitive):
    array_fn = np.sin
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.cos(xs[0]),))
    kernel = ufunc_kernel(np.sin, 1)


class Cos(Primitive):
    array_fn = np.cos
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (-(g * F.sin(xs[0])),))
    kernel = ufunc_kernel(np.cos, 1)


def _tanh_grad(reads, o, out):  # g - g * y * y, as the rule computes it
    g, y = reads
    mul, sub = np.multiply, np.subtract

    def run(S):
        gv, yv = S[g], S[y]
        mul(gv, yv, out=out)
        mul(out, yv, out=out)
        S[o] = sub(gv, out, out=out)
    return run


class Tanh(Primitive):
    array_fn = np.tanh
    kernel = ufunc_kernel(np.tanh, 1)

    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g - g * y * y,))

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(None, ("g", "y"), run=_tanh_grad)


_SIGMOID: dict = {}


def _sigmoid_constants(dtype) -> tuple:
    """The clamp for ``exp`` (80, or less where exp(80) overflows, as in float16) and 1, as 0-d arrays."""
    c = _SIGMOID.get(dtype)
    if c is None:
        clamp = min(80.0, float(np.floor(np.log(np.finfo(dtype).max))) - 1.0)
        c = _SIGMOID[dtype] = (np.array(clamp, dtype), np.array(1, dtype))
    return c


def sigmoid(x: np.ndarray, out=None, den=None) -> np.ndarray:
    """The logistic function as ``e / (1 + e)`` with ``e = exp(min(x, 80))``.

    Below 0 this is the stable branch (no cancellation: sigmoid(-20) is 2.06e-9, not 0, and
    log(sigmoid(-20)) is -20); above, the same expression equals ``1 / (1 + exp(-x))`` to within
    an ulp, and the clamp (where sigmoid is 1.0 to the last bit) keeps exp from overflowing.
    Four numpy calls, all in the input's dtype. ``den``: an optional scratch buffer like ``x``.
    """
    c = _SIGMOID.get(x.dtype)
    clamp, one = c if c is not None else _sigmoid_constants(x.dtype)
    if out is None and x.ndim:  # fresh arrays: an ``out=None`` keyword costs numpy a slower call
        out = np.minimum(x, clamp)
    else:
        if out is None:
            out = np.empty((), x.dtype)  # ufuncs give numpy scalars for 0-d arrays, which cannot be out=
        out = np.minimum(x, clamp, out=out)
    np.exp(out, out=out)                       # e, in [0, e^80]
    den = np.add(out, one) if den is None else np.add(out, one, out=den)  # 1 + e
    return np.divide(out, den, out=out)


def _sigmoid_run(reads, o, out):
    """:func:`sigmoid`'s calls into ``out``, its constants bound and its scratch made once."""
    (a,) = reads
    den, (clamp, one) = np.empty_like(out), _sigmoid_constants(out.dtype)
    clamp = filled(clamp.item(), out.shape, out.dtype)  # the same minimum, about 3x faster than a 0-d one
    minimum, exp, add, divide = np.minimum, np.exp, np.add, np.divide

    def run(S):
        minimum(S[a], clamp, out=out)
        exp(out, out=out)
        add(out, one, out=den)
        S[o] = divide(out, den, out=out)
    return run


def _sigmoid_grad(reads, o, out):  # g * (y - y * y), as the rule computes it
    g, y = reads
    mul, sub = np.multiply, np.subtract

    def run(S):
        yv = S[y]
        mul(yv, yv, out=out)
        sub(yv, out, out=out)
        S[o] = mul(S[g], out, out=out)
    return run


class Sigmoid(Primitive):
    array_fn = staticmethod(sigmoid)

    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * (y - y * y),))

    @classmethod
    def kernel(cls, attrs, shapes, dtypes):
        if not same_float(dtypes):
            return None
        return Kernel(None, (0,), run=_sigmoid_run)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(None, ("g", "y"), run=_sigmoid_grad)


def _relu(reads, o, out):  # np.maximum(x, 0), as the forward computes it
    (a,) = reads
    maximum, zero = np.maximum, filled(0, out.shape, out.dtype)  # faster than a 0-d zero, the same result

    def run(S): S[o] = maximum(S[a], zero, out=out)
    return run


def _relu_grad(reads, o, out):  # g * (y > 0), the mask written as 0.0/1.0 of g's dtype
    g, y = reads
    greater, mul, zero = np.greater, np.multiply, constant(0, out.dtype)

    def run(S):
        greater(S[y], zero, out=out)
        S[o] = mul(S[g], out, out=out)
    return run


class Relu(Primitive):
    forward = staticmethod(lambda attrs, x: (np.maximum(x, 0), None))
    # g * mask, not where(mask, g, 0): numpy's where is several times slower on large arrays
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (
        g * (F.apply(Mask, (y,), _positive) if F.graph else y > 0),))

    @classmethod
    def kernel(cls, attrs, shapes, dtypes):
        if not same_float(dtypes):
            return None
        return Kernel(None, (0,), inplace=(0,), run=_relu)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(None, ("g", "y"), inplace=(1,), run=_relu_grad)


class Softplus(Primitive):
    forward = staticmethod(lambda attrs, x: (np.logaddexp(x, 0), None))  # log(1 + e^x), stable
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (g * F.sigmoid(xs[0]),))


class _Inside:
    """``lo <= x <= hi`` (a class, not a closure: traced graphs keep it as a value)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def __call__(self, x):
        return (x >= self.lo) & (x <= self.hi)


class Clip(Primitive):
    forward = staticmethod(lambda attrs, x: (np.clip(x, attrs[0], attrs[1]), None))

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        return (g * F.apply(Mask, (xs[0],), _Inside(*attrs)),)


class Cast(Primitive):
    """``x`` as ``dtype`` (attrs). Differentiable only between float dtypes: the engine never
    sends a gradient into or out of an integer or boolean tensor (as TensorFlow's tape)."""

    forward = staticmethod(lambda dtype, x: (x.astype(dtype), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.cast(g, xs[0].dtype),))


__all__ = ["Add", "Abs", "Cast", "Clip", "Compare", "Cos", "Div", "Exp", "Log", "Mask", "Maximum",
           "Minimum", "Mul", "Neg", "Pow", "Relu", "Sigmoid", "Sin", "Softplus", "Sqrt", "Square", "Sub",
           "Tanh", "Where", "sigmoid"]
