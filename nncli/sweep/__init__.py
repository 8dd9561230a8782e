"""Sweeps: many trainings of one config's variations, on this machine or a Dask cluster.

    from nncli.sweep import SweepOptions, run_sweep, resume_sweep
    result = run_sweep("configs/quickstart.yaml", SweepOptions(grid=["optimizer.learning_rate=[0.001, 0.01]"]))
    result.record.best_trial().run_id

Each trial is an ordinary run folder; the sweep's record is ``runs/<sweep-id>/sweep.json``.
Layers: sweep uses train (configs, run folders) and nothing below knows it. The names below are
imported on first use, so a trial's process (``python -m nncli.sweep.trial``) loads only what
``nncli train`` needs.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"SweepOptions": "plan", "SweepRecord": "record", "TrialRecord": "record", "resolve_sweep": "record",
            "SweepResult": "runner", "Reporter": "runner", "run_sweep": "runner", "resume_sweep": "runner"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nncli.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nncli.sweep.{_EXPORTS[name]}"), name)
