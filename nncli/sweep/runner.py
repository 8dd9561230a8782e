"""Running a sweep: every trial checked first, then run on an executor, sweep.json kept as they go.

    result = run_sweep("configs/quickstart.yaml", SweepOptions(grid=["optimizer.learning_rate=[0.001, 0.01]"],
                                                               workers=2))
    result = resume_sweep("quickstart-sweep-20261201-101500")   # runs only what is unfinished
    result.exit_code        # 0 every trial ended, 1 some failed, 128 + signal when interrupted

A trial that fails (its loss diverges, its config builds no model) is recorded and the others go
on; one whose process or worker was lost runs again (``retries`` times, resuming its run folder
where one is left). SIGINT, SIGTERM and SIGHUP stop the sweep: running trials save and stop, the
record says what finished, and ``resume_sweep`` continues.
"""

from __future__ import annotations

import os
import queue
import sys
from pathlib import Path

from nncli.errors import RunError
from nncli.sweep.driver import Driver, Reporter, SweepResult, best_of, digest, in_folder
from nncli.sweep.executors import open_executor
from nncli.sweep.plan import SweepOptions, expand, make_plan, trial_overrides, validate_trials
from nncli.sweep.record import (ENDED, FINAL, SweepFolder, SweepRecord, TrialRecord, new_sweep_id, now,
                                resolve_sweep, trial_run_id)
from nncli.sweep.space import Dimension
from nncli.train.config import Config, load_config

__all__ = ["run_sweep", "resume_sweep", "SweepResult", "Reporter", "monitor_mode"]


def monitor_mode(cfg: Config) -> str:
    """``max`` when a larger ``train.monitor`` is better (its metric says so), else ``min``."""
    from nncli.nn import registry

    name = cfg.train.monitor
    base = name[4:] if name.startswith("val_") else name
    if base == "loss":
        return "min"
    maximize = getattr(registry.lookup("metrics", base), "maximize", None)
    if maximize is None:  # metrics that do not say: the trainer's own rule for "auto"
        maximize = "acc" in name
    return "max" if maximize else "min"


def _executor_kind(plan_cluster: str | None) -> str:
    return "dask" if plan_cluster else "local"


def run_sweep(config: str | Path, opts: SweepOptions | None = None, *, sweep_id: str | None = None,
              runs_dir: str | Path = "runs", argv: list[str] | None = None, reporter: Reporter | None = None
              ) -> SweepResult:
    """Check every trial of the sweep ``opts`` (and ``config``'s ``sweep:`` section) describe, then run them.

    Raises NncliError subclasses for bad input, before anything is written or any trial starts.
    """
    opts = opts or SweepOptions()
    config = str(config)
    cfg = load_config(config)
    plan = make_plan(cfg, opts)
    values = expand(plan)
    proposer = None
    if plan.method == "tpe":
        from nncli.sweep.tpe import TPEProposer

        proposer = TPEProposer(plan.dims, monitor_mode(cfg), plan.seed)
        validate_trials(config, cfg.seed, proposer.probes(), plan.dims)  # each value at its ends, before any trial
    configs = validate_trials(config, cfg.seed, values, plan.dims)
    runs = Path(runs_dir)
    events: queue.Queue = queue.Queue()
    executor = open_executor(_executor_kind(plan.cluster), events, workers=plan.workers, threads=plan.threads,
                             cwd=os.getcwd(), runs_dir=str(runs), config=config, address=plan.cluster,
                             name=Path(config).stem)
    try:
        folder = SweepFolder.create(
            runs, sweep_id or new_sweep_id(Path(config).stem), numbered=sweep_id is None,
            taken=lambda sid: any((runs / trial_run_id(sid, i, plan.count)).exists() for i in range(plan.count)))
        record = SweepRecord(
            sweep_id=folder.sweep_id, created=now(), updated=now(), config=config,
            config_path=str(Path(config).resolve()), cwd=os.getcwd(), runs_dir=str(runs),
            argv=list(argv if argv is not None else sys.argv), method=plan.method,
            space=[d.to_json() for d in plan.dims], count=plan.count, seed=plan.seed, trial_seed=cfg.seed,
            monitor=cfg.train.monitor, mode=monitor_mode(cfg), executor=executor.describe(), retries=plan.retries,
            trials=[_trial_record(folder.sweep_id, i, v, c, cfg.seed, plan.count)
                    for i, (v, c) in enumerate(zip(values, configs))])
        folder.write(record)
        driver = Driver(folder, record, dict(enumerate(configs)), executor, events, plan.dims, proposer,
                         reporter or Reporter())
        return driver.run(resumed=False)
    finally:
        executor.close()


def _trial_record(sweep_id: str, number: int, values: dict, cfg: Config, seed: int, count: int) -> TrialRecord:
    return TrialRecord(trial=number, run_id=trial_run_id(sweep_id, number, count), overrides=values,
                       set=trial_overrides(seed, values), config_sha256=digest(cfg))


def _rerun(t: TrialRecord) -> bool:
    """A resumed sweep runs what did not finish, and what failed only because its attempts were lost."""
    return t.status not in FINAL or (t.status == "failed" and bool(t.attempts) and t.attempts[-1].outcome == "lost")


def resume_sweep(sweep_id: str, opts: SweepOptions | None = None, *, runs_dir: str | Path = "runs",
                 reporter: Reporter | None = None) -> SweepResult:
    """Continue a sweep: finished trials are kept, the others run (each resuming its run folder)."""
    opts = opts or SweepOptions()
    if opts.grid or opts.space or opts.random is not None or opts.sampler or opts.trials is not None:
        raise RunError("a resumed sweep keeps its own trials: give --resume SWEEP_ID without --grid, --space, "
                       "--random, --sampler or --trials (start a new sweep to change them)")
    folder = resolve_sweep(runs_dir, sweep_id)
    record = folder.read()
    dims = [Dimension.from_json(d, f"{folder.record_path}: space: {d['key']}") for d in record.space]
    if not Path(record.cwd).is_dir():
        raise RunError(f"cannot resume sweep {record.sweep_id}: it was started in {record.cwd}, which is gone "
                       "(its trials run there, with the paths they were given)")
    with in_folder(record.cwd):
        todo = [t for t in record.trials if _rerun(t)]
        checked = validate_trials(record.config, record.trial_seed, [t.overrides for t in todo], dims)
    configs = {}
    for t, c in zip(todo, checked):
        if digest(c) != t.config_sha256:
            raise RunError(f"cannot resume sweep {record.sweep_id}: trial {t.trial}'s config differs from the one "
                           f"it started with ({record.config} or a file it names changed); start a new sweep")
        configs[t.trial] = c
    executor_info = dict(record.executor)
    # --workers alone moves a sweep to this machine; --cluster moves it to a cluster; else where it ran
    cluster = opts.cluster if opts.cluster is not None or opts.workers else executor_info.get("address")
    workers = opts.workers or executor_info.get("workers") or 1
    threads = opts.threads if opts.threads is not None else (executor_info.get("threads") if not opts.workers else None)
    if opts.retries is not None:
        record.retries = opts.retries
    for t in todo:
        if t.status == "failed":  # lost too often last time: it gets its attempts again
            t.status, t.error = "pending", None
        t.attempts = [a if a.ended else a.model_copy(update={"ended": now(), "outcome": "interrupted",
                                                             "error": "the sweep was stopped while it ran"})
                      for a in t.attempts]
    proposer = None
    if record.method == "tpe":
        from nncli.sweep.tpe import TPEProposer

        proposer = TPEProposer(dims, record.mode, record.seed)
        proposer.replay(record)
    events: queue.Queue = queue.Queue()
    runs = Path(record.cwd) / record.runs_dir
    executor = open_executor(_executor_kind(cluster), events, workers=workers, threads=threads, cwd=record.cwd,
                             runs_dir=record.runs_dir, config=record.config, address=cluster,
                             name=Path(record.config).stem)
    try:
        _adopt_finished(record, runs)
        record.status, record.finished, record.executor = "running", None, executor.describe()
        folder.write(record)
        driver = Driver(folder, record, configs, executor, events, dims, proposer, reporter or Reporter())
        return driver.run(resumed=True)
    finally:
        executor.close()


def _adopt_finished(record: SweepRecord, runs: Path) -> None:
    """Trials whose run ended after the sweep last wrote its record (it was killed) are taken as they are."""
    from nncli.sweep.trial import read_info

    for t in record.trials:
        if t.status in FINAL:
            continue
        info = read_info(runs / t.run_id)
        if info and info.get("status") in ENDED:
            t.status, t.best, t.epochs_done = info["status"], best_of(info, record.monitor), info.get("epochs_done", 0)


