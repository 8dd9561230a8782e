"""Trials on this machine: N child processes at once, each with its share of the cores' BLAS threads.

Each running trial has one thread here that starts ``nncli train`` in a process of its own and
waits for it. A pool of processes rather than a Dask LocalCluster: a trial is already its own
process (so a crash or a signal stays in it), the run folder is written straight into the runs
folder (nothing to pack and bring back), nothing extra starts (no scheduler, no nanny), and a
plain ``pip install nncli`` can sweep without Dask.
"""

from __future__ import annotations

import threading
from pathlib import Path

from nncli.sweep.executors import Ended, Job, Started
from nncli.sweep.trial import TrialEnd, classify, cpu_count, run_child, thread_env, train_argv

__all__ = ["LocalExecutor", "share_threads"]


def share_threads(workers: int, threads: int | None = None) -> int:
    """BLAS threads per trial: ``threads`` if given, else the cores divided among ``workers`` (at least 1)."""
    return threads if threads is not None else max(1, cpu_count() // workers)


class LocalExecutor:
    kind = "local"

    def __init__(self, events, *, workers: int, threads: int | None, cwd: str, runs_dir: str, config: str):
        self.events, self.workers, self.cwd, self.runs_dir, self.config = events, workers, cwd, runs_dir, config
        self.threads = share_threads(workers, threads)
        self._level = 0
        self._running: set[int] = set()
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"kind": "local", "workers": self.workers, "threads": self.threads}

    def capacity(self) -> int:
        with self._lock:
            return self.workers - len(self._running)

    def submit(self, job: Job) -> None:
        with self._lock:
            self._running.add(job.trial)
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"nncli-trial-{job.trial}").start()

    def _run(self, job: Job) -> None:
        self.events.put(Started(job, "local", self.threads))
        try:
            argv = train_argv(self.config, job.sets, job.run_id, self.runs_dir, job.resume)
            result = run_child(argv, self.cwd, thread_env(self.threads), lambda: self._level)
            end = classify(result, Path(self.cwd) / self.runs_dir / job.run_id)
        except OSError as err:  # the process could not be started (no memory, no such interpreter)
            end = TrialEnd("lost", f"could not start the trial's process: {err}", retry=True)
        finally:
            with self._lock:
                self._running.discard(job.trial)
        self.events.put(Ended(job, end, "local"))

    def stop(self, level: int) -> None:
        self._level = max(self._level, level)

    def close(self) -> None:
        pass
