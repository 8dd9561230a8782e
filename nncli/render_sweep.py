"""How the CLI shows a sweep: progress while it runs, the table of trials at the end, its JSON.

Part of the CLI layer (Rich is imported inside the functions, so ``nncli --help`` stays fast).
On a terminal the progress is a live status line under the trials' lines; otherwise each start
and end is one plain line (what a log file or a test reads).
"""

from __future__ import annotations

from typing import Any

from nncli.sweep.runner import Reporter

__all__ = ["SweepProgress", "render_sweep", "sweep_json"]


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _overrides(values: dict[str, Any]) -> str:
    """``key=value`` pairs as people read them (a drawn float with 4 digits; sweep.json keeps it whole)."""
    return " ".join(f"{k}={_cell(v)}" for k, v in values.items())


def _summary(record) -> str:
    counts = record.counts()
    done = counts.get("completed", 0) + counts.get("early_stopped", 0)
    best = record.best_trial()
    shown = f", best {record.monitor} {_value(best.best.value)} (trial {best.trial})" if best else ""
    return (f"{done}/{record.count} done, {counts.get('running', 0)} running, {counts.get('failed', 0)} failed"
            f"{shown}")


class SweepProgress(Reporter):
    """A :class:`~nncli.sweep.runner.Reporter` that prints to the terminal (stderr with ``--json``)."""

    def __init__(self, stderr: bool = False):
        from rich.console import Console

        self.console = Console(stderr=stderr, highlight=False, soft_wrap=True)
        self.live = None

    def _line(self, text: str) -> None:
        from rich.markup import escape

        self.console.print(escape(text))

    def _status(self, record) -> None:
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(_summary(record), style="bold"))

    def sweep_started(self, record, folder, executor, resumed) -> None:
        where = (f"{executor['workers']} at a time on this machine, {executor['threads']} BLAS thread"
                 f"{'s' if executor['threads'] != 1 else ''} each" if executor["kind"] == "local"
                 else f"on the Dask cluster at {executor['address']}")
        verb = "resuming" if resumed else "sweep"
        todo = sum(t.status not in ("completed", "early_stopped", "failed") for t in record.trials)
        self._line(f"{verb} {record.sweep_id}: {record.count} trials ({record.method}), {todo} to run, {where}")
        self._line(f"record: {folder.record_path}")
        if self.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self.live = Live(Text(_summary(record)), console=self.console, transient=True, refresh_per_second=4)
            self.live.start()

    def trial_started(self, record, trial) -> None:
        attempt = trial.attempts[-1]
        how = " (resumed)" if attempt.resumed else ""
        where = "" if attempt.worker == "local" else f" on {attempt.worker}"
        self._line(f"trial {trial.trial} started{where}{how}: {_overrides(trial.overrides)}")
        self._status(record)

    def trial_ended(self, record, trial) -> None:
        if trial.status == "failed":
            text = f"trial {trial.trial} failed: {(trial.error or '').splitlines()[0] if trial.error else ''}"
        else:
            best = trial.best
            value = "" if best is None or best.value is None else \
                f" {best.monitor} {_value(best.value)} (epoch {best.epoch})"
            text = f"trial {trial.trial} {trial.status.replace('_', ' ')}{value}"
        self._line(f"{text}  [{_summary(record)}]")
        self._status(record)

    def trial_retried(self, record, trial, reason) -> None:
        self._line(f"trial {trial.trial}: {reason}; it runs again")

    def stopping(self, record, signum, level) -> None:
        import signal

        name = signal.Signals(signum).name if signum else "a signal"
        self._line(f"{name}: running trials save and stop" if level == 1 else f"{name} again: stopping now")

    def tick(self, record) -> None:
        self._status(record)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def render_sweep(result) -> None:
    """The trials best first (by the monitored value), failed ones last with why, and where to look."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    record, console = result.record, Console(highlight=False, soft_wrap=True)
    keys = list(dict.fromkeys(k for t in record.trials for k in t.overrides))
    arrow = "lower" if record.mode == "min" else "higher"
    table = Table(title=f"sweep {escape(record.sweep_id)}: {len(record.trials)} trials by best {record.monitor} "
                        f"({arrow} is better)", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("trial", justify="right", no_wrap=True)
    for key in keys:
        table.add_column(escape(key), no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column(f"best {record.monitor}\n(epoch)", justify="right", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("run", no_wrap=True)
    for t in record.ranked():
        best = t.best
        value = "-" if best is None or best.value is None else f"{best.value:.4g} ({best.epoch})"
        style = {"failed": "red", "interrupted": "yellow", "running": "yellow", "pending": "dim"}.get(t.status, "")
        status = t.status.replace("_", " ")
        cells = [str(t.trial), *[escape(_cell(t.overrides.get(k))) for k in keys],
                 f"[{style}]{status}[/]" if style else status, value, str(len(t.attempts)), escape(t.run_id)]
        table.add_row(*cells)
    _print_whole(console, table)
    failed = [t for t in record.trials if t.status == "failed"]
    for t in failed:
        console.print(f"[red]trial {t.trial} failed[/]: {escape(t.error or 'no message')}")
    best = record.best_trial()
    if best is not None:
        console.print(f"best: trial {best.trial} ({escape(_overrides(best.overrides))}), run {escape(best.run_id)}, "
                      f"{record.monitor} {best.best.value:.4g} at epoch {best.best.epoch}")
    console.print(f"record: {escape(str(result.folder.record_path))}")
    if result.signum is not None:
        console.print(f"interrupted: continue with nncli sweep --resume {escape(record.sweep_id)}"
                      + ("" if record.runs_dir == "runs" else f" --runs-dir {escape(record.runs_dir)}"))
    else:
        console.print(f"curves: nncli plot {escape(record.sweep_id)}"
                      + ("" if record.runs_dir == "runs" else f" --runs-dir {escape(record.runs_dir)}"))


def _print_whole(console, table) -> None:
    """Print ``table`` without cutting a cell: wider than the terminal, its lines wrap instead."""
    from rich.console import Console
    from rich.measure import Measurement

    width = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    (Console(highlight=False, width=width) if width > console.width else console).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    from nncli.sweep.space import yaml_flow

    return yaml_flow(value)


def sweep_json(result) -> dict:
    """``{"sweep_id", "trials": [{"trial", "run_id", "overrides", "status", "best": {"monitor", "value"}}]}``."""
    record = result.record
    return {"sweep_id": record.sweep_id,
            "trials": [{"trial": t.trial, "run_id": t.run_id, "overrides": t.overrides, "status": t.status,
                        "best": {"monitor": t.best.monitor if t.best else record.monitor,
                                 "value": t.best.value if t.best else None}} for t in record.trials]}
