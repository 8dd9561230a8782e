"""A sweep's trials in one figure: their curves overlaid (the best ``k`` in colour), and their best values.

    plot_sweep("runs", "quickstart-sweep-20261201-101500")       # -> runs/<sweep-id>/sweep.png
    plot_sweep("runs", "latest", metric="val_accuracy", best=5, out="sweep.svg")

Left: the monitored value (or ``metric``) by epoch for every trial that has epochs, the best
``k`` trials by the sweep's monitored value drawn in colour with a marker at their best epoch,
the others thin and grey, failed ones dashed. Right: each trial's best value, best first.
matplotlib's object API only (no pyplot), as in :mod:`nncli.train.plot`.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from nncli.errors import NncliError, RunError
from nncli.sweep.record import ENDED, SweepRecord, resolve_sweep
from nncli.sweep.space import override_text
from nncli.train.plot import DPI, FORMATS, load_curves
from nncli.train.runs import atomic_write

__all__ = ["plot_sweep", "make_sweep_figure"]

MAX_BARS = 25  # trials listed in the right panel
_GREY = "0.7"


def _label(t, record: SweepRecord, values: bool = True) -> str:
    text = f"trial {t.trial}: " + " ".join(override_text(k, v if not isinstance(v, float) else float(f"{v:.4g}"))
                                          for k, v in t.overrides.items())
    if values and t.best is not None and t.best.value is not None:
        text += f" ({record.monitor} {t.best.value:.4g})"
    return text


def make_sweep_figure(record: SweepRecord, runs: Path, metric: str | None = None, best: int = 3,
                      log_y: bool = False):
    """The matplotlib Figure of :func:`plot_sweep` (``fig.axes``: curves, then best values)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if best < 0:
        raise NncliError(f"--best must be 0 or more trials to highlight, found {best}")
    name = metric or record.monitor
    ranked = record.ranked()
    top = [t for t in ranked if t.status in ENDED and t.best is not None and t.best.value is not None][:best]
    curves = {}
    for t in record.trials:
        try:
            curves[t.trial] = load_curves(runs / t.run_id)
        except (RunError, OSError):
            continue  # not started, or no epoch yet
    if not curves:
        raise RunError(f"sweep {record.sweep_id} has no trial with epochs to plot yet")
    known = {c for cur in curves.values() for c in cur.columns}
    if name not in known:
        options = sorted(c for c in known if c not in ("epoch", "lr", "time_s"))
        raise NncliError(f"no metric '{name}' in the trials of {record.sweep_id}: expected one of {', '.join(options)}")
    fig = Figure(figsize=(13, 5.2), dpi=DPI, layout="constrained")
    ax, bars = fig.subplots(1, 2, width_ratios=[3, 2])
    colors = {t.trial: f"C{i % 10}" for i, t in enumerate(top)}
    for t in record.trials:  # grey first, so the highlighted ones are drawn over them
        cur = curves.get(t.trial)
        if cur is None or t.trial in colors or name not in cur.columns:
            continue
        ax.plot(cur.epochs, cur.columns[name], color=_GREY, lw=1, ls="--" if t.status == "failed" else "-",
                gid="trial")
    for t in top:
        cur = curves.get(t.trial)
        if cur is None or name not in cur.columns:
            continue
        ax.plot(cur.epochs, cur.columns[name], color=colors[t.trial], lw=2.2, label=_label(t, record), gid="best")
        hit = np.flatnonzero(cur.epochs == t.best.epoch)
        if hit.size and np.isfinite(cur.columns[name][hit[0]]):
            ax.plot([t.best.epoch], [cur.columns[name][hit[0]]], marker="o", color=colors[t.trial], ms=7, ls="")
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if log_y:
        ax.set_yscale("log")
    highlighted = f", best {len(top)} by {record.monitor} in colour" if top else ""
    ax.set_title(f"{name} of {len(curves)} trials{highlighted}")
    if top:
        ax.legend(loc="best", fontsize="small")
    _draw_values(bars, record, ranked, colors)
    fig.suptitle(f"sweep {record.sweep_id}: {len(record.trials)} trials ({record.method})")
    return fig


def _draw_values(ax, record: SweepRecord, ranked: list, colors: dict) -> None:
    shown = ranked[:MAX_BARS]
    values = [t.best.value if t.best is not None and t.best.value is not None else math.nan for t in shown]
    y = np.arange(len(shown))
    ax.barh(y, np.nan_to_num(values, nan=0.0), color=[colors.get(t.trial, _GREY) for t in shown], gid="values")
    for yi, t, v in zip(y, shown, values):
        if not math.isfinite(v):
            ax.text(0, yi, f"  {t.status.replace('_', ' ')}", va="center", fontsize="small", color="0.3")
    ax.set_yticks(y, [f"trial {t.trial}" for t in shown], fontsize="small")
    ax.invert_yaxis()  # best at the top
    ax.set_xlabel(f"best {record.monitor} ({'lower' if record.mode == 'min' else 'higher'} is better)")
    more = len(ranked) - len(shown)
    ax.set_title("best value by trial" + (f" (the best {len(shown)}; {more} more)" if more else ""))
    ax.grid(True, axis="x", alpha=0.3)


def plot_sweep(runs_dir, sweep_id: str, out=None, metric: str | None = None, best: int = 3,
               log_y: bool = False) -> Path:
    """Draw a sweep's trials into a PNG, SVG or PDF (default ``runs/<sweep-id>/sweep.png``); returns its path."""
    folder = resolve_sweep(runs_dir, sweep_id)
    record = folder.read()
    out = Path(out) if out is not None else folder.path / "sweep.png"
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise NncliError(f"cannot write '{out}': expected a file name ending in "
                         f"{', '.join('.' + f for f in FORMATS)}, found '{out.suffix or '(no extension)'}'")
    fig = make_sweep_figure(record, folder.path.parent, metric=metric, best=best, log_y=log_y)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, buffer.getvalue())
        os.chmod(out, 0o644)
    except OSError as err:
        raise NncliError(f"cannot write '{out}': {err.strerror or err}") from None
    return out
