"""nncli's tape-based automatic differentiation on numpy.

    import nncli.autodiff as ad
    a = ad.Variable(2.0); b = ad.Variable(3.0)
    with ad.GradientTape() as tape:
        c = a * b
    da, db = tape.gradient(c, [a, b])     # 3.0, 2.0
"""

from nncli.autodiff.function import Function, function
from nncli.autodiff.functional import (
    abs,
    add,
    as_tensor,
    broadcast_to,
    cast,
    clip,
    concat,
    cos,
    div,
    exp,
    expand_dims,
    getitem,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    one_hot,
    pow,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    softplus,
    split,
    sqrt,
    square,
    stack,
    stop_gradient,
    sub,
    sum,
    sum_to,
    tanh,
    transpose,
    where,
)
from nncli.autodiff.tape import GradientTape
from nncli.autodiff.tensor import Tensor, Variable

__all__ = [
    "Function", "GradientTape", "Tensor", "Variable", "function",
    "abs", "add", "as_tensor", "broadcast_to", "cast", "clip", "concat", "cos", "div", "exp",
    "expand_dims", "getitem", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mul", "neg", "one_hot", "pow", "relu", "reshape", "sigmoid", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "stack", "stop_gradient", "sub", "sum", "sum_to", "tanh",
    "transpose", "where",
]
