"""The task a Dask worker runs for one attempt of a trial: :func:`run_on_worker`.

The worker needs nncli installed and nothing else: the trial brings its config and files
(:mod:`~nncli.sweep.executors.bundle`). It trains in a folder of its own under the worker's
local directory (which Dask cleans up after a dead worker), as a child process pinned to its
BLAS threads, and returns its run folder packed. It tells the sweep when it starts (a Dask
event), so an attempt lost with its worker is seen and counted, and it watches the sweep's stop
event to save and stop its trial when the sweep is interrupted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from nncli.sweep.executors.bundle import BundleError, extract_run, local_config, pack_run, relocate, unpack_bundle
from nncli.sweep.trial import TrialEnd, classify, cpu_count, run_child, thread_env, train_argv

__all__ = ["run_on_worker"]


def _stop_level(event_name: str, every_s: float = 1.0):
    """A poll of the sweep's stop event (asked of the scheduler at most every ``every_s``): 1 once it is set."""
    from distributed import Event

    event = Event(event_name)
    state = {"level": 0, "next": 0.0}

    def level() -> int:
        if not state["level"] and time.monotonic() >= state["next"]:
            state["next"] = time.monotonic() + every_s
            try:
                state["level"] = 1 if event.is_set() else 0
            except Exception:  # noqa: BLE001 - the scheduler is gone: then nobody waits for this trial
                state["level"] = 1
        return state["level"]

    return level


def run_on_worker(payload: dict) -> dict:
    """Run one attempt on this Dask worker; a plain dict for the sweep (see :func:`_answer`)."""
    from distributed import get_worker

    from nncli import __version__

    worker = get_worker()
    nthreads = int(getattr(worker, "nthreads", 1) or 1)
    threads = payload.get("threads") or max(1, cpu_count() // nthreads)
    worker.log_event(payload["topic"], {"key": payload["key"], "trial": payload["trial"], "worker": worker.address,
                                        "threads": threads})
    if payload["nncli"] != __version__:
        return _answer(TrialEnd("failed", f"worker {worker.address} has nncli {__version__}, the sweep runs "
                                          f"{payload['nncli']}: install the same version on every worker"),
                       worker.address, threads)
    folder = Path(tempfile.mkdtemp(prefix="nncli-trial-", dir=worker.local_directory))
    try:
        try:
            config_path, paths = unpack_bundle(payload["bundle"], folder)
        except BundleError as err:
            return _answer(TrialEnd("failed", f"on worker {worker.address}: {err}"), worker.address, threads)
        run_id, runs = payload["run_id"], folder / "runs"
        resume = payload.get("folder") is not None
        if resume:
            (runs / run_id).mkdir(parents=True)
            extract_run(payload["folder"], runs / run_id)
            relocate(runs / run_id, local_config(payload["bundle"], paths), paths)
        argv = train_argv(str(config_path), payload["sets"], run_id, "runs", resume)
        result = run_child(argv, folder, thread_env(threads), _stop_level(payload["stop_event"]))
        end = classify(result, runs / run_id)
        blob = pack_run(runs / run_id) if (runs / run_id / "run.json").is_file() else None
        return _answer(end, worker.address, threads, blob, {**paths, "": str(config_path)})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _answer(end: TrialEnd, worker: str, threads: int, folder: bytes | None = None,
            paths: dict[str, str] | None = None) -> dict:
    """``paths`` maps the sweep's file paths to this worker's (``""``: to the config file trained here)."""
    return {"outcome": end.outcome, "error": end.error, "retry": end.retry, "info": end.info, "worker": worker,
            "threads": threads, "folder": folder, "paths": paths or {}, "pid": os.getpid()}
