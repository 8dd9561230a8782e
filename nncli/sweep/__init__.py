"""Sweeps: many trainings of one config's variations, on this machine or a Dask cluster.

    from nncli.sweep import SweepOptions, run_sweep, resume_sweep
    result = run_sweep("configs/quickstart.yaml", SweepOptions(grid=["optimizer.learning_rate=[0.001, 0.01]"]))
    result.record.best_trial().run_id

Each trial is an ordinary run folder; the sweep's record is ``runs/<sweep-id>/sweep.json``.
Layers: sweep uses train (configs, run folders) and nothing below knows it.
"""

from nncli.sweep.plan import SweepOptions
from nncli.sweep.record import SweepRecord, TrialRecord, resolve_sweep
from nncli.sweep.runner import Reporter, SweepResult, resume_sweep, run_sweep

__all__ = ["SweepOptions", "SweepRecord", "TrialRecord", "SweepResult", "Reporter", "run_sweep", "resume_sweep",
           "resolve_sweep"]
