"""The sweep's main loop: start trials while the executor has room, record each start and end.

The loop runs in the main thread and is the only writer of sweep.json; executors report on a
queue from their own threads. A signal handler only counts (SIGINT, SIGTERM, SIGHUP): the loop
tells the executor to stop, lets running trials save, and ends with the record saying so.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import signal
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nncli.sweep.executors import Ended, Job, Started
from nncli.sweep.plan import trial_overrides, validate_trials
from nncli.sweep.record import (ENDED, FINAL, Attempt, Best, SweepFolder, SweepRecord, TrialRecord, now,
                                trial_run_id)
from nncli.sweep.space import Dimension
from nncli.sweep.trial import set_aside, why_not_resumable
from nncli.train.config import Config

__all__ = ["Driver", "Reporter", "SweepResult", "digest", "in_folder", "best_of"]

_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
_TICK_S = 0.25  # how often the sweep looks at signals and refreshes its progress while it waits


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


def digest(cfg: Config) -> str:
    text = json.dumps(cfg.to_dict(absolute_paths=True), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def in_folder(path: str):
    """Paths typed on the command line start from the folder the sweep was started in."""
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


def best_of(info: dict | None, monitor: str) -> Best | None:
    best = (info or {}).get("best")
    if not isinstance(best, dict):
        return None
    value = best.get("value")
    value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return Best(monitor=best.get("monitor") or monitor, value=value, epoch=best.get("epoch"))


class Driver:
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
            with in_folder(self.record.cwd):
                cfg = validate_trials(self.record.config, self.record.trial_seed, [values], self.dims, number)[0]
        except ConfigError as err:
            trial.status, trial.error = "failed", str(err)
            self.proposer.tell(trial)
            self.folder.write(self.record)
            self.reporter.trial_ended(self.record, trial)
            return
        trial.config_sha256, self.configs[number] = digest(cfg), cfg
        self.pending.append(number)

    def _launch(self, number: int) -> None:
        from nncli.sweep.executors.bundle import make_bundle, pack_run

        t = self.record.trials[number]
        run_dir = self.runs / t.run_id
        resume = run_dir.exists()
        why = why_not_resumable(run_dir) if resume else None
        if why is not None:  # a resume would be refused: the trial starts again, nothing of it deleted
            aside, resume = set_aside(run_dir, len(t.attempts)), False
            self.reporter.trial_retried(self.record, t, f"its run folder cannot be resumed ({why}); it starts "
                                                        f"again, the folder kept as {aside.name}")
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
            t.best, t.epochs_done = best_of(end.info, self.record.monitor), int(end.info.get("epochs_done") or 0)
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
