"""``nncli data CONFIG``: load a config's data as training would, and say what was loaded.

    report = data_report("configs/quickstart.yaml")
    report["parts"]["train"]["samples"], report["load_seconds"], report["peak_memory_bytes"]
"""

from __future__ import annotations

from pathlib import Path

from nncli.data.memory import PeakMemory
from nncli.data.summary import summarize
from nncli.train.build import build, build_data
from nncli.train.config import load_config


def data_report(config_path: str | Path, overrides=()) -> dict:
    """The config's data, prepared exactly as ``nncli train`` would, described by :func:`summarize`.

    Adds ``config``, ``load_seconds`` (reading, checking, splitting and normalizing),
    ``peak_memory_bytes`` (the peak resident memory of that step above the memory before it;
    ``peak_memory_exact`` is False where the OS could not reset the peak) and ``held_bytes``
    (the arrays kept in memory: the labels alone for memory-mapped features).

    Example:
        >>> data_report("configs/iris.yaml")["num_classes"]           # doctest: +SKIP
        3
    """
    cfg = load_config(config_path, overrides)
    parts = build(cfg, with_data=False)
    with PeakMemory() as memory:
        data = build_data(cfg, parts, keep_raw=True)
    held = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
               if a is not None and hasattr(a, "nbytes"))  # what training keeps (not the raw copy kept here)
    return {"config": str(config_path), **summarize(data), "load_seconds": memory.seconds,
            "peak_memory_bytes": memory.above_start, "peak_memory_exact": memory.exact, "held_bytes": held}
