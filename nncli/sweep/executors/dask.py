"""Trials on an existing Dask distributed cluster (``dask scheduler`` / ``dask worker``).

Each attempt is one Dask task (:func:`~nncli.sweep.executors.remote.run_on_worker`) that takes
the trial's bundle and returns its run folder. When a worker dies, Dask runs its task again on
another worker; the task's start event tells the sweep, which counts the lost attempt (and gives
up after ``--retries``). No more tasks are submitted than the workers have threads, plus one,
so new trials (and TPE's proposals) wait on this side, not in the scheduler.
"""

from __future__ import annotations

import functools
import secrets
import threading

from nncli.errors import NncliError
from nncli.sweep.executors import Ended, Job, Started
from nncli.sweep.trial import TrialEnd

__all__ = ["DaskExecutor", "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 20  # to reach the scheduler


def _reachable(address: str) -> None:
    """Open (and close) a TCP connection to the scheduler's host and port; OSError if nobody listens."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        raise ValueError("expected tcp://HOST:PORT")
    socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S).close()


class DaskExecutor:
    kind = "dask"

    def __init__(self, address: str, events, *, threads: int | None, name: str):
        try:
            import distributed
        except ImportError:
            raise NncliError("--cluster runs trials on Dask distributed, which is not installed: "
                             "pip install 'nncli[dask]'") from None
        from nncli import __version__

        self.address, self.events, self.threads, self.version = address, events, threads, __version__
        if "://" not in address:
            raise NncliError(f"expected --cluster tcp://HOST:PORT (a Dask scheduler's address), found {address!r}")
        try:
            _reachable(address)  # a refused connection says so at once (Dask would retry until its timeout)
            self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise NncliError(f"cannot reach the Dask scheduler at {address} ({err}): start one with "
                             f"'dask scheduler' and its workers with 'dask worker {address}'") from None
        self.topic = f"nncli-sweep-{name}-{secrets.token_hex(4)}"
        self.stop_name = f"{self.topic}-stop"
        self._jobs: dict[str, Job] = {}
        self._futures: dict[str, object] = {}
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self.client.subscribe_topic(self.topic, self._on_event)

    def describe(self) -> dict:
        return {"kind": "dask", "address": self.address, "threads": self.threads}

    def workers(self) -> int:
        """Threads of the workers connected now."""
        try:
            return sum(self.client.nthreads().values())
        except (OSError, TimeoutError):
            return 0

    def capacity(self) -> int:
        with self._lock:
            running = len(self._futures)
        return max(1, self.workers() + 1) - running

    def submit(self, job: Job) -> None:
        from nncli.sweep.executors.remote import run_on_worker

        key = f"nncli-{job.run_id}-a{job.attempt}-{secrets.token_hex(3)}"
        payload = {"topic": self.topic, "key": key, "trial": job.trial, "run_id": job.run_id, "sets": job.sets,
                   "threads": self.threads, "nncli": self.version, "bundle": job.bundle, "folder": job.folder,
                   "stop_event": self.stop_name}
        with self._lock:
            self._jobs[key] = job
            self._futures[key] = future = self.client.submit(run_on_worker, payload, key=key, pure=False)
        future.add_done_callback(functools.partial(self._on_done, key))

    def _on_event(self, event) -> None:
        _, msg = event
        with self._lock:
            job = self._jobs.get(msg.get("key"))
            if job is not None:
                self._started.add(msg["key"])
        if job is not None:
            self.events.put(Started(job, msg.get("worker", "?"), msg.get("threads")))

    def _on_done(self, key: str, future) -> None:
        # called on Dask's event loop: fetch the answer from a thread of our own
        threading.Thread(target=self._finish, args=(key, future), daemon=True, name=f"{key}-result").start()

    def _finish(self, key: str, future) -> None:
        import distributed

        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return
        ended = None
        try:
            if future.cancelled():
                ended = Ended(job, TrialEnd("cancelled"))
            else:
                answer = future.result()
                end = TrialEnd(answer["outcome"], answer["error"], answer["retry"], answer["info"])
                ended = Ended(job, end, answer["worker"], answer["folder"], answer["paths"])
        except distributed.KilledWorker as err:
            ended = Ended(job, TrialEnd("lost", f"Dask gave the trial up after its workers died ({err})", True))
        except Exception as err:  # noqa: BLE001 - anything the cluster raised ends this attempt only
            if future.cancelled() or type(err).__name__ == "CancelledError":
                ended = Ended(job, TrialEnd("cancelled"))
            else:
                ended = Ended(job, TrialEnd("lost", f"the task failed on the cluster: {type(err).__name__}: {err}",
                                            True))
        finally:
            with self._lock:
                self._jobs.pop(key, None)
                self._futures.pop(key, None)
                self._started.discard(key)
            if ended is not None:
                self.events.put(ended)

    def cancel(self, job: Job) -> None:
        """Give up an attempt (the sweep decided it was lost too often)."""
        with self._lock:
            futures = [f for k, f in self._futures.items() if self._jobs[k] is job]
        for future in futures:
            future.cancel()

    def stop(self, level: int) -> None:
        """1: tell running trials to save and stop, drop the ones that have not started; 2: drop them all."""
        import distributed

        try:
            distributed.Event(self.stop_name, client=self.client).set()
        except Exception:  # noqa: BLE001 - the scheduler is gone: the trials are gone with it
            pass
        with self._lock:
            futures = [f for k, f in self._futures.items() if level >= 2 or k not in self._started]
        for future in futures:
            future.cancel()

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001
            pass
        self.client.close()
