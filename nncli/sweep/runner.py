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

import hashlib
import json
import math
import os
import queue
import signal
import sys
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nncli.errors import RunError
from nncli.sweep.executors import Ended, Job, Started, open_executor
from nncli.sweep.plan import SweepOptions, expand, make_plan, trial_overrides, validate_trials
from nncli.sweep.record import (ENDED, FINAL, Attempt, Best, SweepFolder, SweepRecord, TrialRecord, new_sweep_id,
                                now, resolve_sweep, trial_run_id)
from nncli.sweep.space import Dimension
from nncli.train.config import Config, load_config

__all__ = ["run_sweep", "resume_sweep", "SweepResult", "Reporter", "monitor_mode"]

_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
_TICK_S = 0.5  # how often the sweep looks at signals and refreshes its progress while it waits


class Reporter:
    """What a sweep tells as it goes (the CLI shows it); override what you need."""

    def sweep_started(self, record: SweepRecord, folder: SweepFolder, executor: dict, resumed: bool) -> None: ...
    def trial_started(self, record: SweepRecord, trial: TrialRecord) -> None: ...
    def trial_ended(self, record: SweepRecord, trial: TrialRecord) -> None: ...
    def trial_retried(self, record: SweepRecord, trial: TrialRecord, reason: str) -> None: ...
    def stopping(self, record: SweepRecord, signum: int, level: int) -> None: ...
    def tick(self, record: SweepRecord) -> None: ...


@dataclass
class SweepResult:
    folder: SweepFolder
    record: SweepRecord
    signum: int | None = None  # the signal that stopped the sweep

    @property
    def exit_code(self) -> int:
        if self.signum is not None:
            return 128 + int(self.signum)
        return 1 if any(t.status == "failed" for t in self.record.trials) else 0


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


def _digest(cfg: Config) -> str:
    text = json.dumps(cfg.to_dict(absolute_paths=True), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _in_folder(path: str):
    """Paths typed on the command line start from the folder the sweep was started in."""
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


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
        driver = _Driver(folder, record, dict(enumerate(configs)), executor, events, plan.dims, proposer,
                         reporter or Reporter())
        return driver.run(resumed=False)
    finally:
        executor.close()


def _trial_record(sweep_id: str, number: int, values: dict, cfg: Config, seed: int, count: int) -> TrialRecord:
    return TrialRecord(trial=number, run_id=trial_run_id(sweep_id, number, count), overrides=values,
                       set=trial_overrides(seed, values), config_sha256=_digest(cfg))


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
    with _in_folder(record.cwd):
        todo = [t for t in record.trials if _rerun(t)]
        checked = validate_trials(record.config, record.trial_seed, [t.overrides for t in todo], dims)
    configs = {}
    for t, c in zip(todo, checked):
        if _digest(c) != t.config_sha256:
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
        driver = _Driver(folder, record, configs, executor, events, dims, proposer, reporter or Reporter())
        return driver.run(resumed=True)
    finally:
        executor.close()


def _best(info: dict | None, monitor: str) -> Best | None:
    best = (info or {}).get("best")
    if not isinstance(best, dict):
        return None
    value = best.get("value")
    value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return Best(monitor=best.get("monitor") or monitor, value=value, epoch=best.get("epoch"))


def _adopt_finished(record: SweepRecord, runs: Path) -> None:
    """Trials whose run ended after the sweep last wrote its record (it was killed) are taken as they are."""
    from nncli.sweep.trial import read_info

    for t in record.trials:
        if t.status in FINAL:
            continue
        info = read_info(runs / t.run_id)
        if info and info.get("status") in ENDED:
            t.status, t.best, t.epochs_done = info["status"], _best(info, record.monitor), info.get("epochs_done", 0)


class _Driver:
    """The sweep's main loop: starts trials while the executor has room, records each start and end."""

    def __init__(self, folder: SweepFolder, record: SweepRecord, configs: dict[int, Config], executor, events,
                 dims: list[Dimension], proposer, reporter: Reporter):
        self.folder, self.record, self.configs, self.executor, self.events = folder, record, configs, executor, events
        self.dims, self.proposer, self.reporter = dims, proposer, reporter
        self.runs = Path(record.cwd) / record.runs_dir
        self.pending = deque(t.trial for t in record.trials if t.status not in FINAL)
        self.open: dict[int, Job] = {}  # trial -> its attempt in the executor
        self.gave_up: set[int] = set()
        self.lost: dict[int, int] = {}  # trial -> attempts lost in this run of the sweep (--retries bounds it)
        self.signum: int | None = None
        self.level, self.applied = 0, 0
        self.cache: dict[str, bytes] = {}

    # -- signals: the handler only counts; the loop acts (never call a client from a handler) ----------
    def _on_signal(self, signum, frame) -> None:
        self.signum = self.signum or signum
        self.level += 1

    @contextmanager
    def _signals(self):
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @property
    def stopping(self) -> bool:
        return self.level > 0

    def run(self, resumed: bool) -> SweepResult:
        self.reporter.sweep_started(self.record, self.folder, self.executor.describe(), resumed)
        with self._signals():
            while True:
                if self.level > self.applied:
                    self.applied = self.level
                    self.executor.stop(min(self.level, 2))
                    self.reporter.stopping(self.record, self.signum, self.level)
                if not self.stopping:
                    self._fill()
                if not self.open and (self.stopping or not (self.pending or self._can_propose())):
                    break
                try:
                    event = self.events.get(timeout=_TICK_S)
                except queue.Empty:
                    self.reporter.tick(self.record)
                    continue
                if isinstance(event, Started):
                    self._started(event)
                elif isinstance(event, Ended):
                    self._ended(event)
        return self._finish()

    def _can_propose(self) -> bool:
        return self.proposer is not None and len(self.record.trials) < self.record.count

    def _fill(self) -> None:
        while self.executor.capacity() > 0:
            if not self.pending and self._can_propose():
                self._propose()
                continue
            if not self.pending:
                return
            self._launch(self.pending.popleft())

    def _propose(self) -> None:
        from nncli.errors import ConfigError

        number = len(self.record.trials)
        values = self.proposer.ask(number)
        trial = TrialRecord(trial=number, run_id=trial_run_id(self.record.sweep_id, number, self.record.count),
                            overrides=values, set=trial_overrides(self.record.trial_seed, values), config_sha256="")
        self.record.trials.append(trial)
        try:
            with _in_folder(self.record.cwd):
                cfg = validate_trials(self.record.config, self.record.trial_seed, [values], self.dims, number)[0]
        except ConfigError as err:
            trial.status, trial.error = "failed", str(err)
            self.proposer.tell(trial)
            self.folder.write(self.record)
            self.reporter.trial_ended(self.record, trial)
            return
        trial.config_sha256, self.configs[number] = _digest(cfg), cfg
        self.pending.append(number)

    def _launch(self, number: int) -> None:
        from nncli.sweep.executors.bundle import make_bundle, pack_run

        t = self.record.trials[number]
        run_dir = self.runs / t.run_id
        resume = (run_dir / "run.json").is_file()
        job = Job(number, t.run_id, t.set, len(t.attempts) + 1, resume)
        if self.executor.kind == "dask":
            job.bundle = make_bundle(self.configs[number].to_dict(absolute_paths=True), self.cache)
            job.folder = pack_run(run_dir) if resume else None
        self.open[number] = job
        self.executor.submit(job)

    def _started(self, event: Started) -> None:
        job = event.job
        if self.open.get(job.trial) is not job:
            return
        t = self.record.trials[job.trial]
        current = t.attempts[-1] if t.attempts and t.attempts[-1].ended is None else None
        if current is not None:  # the cluster started it again: the worker running it was lost
            current.ended, current.outcome = now(), "lost"
            current.error = f"worker {current.worker} was lost while it ran the trial"
            if self._lose(job.trial):
                self.gave_up.add(job.trial)
                self.executor.cancel(job)
                t.status, t.error = "failed", f"{current.error}; {self.lost[job.trial]} attempts lost " \
                                              f"(--retries {self.record.retries})"
                self.folder.write(self.record)
                self.reporter.trial_ended(self.record, t)
                return
            self.reporter.trial_retried(self.record, t, current.error)
        t.attempts.append(Attempt(worker=event.worker, threads=event.threads, started=now(), resumed=job.resume))
        t.status = "running"
        self.folder.write(self.record)
        self.reporter.trial_started(self.record, t)

    def _ended(self, event: Ended) -> None:
        from nncli.sweep.executors.bundle import install_run

        job, end = event.job, event.end
        if self.open.get(job.trial) is not job:
            return
        del self.open[job.trial]
        t = self.record.trials[job.trial]
        attempt = t.attempts[-1] if t.attempts and t.attempts[-1].ended is None else None
        if job.trial in self.gave_up:
            return
        if end.outcome == "cancelled":
            if attempt is not None:
                attempt.ended, attempt.outcome = now(), "interrupted"
            t.status = "interrupted" if t.attempts else "pending"
            self.folder.write(self.record)
            return
        if event.folder is not None:
            paths = dict(event.paths or {})
            back = {worker: mine for mine, worker in paths.items() if mine}
            if paths.get(""):
                back[paths[""]] = self.record.config
            install_run(event.folder, self.runs, t.run_id, self.configs[job.trial].to_dict(absolute_paths=True), back)
        if attempt is None:  # its start was not seen (the cluster's event came late, or never)
            attempt = Attempt(worker=event.worker or "?", started=now(), resumed=job.resume)
            t.attempts.append(attempt)
        attempt.ended, attempt.outcome, attempt.error = now(), end.outcome, end.error
        if end.info:
            t.best, t.epochs_done = _best(end.info, self.record.monitor), int(end.info.get("epochs_done") or 0)
        if end.outcome in ENDED:
            t.status, t.error = end.outcome, None
        elif end.outcome == "interrupted":
            t.status = "interrupted"
        elif end.outcome == "lost" and end.retry and not self.stopping and not self._lose(job.trial):
            t.status = "pending"
            self.pending.appendleft(job.trial)
            self.folder.write(self.record)
            self.reporter.trial_retried(self.record, t, end.error or "lost")
            return
        elif end.outcome == "lost" and self.stopping:
            t.status = "interrupted"
        else:
            t.status = "failed"
            t.error = end.error if end.outcome != "lost" else \
                f"{end.error} ({self.lost.get(job.trial, 0)} attempts lost, --retries {self.record.retries})"
        if self.proposer is not None and t.status in FINAL:
            self.proposer.tell(t)
        self.folder.write(self.record)
        self.reporter.trial_ended(self.record, t)

    def _lose(self, number: int) -> bool:
        """Count a lost attempt of trial ``number``; True when that was one more than ``retries`` allows."""
        self.lost[number] = self.lost.get(number, 0) + 1
        return self.lost[number] > self.record.retries

    def _finish(self) -> SweepResult:
        r = self.record
        if self.signum is not None:
            r.status = "interrupted"
        else:
            r.status = "failed" if any(t.status == "failed" for t in r.trials) else "completed"
            r.finished = now()
        self.folder.write(r)
        return SweepResult(self.folder, r, self.signum)
