"""Training curves of one run, or several runs overlaid and labelled by what differs in their configs.

    plot_runs(["runs/quickstart-20260101-120000"])          # -> runs/quickstart-.../loss.png
    plot_run_ids("runs", ["a", "b"], out="compare.svg")     # two runs on the same axes

matplotlib is imported only in this module, and only its object API is used (``Figure`` with
the Agg canvas, never pyplot): nothing global changes and no window ever opens.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from nncli.errors import NncliError, RunError
from nncli.train.runs import RunFolder, atomic_write, resolve_run

FORMATS = ("png", "svg", "pdf")
DPI = 120
PANEL_WIDTH, PANEL_HEIGHT = 10.0, 4.0  # inches per row of panels (two panels share a row)
NOT_CURVES = ("epoch", "lr", "time_s")
MAX_DIFFS = 3  # config differences shown in a label


@dataclass
class RunCurves:
    """What a plot needs from one run folder."""

    run_id: str
    columns: dict[str, np.ndarray]  # metrics.csv column -> float64 values (NaN where empty)
    info: dict  # run.json
    config: dict  # config.yaml as plain data

    @property
    def epochs(self) -> np.ndarray:
        return self.columns["epoch"]


def load_curves(path: str | Path) -> RunCurves:
    """Read a run folder's metrics.csv, run.json and config.yaml (a RunError when there is nothing to plot)."""
    run = RunFolder(Path(path))
    if not (run.path / "run.json").is_file():
        raise RunError(f"{run.path} is not a run folder: it has no run.json")
    info, rows = run.read_json(), run.read_metrics()
    if not rows:
        raise RunError(f"run '{run.run_id}' has no epochs to plot yet: {run.path / 'metrics.csv'} is empty")
    columns = {name: np.array([_float(r.get(name)) for r in rows], dtype=np.float64) for name in rows[0]}
    if "epoch" not in columns or "loss" not in columns:
        raise RunError(f"{run.path / 'metrics.csv'} has no epoch and loss columns; found {', '.join(columns)}")
    try:
        config = yaml.safe_load((run.path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    return RunCurves(run.run_id, columns, info, config if isinstance(config, dict) else {})


def _float(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


# -- labels from config differences ---------------------------------------------------
def flatten_config(data, prefix: str = "") -> dict[str, object]:
    """Dotted keys for every leaf: ``{"optimizer.learning_rate": 0.01, "model.layers[0].units": 128}``.

    Lists of plain values (``input_shape: [64]``) stay one leaf.

    Example:
        >>> flatten_config({"optimizer": {"type": "Adam", "learning_rate": 0.01}})
        {'optimizer.type': 'Adam', 'optimizer.learning_rate': 0.01}
    """
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and any(isinstance(v, (dict, list)) for v in data):
        out = {}
        for i, value in enumerate(data):
            out.update(flatten_config(value, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def diff_labels(configs: list[dict], fallback: list[str]) -> list[str]:
    """One label per config: the ``key=value`` pairs where it differs from the others.

    Identical configs (or labels that would repeat) fall back to ``fallback`` (the run ids).

    Example:
        >>> diff_labels([{"lr": 0.1, "seed": 0}, {"lr": 0.01, "seed": 0}], ["a", "b"])
        ['lr=0.1', 'lr=0.01']
    """
    flat = [flatten_config(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))  # first-seen order: the config's order
    missing = object()
    differing = [k for k in keys if len({repr(f.get(k, missing)) for f in flat}) > 1]
    labels = []
    for f, name in zip(flat, fallback):
        parts = [f"{k}={_show(f[k]) if k in f else '(unset)'}" for k in differing[:MAX_DIFFS]]
        if len(differing) > MAX_DIFFS:
            parts.append(f"+{len(differing) - MAX_DIFFS} more")
        labels.append(", ".join(parts) or name)
    if len(set(labels)) < len(labels):
        labels = [label if label == name else f"{label} ({name})" for label, name in zip(labels, fallback)]
    return labels


# -- curves ---------------------------------------------------------------------------
def moving_average(y: np.ndarray, n: int) -> np.ndarray:
    """Trailing mean over ``n`` points (fewer at the start), skipping NaNs, which stay NaN.

    Example:
        >>> moving_average(np.array([1.0, 3.0, 5.0]), 2).tolist()
        [1.0, 2.0, 4.0]
    """
    if n <= 1 or not y.size:
        return y
    ok = np.isfinite(y)
    sums, counts = np.cumsum(np.where(ok, y, 0.0)), np.cumsum(ok)
    k = max(y.size - n, 0)  # windows ending at index >= n drop what came before them
    sums = sums - np.concatenate([np.zeros(y.size - k), sums[:k]])
    counts = counts - np.concatenate([np.zeros(y.size - k, dtype=counts.dtype), counts[:k]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (counts > 0), sums / np.maximum(counts, 1), np.nan)


def metric_names(runs: list[RunCurves]) -> list[str]:
    """Panels: ``loss``, each metric (``accuracy`` covers ``val_accuracy``), ``lr`` when it varies."""
    names = ["loss"]
    for run in runs:
        for col in run.columns:
            base = col[4:] if col.startswith("val_") else col
            if base not in NOT_CURVES and base not in names:
                names.append(base)
    if any(np.unique(r.columns["lr"][np.isfinite(r.columns["lr"])]).size > 1 for r in runs if "lr" in r.columns):
        names.append("lr")  # a learning-rate schedule: show it
    return names


def _panels(runs: list[RunCurves], metric: str | None) -> list[str]:
    names = metric_names(runs)
    if metric is None:
        return names
    base = metric[4:] if metric.startswith("val_") else metric
    if base not in names:
        raise NncliError(f"no metric '{metric}' in {'this run' if len(runs) == 1 else 'these runs'}: "
                         f"expected one of {', '.join(names)}")
    return [base]


def make_figure(runs: list[RunCurves], metric: str | None = None, log_y: bool = False, smooth: int = 1):
    """The matplotlib Figure of :func:`plot_runs`; one Axes per panel (``fig.axes``).

    One run: per panel a train line, a validation line (when recorded) and a vertical line at
    the best epoch; the panel of the monitored value also gets a marker on the best point.
    Several runs: per panel and run a train line, a validation line and a best-epoch marker,
    one colour per run, labelled by config differences in one legend below the panels.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise NncliError(f"--smooth must be a whole number of epochs >= 1, found {smooth!r}")
    panels = _panels(runs, metric)
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    many = len(runs) > 1
    labels = diff_labels([r.config for r in runs], [r.run_id for r in runs]) if many else [runs[0].run_id]
    legend_rows = math.ceil(len(runs) / _legend_columns(labels)) if many else 0
    fig = Figure(figsize=(PANEL_WIDTH, PANEL_HEIGHT * nrows + 0.25 * legend_rows),
                 dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, name in zip(axes, panels):
        for run, color, label in zip(runs, colors, labels):
            _draw_run(ax, run, name, color, label if many else None, smooth, many)
        ax.set_title(_panel_title(runs[0], name, smooth))
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate" if name == "lr" else name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if log_y:
            ax.set_yscale("log")
        if not many:
            ax.legend(loc="best", fontsize="small")
    if many:
        styles = [Line2D([], [], color="0.3", ls="-", label="train"),
                  Line2D([], [], color="0.3", ls="--", label="validation"),
                  Line2D([], [], color="0.3", ls="", marker="o", label="best epoch")]
        axes[0].legend(handles=styles, loc="best", fontsize="small")
        handles = [Line2D([], [], color=c, lw=2, label=lab) for c, lab in zip(colors, labels)]
        fig.legend(handles=handles, loc="outside lower center", fontsize="small", frameon=False,
                   ncols=_legend_columns(labels))
        sources = {str((r.info.get("data") or {}).get("source")) for r in runs}
        where = f" on {sources.pop()}" if len(sources) == 1 and "None" not in sources else ""
        fig.suptitle(f"{len(runs)} runs{where}, labelled by what differs in their configs")
    else:
        fig.suptitle(_run_title(runs[0]))
    return fig


def _legend_columns(labels: list[str]) -> int:
    """All labels in one row when they fit across the figure, else two columns (one when long)."""
    if sum(map(len, labels)) + 8 * len(labels) <= 140:
        return len(labels)
    return 1 if max(map(len, labels)) > 45 else 2


def _draw_run(ax, run: RunCurves, name: str, color: str, label: str | None, smooth: int, many: bool) -> None:
    x = run.epochs
    best = run.info.get("best") or {}
    monitor, best_epoch = best.get("monitor"), best.get("epoch")
    for col, style, part in ((name, "-", "train"), (f"val_{name}", "--", "validation")):
        if col not in run.columns or not np.isfinite(run.columns[col]).any():
            continue
        y = moving_average(run.columns[col], smooth)
        line_label = (label if part == "train" else None) if many else part
        ax.plot(x, y, ls=style, color=color, lw=1.8, label=line_label, gid="curve")
        if many and best_epoch is not None and col == (f"val_{name}" if f"val_{name}" in run.columns else name):
            hit = np.flatnonzero(x == best_epoch)
            if hit.size:
                ax.plot([best_epoch], [y[hit[0]]], marker="o", color=color, ms=6, ls="", gid="best")
    if many or best_epoch is None:
        return
    value = best.get("value")
    ax.axvline(best_epoch, color="0.4", ls=":", lw=1.2, gid="best",
               label=f"best epoch {best_epoch}" + (f" ({monitor} {value:.4g})" if value is not None else ""))
    if monitor in (name, f"val_{name}") and value is not None:
        ax.plot([best_epoch], [value], marker="o", color="C3", ms=7, ls="", gid="best")


def _panel_title(run: RunCurves, name: str, smooth: int) -> str:
    title = "learning rate" if name == "lr" else name
    if name == "loss":
        loss = run.config.get("loss")
        kind = loss.get("type") if isinstance(loss, dict) else loss
        title = f"loss ({kind})" if kind else "loss"
    return title + (f", moving average of {smooth} epochs" if smooth > 1 else "")


def _run_title(run: RunCurves) -> str:
    info = run.info
    title = f"{run.run_id}: {info.get('status', '?')}, {info.get('epochs_done', '?')}/{info.get('epochs', '?')} epochs"
    best = info.get("best") or {}
    if best.get("epoch") is not None and best.get("value") is not None:
        title += f"; best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}"
    return title


# -- files ----------------------------------------------------------------------------
def _format(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise NncliError(f"cannot write '{out}': expected a file name ending in "
                         f"{', '.join('.' + f for f in FORMATS)}, found '{out.suffix or '(no extension)'}'")
    return fmt


def default_out(run_paths: list[Path]) -> Path:
    """``<run>/loss.png`` for one run; ``<runs_dir>/compare-<id>_vs_<id>....png`` for several."""
    if len(run_paths) == 1:
        return run_paths[0] / "loss.png"
    ids = [p.name for p in run_paths]
    stem = "_vs_".join(ids)
    if len(stem) > 120:
        stem = f"{ids[0]}_and_{len(ids) - 1}_more"
    return run_paths[0].parent / f"compare-{stem}.png"


def plot_runs(run_paths, out=None, metric: str | None = None, log_y: bool = False, smooth: int = 1) -> Path:
    """Draw the curves of one or more run folders into a PNG, SVG or PDF file; returns its path.

    Args:
        run_paths: run folders (one: its own panels; several: overlaid).
        out: the file to write, format by extension; default :func:`default_out`.
        metric: one panel only (``loss``, ``accuracy``, ``val_accuracy``...).
        log_y: logarithmic y axes.
        smooth: moving average over this many epochs (1: raw values).

    Example:
        >>> plot_runs(["runs/quickstart-20260101-120000"], out="curves.svg")   # doctest: +SKIP
        PosixPath('curves.svg')
    """
    paths = [Path(p) for p in run_paths]
    if not paths:
        raise NncliError("nothing to plot: give at least one run")
    out = Path(out) if out is not None else default_out(paths)
    fmt = _format(out)
    fig = make_figure([load_curves(p) for p in paths], metric=metric, log_y=log_y, smooth=smooth)
    buffer = io.BytesIO()
    metadata = {"png": {"Software": "nncli"}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, buffer.getvalue())
        os.chmod(out, 0o644)  # an image to share, not a private temporary file
    except OSError as err:
        raise NncliError(f"cannot write '{out}': {err.strerror or err}") from None
    return out


def plot_run_ids(runs_dir, run_ids: list[str], out=None, metric: str | None = None, log_y: bool = False,
                 smooth: int = 1) -> Path:
    """:func:`plot_runs` for run ids (``latest`` too) in ``runs_dir``; what ``nncli plot`` calls.

    Example:
        >>> plot_run_ids("runs", ["latest"])                       # doctest: +SKIP
        PosixPath('runs/quickstart-20260101-120000/loss.png')
    """
    paths = list(dict.fromkeys(resolve_run(runs_dir, run_id) for run_id in run_ids))
    return plot_runs(paths, out=out, metric=metric, log_y=log_y, smooth=smooth)
