"""A safe parser for the small expression language of ``nncli grad``.

The text is parsed with ``ast.parse(mode="eval")`` and the syntax tree is walked against a
whitelist; nothing is ever handed to ``eval``. What is allowed: int and float numbers, variable
names, ``+ - * / ** @``, unary ``-`` and ``+``, parentheses, list literals (for ``concat`` and
``stack``), and calls of the ops in ``ALLOWED_OPS`` with positional arguments and constant keyword
arguments (``axis=0``, ``axis=(0, 1)``, ``keepdims=True``). Anything else raises ``ExpressionError``
with the column, the expression and a caret under the offending spot.

Nothing is constant-folded: ``2 ** 100000`` becomes one ``ad.pow`` call on float numbers, so the
parser never does unbounded work. Its own work is bounded by ``MAX_LENGTH``, ``MAX_NODES`` and
``MAX_DEPTH``.

    >>> expr = parse("square(a*b + c)")
    >>> expr.names
    ('a', 'b', 'c')
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from nncli.errors import ExpressionError

ALLOWED_OPS: tuple[str, ...] = (
    "abs", "add", "cast", "clip", "concat", "cos", "div", "exp", "log", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "one_hot", "pow", "relu",
    "reshape", "sigmoid", "sin", "softmax", "softplus", "split", "sqrt", "square", "stack",
    "stop_gradient", "sub", "sum", "tanh", "transpose", "where",
)
MAX_LENGTH = 10_000  # characters, checked before parsing
MAX_NODES = 2_000  # Python syntax-tree nodes
MAX_DEPTH = 100  # nesting levels of the expression tree
MAX_RESULT_ELEMENTS = 10**7  # elements of any intermediate result, checked before it is computed
DTYPE_NAMES = ("float16", "float32", "float64", "int32", "int64", "bool")  # for cast(x, dtype="...")

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow",
           ast.MatMult: "matmul"}
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}
_ALLOWED_TEXT = ("numbers, variable names, + - * / ** @, unary - and +, parentheses, [lists], and "
                 "calls of: " + ", ".join(ALLOWED_OPS))

# Names of syntax the user may have tried, for "X is not allowed" messages.
_KIND_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression", ast.JoinedStr: "an f-string", ast.Starred: "*unpacking",
    ast.Dict: "a dict", ast.Set: "a set", ast.NamedExpr: "an assignment (:=)", ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operator (and/or)", ast.IfExp: "a conditional (if/else)", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "a slice", ast.FormattedValue: "an f-string",
}


# The parsed tree: small immutable nodes; ``col`` is a 0-based character column in the text.
@dataclass(frozen=True)
class Num:
    value: int | float
    col: int = 0


@dataclass(frozen=True)
class Var:
    name: str
    col: int = 0


@dataclass(frozen=True)
class ListOf:
    items: tuple[Node, ...]
    col: int = 0


@dataclass(frozen=True)
class Call:
    """An op call; binary operators and unary minus become calls of add, sub, ..., neg."""

    op: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()
    col: int = 0


Node = Union[Num, Var, ListOf, Call]


@dataclass(frozen=True)
class Expression:
    """A parsed expression: the source text, its tree and its free variable names in order of use."""

    text: str
    tree: Node
    names: tuple[str, ...]


def parse(text: str) -> Expression:
    """Parse ``text`` against the whitelist.

    Args:
        text: the expression, e.g. ``"sum(exp(x) * w, axis=0)"``.
    Returns:
        an ``Expression`` with the tree and the free variable names.
    Raises:
        ExpressionError: on anything outside the whitelist or beyond the size bounds.

    >>> parse("a*b").tree
    Call(op='mul', args=(Var(name='a', col=0), Var(name='b', col=2)), kwargs=(), col=1)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected the expression as text, found {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()  # ast counts lines the same way
    if not text:
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression has {len(text)} characters; at most {MAX_LENGTH} are allowed")
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal" for 1if: the error says it
            warnings.simplefilter("ignore")
            module = ast.parse(text, mode="eval")
    except SyntaxError as err:  # also parser limits: too many digits, too many parentheses
        lines = text.split("\n")[: max(err.lineno or 1, 1) - 1]
        col = sum(len(ln) + 1 for ln in lines) + max((err.offset or 1) - 1, 0)
        msg = err.msg if err.msg.startswith("invalid syntax") else f"invalid syntax: {err.msg}"
        raise _error(text, msg, col) from None
    except UnicodeError:  # a lone surrogate such as "\ud800"
        raise ExpressionError("the expression is not valid Unicode text (it holds a lone surrogate)") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"the expression is too deeply nested or too large to parse:\n  {text[:80]}") from None
    count = sum(1 for _ in ast.walk(module))  # ast.walk is iterative, safe on deep trees
    if count > MAX_NODES:
        raise ExpressionError(f"the expression has {count} syntax nodes; at most {MAX_NODES} are allowed")
    names: dict[str, None] = {}
    tree = _Converter(text, names).node(module.body, 0)
    return Expression(text, tree, tuple(names))


def evaluate(expr: Expression | Node, env: Mapping[str, Any], dtype: Any = None) -> Any:
    """Evaluate a parsed expression by calling ``nncli.autodiff`` ops on the values in ``env``.

    Args:
        expr: an ``Expression`` (or its tree).
        env: variable name -> ``ad.Variable``/``ad.Tensor``/array.
        dtype: the dtype of number literals that start a calculation (``2 * a``, ``exp(1)``);
            default: the dtype of the first floating tensor in ``env``, else float32.
    Returns:
        the result of the outermost op (an ``ad.Tensor``, or the value of a lone variable).
    Raises:
        ExpressionError: a missing variable, or an op that rejects its arguments (shapes, axes).

    >>> import nncli.autodiff as ad
    >>> float(evaluate(parse("a*b"), {"a": ad.Variable(2.0), "b": ad.Variable(3.0)}).numpy())
    6.0
    """
    text = expr.text if isinstance(expr, Expression) else None
    tree = expr.tree if isinstance(expr, Expression) else expr
    if dtype is None:
        floats = [np.dtype(v.dtype) for v in env.values() if getattr(v, "dtype", None) is not None]
        dtype = next((d for d in floats if d.kind == "f"), np.float32)
    return _Evaluator(_op_table(), env, text, np.dtype(dtype)).run(tree)


_OPS: dict[str, Any] = {}

# Where each op with a restricted domain is defined (for "outside the domain" messages). A nan from
# finite inputs is outside an op's domain; an inf is so only at a pole (log(0), x/0): an overflow
# (exp(1000)) is a float's limit, reported by the gradient check as before.
DOMAINS = {"log": "inputs > 0", "sqrt": "inputs >= 0", "div": "divisors other than 0",
           "pow": "bases >= 0 unless the exponent is a whole number"}
_POLES = ("log", "div")


def domain_error(expr: Expression, env: Mapping[str, Any], dtype: Any = None) -> ExpressionError | None:
    """The first op of ``expr`` that turns finite inputs into a non-finite result (``log(-1)``), as an
    error with its column; ``None`` when every op stays finite (or the inputs were not finite).

    >>> import nncli.autodiff as ad
    >>> "outside the domain of log" in str(domain_error(parse("log(a)"), {"a": ad.Tensor(-1.0)}))
    True
    """
    evaluator = _Evaluator(_op_table(), env, expr.text, np.dtype(dtype or np.float64))
    evaluator.watch_domain = True
    try:
        with np.errstate(all="ignore"):
            evaluator.run(expr.tree)
    except ExpressionError as err:
        if getattr(err, "domain", False):
            return err
    return None


def _op_table() -> dict[str, Any]:
    """The fixed name -> function table, built from ALLOWED_OPS on first use."""
    if not _OPS:
        import nncli.autodiff as ad

        _OPS.update({name: getattr(ad, name) for name in ALLOWED_OPS})
        _OPS["_as_tensor"] = ad.as_tensor
    return _OPS


class _Converter:
    """Walks a Python syntax tree and builds our nodes, rejecting anything not whitelisted."""

    def __init__(self, text: str, names: dict[str, None]):
        self.text, self.names = text, names
        self.lines = text.split("\n")

    def col(self, node: ast.AST, end: bool = False) -> int:
        """Character offset of ``node``'s start (or end) in the text; ast gives UTF-8 byte columns."""
        lineno, offset = (node.end_lineno, node.end_col_offset) if end else (node.lineno, node.col_offset)
        line = self.lines[lineno - 1]
        col = len(line.encode("utf-8")[:offset].decode("utf-8", errors="replace"))
        return sum(len(ln) + 1 for ln in self.lines[: lineno - 1]) + col

    def fail(self, node: ast.AST, what: str) -> ExpressionError:
        col = self.col(node)
        if isinstance(node, ast.Attribute):  # point at ".name", not at the start of the object
            col = self.col(node, end=True) - len(node.attr) - 1
        return _error(self.text, what, col)

    def node(self, node: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the expression is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.Constant):
            return Num(self.number(node), self.col(node))
        if isinstance(node, ast.Name):
            return Var(self.name(node), self.col(node))
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(node, f"the operator {_op_symbol(node.op)} is not allowed")
            args = (self.node(node.left, depth + 1), self.node(node.right, depth + 1))
            gap = self.text.find(_SYMBOLS[op], self.col(node.left, end=True), self.col(node.right))
            return Call(op, args, (), gap if gap >= 0 else self.col(node))  # col: the operator symbol
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.fail(node, f"the operator {_op_symbol(node.op)} is not allowed")
            operand = self.node(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, Num):  # a negative literal, kept as a number (axis=-1, reshape(x, -1))
                return Num(-operand.value, self.col(node))
            return Call("neg", (operand,), (), self.col(node))
        if isinstance(node, (ast.List, ast.Tuple)):
            return ListOf(tuple(self.node(item, depth + 1) for item in node.elts), self.col(node))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.fail(node, f"{_KIND_NAMES.get(type(node), type(node).__name__)} is not allowed")

    def number(self, node: ast.Constant) -> int | float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            found = {str: "a string", bytes: "bytes", complex: "a complex number", bool: str(value),
                     type(None): "None", type(...): "..."}.get(type(value), type(value).__name__)
            raise self.fail(node, f"{found} is not allowed here; expected a number")
        if isinstance(value, int) and abs(value) > 2**53:  # beyond exact floats: keep as a float
            try:
                return float(value)
            except OverflowError:
                raise self.fail(node, "this number is too large") from None
        return value

    def name(self, node: ast.Name) -> str:
        if node.id.startswith("__") or node.id.endswith("__"):
            raise self.fail(node, f"the name '{node.id}' is not allowed (no dunder names)")
        if node.id in ALLOWED_OPS:
            raise self.fail(node, f"'{node.id}' is an op, not a variable; call it, e.g. {node.id}(x)")
        self.names.setdefault(node.id, None)
        return node.id

    def call(self, node: ast.Call, depth: int) -> Call:
        func = node.func
        if not isinstance(func, ast.Name):
            what = _KIND_NAMES.get(type(func), "the result of a call" if isinstance(func, ast.Call) else "that")
            if isinstance(func, ast.Attribute):
                what += f" (.{func.attr})"
            raise self.fail(func, f"only ops can be called, by their bare name; found a call of {what}")
        if func.id not in ALLOWED_OPS:
            raise self.fail(func, f"the function '{func.id}' is not allowed")
        args = tuple(self.node(arg, depth + 1) for arg in node.args)
        kwargs = []
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(kw.value, "**unpacking is not allowed")
            if kw.arg.startswith("_"):
                raise self.fail(kw.value, f"the keyword '{kw.arg}' is not allowed")
            kwargs.append((kw.arg, self.keyword_value(kw.arg, kw.value)))
        return Call(func.id, args, tuple(kwargs), self.col(node))

    def keyword_value(self, key: str, node: ast.AST) -> Any:
        """A constant keyword value: a number, True/False/None, a tuple/list of ints, a dtype name."""
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, bool):
                return node.value
            if key == "dtype" and node.value in DTYPE_NAMES:
                return node.value
            if isinstance(node.value, str):
                raise self.fail(node, f"a string is not allowed here (only dtype= takes one of {', '.join(DTYPE_NAMES)})")
        if isinstance(node, (ast.Tuple, ast.List)):
            items = tuple(self.keyword_value(key, item) for item in node.elts)
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
                raise self.fail(node, f"the keyword '{key}' takes a tuple of integers here")
            return items
        sign = 1
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign, node = (-1 if isinstance(node.op, ast.USub) else 1), node.operand
        if not isinstance(node, ast.Constant):
            raise self.fail(node, f"the keyword '{key}' takes a constant (number, True/False, tuple of ints)")
        return sign * self.number(node)


class _Evaluator:
    """Walks our tree, calling the ops; reports op failures with the column of the call."""

    def __init__(self, ops: dict[str, Any], env: Mapping[str, Any], text: str | None, dtype: np.dtype):
        self.ops, self.env, self.text, self.dtype = ops, env, text, dtype
        self.as_tensor = ops["_as_tensor"]
        self.watch_domain = False  # raise at the first op whose finite inputs give a non-finite result

    def run(self, node: Node) -> Any:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Var):
            if node.name not in self.env:
                raise self.error(node, f"no value for the variable '{node.name}'")
            return self.env[node.name]
        if isinstance(node, ListOf):
            return [self.run(item) for item in node.items]
        args = [self.arg(node, i, a) for i, a in enumerate(node.args)]
        size = _result_size(node.op, args, dict(node.kwargs))
        if size is not None and size > MAX_RESULT_ELEMENTS:  # refuse a broadcasting blow-up before it runs
            raise self.error(node, f"{self.name(node)} gives {size:,} elements; at most {MAX_RESULT_ELEMENTS:,}")
        try:
            out = self.ops[node.op](*args, **dict(node.kwargs))
        except (TypeError, ValueError, IndexError, ArithmeticError, MemoryError) as err:
            raise self.error(node, f"{self.name(node)} failed: {str(err) or 'out of memory'}") from err
        size = getattr(out, "size", 0)
        if size > MAX_RESULT_ELEMENTS:
            raise self.error(node, f"{self.name(node)} gives {size:,} elements; at most {MAX_RESULT_ELEMENTS:,}")
        if self.watch_domain and not _finite(out) and all(_finite(a) for a in args):
            found = "nan" if _has_nan(out) else "inf"
            if found == "inf" and node.op not in _POLES:
                return out
            where = DOMAINS.get(node.op)
            err = self.error(node, f"{self.name(node)} gives {found} at these values: its input is outside the "
                                   f"domain of {self.name(node)}" + (f" (defined for {where})" if where else "")
                                   + "; choose --at values inside it", allowed=False)
            err.domain = True
            raise err
        return out

    def name(self, node: Call) -> str:
        """The op as written: ``@`` for an operator, ``matmul`` for a call."""
        written_as_call = self.text is None or self.text.startswith(node.op, node.col)
        return node.op if written_as_call else _SYMBOLS.get(node.op, node.op)

    def arg(self, call: Call, i: int, node: Node) -> Any:
        """A number that starts a calculation becomes a tensor of the chosen dtype; a number that
        is an arithmetic operand becomes a float (so ``2 ** 1000`` is never a huge Python int);
        other numbers (axes, shapes, depths, bounds) are passed as written."""
        if not isinstance(node, Num):
            return self.run(node)
        if i == 0:
            return self.as_tensor(float(node.value), self.dtype)
        return float(node.value) if call.op in _SYMBOLS else node.value

    def error(self, node: Node, what: str, allowed: bool = True) -> ExpressionError:
        if self.text is None:
            return ExpressionError(what)
        return _error(self.text, what, node.col, allowed)


def _has_nan(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    arr = np.asarray(value)
    return arr.dtype.kind in "fc" and bool(np.isnan(arr).any())


def _finite(value: Any) -> bool:
    """Whether a tensor, array or list of them holds only finite numbers (non-arrays count as finite)."""
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - not an array: nothing to check
        return True
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


_BROADCASTING = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "clip")


def _result_size(op: str, args: list, kwargs: dict) -> int | None:
    """The element count of ``op``'s result, for the ops whose result can outgrow their inputs;
    None when it cannot grow or the arguments do not fit (the op then says why)."""
    try:
        if op in _BROADCASTING:
            return math.prod(np.broadcast_shapes(*(np.shape(a) for a in args)))
        if op == "matmul" and len(args) == 2:
            a, b = (np.shape(x) for x in args)
            if len(a) < 1 or len(b) < 1:
                return None
            rows, cols = (a[-2:-1] if len(a) > 1 else ()), (b[-1:] if len(b) > 1 else ())
            return math.prod(np.broadcast_shapes(a[:-2], b[:-2])) * math.prod(rows) * math.prod(cols)
        if op == "one_hot":
            depth = kwargs.get("depth", args[1] if len(args) > 1 else 0)
            return math.prod(np.shape(args[0])) * int(depth) if isinstance(depth, (int, float)) else None
        if op in ("concat", "stack") and args and isinstance(args[0], list):
            return sum(math.prod(np.shape(t)) for t in args[0])
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _op_symbol(op: ast.AST) -> str:
    symbols = {ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
               ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~"}
    return symbols.get(type(op), type(op).__name__)


def _error(text: str, what: str, col: int, allowed: bool = True) -> ExpressionError:
    """An ExpressionError that echoes the expression's line with a caret under character ``col``."""
    lines = text.split("\n")
    row, start = 0, 0
    while row < len(lines) - 1 and col > start + len(lines[row]):
        start += len(lines[row]) + 1
        row += 1
    inner = min(col - start, len(lines[row]))
    where = f"column {inner + 1}" if len(lines) == 1 else f"line {row + 1}, column {inner + 1}"
    shown, left = lines[row], 0
    if len(shown) > 100:  # show a window around the spot, not a 10,000-character line
        left = max(inner - 50, 0)
        shown = ("..." if left else "") + shown[left : left + 100] + ("..." if left + 100 < len(shown) else "")
        left -= 3 if left else 0
    caret = " " * (inner - left) + "^"
    tail = f"\nAllowed: {_ALLOWED_TEXT}" if allowed else ""
    return ExpressionError(f"{what}\n  {shown}\n  {caret}{tail}", where=where)
