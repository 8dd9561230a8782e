"""The primitive ops, one module per family, and ``NP``: the array namespace in which
first-order backward rules run (``F.graph`` is False there).

    elementwise  arithmetic, maths functions, activations, casts, masks and comparisons
    reduce       sum, max, min, logsumexp, softmax, log_softmax
    linalg       matmul
    shape        transpose, reshape, broadcast_to, concat
    index        getitem, scatter_add, one_hot
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, NoGrad, Primitive, broadcast_axes, keep_shape, sum_to
from nncli.autodiff.ops.elementwise import (
    Abs, Add, Cast, Clip, Compare, Cos, Div, Exp, Log, Mask, Maximum, Minimum, Mul, Neg, Pow, Relu, Sigmoid, Sin,
    Softplus, Sqrt, Square, Sub, Tanh, Where, sigmoid,
)
from nncli.autodiff.ops.index import GetItem, OneHot, ScatterAdd, Slot, class_ids
from nncli.autodiff.ops.linalg import MatMul
from nncli.autodiff.ops.reduce import LogSoftmax, LogSumExp, Max, Min, Softmax, Sum, log_softmax, softmax
from nncli.autodiff.ops.shape import (
    OWNED_BROADCAST, OWNED_RESHAPE, OWNED_TRANSPOSE, BroadcastTo, Concat, Reshape, Transpose, owned,
)

OWNED_GETITEM = owned(GetItem)


class NP:
    """numpy stand-ins for the differentiable functions that backward rules call."""

    graph = False
    where = staticmethod(np.where)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    sigmoid = staticmethod(sigmoid)
    matmul = staticmethod(np.matmul)
    reshape = staticmethod(np.reshape)
    broadcast_to = staticmethod(np.broadcast_to)
    sum_to = staticmethod(sum_to)
    softmax = staticmethod(lambda x, axis=-1: softmax(x, axis % x.ndim))
    log_softmax = staticmethod(lambda x, axis=-1: log_softmax(x, axis % x.ndim))

    @staticmethod
    def apply(op, inputs, attrs=None):
        return op.forward(attrs, *inputs)[0]

    @staticmethod
    def transpose(x, axes=None):
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


__all__ = [
    "NP", "Kernel", "NoGrad", "Primitive", "Slot", "broadcast_axes", "class_ids", "keep_shape", "sum_to",
    "Abs", "Add", "BroadcastTo", "Cast", "Clip", "Compare", "Concat", "Cos", "Div", "Exp", "GetItem", "Log",
    "LogSoftmax", "LogSumExp", "Mask", "MatMul", "Max", "Maximum", "Min", "Minimum", "Mul", "Neg", "OneHot",
    "Pow", "Relu", "Reshape", "ScatterAdd", "Sigmoid", "Sin", "Softmax", "Softplus", "Sqrt", "Square", "Sub",
    "Sum", "Tanh", "Transpose", "Where", "OWNED_BROADCAST", "OWNED_GETITEM", "OWNED_RESHAPE",
    "OWNED_TRANSPOSE", "owned", "sigmoid", "softmax", "log_softmax",
]
