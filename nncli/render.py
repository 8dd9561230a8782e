"""How the CLI shows things: Rich tables, the training progress display, JSON shapes.

Part of the CLI layer (the only one that uses Rich); Rich and numpy are imported inside the
functions so that ``nncli --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from nncli.gradtool import ExpressionCheck


# -- rendering helpers -------------------------------------------------------------------------------
def _num(x: Any) -> str:
    """A number as people write it: 6.0 -> '6', 59.9999999972 -> '60', 1e-20 -> '1e-20'."""
    return f"{x:.8g}" if isinstance(x, float) or (hasattr(x, "dtype") and x.dtype.kind == "f") else str(x)


def _array(a: np.ndarray) -> str:
    import numpy as np

    if a.ndim == 0:
        return _num(a[()])
    return np.array2string(a, formatter={"float_kind": _num})


def render_grad(check: ExpressionCheck) -> None:
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


def grad_json(check: ExpressionCheck) -> dict[str, Any]:
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


# -- train, check, layers ---------------------------------------------------------------------
class TrainProgress:
    """Shows training as it goes: a Rich progress bar on a terminal, one line per epoch otherwise.

    A trainer callback (``nncli.train.callbacks.Callback``'s hooks); the run it shows is passed
    to ``set_run`` before training starts.
    """

    def __init__(self, quiet: bool):
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=False, highlight=False)
        self.console.on_broken_pipe = self._broken_pipe  # Rich would exit the process: stop the run instead
        self.live = self.console.is_terminal and not quiet
        self.progress = None
        self.run_path = None
        self.changes: list[str] = []
        self.task = None

    def _print(self, trainer, line: str) -> None:
        """Print a line; a closed stdout (``nncli train ... | head``) stops the run at the next batch."""
        try:
            (self.progress.console if self.progress is not None else self.console).print(line, soft_wrap=True)
        except BrokenPipeError:
            self._stdout_closed(trainer)

    @staticmethod
    def _broken_pipe() -> None:
        raise BrokenPipeError

    def _stdout_closed(self, trainer) -> None:
        import os
        import signal
        import sys

        self.quiet, self.live = True, False
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)  # nothing more may fail on it, not even the last flush
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        self.close()
        trainer.request_stop(signal.SIGPIPE)

    def set_run(self, run) -> None:
        self.run_path, self.changes, self.init_from = run.path, list(run.changes), run.init_from

    def on_train_begin(self, trainer) -> None:
        self.epochs = trainer.epochs
        if self.quiet:
            return
        start = trainer.state.epoch
        changed = "changed for this resume: " + "; ".join(self.changes) if self.changes else None
        if start >= trainer.epochs or trainer.stop_training:
            for line in filter(None, [changed, _nothing_to_train(self.run_path, start, trainer.epochs)]):
                self._print(trainer, line)
            return
        what = "resuming" if start else "training"
        self._print(trainer, f"{what} {self.run_path} (epoch {start + 1} of {trainer.epochs})")
        if changed:
            self._print(trainer, changed)
        if self.init_from:
            source = self.init_from
            epoch = f", epoch {source['epoch']}" if source.get("epoch") is not None else ""
            extra = " and its optimizer state" if source.get("optimizer") else ""
            self._print(trainer, f"starting from the weights of run '{source['run_id']}' ({source['checkpoint']} "
                                 f"checkpoint{epoch}){extra}")
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[logs]}"), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("train", total=len(trainer.train_data), epoch="", logs="")

    def on_epoch_begin(self, trainer, epoch) -> None:
        if self.progress is not None:
            self.progress.reset(self.task, total=len(trainer.train_data), epoch=f"{epoch}/{self.epochs}", logs="")

    def on_batch_end(self, trainer, epoch, batch, logs) -> None:
        if self.progress is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "batches")
            self.progress.update(self.task, completed=batch, logs=shown)

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self.quiet:
            return
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k not in ("lr", "time_s"))
        self._print(trainer, f"epoch {epoch:>3}/{self.epochs}  {shown}  ({logs.get('time_s', 0.0):.2f}s)")

    def on_interrupt(self, trainer) -> None:
        self.close()

    def on_train_end(self, trainer, status) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            progress, self.progress = self.progress, None
            try:
                progress.stop()
            except OSError:  # the terminal is gone (SIGHUP) or stdout closed
                pass


def _nothing_to_train(path, done: int, epochs: int) -> str:
    if done >= epochs:
        return (f"{path} has trained all its {epochs} epochs: nothing to train "
                f"(--set train.epochs=N, N above {done}, trains on)")
    return (f"{path} was stopped early after epoch {done} and its early stopping still stops it: nothing to "
            "train (--set train.early_stopping.patience=N, or =null, trains on)")


def interrupt_message(stop) -> str:
    """What ``nncli train`` says when a signal (or a closed stdout) stopped the run."""
    from nncli.train.signals import signal_name

    name = signal_name(stop.signum)
    why = {"SIGINT": "SIGINT (Ctrl-C)", "SIGPIPE": "SIGPIPE (standard output was closed)"}.get(name, name)
    where = (f"saved at epoch {stop.epoch + 1}, batch {stop.batch}" if stop.batch
             else f"saved after epoch {stop.epoch}") if stop.saved else "kept at its last checkpoint"
    return f"interrupted by {why}: the run was {where}; resume with: {stop.command}"


_SPARKS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[float], width: int = 40) -> str:
    import math

    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return ""
    if len(values) > width:  # one character per bucket of epochs
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(_SPARKS[min(7, int((v - lo) / span * 7.999))] for v in values)


def render_train(result, quiet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    run = result.run.path
    if quiet:
        console.print(str(run))
        return
    history = result.trainer.history
    st = result.trainer.state
    table = Table(title=f"{result.status.replace('_', ' ')} after {st.epoch} epochs")
    table.add_column("", no_wrap=True)
    table.add_column("final", justify="right", no_wrap=True)
    best_row = next((h for h in history if h.get("epoch") == st.best_epoch), None)
    if best_row is not None:
        table.add_column(f"best (epoch {st.best_epoch})", justify="right", no_wrap=True)
    last = history[-1] if history else {}
    for key in last:
        if key in ("epoch", "time_s"):
            continue
        cells = [key, f"{last[key]:.4g}"]
        if best_row is not None:
            cells.append(f"{best_row.get(key, float('nan')):.4g}")
        table.add_row(*cells)
    curves = Table(title="loss by epoch", show_header=False, box=None)
    curves.add_column(style="bold", no_wrap=True)
    curves.add_column(no_wrap=True)
    for key in ("loss", "val_loss"):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            finite = [v for v in values if v is not None]
            curves.add_row(key, _sparkline(values, width=20))
            curves.add_row("", f"{finite[0]:.3g} -> {finite[-1]:.3g}")
    layout = Table.grid(padding=(0, 3))  # the sparklines beside the table
    layout.add_row(table, curves)
    console.print(layout)
    if result.trainer.restored_epoch is not None:
        console.print(f"weights of epoch {result.trainer.restored_epoch} put back (restore_best_weights), "
                      "in last.safetensors", soft_wrap=True)
    console.print(f"run folder: {run}")
    if (run / "loss.png").exists():
        console.print(f"loss curve: {run / 'loss.png'}")


def render_check(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"[bold]{escape(report.config_path)}[/]: valid; data {escape(report.data['source'])}, "
                  f"{report.data['train']} training / {report.data['validation']} validation samples")
    table = Table("layer", "type", "output shape", "params", "gradient check", "max error")
    checks = {c.name: c for c in report.layers}
    for row in report.rows:
        c = checks.get(row["name"])
        status = "-" if c is None else ("[green]OK[/]" if c.ok else "[red]FAIL[/]")
        error = "" if c is None else f"{c.max_error:.1e}"
        table.add_row(escape(row["name"]), row["type"], str(row["output_shape"]), f"{row['params']:,}", status, error)
    console.print(table)
    p = report.params
    console.print(f"parameters: {p.get('total', 0):,} total, {p.get('trainable', 0):,} trainable, "
                  f"{p.get('non_trainable', 0):,} non-trainable")
    console.print(f"one step: loss {report.loss:.4g}, gradient norm {report.grad_norm:.4g}")
    console.print("[green]OK[/]" if report.ok else "[red]FAIL[/]: see the table above")


def render_entries(entries, kind: str, detailed: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if detailed:
        entry = entries[0]
        singular = {"losses": "loss", "activations": "activation"}.get(kind, kind[:-1])
        console.print(f"[bold]{entry['name']}[/] ({singular}): {escape(entry['summary'])}")
        for paragraph in entry.get("description", []):
            console.print(escape(paragraph))
        if entry["aliases"]:
            console.print(f"also named: {', '.join(entry['aliases'])}")
        table = Table("parameter", "type", "default")
        for p in entry["params"]:
            table.add_row(p["name"], escape(p["type"]), escape(p["default"]))
        console.print(table)
        return
    table = Table(title=f"{len(entries)} {kind}")
    table.add_column("name", no_wrap=True)  # names are what users copy: never cut them
    table.add_column("parameters (defaults)")
    table.add_column("summary")
    for entry in entries:
        params = ", ".join(p["name"] if p["default"] == "required" else f"{p['name']}={p['default']}"
                           for p in entry["params"])
        short = [a for a in entry["aliases"] if "_" not in a and a.lower() != entry["name"].lower()][:3]
        names = entry["name"] + (f" [dim]({escape(', '.join(short))})[/]" if short else "")
        table.add_row(names, escape(params), escape(entry["summary"]))
    console.print(table)


# -- plot, runs, eval, predict ---------------------------------------------------------------
_STATUS_STYLE = {"completed": "green", "early_stopped": "green", "running": "yellow", "interrupted": "yellow",
                 "failed": "red", "crashed": "red", "unreadable": "red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _final_columns(rows: list[dict]) -> list[str]:
    """The final metrics worth a column: validation ones (else training ones), without losses and lr."""
    names = list(dict.fromkeys(k for r in rows for k in (r.get("final") or {})))
    shown = [k for k in names if k.startswith("val_") and k != "val_loss"]
    return shown or [k for k in names if k not in ("loss", "val_loss", "lr")]


def render_runs(rows: list[dict], runs_dir: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if not rows:
        console.print(f"no runs in {escape(runs_dir)}/ yet: train one with 'nncli train CONFIG'")
        return
    finals = _final_columns(rows)
    table = Table(title=f"{len(rows)} run{'s' if len(rows) != 1 else ''} in {escape(runs_dir)}/, newest first",
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, collapse_padding=True)
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("best val_loss\n(epoch)", no_wrap=True)
    for name in finals:
        table.add_column(f"final\n{name}", justify="right", no_wrap=True)
    table.add_column("train\ntime", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for r in rows:
        status = r.get("status") or "?"
        style = _STATUS_STYLE.get(status, "")
        if status == "unreadable":
            table.add_row(escape(r["run_id"]), f"[{style}]{status}[/]", *[""] * (len(finals) + 3),
                          escape(r.get("error", "")))
            continue
        best = "-" if r["best_val_loss"] is None else f"{r['best_val_loss']:.4g} ({r['best_val_loss_epoch']})"
        final = r.get("final") or {}
        values = ["-" if final.get(k) is None else f"{final[k]:.4g}" for k in finals]
        created = (r.get("created") or "")[:16].replace("T", " ")
        epochs = f"{r['epochs_done']}/{r['epochs']}" + (" (resumed)" if r.get("resumed") else "")
        table.add_row(escape(r["run_id"]), f"[{style}]{status.replace('_', ' ')}[/]" if style else escape(status),
                      epochs, best, *values, _duration(r.get("duration_s")), created)
    width = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    if width > console.width:  # never cut a run id or a number: let a narrow terminal wrap the lines
        console = Console(highlight=False, width=width)
    console.print(table)


def render_eval(result: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    epoch = f" (epoch {result['epoch']})" if result.get("epoch") is not None else ""
    console.print(f"run [bold]{escape(result['run_id'])}[/], {result['checkpoint']} checkpoint{epoch}")
    console.print(f"data: {escape(result['data'])} ({result['samples']:,} samples)")
    table = Table("metric", "value", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, value in result["metrics"].items():
        table.add_row(name, "nan" if value is None else f"{value:.6g}")
    console.print(table)


# -- config -----------------------------------------------------------------------------------
def _yaml_value(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text[:-3].rstrip() if text.endswith("\n...") or text.endswith("...") else text


def _config_lines(explained) -> list[tuple[str, str | None]]:
    """``(yaml line, origin or None)`` for each entry, nested as in the file, list items with '- '."""
    lines: list[tuple[str, str | None]] = []
    opened: set[tuple] = set()
    for entry in explained.entries:
        path = entry.path
        for depth in range(len(path)):
            prefix, part = path[: depth + 1], path[depth]
            last = depth == len(path) - 1
            if not last and prefix in opened:
                continue
            indent = "  " * depth  # two spaces a level; a list item's keys sit after its "- "
            if isinstance(part, int):
                opened.add(prefix)
                continue  # the item's first key carries the "- "
            item_start = depth > 0 and isinstance(path[depth - 1], int) and not any(
                k[: depth] == path[:depth] for k in opened if len(k) == depth + 1)
            shown_indent = indent[:-2] + "- " if item_start else indent
            line = f"{shown_indent}{part}:" + (f" {_yaml_value(entry.value)}" if last else "")
            lines.append((line, entry.origin if last else None))
            opened.add(prefix)
    return lines


def render_config(explained) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    files = explained.files
    bases = f" with its base files {', '.join(files[:-1])}" if len(files) > 1 else ""
    console.print(f"[dim]# {escape(files[-1] if files else 'the config')}{escape(bases)}, resolved: the source "
                  "of each value on its right[/]", soft_wrap=True)
    lines = _config_lines(explained)
    width = min(max((len(text) for text, origin in lines if origin), default=0) + 2, 56)
    for text, origin in lines:
        if origin is None:
            console.print(escape(text))
        else:
            console.print(f"{escape(text.ljust(width))}[dim]# {escape(origin)}[/]", soft_wrap=True)


def render_schema(rows: list[dict]) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    console = Console(highlight=False)
    fixed = max(len(row["key"]) for row in rows) + max(len(row["type"]) for row in rows) + 16
    if console.width < fixed + 40:  # a table would leave the descriptions no room: a key, then its meaning
        for row in rows:
            default = "required" if row["default"] == "required" else f"default {row['default']}"
            console.print(f"[bold]{escape(row['key'])}[/]  {escape(row['type'])}; {escape(default)}", soft_wrap=True)
            console.print(Padding(escape(row["description"]), (0, 0, 0, 4)))
    else:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("key", "type", "default"):
            table.add_column(name, no_wrap=True)
        table.add_column("description")
        for row in rows:
            table.add_row(escape(row["key"]), escape(row["type"]), escape(row["default"]), escape(row["description"]))
        console.print(table)
    console.print("Components (model.layers[i], model, loss, optimizer, optimizer.learning_rate) take the "
                  "parameters of their class: nncli layers NAME --kind layers|models|losses|optimizers|schedules")
