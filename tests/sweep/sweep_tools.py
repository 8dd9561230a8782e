"""Helpers for the sweep tests: tiny configs, nncli as a real process, waiting on what can be seen.

Every wait polls an observable condition (a file, a row count, a field of sweep.json) and fails
only after a generous deadline: a loaded machine makes the tests slower, never wrong.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 600.0  # a wait fails only when something is clearly stuck, even with both cores busy

# A 4-8-3 MLP on iris: ~1 s of training per trial, so a sweep has time to be interrupted mid-trial.
TINY = """\
seed: 3
data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 16}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 3}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: EPOCHS, metrics: [accuracy]}
"""

GRID = ["--grid", "optimizer.learning_rate=[0.003, 0.03, 0.1]", "--grid", "model.layers[0].units=[4, 8]"]


def tiny(folder: Path, epochs: int = 12, extra: str = "", name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(TINY.replace("EPOCHS", str(epochs)) + extra)
    return path


def nncli_argv(*args) -> list[str]:
    return [sys.executable, "-m", "nncli.cli", *[str(a) for a in args]]


def env(threads: int | None = None, **extra) -> dict:
    out = dict(os.environ)
    out.pop("NNCLI_FAULTS", None)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            out[name] = str(threads)
    out.update({k: str(v) for k, v in extra.items()})
    return out


def run(*args, cwd: Path, threads: int | None = None, check_code: int | None = None, **extra):
    """Run ``nncli ARGS`` to its end in ``cwd``; the CompletedProcess (text)."""
    proc = subprocess.run(nncli_argv(*args), cwd=cwd, env=env(threads, **extra), capture_output=True, text=True,
                          timeout=DEADLINE_S)
    if check_code is not None:
        assert proc.returncode == check_code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def start(*args, cwd: Path, threads: int | None = None, **extra) -> subprocess.Popen:
    return subprocess.Popen(nncli_argv(*args), cwd=cwd, env=env(threads, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S, proc: subprocess.Popen | None = None):
    """Poll ``condition()`` until it returns something truthy (returned); fail after the deadline.

    With ``proc``, fail at once if that process ends first (what was awaited can no longer happen).
    """
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}\n{out}\n{err}")
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sweep_record(runs: Path, sweep_id: str) -> dict | None:
    return read_json(runs / sweep_id / "sweep.json")


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.csv without time_s (the one column that measures the machine, not the training)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


def row_count(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def trial_pids(run_id: str) -> list[int]:
    """Processes training ``run_id`` (read from /proc: the trial processes a sweep started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nncli.sweep.trial" in argv and run_id.encode() in argv:
            pids.append(int(entry.name))
    return pids


def kill(pid: int, sig=signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def comparable(record: dict) -> list[dict]:
    """What two sweeps of the same trials must agree on: trial, overrides, status, best (run ids differ)."""
    return [{"trial": t["trial"], "overrides": t["overrides"], "status": t["status"], "best": t["best"],
             "epochs_done": t["epochs_done"], "set": t["set"]} for t in record["trials"]]
