"""Helpers for the reliability suite: a tiny config, the CLI in-process and as a real process.

In-process calls go through Typer's ``CliRunner`` (fast); the tests that need a real process
(wall time, SIGKILL, memory limits, thread settings) start ``python -m nncli.cli``.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from nncli.cli import app

ROOT = Path(__file__).resolve().parents[2]

# Two epochs of a 4-8-3 MLP on iris: every config case starts from this and breaks one thing.
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
train: {epochs: 2, metrics: [accuracy]}
"""

# "Answers at once" is checked in CPU seconds, the work done, which other processes on a busy
# machine do not stretch as they stretch wall time; generous, so that only unbounded work fails.
TIME_LIMIT_S = 5.0
MEMORY_LIMIT_BYTES = 4 * 2**30  # address-space cap for subprocesses that might try to allocate too much

_runner = CliRunner()


def cli(*args) -> "Result":
    """Run ``nncli ARGS`` in-process; the result has exit_code, output, stdout, stderr, seconds (CPU)."""
    start = time.process_time()
    result = _runner.invoke(app, [str(a) for a in args])
    result.seconds = time.process_time() - start
    return result


def write(folder: Path, text: str | bytes, name: str = "cfg.yaml") -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def run_folders(runs: Path) -> list[Path]:
    """Everything in the runs folder, hidden half-made folders included."""
    return sorted(runs.iterdir()) if runs.exists() else []


def assert_bad_input(result, where: str | None = None, runs: Path | None = None) -> str:
    """Exit 2, one ``error:`` message on stderr naming ``where``, no traceback, no run folder left."""
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a crash
    assert "Traceback" not in output, output
    assert one_message(result.stderr), result.stderr
    assert result.stdout == "", result.stdout
    if where is not None:
        assert re.search(where, output), f"{where!r} not in:\n{output}"
    if runs is not None:
        assert run_folders(runs) == [], run_folders(runs)
    assert result.seconds < TIME_LIMIT_S, f"took {result.seconds:.2f}s"
    return output


def one_message(stderr: str) -> bool:
    """stderr is one ``error: ...`` message (it may run over several lines, one per problem)."""
    return stderr.startswith("error: ") and sum(line.startswith("error:") for line in stderr.splitlines()) == 1


def _limit_memory(limit: int = MEMORY_LIMIT_BYTES):
    def apply() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def cli_process(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 120,
                limit_memory: bool | int = False) -> subprocess.CompletedProcess:
    """Run ``python -m nncli.cli ARGS`` as a real process; ``.seconds`` is its CPU time (user + system).

    ``limit_memory``: cap its address space (True: at MEMORY_LIMIT_BYTES; a number: at that many bytes).
    """
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "nncli.cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limit_memory(MEMORY_LIMIT_BYTES if limit_memory is True else limit_memory)
                          if limit_memory else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return proc


def popen_cli(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m nncli.cli ARGS`` without waiting (for the kill tests)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "nncli.cli", *map(str, args)], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(proc)
    return proc


STARTED: list[subprocess.Popen] = []  # killed after each test, so a failed test leaves no paused process


def kill_started() -> None:
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def wait_for(condition, proc: subprocess.Popen, what: str, limit: float = 300.0) -> None:
    """Poll until ``condition()`` holds; fail if ``proc`` ends first. ``limit`` only stops a hung test."""
    end = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (code {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def faults_env(tmp_path: Path, rules: str) -> tuple[dict, Path]:
    """The environment that sets the test hook ``NNCLI_FAULTS`` (see nncli/train/faults.py) and its ready file."""
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    return {"NNCLI_FAULTS": rules, "NNCLI_FAULTS_READY": str(ready)}, ready


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links as their target text), for 'nothing changed' checks.

    run.lock is left out: it names the last process that took the lock, not anything of the run.
    """
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if key == "run.lock":
            continue
        if path.is_symlink():
            out[key] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
    return out
