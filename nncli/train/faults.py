"""Fault injection for the reliability tests: signal, kill or pause a real ``nncli`` process at a known point.

The tests set ``NNCLI_FAULTS`` to a comma-separated list of ``POINT=ACTION`` rules, so a kill lands
exactly where it is aimed however slow the machine is (never "sleep long enough, then kill"):

    NNCLI_FAULTS="batch:3=SIGTERM"                          # after this process's 3rd training batch
    NNCLI_FAULTS="write:last.safetensors:2:half=SIGKILL"     # half-way through its 2nd write of that file
    NNCLI_FAULTS="batch:1=pause"                            # stop there until a signal asks to stop

POINT is ``batch:K`` (after the K-th batch this process trains) or ``write:NAME:K:STAGE`` (its K-th
write of the run file NAME, ``*`` for any file, at STAGE ``open`` (temporary file made, empty),
``half`` (half the bytes written), ``synced`` (all written and synced, not yet renamed) or
``renamed`` (in place, folder not yet synced)). ACTION is a signal name, sent to this process, or
``pause``: create the file named by ``NNCLI_FAULTS_READY`` (if set) and wait until a signal has
asked the trainer to stop. Without ``NNCLI_FAULTS`` every hook is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable

ENV, READY_ENV = "NNCLI_FAULTS", "NNCLI_FAULTS_READY"


def _parse(text: str) -> dict[str, str]:
    rules = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, action = item.partition("=")
        rules[point.strip()] = action.strip()
    return rules


_RULES = _parse(os.environ.get(ENV, ""))
_COUNTS: Counter = Counter()


def active() -> bool:
    """Whether any fault is set for this process."""
    return bool(_RULES)


def _fire(point: str, stop_requested: Callable[[], bool] | None = None) -> None:
    action = _RULES.get(point)
    if action is None:
        return
    if action == "pause":
        ready = os.environ.get(READY_ENV)
        if ready:
            with open(ready, "w") as f:
                f.write(f"{os.getpid()}\n")
        while stop_requested is not None and not stop_requested():
            time.sleep(0.01)  # a poll, not a timing assumption: it ends when a signal has been handled
        return
    os.kill(os.getpid(), getattr(signal, action))


def batch_done(stop_requested: Callable[[], bool]) -> None:
    """Called after every training batch."""
    if _RULES:
        _COUNTS["batch"] += 1
        _fire(f"batch:{_COUNTS['batch']}", stop_requested)


def write_stage(name: str, stage: str) -> None:
    """Called at each stage of writing the run file ``name``."""
    if not _RULES:
        return
    if stage == "open":
        _COUNTS[f"write:{name}"] += 1
        _COUNTS["write:*"] += 1
    _fire(f"write:{name}:{_COUNTS[f'write:{name}']}:{stage}")
    _fire(f"write:*:{_COUNTS['write:*']}:{stage}")
