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
import textwrap
from pathlib import Path

import numpy as np

from nncli.errors import NncliError
from nncli.train.curves import (NOT_CURVES, RunCurves, diff_table, flatten_config, load_curves, metric_names,
                                moving_average, natural_key)
from nncli.train.runs import atomic_write, resolve_run

__all__ = ["make_figure", "plot_runs", "plot_run_ids", "default_out", "load_curves", "flatten_config",
           "diff_table", "moving_average", "RunCurves", "DPI", "PANEL_WIDTH", "PANEL_HEIGHT"]

FORMATS = ("png", "svg", "pdf")
DPI = 120
PANEL_WIDTH, PANEL_HEIGHT = 10.0, 4.0  # inches per row of panels (two panels share a row)
DIVERGED = 20.0  # a curve rising above this many times the typical starting value is clipped
TABLE_FONT = 8  # points; a character is about 0.6 of that wide
KEY_COLUMNS = 4  # more differing keys than this (and than runs): one row per key, one column per run


def _panels(runs: list[RunCurves], metric: str | None) -> list[tuple[str, str | None]]:
    """``(name, loss kind)`` per panel: one loss panel per kind of loss, as their scales differ."""
    names = metric_names(runs)
    if metric is not None:
        base = metric[4:] if metric.startswith("val_") else metric
        if base not in names:
            raise NncliError(f"no metric '{metric}' in {'this run' if len(runs) == 1 else 'these runs'}: "
                             f"expected one of {', '.join(names)}")
        names = [base]
    kinds = list(dict.fromkeys(_loss_kind(run) for run in runs))
    panels = []
    for name in names:
        panels += [(name, kind) for kind in kinds] if name == "loss" and len(kinds) > 1 else [(name, None)]
    return panels


def _loss_kind(run: RunCurves) -> str | None:
    loss = run.config.get("loss")
    return loss.get("type") if isinstance(loss, dict) else loss


def make_figure(runs: list[RunCurves], metric: str | None = None, log_y: bool = False, smooth: int = 1):
    """The matplotlib Figure of :func:`plot_runs`; one Axes per panel (``fig.axes``, the table's last).

    One run: per panel a train line, a validation line (when recorded) and a vertical line at
    the best epoch; the panel of the monitored value also gets a marker on the best point.
    Several runs (drawn in natural order of their ids): per panel and run a train line, a
    validation line and a best-epoch marker, one colour per run; a table under the panels gives
    each run's colour and the value of every config key that differs between the runs (a row per
    key when there are many), and runs trained on different losses get one loss panel per kind,
    as their scales differ. In either
    case a failed run ends with an x, a curve of one epoch is a marker, ``log_y`` applies to loss
    panels, and a curve that diverges is clipped with a note instead of flattening the others.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise NncliError(f"--smooth must be a whole number of epochs >= 1, found {smooth!r}")
    runs = sorted(runs, key=lambda r: natural_key(r.run_id))
    panels = _panels(runs, metric)
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    many = len(runs) > 1
    keys, values = diff_table([r.config for r in runs]) if many else ([], [])
    colors = [f"C{i % 10}" for i in range(len(runs))]
    table = _table_text(runs, keys, values, colors) if many else None
    table_height = 0.22 * sum(max(cell.count("\n") + 1 for cell in row) for row in table[0]) + 0.3 if many else 0
    fig = Figure(figsize=(PANEL_WIDTH, PANEL_HEIGHT * nrows + table_height), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(nrows + many, ncols, height_ratios=[PANEL_HEIGHT] * nrows + ([table_height] if many else []))
    axes = [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(len(panels))]
    for ax, (name, kind) in zip(axes, panels):
        members = [(run, color) for run, color in zip(runs, colors) if kind is None or _loss_kind(run) == kind]
        drawn = [_draw_run(ax, run, name, color, smooth, many) for run, color in members]
        if name != "lr":
            _clip_diverged(ax, [c for curves in drawn for c in curves], log_y and name == "loss", _minimised(name))
        ax.set_title(_panel_title([run for run, _ in members], name, smooth))
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate" if name == "lr" else name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        first, last = min(r.epochs.min() for r in runs), max(r.epochs.max() for r in runs)
        if last - first < 2:  # one or two epochs: whole-epoch ticks, not 0.945 ... 1.05
            ax.set_xlim(first - 0.5, last + 0.5)
        ax.grid(True, alpha=0.3)
        if log_y and name == "loss":
            ax.set_yscale("log")
        if not many:
            ax.legend(loc="best", fontsize="small")
    if many:
        styles = [Line2D([], [], color="0.3", ls="-", label="train"),
                  Line2D([], [], color="0.3", ls="--", label="validation"),
                  Line2D([], [], color="0.3", ls="", marker="o", label="best epoch")]
        if any(r.info.get("status") == "failed" for r in runs):
            styles.append(Line2D([], [], color="0.3", ls="", marker="x", label="failed"))
        axes[0].legend(handles=styles, loc="best", fontsize="small")
        _draw_table(fig.add_subplot(grid[nrows, :]), *table, table_height)
        sources = {str((r.info.get("data") or {}).get("source")) for r in runs}
        where = f" on {sources.pop()}" if len(sources) == 1 and "None" not in sources else ""
        what = "what differs in their configs" if keys else "their ids (their configs are the same)"
        fig.suptitle(f"{len(runs)} runs{where}, by {what}")
    else:
        fig.suptitle(_run_title(runs[0]))
    return fig


def _minimised(name: str) -> bool:
    """A panel of a value that diverges upwards: the loss, or a metric that is minimised (mse, mae)."""
    from nncli.nn import registry

    if name == "loss":
        return True
    metric = registry.lookup("metrics", name) if name not in NOT_CURVES else None
    return metric is not None and not getattr(metric, "maximize", True)


def _wrap(text: str, width: float) -> str:
    """``text`` in lines that fit a column ``width`` (a share of the figure's width) wide."""
    chars = max(6, int(width * PANEL_WIDTH * 72 / (0.6 * TABLE_FONT)) - 2)
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def _table_text(runs: list[RunCurves], keys: list[str], values: list[list[str]], colors: list[str]):
    """``(rows, column widths, {(row, column): colour})`` of the config-difference table.

    One row per run and one column per key while the keys fit across (the usual comparison of a
    few settings); with more keys than that and than runs, one row per key and one column per
    run instead, so that no cell is narrower than its text.
    """
    labels = [r.run_id + (" (failed)" if r.info.get("status") == "failed" else "") for r in runs]
    if len(keys) <= max(KEY_COLUMNS, len(runs)):
        widths = [0.03, *([0.97 / (len(keys) + 1)] * (len(keys) + 1))]
        rows = [["", "run", *keys], *(["━━", label, *v] for label, v in zip(labels, values))]
        marked = {(row, col): colors[row - 1] for row in range(1, len(runs) + 1) for col in (0, 1)}
    else:
        widths = [0.34, *([0.66 / len(runs)] * len(runs))]
        rows = [["key", *labels], *([key, *(v[i] for v in values)] for i, key in enumerate(keys))]
        marked = {(0, col): colors[col - 1] for col in range(1, len(runs) + 1)}
    rows = [[_wrap(cell, widths[col]) for col, cell in enumerate(row)] for row in rows]
    return rows, widths, marked


def _draw_table(ax, rows: list[list[str]], widths: list[float], marked: dict, height: float) -> None:
    ax.axis("off")
    table = ax.table(cellText=rows[1:], colLabels=rows[0], loc="upper center", cellLoc="left",
                     colLoc="left", edges="horizontal")
    table.auto_set_font_size(False)
    table.set_fontsize(TABLE_FONT)
    for (row, col), cell in table.get_celld().items():
        cell.set_width(widths[col])
        lines = max(c.count("\n") + 1 for c in rows[row])
        cell.set_height(0.22 * lines / height)
        if (row, col) in marked:
            cell.get_text().set_color(marked[row, col])
        if (row, col) in marked or row == 0:
            cell.get_text().set_fontweight("bold")
    ax.set_gid("table")


def _draw_run(ax, run: RunCurves, name: str, color: str, smooth: int, many: bool) -> list[tuple]:
    """Draw one run's curves of a panel; ``[(line, x, y, label)]`` of what was drawn."""
    x = run.epochs
    best = run.info.get("best") or {}
    monitor, best_epoch = best.get("monitor"), best.get("epoch")
    failed = run.info.get("status") == "failed"
    drawn = []
    for col, style, part in ((name, "-", "train"), (f"val_{name}", "--", "validation")):
        if col not in run.columns or not np.isfinite(run.columns[col]).any():
            continue
        y = moving_average(run.columns[col], smooth)
        finite = np.isfinite(y)
        marker = "o" if finite.sum() == 1 else None  # one epoch: a point, not an invisible line
        (line,) = ax.plot(x, y, ls=style, color=color, lw=1.8, marker=marker, ms=5,
                          label=None if many else part, gid="curve")
        drawn.append((line, x, y, run.run_id))
        if failed:
            last = np.flatnonzero(finite)[-1]
            ax.plot([x[last]], [y[last]], marker="x", color=color, ms=9, mew=2, ls="", gid="failed")
        if many and best_epoch is not None and col == (f"val_{name}" if f"val_{name}" in run.columns else name):
            hit = np.flatnonzero(x == best_epoch)
            if hit.size:
                ax.plot([best_epoch], [y[hit[0]]], marker="o", color=color, ms=6, ls="", gid="best")
    if many or best_epoch is None:
        return drawn
    value = best.get("value")
    ax.axvline(best_epoch, color="0.4", ls=":", lw=1.2, gid="best",
               label=f"best epoch {best_epoch}" + (f" ({monitor} {value:.4g})" if value is not None else ""))
    if monitor in (name, f"val_{name}") and value is not None:
        ax.plot([best_epoch], [value], marker="o", color="C3", ms=7, ls="", gid="best")
    return drawn


def _clip_diverged(ax, drawn: list[tuple], log: bool, upward: bool = True) -> None:
    """Keep a diverging curve from flattening the others: clip the y axis beyond the rest, with a note.

    A curve diverges when it goes beyond DIVERGED times the typical starting value (the lower
    median of the curves' first values): upwards for a loss or an error, downwards (below minus
    that, the typical value being at least 1) for a metric that is maximised, such as r2. The axis
    then ends a little beyond everything else.
    """
    if not upward:  # the same rule on the mirrored values; log axes are for losses only
        mirrored = [(line, x, -y, run_id) for line, x, y, run_id in drawn]
        _clip_diverged(_Mirror(ax), mirrored, False, True)
        return
    firsts = sorted(y[np.isfinite(y)][0] for _, _, y, _ in drawn if np.isfinite(y).any())
    if not firsts:
        return
    typical = abs(firsts[(len(firsts) - 1) // 2]) or 1.0
    if isinstance(ax, _Mirror):
        typical = max(typical, 1.0)
    tops = [(np.nanmax(y), line, x, y, run_id) for line, x, y, run_id in drawn if np.isfinite(y).any()]
    diverged = [t for t in tops if t[0] > DIVERGED * typical]
    if not diverged:
        return
    rest = [t for t in tops if t[0] <= DIVERGED * typical]
    top = max([t[0] for t in rest] + [typical])
    bottom = min([np.nanmin(t[3]) for t in rest] + [min(firsts)])
    if log and bottom > 0:
        ax.set_ylim(bottom / 1.5, top * 1.5)
    else:
        pad = 0.08 * ((top - bottom) or abs(top) or 1.0)
        ax.set_ylim(bottom - pad, top + pad)
    limit = ax.get_ylim()[1]
    peaks: dict[str, float] = {}
    for peak, line, x, y, run_id in diverged:
        out = np.flatnonzero(np.isfinite(y) & (y > limit))
        if out.size:
            ax.plot([x[out[0]]], [limit], marker="^", color=line.get_color(), ms=8, ls="", clip_on=False, gid="clipped")
        peaks[run_id] = max(peak, peaks.get(run_id, peak))
    notes = [f"{run_id} clipped: rises to {peak:.3g}" for run_id, peak in peaks.items()]
    ax.text(0.99, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top",
            fontsize="small", color="0.25", gid="clip-note",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})


class _Mirror:
    """An Axes seen upside down: what _clip_diverged does upwards, it does downwards."""

    def __init__(self, ax):
        self.ax, self.transAxes = ax, ax.transAxes

    def set_ylim(self, bottom, top):
        self.ax.set_ylim(-top, -bottom)

    def get_ylim(self):
        low, high = self.ax.get_ylim()
        return -high, -low

    def plot(self, x, y, **kwargs):
        kwargs["marker"] = "v" if kwargs.get("marker") == "^" else kwargs.get("marker")
        return self.ax.plot(x, [-v for v in y], **kwargs)

    def text(self, x, y, text, **kwargs):
        return self.ax.text(x, 1 - y, text.replace("rises to ", "falls to -"), **{**kwargs, "va": "bottom"})


def _panel_title(runs: list[RunCurves], name: str, smooth: int) -> str:
    title = "learning rate" if name == "lr" else name
    if name == "loss":
        kinds = []
        for run in runs:
            loss = run.config.get("loss")
            kind = loss.get("type") if isinstance(loss, dict) else loss
            if kind and kind not in kinds:
                kinds.append(kind)
        title = f"loss ({' | '.join(kinds)})" if kinds else "loss"
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
