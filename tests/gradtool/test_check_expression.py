"""check_expression, what `nncli grad` runs: values, gradients and the errors that name a flag."""

import numpy as np
import pytest

from nncli.errors import ExpressionError
from nncli.gradtool import check_expression


def test_check_expression_values_and_gradients():
    check = check_expression("square(a*b + c)", ["a=2", "b=3", "c=4"])
    assert float(check.value) == 100.0 and check.ok
    assert [float(c.tape) for c in check.result.inputs] == [60.0, 40.0, 20.0]
    assert check_expression("a*b", ["a=2", "b=3"], wrt=["b"]).result.inputs[0].name == "b"
    vector = check_expression("x * x", ["x=[1, 2, 3]"])  # non-scalar: the gradient of the sum
    np.testing.assert_allclose(vector.result.inputs[0].tape, [2.0, 4.0, 6.0])
    assert not check_expression("relu(x)", ["x=0"]).ok  # a kink: differences give 0.5, the tape 0


@pytest.mark.parametrize("text, at, wrt, fragment", [
    ("a*b", ["a=2"], None, "no value for b; give --at b=VALUE"),
    ("a*b", ["a=2", "b=3", "z=1"], None, "--at: z not in the expression (its variables: a, b)"),
    ("a*b", ["a=2", "b=3"], ["q"], "--wrt: q not in the expression"),
    ("a*b", ["a=2", "b=3"], ["a", "a"], "--wrt: a given twice"),
    ("a*b", ["a=2", "b=3"], [], "expected at least one variable"),
    ("split(x, 2)", ["x=[1, 2]"], None, "one tensor, not a list of 2 tensors"),
])
def test_check_expression_input_errors(text, at, wrt, fragment):
    with pytest.raises(ExpressionError) as info:
        check_expression(text, at, wrt=wrt)
    assert fragment in str(info.value)


def test_the_engine_and_the_library_never_import_the_grad_tool():
    """gradtool sits above autodiff: nothing in autodiff, nn, data or train names it, even lazily."""
    import ast
    from pathlib import Path

    import nncli

    root = Path(nncli.__file__).parent
    offenders = []
    for package in ("autodiff", "nn", "data", "train"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("nncli.gradtool")]
    assert offenders == []
    assert not (root / "autodiff/expr.py").exists() and not (root / "autodiff/values.py").exists()
