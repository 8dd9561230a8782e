"""What a plot reads from run folders: the curves, and what differs between the runs' configs.

    run = load_curves("runs/quickstart-20260101-120000")
    run.columns["val_loss"], run.info["status"], run.config["optimizer"]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from nncli.errors import RunError
from nncli.train.runs import RunFolder

__all__ = ["RunCurves", "load_curves", "flatten_config", "diff_table", "natural_key", "moving_average",
           "metric_names", "NOT_CURVES"]

NOT_CURVES = ("epoch", "lr", "time_s")


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


def diff_table(configs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The config keys whose values differ between runs, and each run's values for them.

    Keys come in the configs' own order; a key one run lacks shows as ``(unset)``.

    Example:
        >>> diff_table([{"lr": 0.1, "seed": 0}, {"lr": 0.01, "seed": 0}])
        (['lr'], [['0.1'], ['0.01']])
    """
    flat = [flatten_config(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))  # first-seen order: the config's order
    missing = object()
    differing = [k for k in keys if len({repr(f.get(k, missing)) for f in flat}) > 1]
    return differing, [[_show(f[k]) if k in f else "(unset)" for k in differing] for f in flat]


def natural_key(text: str) -> list:
    """Sorts run-2 before run-10: digit runs compare as numbers.

    Example: ``sorted(["run-10", "run-2"], key=natural_key)  # ['run-2', 'run-10']``
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


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
