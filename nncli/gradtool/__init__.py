"""The ``nncli grad`` tool: a small expression language, ``--at`` values and their gradient check.

    from nncli.gradtool import check_expression
    check_expression("square(a*b + c)", ["a=2", "b=3", "c=1"]).ok      # True

It sits above the engine (it uses only ``nncli.autodiff``'s public ops and its gradient check);
nothing in autodiff, nn or train imports it.
"""

from nncli.gradtool.check import ExpressionCheck, check_expression
from nncli.gradtool.expr import ALLOWED_OPS, Expression, evaluate, parse
from nncli.gradtool.values import parse_bindings, parse_value

__all__ = ["check_expression", "ExpressionCheck", "parse", "evaluate", "Expression", "ALLOWED_OPS",
           "parse_bindings", "parse_value"]
