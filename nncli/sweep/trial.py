"""One attempt of a trial: ``nncli train`` in a process of its own, and what its end means for the sweep.

    python -m nncli.sweep.trial train CONFIG --set KEY=VALUE ... --run-id ID --runs-dir DIR --quiet

is ``nncli train ...`` that also dies with the process that started it (a sweep or a Dask
worker killed with SIGKILL takes its trials with it: no orphan keeps training or holds a run).
Its BLAS thread count is fixed by environment variables, read when numpy loads. A trial that
crashes takes down only its own process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nncli.autodiff.parallel import cpu_count  # noqa: F401 - part of this module's API

__all__ = ["THREAD_VARIABLES", "thread_env", "cpu_count", "train_argv", "run_child", "ChildResult", "TrialEnd",
           "classify", "why_not_resumable", "set_aside", "read_info"]

# Every BLAS / OpenMP library numpy may be built with reads one of these when it loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
PARENT_ENV = "NNCLI_SWEEP_PARENT"  # the pid of the process whose end ends the trial
_STOPPED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP)
_POLL_S = 0.2  # how often a running trial looks whether the sweep asks it to stop
_MAX_ERROR = 4000  # characters of a trial's error message kept in sweep.json


def thread_env(threads: int, base: dict | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every BLAS thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def train_argv(config: str, sets: list[str], run_id: str, runs_dir: str, resume: bool) -> list[str]:
    """The trial's command: ``nncli train CONFIG --set ... --run-id ID`` (``--resume ID`` to continue it)."""
    argv = [sys.executable, "-m", "nncli.sweep.trial", "train", config]
    for text in sets:
        argv += ["--set", text]
    argv += ["--resume" if resume else "--run-id", run_id, "--runs-dir", runs_dir, "--quiet"]
    return argv


@dataclass
class ChildResult:
    returncode: int
    stderr: str
    stopped: bool  # the sweep asked it to stop


def run_child(argv: list[str], cwd: str | Path, env: dict, stop: Callable[[], int]) -> ChildResult:
    """Run ``argv`` to its end; ``stop()`` (polled) returns 1 to ask for a stop (Ctrl-C), 2 to insist.

    The child gets its own session, so a Ctrl-C on the terminal reaches only the sweep, which
    passes it on once per level (nncli train saves at the next batch on the first, stops on the second).
    """
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, PARENT_ENV: str(os.getpid())}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    sent = 0
    while True:
        try:
            _, err = proc.communicate(timeout=_POLL_S)
            break
        except subprocess.TimeoutExpired:
            level = stop()
            while sent < level:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
                sent += 1
    return ChildResult(proc.returncode, err.decode("utf-8", errors="replace"), sent > 0)


@dataclass
class TrialEnd:
    """How an attempt ended: ``outcome`` is completed, early_stopped, failed, interrupted or lost."""

    outcome: str
    error: str | None = None
    retry: bool = False  # another attempt could end differently (a lost process), unlike a bad config
    info: dict | None = None  # the run's run.json, when it has one


def _message(stderr: str) -> str:
    """The error nncli printed (from its ``error:`` line on), else the last lines of the output."""
    start = stderr.find("error: ")
    text = stderr[start + len("error: "):] if start >= 0 else "\n".join(stderr.strip().splitlines()[-5:])
    text = text.strip() or "no message"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def read_info(run_dir: Path) -> dict | None:
    """The run's run.json, or None when there is none (or it cannot be read)."""
    import json

    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def why_not_resumable(run_dir: Path) -> str | None:
    """Why ``nncli train --resume`` would refuse to continue this run folder (None: it can).

    The same rule as the resume itself: the last checkpoint is there, or the run was cut before it
    finished anything (no epoch in run.json or metrics.csv, no best checkpoint).
    """
    from nncli.train.runs import RunFolder, read_metrics_rows

    run, info = RunFolder(run_dir), read_info(run_dir)
    if info is None:
        return "it has no readable run.json"
    if (run.checkpoints / "last.safetensors").is_file():
        return None
    rows, _ = read_metrics_rows(run_dir / "metrics.csv")
    if info.get("epochs_done") or rows or (run.checkpoints / "best.safetensors").exists():
        return "it has finished epochs but no last checkpoint"
    return None


def set_aside(run_dir: Path, attempt: int) -> Path:
    """Move a run folder that cannot be resumed out of the trial's way (hidden: ``nncli runs`` skips it)."""
    aside = run_dir.with_name(f".{run_dir.name}.attempt-{attempt}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f".{run_dir.name}.attempt-{attempt}-{n}")
    os.rename(run_dir, aside)
    return aside


def classify(result: ChildResult, run_dir: Path) -> TrialEnd:
    """What the exit of ``nncli train`` means (see its exit codes) for the trial in ``run_dir``."""
    info, code = read_info(run_dir), result.returncode
    status = (info or {}).get("status")
    stopped_by_signal = code in _STOPPED_CODES or -code in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    if status in ("completed", "early_stopped") and (code == 0 or stopped_by_signal):
        return TrialEnd(status, info=info)  # a stop that came after the run was recorded as finished
    if code == 0:
        return TrialEnd("failed", f"nncli train ended without a finished run folder (status {status!r})", info=info)
    if code == 1 and status == "failed":  # the loss became NaN or infinite: training again gives the same
        return TrialEnd("failed", (info or {}).get("error") or _message(result.stderr), info=info)
    if code == 2:  # bad input (a config that builds no model, data that does not fit): it stays bad
        return TrialEnd("failed", _message(result.stderr), info=info)
    if stopped_by_signal and result.stopped:
        return TrialEnd("interrupted", info=info)
    if code < 0 or stopped_by_signal:
        name = _signal_name(-code if code < 0 else code - 128)
        return TrialEnd("lost", f"the trial's process was killed by {name}", retry=True, info=info)
    return TrialEnd("failed", f"nncli train exited with code {code}: {_message(result.stderr)}", info=info)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- the child's side -------------------------------------------------------------------------
def _die_with_parent() -> None:
    """End this process when the one that started it ends (Linux: at once, by the kernel; else: polled)."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not parent:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            raise OSError
    except (OSError, AttributeError):
        def watch() -> None:
            while os.getppid() == parent:
                threading.Event().wait(1.0)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True, name="nncli-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the kernel was told
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    _die_with_parent()
    from nncli.cli import main as cli_main

    sys.argv = ["nncli", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
