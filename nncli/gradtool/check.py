"""``nncli grad``: evaluate an expression at given values and check its tape gradients.

    check = check_expression("square(a*b + c)", ["a=2", "b=3", "c=1"])
    check.value, check.ok, check.result.inputs[0].tape

The expression is parsed by :mod:`~nncli.gradtool.expr` (a whitelist, never ``eval``), the
``--at`` values by :mod:`~nncli.gradtool.values`; the comparison is autodiff's own
:func:`~nncli.autodiff.gradcheck.check_gradients`, the one gradient check of nncli. Errors name
the CLI flag they came from (``--at``, ``--wrt``, ``--dtype``), and the check keeps to a time budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff.gradcheck import GradcheckResult, check_gradients
from nncli.errors import ExpressionError
from nncli.gradtool.expr import Expression, domain_error, evaluate, parse
from nncli.gradtool.values import parse_bindings

__all__ = ["check_expression", "ExpressionCheck", "TOLERANCES", "MAX_CHECKS", "TIME_BUDGET"]

# Tolerances per dtype of the tape's computation (the numeric side is float64).
TOLERANCES = {"float64": (1e-5, 1e-4), "float32": (1e-4, 1e-3)}  # (atol, rtol)
MAX_CHECKS = 1_000  # elements differentiated at most per variable
TIME_BUDGET = 10.0  # seconds that may go on central differences (two evaluations each)


@dataclass(frozen=True)
class ExpressionCheck:
    """The outcome of ``check_expression``: the parsed expression, its value, one check per variable."""

    expression: Expression
    dtype: str
    result: GradcheckResult

    @property
    def value(self) -> np.ndarray:
        return self.result.value

    @property
    def ok(self) -> bool:
        return self.result.ok


def check_expression(text: str, at: Sequence[str], *, wrt: Sequence[str] | None = None, dtype: str = "float64",
                     seed: int = 0, max_checks: int | None = MAX_CHECKS) -> ExpressionCheck:
    """Evaluate an expression and check its gradients (what ``nncli grad`` runs).

    For a non-scalar expression the gradients are of its sum.

    Args:
        text: the expression, e.g. ``"square(a*b + c)"``.
        at: ``NAME=VALUE`` strings, one per variable of the expression.
        wrt: the variables to differentiate; default all, in order of first use.
        dtype: ``"float64"`` or ``"float32"``, the dtype of the values and the tape's computation.
        seed: the seed of ``randn``/``rand`` values.
    Raises:
        ExpressionError: a bad expression or value, a missing or unused variable.

    >>> check_expression("a*b", ["a=2", "b=3"]).result.inputs[0].tape
    array(3.)
    """
    if dtype not in TOLERANCES:
        raise ExpressionError(f"expected a dtype among {', '.join(TOLERANCES)}, found {dtype!r}", where="--dtype")
    expr = parse(text)
    values = parse_bindings(at, seed=seed)
    names = list(expr.names)
    missing = [n for n in names if n not in values]
    if missing:
        hint = " ".join(f"--at {n}=VALUE" for n in missing)
        raise ExpressionError(f"no value for {', '.join(missing)}; give {hint}")
    _check_known(list(values), names, "--at")
    wrt = names if wrt is None else list(wrt)
    _check_known(wrt, names, "--wrt")
    if not wrt and names:
        raise ExpressionError("expected at least one variable name", where="--wrt")

    def f(*tensors):
        out = evaluate(expr, dict(zip(names, tensors)), dtype)
        if not isinstance(out, ad.Tensor):
            found = f"a list of {len(out)} tensors" if isinstance(out, list) else type(out).__name__
            raise ExpressionError(f"the expression must give one tensor, not {found}")
        return out

    atol, rtol = TOLERANCES[dtype]
    if max_checks is not None and wrt:
        # Check fewer elements when one evaluation is slow, so a legal but big expression
        # still answers in bounded time (each checked element costs two evaluations).
        point = [ad.Tensor(values[n], dtype=np.float64) for n in names]
        times = []
        for _ in range(2):  # the first call pays one-off costs: take the faster of two
            start = time.perf_counter()
            with np.errstate(all="ignore"):
                f(*point)
            times.append(time.perf_counter() - start)
        once = max(min(times), 1e-6)
        affordable = int(TIME_BUDGET / (2 * once * len(wrt)))
        max_checks = max(1, min(max_checks, affordable))
    outside = domain_error(expr, {n: ad.Tensor(values[n], dtype=dtype) for n in names}, dtype)
    if outside is not None:  # log(-1): bad input, not a gradient mismatch
        raise outside
    with np.errstate(all="ignore"):
        result = check_gradients(f, [values[n] for n in names], wrt=[names.index(n) for n in wrt], names=wrt,
                                 dtype=dtype, upstream="ones", seed=seed, atol=atol, rtol=rtol,
                                 max_checks=max_checks)
    return ExpressionCheck(expr, dtype, result)


def _check_known(given: Sequence[str], names: Sequence[str], where: str) -> None:
    unknown = [n for n in given if n not in names]
    if unknown:
        known = ", ".join(names) or "none"
        raise ExpressionError(f"{', '.join(unknown)} not in the expression (its variables: {known})", where=where)
    twice = sorted({n for n in given if list(given).count(n) > 1})
    if twice:
        raise ExpressionError(f"{', '.join(twice)} given twice", where=where)
