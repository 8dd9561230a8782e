"""Buffer-writing kernels for the compiled executor (compiled.py), and the run functions.

Each kernel computes what one primitive's ``forward``, or one input's gradient from
its first-order ``backward(NP, ...)`` rule, computes, with the same numpy calls in the
same order (so compiled and eager results agree bit for bit), but writes into a
preallocated ``out`` buffer instead of allocating. Ops without an entry here run
through their own ``forward``/``backward`` (still correct, just allocating).

A :class:`Kernel` names the arrays it reads. ``fn`` is a ufunc called as
``fn(*arrays, out)`` when ``ufunc`` is true, else a function ``fn(out, *arrays)``;
``out`` is None when the result must be a fresh array (it is returned to the caller).
``inplace`` lists the read positions whose memory ``out`` may reuse (an input that
dies at this step): every position for a single ufunc, fewer for multi-step kernels.
A ``view`` kernel returns a view of its input (no buffer, ``fn(*arrays)``).

Each instruction of a compiled program is one closure ``run(S)`` over the slot list
``S``, its slot indices and buffer bound when it is made (``kernel_make`` and friends
below), so a replay step costs one Python call plus its numpy calls.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nncli.autodiff import ops as P
from nncli.autodiff.ops import NP

ndarray = np.ndarray
asarray = np.asarray


class Kernel(NamedTuple):
    fn: object
    reads: tuple  # forward: input positions; backward: "g", "y" or an input position
    ufunc: bool = False
    inplace: tuple = ()  # positions in ``reads`` that ``out`` may overwrite
    view: bool = False
    run: object = None  # optional ``run(reads, o, out, dtype)``: the buffered step as one closure


mul, add, sub, tanh, matmul, greater = np.multiply, np.add, np.subtract, np.tanh, np.matmul, np.greater


ALL = (0, 1, 2)
_ZERO: dict = {}


def _zero(dtype) -> np.ndarray:
    z = _ZERO.get(dtype)
    if z is None:
        z = _ZERO[dtype] = np.zeros((), dtype=dtype)
    return z


def _ew(ufunc, n):
    return Kernel(ufunc, tuple(range(n)), ufunc=True, inplace=ALL[:n])


_UNARY = {P.Neg: np.negative, P.Exp: np.exp, P.Log: np.log, P.Sqrt: np.sqrt, P.Square: np.square,
          P.Abs: np.abs, P.Sin: np.sin, P.Cos: np.cos, P.Tanh: np.tanh}
_BINARY = {P.Add: np.add, P.Sub: np.subtract, P.Mul: np.multiply, P.Div: np.true_divide, P.Pow: np.power}


# -- forward ------------------------------------------------------------------
def _sigmoid(out, x):
    half = P._half(x.dtype)
    out = np.multiply(x, half, out)
    np.tanh(out, out)
    out *= half
    out += half
    return out


def _sigmoid_run(reads, o, out, dtype):
    (a,), half = reads, P._half(dtype)

    def run(S):
        mul(S[a], half, out)
        tanh(out, out)
        mul(out, half, out)
        S[o] = add(out, half, out)
    return run


def _relu(out, x):
    return np.maximum(x, _zero(x.dtype), out=out)


def forward(op, attrs, shapes, dtypes) -> Kernel | None:
    """The kernel for ``op`` on inputs of ``shapes``/``dtypes``, or None to run ``op.forward``."""
    floats = all(d.kind == "f" for d in dtypes)
    if op in _BINARY and floats and dtypes[0] == dtypes[1]:
        return _ew(_BINARY[op], 2)
    if op in _UNARY and floats:
        return _ew(_UNARY[op], 1)
    if op is P.Sigmoid and floats:
        return Kernel(_sigmoid, (0,), inplace=(0,), run=_sigmoid_run)
    if op is P.Relu and floats:
        return Kernel(_relu, (0,), inplace=(0,))
    if op is P.MatMul and floats and dtypes[0] == dtypes[1]:
        return Kernel(np.matmul, (0, 1), ufunc=True)
    if op is P.Sum and floats:
        axis, keepdims = attrs
        return Kernel(lambda out, x: np.add.reduce(x, axis, None, out, keepdims), (0,))
    if op is P.Reshape:
        return Kernel(lambda x: np.reshape(x, attrs), (0,), view=True)
    if op is P.Transpose:
        return Kernel(lambda x: np.transpose(x, attrs), (0,), view=True)
    if op is P.BroadcastTo:
        return Kernel(lambda x: np.broadcast_to(x, attrs), (0,), view=True)
    if op is P.GetItem and P._is_basic(attrs):
        return Kernel(lambda x: x[attrs], (0,), view=True)
    return None


def view_of(op):
    """The view-returning op an ``ops.OWNED`` copying op was made from (or None)."""
    for view_op, owned in P.OWNED.items():
        if owned is op:
            return view_op
    return None


# -- backward: the gradient of input ``i`` ------------------------------------
def _swap_axes(ndim):
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def _div_b(out, g, y, b):  # -(g * y) / b
    out = np.multiply(g, y, out)
    np.negative(out, out)
    return np.true_divide(out, b, out)


def _sqrt_grad(out, g, y):  # g / (y + y)
    out = np.add(y, y, out)
    return np.true_divide(g, out, out)


def _square_grad(out, g, x):  # g * (x + x)
    out = np.add(x, x, out)
    return np.multiply(g, out, out)


def _tanh_grad(out, g, y):  # g - g * y * y
    out = np.multiply(g, y, out)
    np.multiply(out, y, out)
    return np.subtract(g, out, out)


def _sigmoid_grad(out, g, y):  # g * (y - y * y)
    out = np.multiply(y, y, out)
    np.subtract(y, out, out)
    return np.multiply(g, out, out)


def _relu_grad(out, g, y):  # g * (y > 0), the mask written as 0.0/1.0 of g's dtype
    out = np.greater(y, _zero(y.dtype), out)
    return np.multiply(g, out, out)


def _tanh_grad_run(reads, o, out, dtype):
    g, y = reads

    def run(S):
        gv, yv = S[g], S[y]
        mul(gv, yv, out)
        mul(out, yv, out)
        S[o] = sub(gv, out, out)
    return run


def _sigmoid_grad_run(reads, o, out, dtype):
    g, y = reads

    def run(S):
        yv = S[y]
        mul(yv, yv, out)
        sub(yv, out, out)
        S[o] = mul(S[g], out, out)
    return run


def _relu_grad_run(reads, o, out, dtype):
    g, y = reads
    zero = _zero(dtype)

    def run(S):
        greater(S[y], zero, out)
        S[o] = mul(S[g], out, out)
    return run


def _matmul_bt_run(reads, o, out, dtype):  # g @ b.T
    g, b = reads

    def run(S): S[o] = matmul(S[g], S[b].T, out)
    return run


def _matmul_at_run(reads, o, out, dtype):  # a.T @ g
    g, a = reads

    def run(S): S[o] = matmul(S[a].T, S[g], out)
    return run


def backward(op, attrs, i, x_shapes, dtypes) -> Kernel | str | None:
    """How input ``i``'s gradient is computed from ``g``: a Kernel, ``"g"`` when it is ``g``
    itself, or None to run ``op.backward(NP, ...)``."""
    if not all(d.kind == "f" for d in dtypes) or len(set(dtypes)) > 1:
        return None
    if op is P.Add:
        return "g"
    if op is P.Sub:
        return "g" if i == 0 else Kernel(np.negative, ("g",), ufunc=True, inplace=(0,))
    if op is P.Mul:
        return Kernel(np.multiply, ("g", 1 - i), ufunc=True, inplace=(0, 1))
    if op is P.Div:
        if i == 0:
            return Kernel(np.true_divide, ("g", 1), ufunc=True, inplace=(0, 1))
        return Kernel(_div_b, ("g", "y", 1), inplace=(0, 1))
    if op is P.Neg:
        return Kernel(np.negative, ("g",), ufunc=True, inplace=(0,))
    if op is P.Exp:
        return Kernel(np.multiply, ("g", "y"), ufunc=True, inplace=(0, 1))
    if op is P.Log:
        return Kernel(np.true_divide, ("g", 0), ufunc=True, inplace=(0, 1))
    if op is P.Sqrt:
        return Kernel(_sqrt_grad, ("g", "y"), inplace=(1,))
    if op is P.Square:
        return Kernel(_square_grad, ("g", 0), inplace=(1,))
    if op is P.Tanh:
        return Kernel(_tanh_grad, ("g", "y"), run=_tanh_grad_run)
    if op is P.Sigmoid:
        return Kernel(_sigmoid_grad, ("g", "y"), run=_sigmoid_grad_run)
    if op is P.Relu:
        return Kernel(_relu_grad, ("g", "y"), inplace=(1,), run=_relu_grad_run)
    if op is P.MatMul and len(x_shapes[0]) >= 2 and len(x_shapes[1]) >= 2:
        # g @ b^T and a^T @ g, the transposes views: BLAS reads them transposed, no copy
        if i == 0:
            if len(x_shapes[1]) == 2:
                return Kernel(lambda out, g, b: np.matmul(g, b.T, out), ("g", 1), run=_matmul_bt_run)
            axes = _swap_axes(len(x_shapes[1]))
            return Kernel(lambda out, g, b: np.matmul(g, b.transpose(axes), out), ("g", 1))
        if len(x_shapes[0]) == 2:
            return Kernel(lambda out, g, a: np.matmul(a.T, g, out), ("g", 0), run=_matmul_at_run)
        axes = _swap_axes(len(x_shapes[0]))
        return Kernel(lambda out, g, a: np.matmul(a.transpose(axes), g, out), ("g", 0))
    if op is P.Reshape:
        shape = x_shapes[0]
        return Kernel(lambda g: np.reshape(g, shape), ("g",), view=True)
    if op is P.Transpose:
        back = None if attrs is None else tuple(np.argsort(attrs))
        return Kernel(lambda g: np.transpose(g, back), ("g",), view=True)
    if op is P.Sum:
        shape = x_shapes[0]
        keep = P._keep_shape(shape, attrs[0])
        return Kernel(lambda g: np.broadcast_to(np.reshape(g, keep), shape), ("g",), view=True)
    return None


def sum_to(shape, g_shape):
    """``fn(out, g)``: ``g`` summed down to ``shape`` as ``ops._np_sum_to`` does, and the
    shape of the buffer it fills (the keepdims shape)."""
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, n in enumerate(shape) if n == 1 and g_shape[lead + k] != 1)
    if len(axes) == lead:  # only leading axes (a bias): straight into ``shape``
        return Kernel(lambda out, g: np.add.reduce(g, axes, None, out), (0,)), shape
    keep = tuple(1 if k in axes else n for k, n in enumerate(g_shape))

    def fn(out, g):
        out = np.add.reduce(g, axes, None, out, True)
        return out.reshape(shape) if lead else out

    return Kernel(fn, (0,)), keep


# -- run functions: one closure per instruction, slots bound at compile time -------------
def _ufunc_run(fn, reads, o, out, scalar):
    """``fn(*arrays[, out])`` for a numpy ufunc (0-d results made arrays when fresh)."""
    if len(reads) == 1:
        (a,) = reads
        if out is not None:
            def run(S): S[o] = fn(S[a], out)
        elif scalar:
            def run(S): S[o] = asarray(fn(S[a]))
        else:
            def run(S): S[o] = fn(S[a])
        return run
    a, b = reads
    if out is not None:
        def run(S): S[o] = fn(S[a], S[b], out)
    elif scalar:
        def run(S): S[o] = asarray(fn(S[a], S[b]))
    else:
        def run(S): S[o] = fn(S[a], S[b])
    return run


def _fn_run(fn, reads, o, out, fresh):
    """``fn(out, *arrays)`` for a kernel function; ``fresh`` (shape, dtype): a new ``out`` per call."""
    if out is None:
        shape, dtype = fresh
        def run(S): S[o] = fn(np.empty(shape, dtype), *[S[i] for i in reads])
    elif len(reads) == 1:
        (a,) = reads
        def run(S): S[o] = fn(out, S[a])
    elif len(reads) == 2:
        a, b = reads
        def run(S): S[o] = fn(out, S[a], S[b])
    else:
        def run(S): S[o] = fn(out, *[S[i] for i in reads])
    return run


def kernel_make(kernel, reads, o, shape, dtype):
    if kernel.view:
        fn, (a,) = kernel.fn, reads

        def view(_):
            def run(S): S[o] = fn(S[a])
            return run
        return view
    if kernel.ufunc:
        return lambda out: _ufunc_run(kernel.fn, reads, o, out, shape == ())
    if kernel.run is not None:
        return lambda out: _fn_run(kernel.fn, reads, o, out, (shape, dtype)) if out is None \
            else kernel.run(reads, o, out, dtype)
    return lambda out: _fn_run(kernel.fn, reads, o, out, (shape, dtype))


def forward_make(op, attrs, reads, writes):
    """Run ``op.forward`` itself; ``writes`` is [out slot or None, saved slot or None]."""
    fwd = op.forward

    def make(_):
        o, s = writes

        def run(S):
            y, saved = fwd(attrs, *[S[i] for i in reads])
            if o is not None:
                S[o] = y if type(y) is ndarray else asarray(y)
            if s is not None:
                S[s] = saved
        return run
    return make


def backward_make(op, attrs, needs, g, xs, y, saved, outs):
    """Run ``op.backward(NP, ...)`` itself; ``outs`` pairs an input position with its slot."""
    bwd = op.backward

    def make(_):
        def run(S):
            grads = bwd(NP, S[g], [S[i] for i in xs], S[y], S[saved], attrs, needs)
            for i, w in outs:
                gi = grads[i]
                if gi is None:
                    raise RuntimeError(f"{op.__name__}.backward gave no gradient for input {i} on replay, "
                                       "though it did while tracing")
                S[w] = gi
        return run
    return make
