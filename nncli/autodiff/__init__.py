"""nncli's tape-based automatic differentiation on numpy.

    import nncli.autodiff as ad
    a = ad.Variable(2.0); b = ad.Variable(3.0)
    with ad.GradientTape() as tape:
        c = a * b
    da, db = tape.gradient(c, [a, b])     # 3.0, 2.0

Extending it: subclass :class:`Primitive` (forward and backward side by side, optionally
compiled kernels), run it with :func:`apply`; :func:`no_record` runs a block unrecorded.
The op classes themselves are in ``ad.ops``.
"""

from nncli.autodiff import ops
from nncli.autodiff.function import Function, function
from nncli.autodiff.functional import (
    abs,
    add,
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
    take,
    tanh,
    transpose,
    where,
)
from nncli.autodiff.ops import Kernel, Primitive
from nncli.autodiff.state import ConcretizationError, no_record
from nncli.autodiff.tape import GradientTape
from nncli.autodiff.tensor import Tensor, apply, as_tensor
from nncli.autodiff.variable import Variable

__all__ = [
    "ConcretizationError", "Function", "GradientTape", "Kernel", "Primitive", "Tensor", "Variable", "apply",
    "function", "no_record", "ops",
    "abs", "add", "as_tensor", "broadcast_to", "cast", "clip", "concat", "cos", "div", "exp",
    "expand_dims", "getitem", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mul", "neg", "one_hot", "pow", "relu", "reshape", "sigmoid", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "stack", "stop_gradient", "sub", "sum", "sum_to", "take", "tanh",
    "transpose", "where",
]
