"""The safe expression parser: results, every kind of rejection with its position, the bounds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncli.autodiff as ad
from nncli.gradtool import expr as E
from nncli.gradtool.expr import Call, ListOf, Num, Var, evaluate, parse
from nncli.gradtool.values import parse_bindings, parse_value
from nncli.errors import ExpressionError


def variables(**values):
    return {k: ad.Variable(np.asarray(v, dtype=np.float64), dtype=np.float64) for k, v in values.items()}


def caret_column(message: str) -> int:
    """1-based column of the caret in an error message (the echoed line is indented by 2)."""
    line = next(ln for ln in message.splitlines() if ln.strip() == "^")
    return line.index("^") - 1


def test_parse_builds_calls_and_lists_free_names_in_order_of_use():
    e = parse("square(b*a + c) - a")
    assert e.names == ("b", "a", "c")
    assert e.tree == Call("sub", (Call("square", (Call("add", (Call("mul", (Var("b", 7), Var("a", 9)), (), 8),
                                                                Var("c", 13)), (), 11),), (), 0),
                                  Var("a", 18)), (), 16)


def test_parse_keeps_keyword_constants_and_negative_literals():
    text = "sum(x, axis=(0, -1), keepdims=True) + reshape(y, [2, -1])"
    total, reshaped = parse(text).tree.args
    assert total.kwargs == (("axis", (0, -1)), ("keepdims", True))
    at = text.index("[")
    assert reshaped.args[1] == ListOf((Num(2, at + 1), Num(-1, at + 4)), at)
    assert parse("-2").tree == Num(-2, 0) and parse("+a").tree == Var("a", 1)


SCALARS = (2.0, 3.0, 4.0)
ARRAYS = tuple(np.random.default_rng(0).standard_normal(shape) for shape in [(2, 3), (3, 2), (6,)])


@pytest.mark.parametrize("text, values, expected", [
    ("a*b + c", SCALARS, lambda a, b, c: a * b + c),
    ("square(a*b + c)", SCALARS, lambda a, b, c: (a * b + c) ** 2),
    ("-a / b ** 2 - c", SCALARS, lambda a, b, c: -a / b**2 - c),
    ("(1/3) * a + exp(1)", ARRAYS[:1] + SCALARS[1:], lambda a, b, c: a / 3 + np.e),
    ("sum(a @ b, axis=0, keepdims=True)", ARRAYS, lambda a, b, c: (a @ b).sum(axis=0, keepdims=True)),
    ("concat([a, transpose(b)], axis=0)", ARRAYS, lambda a, b, c: np.concatenate([a, b.T])),
    ("stack([c, c], axis=1)", (1.0, 1.0, ARRAYS[2]), lambda a, b, c: np.stack([c, c], axis=1)),
    ("reshape(a, (-1,)) * maximum(c, 0.5)", (ARRAYS[0], 1.0, ARRAYS[2]),
     lambda a, b, c: a.reshape(-1) * np.maximum(c, 0.5)),
    ("logsumexp(a, axis=-1)", ARRAYS[:1] + SCALARS[1:], lambda a, b, c: np.log(np.exp(a).sum(-1))),
    ("concat(split(c, 3), axis=0)", SCALARS[:2] + ARRAYS[2:], lambda a, b, c: c),
])
def test_evaluate_matches_numpy(text, values, expected):
    e = parse(text)
    out = evaluate(e, variables(**{k: v for k, v in zip("abc", values) if k in e.names}))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected(*values), rtol=1e-12)


def test_number_literals_follow_the_variables_dtype_and_are_never_python_powers():
    env = {"a": ad.Variable(2.0)}  # float32
    assert evaluate(parse("2 * a"), env).dtype == np.float32
    with np.errstate(over="ignore"):
        big = evaluate(parse("2 ** 100000 * a"), env)  # no constant folding: a float overflow, not a huge int
    assert np.isinf(big.numpy())


@pytest.mark.parametrize("text, fragment, column", [
    ("__import__('os').system('x')", "found a call of attribute access (.system)", 17),
    ("__import__('os')", "the function '__import__' is not allowed", 1),
    ("a + __builtins__", "the name '__builtins__' is not allowed", 5),
    ("eval('1')", "the function 'eval' is not allowed", 1),
    ("a + open('f')", "the function 'open' is not allowed", 5),
    ("a.b", "attribute access is not allowed", 2),
    ("x.__class__", "attribute access is not allowed", 2),
    ("x[0] + 1", "indexing is not allowed", 1),
    ("a + (lambda: 1)", "a lambda is not allowed", 6),
    ("sum([i for i in a])", "a comprehension is not allowed", 5),
    ("a * 'text'", "a string is not allowed", 5),
    ("f'{a}'", "an f-string is not allowed", 1),
    ("a + {1: 2}", "a dict is not allowed", 5),
    ("a + {b}", "a set is not allowed", 5),
    ("(y := a)", "an assignment (:=) is not allowed", 2),
    ("a < b", "a comparison is not allowed", 1),
    ("a and b", "a boolean operator", 1),
    ("a if b else c", "a conditional", 1),
    ("a // b", "the operator // is not allowed", 1),
    ("~a", "the operator ~ is not allowed", 1),
    ("a + True", "True is not allowed here", 5),
    ("a + None", "None is not allowed here", 5),
    ("a * 1j", "a complex number is not allowed", 5),
    ("sum(*a)", "*unpacking is not allowed", 5),
    ("sum(a, **b)", "**unpacking is not allowed", 10),
    ("sum(a, axis=b)", "takes a constant", 13),
    ("sum(a, axis=(0, 1.5))", "tuple of integers", 13),
    ("exp", "is an op, not a variable", 1),
    ("exp(a)(b)", "found a call of the result of a call", 1),
    ("cast(a, dtype='object')", "a string is not allowed", 15),
    ("a +", "invalid syntax", None),
])
def test_rejections_say_what_and_where(text, fragment, column):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    assert text in message  # the expression is echoed
    assert "Allowed: numbers" in message and "logsumexp" in message
    if column is not None:
        assert message.startswith(f"column {column}:")
        assert caret_column(message) == column


def test_columns_count_characters_not_utf8_bytes():
    with pytest.raises(ExpressionError) as info:
        parse("é + x.y")
    assert str(info.value).startswith("column 6:") and caret_column(str(info.value)) == 6


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_multi_line_expressions_report_line_and_column(newline):
    with pytest.raises(ExpressionError) as info:
        parse(f"(a{newline}+ b.c)")
    assert str(info.value).startswith("line 2, column 4:") and "+ b.c)" in str(info.value)


def test_evaluation_errors_point_at_the_operator():
    env = variables(x=np.ones((2, 3)))
    with pytest.raises(ExpressionError) as info:
        evaluate(parse("x + x @ x"), env)
    assert "@ failed" in str(info.value) and caret_column(str(info.value)) == 7
    with pytest.raises(ExpressionError, match="no value for the variable 'y'"):
        evaluate(parse("x * y"), env)
    with pytest.raises(ExpressionError, match="sum failed"):
        evaluate(parse("sum(x, axis=5)"), env)
    with pytest.raises(ExpressionError, match="column 1: matmul failed"):  # named as written
        evaluate(parse("matmul(x, x)"), env)


def test_intermediate_results_are_bounded(monkeypatch):
    monkeypatch.setattr(E, "MAX_RESULT_ELEMENTS", 10)
    env = variables(a=np.ones((2, 2)))
    assert evaluate(parse("a * a"), env).shape == (2, 2)
    with pytest.raises(ExpressionError, match=r"\* gives 16 elements; at most 10"):
        evaluate(parse("a * reshape(a, (2, 2, 1, 1))"), env)


@pytest.mark.parametrize("text, fragment", [
    ("a" * (E.MAX_LENGTH + 1), "at most 10000"),
    ("exp(" * 101 + "a" + ")" * 101, "nested more than 100 levels"),
    ("(" * 300 + "a" + ")" * 300, "invalid syntax"),
    ("-" * 5000 + "a", "too deeply nested or too large"),
    ("sum([" + "a, " * 1500 + "a])", "syntax nodes; at most 2000"),
    ("9" * 5000, "invalid syntax"),
    ("9" * 400, "too large"),
    ("", "empty"),
])
def test_bounds(text, fragment):
    with pytest.raises(ExpressionError, match=fragment.replace("(", r"\(")):
        parse(text)


def test_long_lines_are_echoed_as_a_window_around_the_spot():
    text = "sum([" + "a, " * 300 + "a.b])"
    message = str(pytest.raises(ExpressionError, parse, text).value)
    echoed = message.splitlines()[1]
    assert len(echoed) < 120 and "a.b" in echoed
    assert echoed[caret_column(message) + 1] == "."


@pytest.mark.parametrize("text, expected", [
    ("2", np.array(2.0)),
    ("-1.5e-3", np.array(-1.5e-3)),
    ("[[1, 2], [3, 4]]", np.array([[1.0, 2.0], [3.0, 4.0]])),
    ("(1, -2)", np.array([1.0, -2.0])),
    ("zeros(2, 3)", np.zeros((2, 3))),
    ("ones(4)", np.ones(4)),
])
def test_parse_value(text, expected):
    value = parse_value(text, "a")
    assert value.dtype == np.float64
    np.testing.assert_array_equal(value, expected)


def test_random_values_are_seeded_per_name_and_bounded():
    a = parse_value("randn(3, 4)", "a")
    assert a.shape == (3, 4) and a.std() > 0
    np.testing.assert_array_equal(a, parse_value("randn(3, 4)", "a"))
    assert not np.array_equal(a, parse_value("randn(3, 4)", "b"))
    assert not np.array_equal(a, parse_value("randn(3, 4)", "a", seed=1))
    u = parse_value("rand(1000)", "u")
    assert u.min() >= 0 and u.max() < 1
    with pytest.raises(ExpressionError, match=r"--at w: randn\(100000, 100000\) has 10,000,000,000 elements"):
        parse_value("randn(100000, 100000)", "w")


@pytest.mark.parametrize("text, fragment", [
    ("[[1, 2], [3]]", "not rectangular: [1] has shape (1,) but [0] has shape (2,)"),
    ("[1, 'a']", "found a string at [1]"),
    ("[1, True]", "found True at [1]"),
    ("x", "found the name 'x'"),
    ("2 ** 10", "arithmetic"),
    ("[]", "an empty list"),
    ("randn(0)", "whole numbers >= 1, found '0'"),
    ("randn(2.5)", "whole numbers >= 1, found '2.5'"),
    ("__import__('os')", "is not a value"),
    ("[1, 2", "cannot read"),
    ("", "empty"),
])
def test_bad_values_name_the_variable_and_what_was_expected(text, fragment):
    with pytest.raises(ExpressionError) as info:
        parse_value(text, "w")
    assert str(info.value).startswith("--at w: ") and fragment in str(info.value)


def test_parse_bindings():
    values = parse_bindings(["a=2", " b = [1, 2] "])
    assert list(values) == ["a", "b"] and values["b"].shape == (2,)
    for bad, fragment in [(["a"], "NAME=VALUE"), (["a=1", "a=2"], "given twice"), (["exp=1"], "NAME=VALUE"),
                          (["__x=1"], "NAME=VALUE"), (["b=[1,"], "--at b")]:
        with pytest.raises(ExpressionError, match=fragment.replace("[", r"\[")):
            parse_bindings(bad)


TOKENS = ["a", "b", "x1", "(", ")", "[", "]", ",", " ", "+", "-", "*", "/", "**", "@", ".", "_", "=", "'",
          "0", "1.5", "exp", "sum", "axis", "lambda", ":", "__import__", "if", "else", "{", "}", "\n", "\r", "\r\n", "\t", "#",
          "True", "not", "<", "f'", "\\", ";", "1e999", "9" * 30]


def nodes(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.items if isinstance(node, ListOf) else node.args if isinstance(node, Call) else ())


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)))
def test_arbitrary_text_only_ever_raises_expression_error(text):
    try:
        e = parse(text)
    except ExpressionError as err:
        assert str(err)
        return
    for node in nodes(e.tree):  # whatever parsed is made of whitelisted pieces only
        assert isinstance(node, (Num, Var, ListOf, Call))
        if isinstance(node, Call):
            assert node.op in E.ALLOWED_OPS
        if isinstance(node, Var):
            assert node.name in e.names and not node.name.startswith("__")
