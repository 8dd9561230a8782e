"""Where trials run: this machine (:class:`LocalExecutor`) or a Dask cluster (:class:`DaskExecutor`).

An executor starts jobs and reports on a queue, from its own threads, when an attempt starts
(:class:`Started`) and how it ended (:class:`Ended`); the sweep's main thread reads the queue
and keeps the record. Both run a trial as ``nncli train`` in a process of its own.

    executor.capacity()      # how many jobs it can run now
    executor.submit(job)     # start one attempt
    executor.stop(level)     # 1: ask running trials to save and stop; 2: stop them now
    executor.close()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nncli.sweep.trial import TrialEnd

__all__ = ["Job", "Started", "Ended", "open_executor"]


@dataclass
class Job:
    """One attempt of a trial."""

    trial: int
    run_id: str
    sets: list[str]  # the --set strings
    attempt: int  # 1 for the first
    resume: bool  # continue the run folder the trial already has
    bundle: dict[str, Any] | None = field(default=None, repr=False)  # what travels to a cluster worker
    folder: bytes | None = field(default=None, repr=False)  # the run folder it continues, packed (cluster)


@dataclass
class Started:
    job: Job
    worker: str  # "local" or a Dask worker's address
    threads: int | None


@dataclass
class Ended:
    """How an attempt ended; besides the trial outcomes, ``cancelled``: dropped before or while it ran."""

    job: Job
    end: TrialEnd
    worker: str | None = None
    folder: bytes | None = field(default=None, repr=False)  # the packed run folder, from a cluster worker
    paths: dict[str, str] | None = None  # this side's file paths -> the worker's ("": its config file)


def open_executor(kind: str, events, *, workers: int = 1, threads: int | None = None, cwd: str = ".",
                  runs_dir: str = "runs", config: str = "", address: str | None = None, name: str = "sweep"):
    """A :class:`LocalExecutor` (``kind="local"``) or a :class:`DaskExecutor` (``kind="dask"``)."""
    if kind == "dask":
        from nncli.sweep.executors.dask import DaskExecutor

        return DaskExecutor(address, events, threads=threads, name=name)
    from nncli.sweep.executors.local import LocalExecutor

    return LocalExecutor(events, workers=workers, threads=threads, cwd=cwd, runs_dir=runs_dir, config=config)
