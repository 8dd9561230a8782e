"""The ``nncli`` command line.

Each command is one function: it parses its arguments, calls one library function and renders the
result with a small private helper. Commands are registered with ``@_command()``, which turns an
``NncliError`` into ``error: <message>`` on stderr with exit code 2 (no traceback) and Ctrl-C into
exit code 130; a command returns its exit code (None or 0 for success, 1 for a failed check).

numpy, the engine and Rich are imported inside the commands, so ``nncli --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from nncli.errors import NncliError

if TYPE_CHECKING:
    import numpy as np

    from nncli.autodiff.gradcheck import ExpressionCheck

app = typer.Typer(
    name="nncli",
    help="Train neural networks from YAML configs on a numpy tape-based autodiff engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a bug shows a plain traceback; user errors never reach here
)


def main() -> None:
    """Console-script entry point (``nncli = "nncli.cli:main"``)."""
    app()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Train neural networks from YAML configs on a numpy tape-based autodiff engine."""
    if version:
        from nncli import __version__

        typer.echo(f"nncli {__version__}")
        raise typer.Exit()


def _command(name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., int | None]], Callable[..., None]]:
    """Register a command whose user errors exit 2 with a one-paragraph message, Ctrl-C with 130."""

    def register(fn: Callable[..., int | None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> None:
            try:
                code = fn(*args, **kw)
            except NncliError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(err.exit_code) from None
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            if code:
                raise typer.Exit(code)

        return app.command(name, **kwargs)(run)

    return register


class _Dtype(str, Enum):
    float64 = "float64"
    float32 = "float32"


@_command()
def grad(
    expr: Annotated[str, typer.Argument(help="Expression, e.g. 'square(a*b + c)' or 'sum(x @ w, axis=0)'.")],
    at: Annotated[Optional[list[str]], typer.Option(
        "--at", metavar="NAME=VALUE",
        help="A variable's value: a number, a nested list '[[1,2],[3,4]]', or randn(3,4) / rand(2).")] = None,
    wrt: Annotated[Optional[str], typer.Option(
        metavar="NAMES", help="Variables to differentiate, comma separated (default: all).")] = None,
    dtype: Annotated[_Dtype, typer.Option(help="Dtype of the values and the tape's computation.")] = _Dtype.float64,
    seed: Annotated[int, typer.Option(help="Seed of randn/rand values.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
) -> int:
    """Evaluate an expression; check the tape's gradients against central differences.

    Exit code 0 when every gradient matches, 1 when one does not, 2 on bad input.
    """
    from nncli.autodiff.gradcheck import check_expression

    names = None if wrt is None else [n.strip() for n in wrt.split(",") if n.strip()]
    check = check_expression(expr, at or [], wrt=names, dtype=dtype.value, seed=seed)
    if as_json:
        typer.echo(json.dumps(_grad_json(check)))
    else:
        _render_grad(check)
    return 0 if check.ok else 1


# -- rendering helpers -------------------------------------------------------------------------------
def _num(x: Any) -> str:
    """A number as people write it: 6.0 -> '6', 59.9999999972 -> '60', 1e-20 -> '1e-20'."""
    return f"{x:.8g}" if isinstance(x, float) or (hasattr(x, "dtype") and x.dtype.kind == "f") else str(x)


def _array(a: np.ndarray) -> str:
    import numpy as np

    if a.ndim == 0:
        return _num(a[()])
    return np.array2string(a, formatter={"float_kind": _num})


def _render_grad(check: ExpressionCheck) -> None:
    import numpy as np
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    value = _array(check.value)
    sep = "\n" if "\n" in value else " "
    console.print(f"[bold]{escape(check.expression.text)}[/] ={sep}{escape(value)}")
    if check.value.ndim:
        console.print(f"(shape {check.value.shape}, {check.dtype}; the gradients are of the sum of its elements)")
    results = check.result.inputs
    if not results:
        console.print("no variables: nothing to differentiate")
        return
    table = Table("variable", "tape gradient", "numeric gradient", "error", "status")
    for c in results:
        status = "[green]OK[/]" if c.ok else "[red]FAIL[/]"
        table.add_row(escape(c.name), escape(_array(c.tape)), escape(_array(c.numeric)), f"{c.error:.2g}", status)
    console.print(table)
    for c in results:
        if c.checked < c.tape.size:
            console.print(f"{c.name}: the numeric gradient was checked at {c.checked:,} of {c.tape.size:,} "
                          "elements (a random sample; nan elsewhere)")
    if check.ok:
        return
    finite = all(np.isfinite(a).all() for c in results for a in (c.tape, c.numeric) if c.checked == a.size)
    if not finite or not np.isfinite(check.value).all():
        console.print("The value or a gradient is not finite: the expression is outside its domain here.")
    else:
        console.print("A FAIL at a kink (relu(0), abs(0), ties of max/maximum, clip bounds) is expected: "
                      "central differences average both sides there.")


def _grad_json(check: ExpressionCheck) -> dict[str, Any]:
    variables = {c.name: {"tape": _plain(c.tape), "numeric": _plain(c.numeric), "error": c.error,
                          "ok": c.ok, "checked": c.checked} for c in check.result.inputs}
    return {"expression": check.expression.text, "dtype": check.dtype, "shape": list(check.value.shape),
            "value": _plain(check.value), "gradient_of": "sum" if check.value.ndim else "value",
            "ok": check.ok, "variables": variables}


def _plain(a: np.ndarray) -> Any:
    """An array as JSON-ready nested lists; non-finite numbers (and unchecked elements) become null."""
    import numpy as np

    if a.dtype.kind != "f":
        return a.tolist()
    a = a.astype(np.float64)  # tolist() then gives Python floats
    return np.where(np.isfinite(a), a, None).tolist() if a.ndim else (float(a) if np.isfinite(a) else None)


if __name__ == "__main__":
    main()
