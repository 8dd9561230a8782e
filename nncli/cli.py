"""The ``nncli`` command line.

Each command is one function: it parses its arguments, calls one library function and renders the
result with a small private helper. Commands are registered with ``@_command()``, which turns an
``NncliError`` into ``error: <message>`` on stderr with exit code 2 (no traceback) and Ctrl-C into
exit code 130; a command returns its exit code (None or 0 for success, 1 for a failed check).

numpy, the engine and Rich are imported inside the commands, so ``nncli --help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from nncli.errors import NncliError
from nncli.render_data import render_data, render_export
from nncli.render import (
    TrainProgress,
    grad_json,
    interrupt_message,
    render_check,
    render_config,
    render_entries,
    render_eval,
    render_grad,
    render_runs,
    render_schema,
    render_train,
)

app = typer.Typer(
    name="nncli",
    help="Train neural networks from YAML configs on a numpy tape-based autodiff engine.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,  # a bug shows a plain traceback; user errors never reach here
)


def _plain_metavar(param, ctx) -> str | None:
    """What help shows after an option or argument: its METAVAR, its choices, or nothing for a flag.

    Typer shows the Python type (``<bool>`` after a flag, ``<list[str]>``), which says nothing to a
    user of a command line; every value-taking parameter here has a metavar instead.
    """
    if getattr(param, "is_flag", False) and not param.metavar:
        return None
    if param.metavar:  # an argument shows its metavar as its name already
        return None if param.param_type_name == "argument" else param.metavar
    descriptor = getattr(param, "type_descriptor", None)
    if getattr(descriptor, "is_choice", False):  # such as --dtype float64|float32
        return _TYPED_DISPLAY[type(param)](param, ctx).strip("<>")
    return None


_TYPED_DISPLAY = {}
for _cls in (getattr(typer.core, "TyperArgument", None), getattr(typer.core, "TyperOption", None)):
    if _cls is not None and hasattr(_cls, "display_type_rich"):
        _TYPED_DISPLAY[_cls] = _cls.display_type_rich
        _cls.display_type_rich = _plain_metavar


def main() -> None:
    """Console-script entry point (``nncli = "nncli.cli:main"``)."""
    app()


def _print_version(value: bool) -> None:
    if value:
        from nncli import __version__

        typer.echo(f"nncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train neural networks from YAML configs on a numpy tape-based autodiff engine."""


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
                _say("interrupted")
                raise typer.Exit(130) from None
            except BrokenPipeError:  # `nncli runs | head -1`: the reader has what it wanted
                _silence_stdout()
                raise typer.Exit(141) from None
            if code:
                raise typer.Exit(code)

        return app.command(name, help=_reflowed(fn.__doc__), **kwargs)(run)

    return register


def _reflowed(doc: str | None) -> str | None:
    """A docstring as help shows it: paragraphs kept, the line breaks inside each joined (help wraps them to
    the terminal; kept, they break lines mid-sentence on any width but the one they were written for)."""
    if doc is None:
        return None
    return "\n\n".join(" ".join(part.split()) for part in inspect.cleandoc(doc).split("\n\n"))


def _say(message: str) -> None:
    """A line on stderr; a terminal that is gone (SIGHUP) is no reason for a traceback."""
    try:
        typer.echo(message, err=True)
    except OSError:
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that nothing more (not even Python's final flush) fails on it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class _Dtype(str, Enum):
    float64 = "float64"
    float32 = "float32"


@_command()
def grad(
    expr: Annotated[str, typer.Argument(metavar="EXPR",
                                        help="Expression, e.g. 'square(a*b + c)' or 'sum(x @ w, axis=0)'.")],
    at: Annotated[Optional[list[str]], typer.Option(
        "--at", metavar="NAME=VALUE",
        help="A variable's value: a number, a nested list '[[1,2],[3,4]]', or randn(3,4) / rand(2).")] = None,
    wrt: Annotated[Optional[str], typer.Option(
        metavar="NAMES", help="Variables to differentiate, comma separated (default: all).")] = None,
    dtype: Annotated[_Dtype, typer.Option(help="Dtype of the values and the tape's computation.")] = _Dtype.float64,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of randn/rand values.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
) -> int:
    """Evaluate an expression; check the tape's gradients against central differences.

    Exit code 0 when every gradient matches, 1 when one does not, 2 on bad input.
    """
    from nncli.gradtool import check_expression

    names = None if wrt is None else [n.strip() for n in wrt.split(",") if n.strip()]
    check = check_expression(expr, at or [], wrt=names, dtype=dtype.value, seed=seed)
    if as_json:
        typer.echo(json.dumps(grad_json(check)))
    else:
        render_grad(check)
    return 0 if check.ok else 1


@_command()
def train(
    config: Annotated[Optional[str], typer.Argument(
        metavar="[CONFIG]", help="The YAML config file, e.g. configs/quickstart.yaml (optional with --resume: "
                                 "the run's own config.yaml).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value, e.g. model.layers[0].units=64 (on --resume "
                                           "only what may change: train.epochs, early stopping, callbacks...).")] = None,
    run_id: Annotated[Optional[str], typer.Option(
        metavar="ID", help="Name of the run folder (default: <config>-<time>).")] = None,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help="Folder holding the run folders.")] = "runs",
    resume: Annotated[Optional[str], typer.Option(
        metavar="RUN", help="Continue this run (an id, 'latest' or a run folder's path) exactly where it "
                            "stopped.")] = None,
    init_from: Annotated[Optional[str], typer.Option(
        metavar="RUN[:best|last]", help="Start a new run from another run's weights (fine-tuning); best by "
                                        "default.")] = None,
    init_optimizer: Annotated[bool, typer.Option(
        "--init-optimizer", help="With --init-from: take that run's optimizer state (slots, step count) too.")] = False,
    trust_plugins: Annotated[bool, typer.Option(
        "--trust-plugins", help="With --resume and no CONFIG: import the plugins the run's config.yaml lists "
                                "(Python code that runs with your rights; only for run folders you trust).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run folder at the end.")] = False,
) -> int:
    """Train a model from a config; write runs/<run-id>/ (config, metrics, checkpoints, plot).

    Exit code 0 when training ends (completed or stopped early), 1 when the loss became NaN or
    infinite, 2 on bad input; stopped by a signal it saves at the next batch boundary and exits
    with 128 + the signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, 141 a closed stdout): resume it
    with --resume.
    """
    from nncli.train.session import TrainingFailed, TrainingInterrupted
    from nncli.train.session import train as train_run
    from nncli.train.signals import exit_code

    progress = TrainProgress(quiet)
    try:
        result = train_run(config, overrides=set_ or [], run_id=run_id, runs_dir=runs_dir, resume=resume,
                           init_from=init_from, init_optimizer=init_optimizer, trust_plugins=trust_plugins,
                           callbacks=[progress], argv=["nncli", *sys.argv[1:]])
    except TrainingFailed as err:
        progress.close()
        _say(f"error: {err}")
        return 1
    except TrainingInterrupted as stop:
        progress.close()
        _say(interrupt_message(stop))
        return exit_code(stop.signum)
    except KeyboardInterrupt:  # before the run folder existed: nothing to save
        progress.close()
        _say("interrupted before training started; nothing was written")
        return 130
    progress.close()
    for warning in result.warnings:
        _say(f"warning: {warning}")
    try:
        render_train(result, quiet)
    except BrokenPipeError:  # the run is complete; only its summary had nowhere to go
        _silence_stdout()
        return 141
    return 0


class _Sampler(str, Enum):
    random = "random"
    tpe = "tpe"


@_command()
def sweep(
    config: Annotated[Optional[str], typer.Argument(
        metavar="CONFIG", help="The YAML config every trial starts from (its sweep: section may hold the options "
                                 "below).")] = None,
    grid: Annotated[Optional[list[str]], typer.Option(
        "--grid", metavar="KEY=[V1, V2]", help="Try each value of KEY, with every value of the other --grid keys: "
                                               "'optimizer.learning_rate=[0.001, 0.01]'.")] = None,
    random: Annotated[Optional[int], typer.Option(
        "--random", metavar="N", help="Draw N trials at random from the --space distributions.")] = None,
    space: Annotated[Optional[list[str]], typer.Option(
        "--space", metavar="KEY=DIST", help="A distribution to draw KEY from: loguniform(a, b), uniform(a, b) or "
                                            "choice(x, y, ...).")] = None,
    sampler: Annotated[Optional[_Sampler], typer.Option(
        help="How --trials are proposed: random draws, or Optuna's TPE (needs optuna).")] = None,
    trials: Annotated[Optional[int], typer.Option(metavar="N", help="Trials of --sampler.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        metavar="N", help="Trials at once on this machine, each with its share of the cores (default 1).")] = None,
    cluster: Annotated[Optional[str], typer.Option(
        metavar="tcp://HOST:PORT", help="Run the trials on this Dask scheduler's workers instead.")] = None,
    sweep_id: Annotated[Optional[str], typer.Option(
        metavar="ID", help="Name of the sweep (default: <config>-sweep-<time>); its trials are the runs ID-t00, "
                           "ID-t01...")] = None,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help="Folder holding the run folders.")] = "runs",
    retries: Annotated[Optional[int], typer.Option(
        metavar="N", help="More attempts for a trial whose process or worker was lost (default 2).")] = None,
    threads: Annotated[Optional[int], typer.Option(
        metavar="N", help="BLAS threads per trial (default: the cores divided among the trials at once).")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="N", help="Seed of the random draws.")] = None,
    resume: Annotated[Optional[str], typer.Option(
        metavar="SWEEP_ID", help="Continue this sweep (or 'latest'): finished trials are kept.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object at the end (the progress goes to stderr).")] = False,
) -> int:
    """Train variations of a config (a grid, random draws) here or on a Dask cluster.

    Every trial is an ordinary run in the runs folder; the sweep's record is
    runs/<sweep-id>/sweep.json. Exit code 0 when every trial ended (completed or
    stopped early), 1 when some failed, 2 on bad input, 130 when interrupted
    (143 for SIGTERM); continue with --resume SWEEP_ID.
    """
    import sys

    from nncli.errors import NncliError
    from nncli.render_sweep import SweepProgress, render_sweep, sweep_json
    from nncli.sweep import SweepOptions, resume_sweep, run_sweep

    opts = SweepOptions(grid=grid or [], space=space or [], random=random, trials=trials, seed=seed,
                        sampler=sampler.value if sampler else None, workers=workers, cluster=cluster,
                        retries=retries, threads=threads)
    if (config is None) == (resume is None):
        raise NncliError("expected a CONFIG to sweep, or --resume SWEEP_ID to continue a sweep, found "
                         + ("neither" if config is None else "both"))
    progress = SweepProgress(stderr=as_json)
    try:
        if resume is not None:
            if sweep_id is not None:
                raise NncliError("--sweep-id names a new sweep; --resume continues one: give one of them")
            result = resume_sweep(resume, opts, runs_dir=runs_dir, reporter=progress)
        else:
            result = run_sweep(config, opts, sweep_id=sweep_id, runs_dir=runs_dir, reporter=progress,
                               argv=["nncli", *sys.argv[1:]])
    finally:
        progress.close()
    if as_json:
        typer.echo(json.dumps(sweep_json(result), indent=2))
    else:
        render_sweep(result)
    return result.exit_code


@_command()
def check(
    config: Annotated[str, typer.Argument(metavar="CONFIG", help="The YAML config file to check.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value, as with train.")] = None,
) -> int:
    """Validate a config, build the model, run one step and gradient-check every layer; train nothing.

    Exit code 0 when everything holds, 1 when a gradient check fails, 2 on bad input.
    """
    from nncli.train.check import check_config

    report = check_config(config, set_ or [])
    for warning in report.warnings:
        _say(f"warning: {warning}")
    render_check(report)
    return 0 if report.ok else 1


@_command("config")
def config_(
    config: Annotated[Optional[str], typer.Argument(
        metavar="CONFIG", help="The YAML config file (not needed with --schema).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value, as with train.")] = None,
    schema: Annotated[bool, typer.Option(
        "--schema", help="List every key of the data, train and top-level sections instead.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="JSON: {key: {value, source}}, or with --schema a JSON Schema of the file.")] = False,
) -> int:
    """Print the resolved config, every default filled in, and where each value came from.

    A source is a file and line (base files included), a --set override, or 'default'.
    """
    from nncli.errors import NncliError
    from nncli.train.config import explain_config
    from nncli.train.config.explain import json_schema, schema_rows

    if schema:
        if as_json:
            typer.echo(json.dumps(json_schema(), indent=2))
        else:
            render_schema(schema_rows())
        return 0
    if config is None:
        raise NncliError("expected a config file (nncli config CONFIG), or --schema for the keys a config takes")
    explained = explain_config(config, set_ or [])
    if as_json:
        typer.echo(json.dumps(explained.to_dict(), indent=2))
    else:
        render_config(explained)
    return 0


@_command()
def data(
    config: Annotated[str, typer.Argument(metavar="CONFIG", help="The YAML config file whose data to load.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a config value, as with train.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
) -> int:
    """Load a config's data as train would and show it: parts, shapes, classes, feature ranges, time, memory."""
    from nncli.train.datainfo import data_report

    report = data_report(config, set_ or [])
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        render_data(report)
    return 0


@_command()
def layers(
    name: Annotated[Optional[str], typer.Argument(
        metavar="NAME", help="One entry to describe (default: list them all).")] = None,
    kind: Annotated[str, typer.Option(
        metavar="KIND", help="Which registry: layers, losses, optimizers, schedules, activations, initializers, metrics, "
             "models, callbacks.")] = "layers",
) -> int:
    """List the registered layers (or other components) with their parameters and defaults."""
    from nncli.train.describe import describe_entries

    render_entries(describe_entries(kind, name), kind, detailed=name is not None)
    return 0


class _Checkpoint(str, Enum):
    best = "best"
    last = "last"


class _Split(str, Enum):
    train = "train"
    validation = "validation"
    test = "test"


_RUNS_DIR_HELP = "Folder holding the run folders (a run may also be named by its folder's path)."
_CHECKPOINT_HELP = "Which checkpoint's weights to use: the best epoch's or the last one's."
_TRUST_HELP = ("Import the plugins the run's config.yaml lists: Python code that runs with your rights. "
               "Only for run folders you trust.")


@_command()
def plot(
    run_ids: Annotated[list[str], typer.Argument(
        metavar="RUN...", help="Runs to draw (ids, 'latest' or run folder paths); several are overlaid.")],
    metric: Annotated[Optional[str], typer.Option(
        metavar="NAME", help="Draw only this metric's panel (loss, accuracy, ...).")] = None,
    out: Annotated[Optional[str], typer.Option(
        metavar="FILE", help="Image to write: .png, .svg or .pdf (default: runs/<id>/loss.png, or "
                             "runs/compare-<ids>.png for several runs).")] = None,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help=_RUNS_DIR_HELP)] = "runs",
    log_y: Annotated[bool, typer.Option("--log-y", help="Logarithmic loss axes.")] = False,
    smooth: Annotated[int, typer.Option(metavar="N", help="Moving average over N epochs.")] = 1,
    best: Annotated[int, typer.Option(metavar="K", help="For a sweep: the K best trials in colour.")] = 3,
) -> int:
    """Draw training curves (train and validation, best epoch marked) and print the image's path.

    A sweep's id draws its trials overlaid, the best K highlighted (runs/<sweep-id>/sweep.png).
    """
    from nncli.sweep.record import is_sweep

    sweeps = [run_id for run_id in run_ids if is_sweep(runs_dir, run_id)]
    if sweeps:
        from nncli.errors import NncliError
        from nncli.sweep.plot import plot_sweep

        if len(run_ids) > 1:
            raise NncliError(f"{sweeps[0]} is a sweep: plot it alone (nncli plot {sweeps[0]}), or name the runs "
                             "of its trials")
        typer.echo(str(plot_sweep(runs_dir, sweeps[0], out=out, metric=metric, best=best, log_y=log_y)))
        return 0
    from nncli.train.plot import plot_run_ids

    typer.echo(str(plot_run_ids(runs_dir, run_ids, out=out, metric=metric, log_y=log_y, smooth=smooth)))
    return 0


@_command()
def runs(
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help=_RUNS_DIR_HELP)] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list (one object per run).")] = False,
) -> int:
    """List the runs, newest first: status, epochs, best validation loss, final metrics, duration."""
    from nncli.train.inspect import runs_table

    rows = runs_table(runs_dir)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        render_runs(rows, runs_dir)
    return 0


@_command("eval")
def eval_(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run: an id, 'latest', or a run folder's path.")],
    checkpoint: Annotated[_Checkpoint, typer.Option(help=_CHECKPOINT_HELP)] = _Checkpoint.best,
    data: Annotated[Optional[str], typer.Option(
        metavar="PATH", help="A labelled data file (default: the run's validation part, rebuilt from its "
                             "config).")] = None,
    split: Annotated[Optional[_Split], typer.Option(
        help="Which part of the run's own data to score: the validation part (the default), the test part "
             "(data.test_split or the data.test file) or the training part.")] = None,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help=_RUNS_DIR_HELP)] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
    allow_changed_data: Annotated[bool, typer.Option(
        "--allow-changed-data", help="Score the validation part even if the run's data has changed since it was "
                                     "trained (a warning instead of an error).")] = False,
    trust_plugins: Annotated[bool, typer.Option("--trust-plugins", help=_TRUST_HELP)] = False,
) -> int:
    """Loss and metrics of a run's checkpoint on a part of its data (--split) or on another labelled file."""
    from nncli.train.inspect import evaluate_run

    result = evaluate_run(runs_dir, run_id, checkpoint=checkpoint.value, data=data,
                          split=None if split is None else split.value,
                          allow_changed_data=allow_changed_data, trust_plugins=trust_plugins)
    for warning in result["warnings"]:
        _say(f"warning: {warning}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        render_eval(result)
    return 0


@_command()
def predict(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run: an id, 'latest', or a run folder's path.")],
    input_path: Annotated[str, typer.Argument(
        metavar="INPUT", help="A CSV with the run's feature columns (a target column is ignored), or .npy/.npz.")],
    out: Annotated[Optional[str], typer.Option(
        metavar="FILE", help="Write the CSV here (default: standard output).")] = None,
    checkpoint: Annotated[_Checkpoint, typer.Option(help=_CHECKPOINT_HELP)] = _Checkpoint.best,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help=_RUNS_DIR_HELP)] = "runs",
    trust_plugins: Annotated[bool, typer.Option("--trust-plugins", help=_TRUST_HELP)] = False,
) -> int:
    """Predict with a run's model: class and probabilities (classification) or values, as CSV."""
    from nncli.train.inspect import predict_run

    preds = predict_run(runs_dir, run_id, input_path, out=out, checkpoint=checkpoint.value,
                        trust_plugins=trust_plugins)
    if out is None:
        typer.echo(preds.to_csv(), nl=False)
    else:
        cols = preds.columns if len(preds.columns) <= 4 else [*preds.columns[:2], "...", preds.columns[-1]]
        typer.echo(f"wrote {len(preds.values)} predictions ({', '.join(cols)}) to {out}")
    return 0


class _Format(str, Enum):
    onnx = "onnx"
    safetensors = "safetensors"


@_command()
def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run: an id, 'latest', or a run folder's path.")],
    format_: Annotated[_Format, typer.Option(
        "--format", help="onnx: the model with its input normalization, for onnxruntime and other runtimes; "
                         "safetensors: the weights alone, named as a torch.nn.Sequential holds them.")],
    checkpoint: Annotated[_Checkpoint, typer.Option(help=_CHECKPOINT_HELP)] = _Checkpoint.best,
    out: Annotated[Optional[str], typer.Option(
        metavar="FILE", help="The file to write (default: runs/<id>/export/<checkpoint>.onnx|.safetensors).")] = None,
    runs_dir: Annotated[str, typer.Option(metavar="DIR", help=_RUNS_DIR_HELP)] = "runs",
    trust_plugins: Annotated[bool, typer.Option("--trust-plugins", help=_TRUST_HELP)] = False,
) -> int:
    """Export a run's model: ONNX (raw inputs in, as with predict) or PyTorch-named safetensors weights.

    Exit code 2 when a layer has no counterpart in the format (it is named), or on bad input.
    """
    from nncli.train.export import export_run

    render_export(export_run(runs_dir, run_id, format=format_.value, checkpoint=checkpoint.value, out=out,
                             trust_plugins=trust_plugins))
    return 0


if __name__ == "__main__":
    main()
