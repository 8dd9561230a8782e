"""The values of ``nncli grad --at NAME=VALUE``: numbers, nested lists and seeded shapes.

A value is read with ``ast.parse(mode="eval")`` and only number literals, list/tuple literals and
the calls ``randn``, ``rand``, ``zeros``, ``ones`` with whole-number sizes are accepted; nothing is
ever handed to ``eval``. Sizes are bounded by ``MAX_VALUE_LENGTH``, ``MAX_ELEMENTS`` and
``MAX_VALUE_DIMS`` before any array is made.

    >>> parse_bindings(["a=2", "w=randn(3, 4)"])["w"].shape
    (3, 4)
"""

from __future__ import annotations

import ast
import math
import warnings
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from nncli.gradtool.expr import ALLOWED_OPS, _KIND_NAMES
from nncli.errors import ExpressionError

MAX_VALUE_LENGTH = 100_000  # characters of one --at value
MAX_ELEMENTS = 1_000_000  # elements of one --at value (randn(1000, 1000) at most)
MAX_VALUE_DIMS = 32
RANDOM_VALUES = ("randn", "rand", "zeros", "ones")


def parse_value(text: str, name: str = "value", *, seed: int = 0) -> np.ndarray:
    """Parse the VALUE of ``--at NAME=VALUE`` into a float64 array.

    Args:
        text: a number (``2``, ``-1.5e-3``), a rectangular nested list (``[[1, 2], [3, 4]]``), or a
            seeded shape ``randn(3, 4)`` (standard normal), ``rand(2)`` (uniform [0, 1)),
            ``zeros(2, 2)``, ``ones(3)``; at most ``MAX_ELEMENTS`` elements.
        name: the variable, named in error messages and mixed into the random seed.
        seed: the base seed for ``randn``/``rand``; the same name and seed give the same values.
    Raises:
        ExpressionError: naming the variable and what was expected.

    >>> parse_value("[[1, 2], [3, 4]]", "w").shape
    (2, 2)
    """
    where = f"--at {name}"
    expected = ("expected a number, a nested list of numbers like [[1, 2], [3, 4]], "
                f"or a shape like randn(3, 4) ({', '.join(RANDOM_VALUES)})")
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise ExpressionError(f"the value is empty; {expected}", where=where)
    if len(text) > MAX_VALUE_LENGTH:
        raise ExpressionError(f"the value has {len(text)} characters; at most {MAX_VALUE_LENGTH}", where=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"cannot read {_short(text)!r}; {expected}", where=where) from None
    if isinstance(node, ast.Call):
        return _random_value(node, where, name, seed, text)
    return np.array(_nested_numbers(node, (), where, expected), dtype=np.float64)


def parse_bindings(items: Iterable[str], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Parse ``NAME=VALUE`` strings (the ``--at`` options) into a name -> float64 array dict.

    >>> parse_bindings(["a=2", "b=[1, 2]"])["b"]
    array([1., 2.])
    """
    values: dict[str, np.ndarray] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or name.startswith("__") or name in ALLOWED_OPS:
            raise ExpressionError(f"expected NAME=VALUE with NAME a variable of the expression, found {item!r}",
                                  where="--at")
        if name in values:
            raise ExpressionError(f"'{name}' is given twice", where="--at")
        values[name] = parse_value(value, name, seed=seed)
    return values


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name '{node.id}'"
    if isinstance(node, ast.Constant):
        kinds = {str: "a string", bytes: "bytes", complex: "a complex number"}
        return kinds.get(type(node.value), repr(node.value))
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return "arithmetic (write the number itself)"
    return _KIND_NAMES.get(type(node), type(node).__name__)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _number(node: ast.AST) -> float | None:
    """The float value of a number literal, optionally signed; None for anything else."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign, node = (-1.0 if isinstance(node.op, ast.USub) else 1.0), node.operand
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            return sign * float(node.value)
        except OverflowError:
            return None
    return None


def _nested_numbers(node: ast.AST, path: tuple[int, ...], where: str, expected: str) -> Any:
    """A number, or a rectangular nested list of numbers, read from a list/tuple literal."""
    at = "".join(f"[{i}]" for i in path)
    value = _number(node)
    if value is not None:
        return value
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise ExpressionError(f"{expected}; found {_describe(node)} at {at or 'the top'}", where=where)
    if len(path) >= MAX_VALUE_DIMS:
        raise ExpressionError(f"more than {MAX_VALUE_DIMS} nested lists", where=where)
    if not node.elts:
        raise ExpressionError(f"an empty list at {at or 'the top'}; every dimension needs at least 1 element",
                              where=where)
    rows = [_nested_numbers(item, path + (i,), where, expected) for i, item in enumerate(node.elts)]
    shapes = [np.shape(row) for row in rows]
    for i, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise ExpressionError(f"the list is not rectangular: {at}[{i}] has shape {shape} but {at}[0] has "
                                  f"shape {shapes[0]}", where=where)
    return rows


def _random_value(node: ast.Call, where: str, name: str, seed: int, text: str) -> np.ndarray:
    """``randn(3, 4)`` and friends: a bounded, seeded array."""
    kind = node.func.id if isinstance(node.func, ast.Name) else None
    if kind not in RANDOM_VALUES or node.keywords:
        raise ExpressionError(f"{_short(text)!r} is not a value; expected one of "
                              f"{', '.join(k + '(3, 4)' for k in RANDOM_VALUES)}", where=where)
    dims = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and type(arg.value) is int and arg.value >= 1):
            raise ExpressionError(f"the sizes of {kind}(...) must be whole numbers >= 1, found "
                                  f"{ast.get_source_segment(text, arg)!r}", where=where)
        dims.append(arg.value)
    if math.prod(dims) > MAX_ELEMENTS:
        raise ExpressionError(f"{kind}{tuple(dims)} has {math.prod(dims):,} elements; at most {MAX_ELEMENTS:,} "
                              "are allowed", where=where)
    if kind in ("zeros", "ones"):
        return np.full(dims, 0.0 if kind == "zeros" else 1.0)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8", errors="replace"))])
    return rng.standard_normal(dims) if kind == "randn" else rng.random(dims)
