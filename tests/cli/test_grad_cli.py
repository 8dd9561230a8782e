"""`nncli grad` through the Typer app: exact numbers, JSON, exit codes, hostile input."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import nncli.gradtool as gradtool
from nncli.cli import app
from nncli.errors import ExpressionError

runner = CliRunner()


def grad(*args):
    return runner.invoke(app, ["grad", *args])


def rows(output):
    """Table rows as {variable: [tape, numeric, error, status]}."""
    table = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 5 and cells[0] not in ("variable", ""):
            table[cells[0]] = cells[1:]
    return table


def test_rindow_product_example():
    result = grad("a*b", "--at", "a=2", "--at", "b=3")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "a*b = 6"
    table = rows(result.stdout)
    assert table["a"][0:2] == ["3", "3"] and table["a"][3] == "OK"
    assert table["b"][0:2] == ["2", "2"] and table["b"][3] == "OK"


def test_rindow_square_example():
    result = grad("square(a*b + c)", "--at", "a=2", "--at", "b=3", "--at", "c=4")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "square(a*b + c) = 100"
    table = rows(result.stdout)
    assert {name: table[name][:2] for name in "abc"} == {"a": ["60", "60"], "b": ["40", "40"], "c": ["20", "20"]}
    assert all(table[name][3] == "OK" and float(table[name][2]) < 1e-6 for name in "abc")


def test_json_output_is_one_object():
    result = grad("square(a*b + c)", "--at", "a=2", "--at", "b=3", "--at", "c=4", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["value"] == 100 and data["ok"] is True and data["gradient_of"] == "value"
    assert [data["variables"][n]["tape"] for n in "abc"] == [60, 40, 20]
    assert all(abs(data["variables"][n]["numeric"] - t) < 1e-6 for n, t in zip("abc", [60, 40, 20]))
    assert all(data["variables"][n]["ok"] and data["variables"][n]["error"] < 1e-6 for n in "abc")


def test_non_scalar_expressions_differentiate_the_sum_and_say_so():
    result = grad("x * w", "--at", "x=[[1, 2], [3, 4]]", "--at", "w=[10, 20]", "--wrt", "w")
    assert result.exit_code == 0, result.output
    assert "the gradients are of the sum" in result.stdout
    assert list(rows(result.stdout)) == ["w"] and rows(result.stdout)["w"][0] == "[4 6]"
    data = json.loads(grad("x * w", "--at", "x=[[1, 2], [3, 4]]", "--at", "w=[10, 20]", "--json").stdout)
    assert data["gradient_of"] == "sum" and data["shape"] == [2, 2]
    assert data["variables"]["x"]["tape"] == [[10, 20], [10, 20]]


def test_float32_and_random_values():
    result = grad("sum(x @ w, axis=0)", "--at", "x=randn(3,4)", "--at", "w=randn(4,2)", "--dtype", "float32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dtype"] == "float32" and len(data["variables"]["x"]["tape"]) == 3 and data["ok"]


@pytest.mark.parametrize("expr", [
    "__import__('os').system('x')",
    "eval('1')",
    "open('/etc/passwd')",
    "a.__class__.__bases__",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "(lambda: 0)()",
    "a; import os",
    "exp(a) if a else b",
    "f'{a}'",
])
def test_injection_attempts_exit_2_without_traceback(expr):
    result = grad(expr, "--at", "a=1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output and result.stdout == ""


def test_bad_input_exits_2_with_a_message():
    missing = grad("a*b", "--at", "a=2")
    assert missing.exit_code == 2 and "no value for b" in missing.stderr
    unused = grad("a", "--at", "a=2", "--at", "z=1")
    assert unused.exit_code == 2 and "z not in the expression" in unused.stderr
    huge = grad("sum(x)", "--at", "x=randn(100000,100000)")
    assert huge.exit_code == 2 and "--at x" in huge.stderr and "at most 1,000,000" in huge.stderr
    twice = grad("x @ x", "--at", "x=[1, 2]", "--at", "x=[3]")
    assert twice.exit_code == 2 and "given twice" in twice.stderr
    assert grad("a", "--at", "a=1", "--dtype", "int8").exit_code == 2


def test_a_kink_fails_honestly_with_exit_1():
    result = grad("relu(x)", "--at", "x=0")  # central differences give 0.5 at the kink, the tape 0
    assert result.exit_code == 1
    assert rows(result.stdout)["x"][3] == "FAIL" and "kink" in result.stdout
    data = json.loads(grad("relu(x)", "--at", "x=0", "--json").stdout)
    assert data["ok"] is False and data["variables"]["x"]["numeric"] == pytest.approx(0.5)


def test_interrupt_exits_130(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gradtool, "check_expression", interrupted)
    assert grad("a", "--at", "a=1").exit_code == 130


def test_library_errors_are_reported_by_the_shared_runner(monkeypatch):
    def bad(*args, **kwargs):
        raise ExpressionError("something specific", where="here")

    monkeypatch.setattr(gradtool, "check_expression", bad)
    result = grad("a", "--at", "a=1")
    assert result.exit_code == 2 and result.stderr == "error: here: something specific\n"


def test_importing_the_cli_stays_light():
    code = "import sys, nncli.cli; print(sorted(m for m in ('numpy', 'rich', 'nncli.autodiff') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
