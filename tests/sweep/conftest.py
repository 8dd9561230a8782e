"""Fixtures of the sweep tests: a real Dask cluster on 127.0.0.1 (helpers live in sweep_tools.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sweep_tools import DEADLINE_S, env, read_json, wait_for


@dataclass
class Cluster:
    address: str
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)  # each worker's working (and local) directory
    paused: dict[str, Path] = field(default_factory=dict)  # made by a trial a worker's fault holds (see below)

    def wait_for_workers(self, n: int) -> None:
        """Until the scheduler counts exactly ``n`` workers (it has seen a killed one go)."""
        import distributed

        with distributed.Client(self.address, timeout=DEADLINE_S) as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == n, f"the scheduler to count {n} workers")


def _dask() -> list[str]:
    script = Path(sys.executable).parent / "dask"
    found = str(script) if script.exists() else shutil.which("dask")
    if found is None:
        pytest.fail("the dask command is missing: pip install -e '.[dev]' installs distributed")
    return [found]


@pytest.fixture
def cluster(tmp_path, request):
    """``dask scheduler`` and two ``dask worker`` processes (one thread each, no nanny: a killed worker stays dead),
    on ephemeral ports of 127.0.0.1, each in a folder of its own (never the client's).

    Parametrized indirectly with ``{"w1": "batch:12=pause"}``, the trials that worker runs get that fault: the
    first holds after its 12th batch, having made ``cluster.paused["w1"]``, until it is asked to stop (or dies)."""
    distributed = pytest.importorskip("distributed")
    faults = getattr(request, "param", None) or {}
    procs: list[subprocess.Popen] = []
    info = tmp_path / "scheduler" / "scheduler.json"
    info.parent.mkdir()
    try:
        log = open(info.parent / "log.txt", "w")
        procs.append(subprocess.Popen([*_dask(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(info)], cwd=info.parent, env=env(), stdout=log,
                                      stderr=subprocess.STDOUT))
        # the scheduler writes its file in place: until it is whole, it is no JSON (or no file) yet
        address = wait_for(lambda: (read_json(info) or {}).get("address"), "the scheduler's address", proc=procs[0])
        result = Cluster(address)
        for name in ("w1", "w2"):
            folder = tmp_path / name
            folder.mkdir()
            out = open(folder / "log.txt", "w")
            extra = {}
            if name in faults:
                result.paused[name] = folder / "paused"
                extra = {"NNCLI_FAULTS": faults[name], "NNCLI_FAULTS_READY": result.paused[name]}
            proc = subprocess.Popen([*_dask(), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                     "--local-directory", str(folder / "scratch"), "--name", name],
                                    cwd=folder, env=env(**extra), stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            result.workers[name], result.folders[name] = proc, folder
        with distributed.Client(address, timeout=DEADLINE_S) as client:
            client.wait_for_workers(2, timeout=DEADLINE_S)
        yield result
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
