"""The sweep's own record: ``runs/<sweep-id>/sweep.json``, rewritten atomically as trials start and end.

    folder = SweepFolder.create(Path("runs"), "quickstart-sweep-20261201-101500")
    folder.write(record)                      # a temporary file renamed over the old one
    record = SweepFolder(path).read()         # checked against the schema below

It lists every trial: its overrides, its run id (an ordinary run folder beside the sweep's),
its status, its best monitored value and each attempt (where it ran, how it ended). The sweep
folder has no run.json, so ``nncli runs`` lists the trials and not the sweep.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli.errors import RunError
from nncli.train.runs import _is_path, atomic_write, check_run_id

__all__ = ["SweepRecord", "TrialRecord", "Attempt", "Best", "SweepFolder", "resolve_sweep", "list_sweeps", "is_sweep",
           "trial_run_id", "new_sweep_id", "ENDED", "FINAL", "now"]

FORMAT = "nncli-sweep-1"
RECORD = "sweep.json"
ENDED = ("completed", "early_stopped")  # a trial that trained to its end
FINAL = (*ENDED, "failed")  # a trial that a resumed sweep does not run again
TrialStatus = Literal["pending", "running", "completed", "early_stopped", "failed", "interrupted"]
Outcome = Literal["completed", "early_stopped", "failed", "interrupted", "lost"]


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class Best(_Part):
    """A trial's best value of the monitored quantity (``None`` until an epoch is done, or not finite)."""

    monitor: str
    value: float | None = None
    epoch: int | None = None


class Attempt(_Part):
    """One start of a trial: where it ran and how it ended (``lost``: its worker or process died)."""

    worker: str  # "local" or the Dask worker's address
    threads: int | None = None  # BLAS threads it ran with
    started: str
    ended: str | None = None
    outcome: Outcome | None = None  # None while it runs
    error: str | None = None
    resumed: bool = False  # continued the trial's run folder with --resume


class TrialRecord(_Part):
    trial: int = Field(ge=0)
    run_id: str
    overrides: dict[str, Any]  # config key -> value, as the space gave them
    set: list[str]  # the --set strings the trial trains with (the seed first)
    config_sha256: str  # of the trial's resolved config: a resumed sweep refuses a changed config
    status: TrialStatus = "pending"
    best: Best | None = None
    epochs_done: int = 0
    error: str | None = None  # why it failed
    attempts: list[Attempt] = []


class SweepRecord(_Part):
    format: Literal["nncli-sweep-1"] = FORMAT
    sweep_id: str
    status: Literal["running", "completed", "failed", "interrupted"] = "running"
    created: str
    updated: str
    finished: str | None = None
    config: str  # as given
    config_path: str  # absolute
    cwd: str  # where the sweep was started: the trials run there (relative paths in --set start there)
    runs_dir: str
    argv: list[str]
    method: Literal["grid", "random", "tpe"]
    space: list[dict[str, Any]]  # the dimensions: {"key", "kind", "values"}
    count: int = Field(ge=1)  # trials in all (TPE adds them as it goes)
    seed: int  # of the draws
    trial_seed: int  # every trial's seed= override
    monitor: str
    mode: Literal["min", "max"]
    executor: dict[str, Any]  # {"kind": "local", "workers": 2} or {"kind": "dask", "address": ...}; "threads"
    retries: int = Field(ge=0)
    trials: list[TrialRecord]

    def trial(self, number: int) -> TrialRecord:
        return self.trials[number]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def ranked(self) -> list[TrialRecord]:
        """Trials best first: those with a value by it (``mode``), then the others in trial order."""
        scored = [t for t in self.trials if t.best is not None and t.best.value is not None]
        scored.sort(key=lambda t: (-t.best.value if self.mode == "max" else t.best.value, t.trial))
        return scored + [t for t in self.trials if t not in scored]

    def best_trial(self) -> TrialRecord | None:
        ranked = [t for t in self.ranked() if t.status in ENDED and t.best is not None and t.best.value is not None]
        return ranked[0] if ranked else None


def trial_run_id(sweep_id: str, number: int, count: int) -> str:
    """``<sweep-id>-t03``: the trial's run folder, numbered from 0 with as many digits as the sweep needs."""
    return f"{sweep_id}-t{number:0{max(2, len(str(max(count - 1, 0))))}d}"


def new_sweep_id(stem: str) -> str:
    """``<config-stem>-sweep-<YYYYmmdd-HHMMSS>``; :meth:`SweepFolder.create` adds ``-2``... where taken."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "sweep"
    return f"{stem}-sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class SweepFolder:
    """``runs/<sweep-id>/``: sweep.json and the sweep's plot."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def sweep_id(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @classmethod
    def create(cls, runs_dir: Path, sweep_id: str, *, numbered: bool, taken=lambda sweep_id: False) -> SweepFolder:
        """Make the folder exclusively (never two sweeps in one); ``numbered`` adds ``-2``, ``-3``... where taken.

        ``taken(id)`` tells whether an id is unusable for another reason (a trial's run id is in use).
        """
        check_run_id(sweep_id)
        if runs_dir.exists() and not runs_dir.is_dir():
            raise RunError(f"cannot create the sweep folder: --runs-dir {runs_dir} is a file, expected a folder")
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"cannot create the runs folder {runs_dir}: {err.strerror or err}") from None
        candidate, n = sweep_id, 1
        while True:
            if not taken(candidate):
                try:
                    os.mkdir(runs_dir / candidate)
                    return cls(runs_dir / candidate)
                except FileExistsError:
                    pass
                except OSError as err:
                    raise RunError(f"cannot create the sweep folder {runs_dir / candidate}: "
                                   f"{err.strerror or err}") from None
            if not numbered:
                raise RunError(f"{runs_dir / candidate} already exists (or a trial's run id is taken): choose "
                               "another --sweep-id, or continue it with --resume")
            n += 1
            candidate = f"{sweep_id}-{n}"

    def read(self) -> SweepRecord:
        try:
            raw = json.loads(self.record_path.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise RunError(f"{self.record_path} cannot be read: {err}") from None
        try:
            return SweepRecord.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the top level"
            raise RunError(f"{self.record_path} is not a valid sweep record: {where}: {first['msg'].lower()}") \
                from None

    def write(self, record: SweepRecord) -> None:
        record.updated = now()
        data = json.dumps(record.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"
        try:
            atomic_write(self.record_path, data.encode())
        except OSError as err:
            raise RunError(f"could not write {self.record_path} ({err.strerror or err}); "
                           "the previous version is intact") from None


def list_sweeps(runs_dir: Path) -> list[Path]:
    """Sweep folders (with a sweep.json), newest first."""
    if not Path(runs_dir).is_dir():
        return []
    found = [p for p in Path(runs_dir).iterdir() if not p.name.startswith(".") and (p / RECORD).is_file()]
    return sorted(found, key=lambda p: ((p / RECORD).stat().st_mtime, p.name), reverse=True)


def is_sweep(runs_dir: str | Path, sweep_id: str) -> bool:
    """Whether ``sweep_id`` names a sweep: an id in ``runs_dir``, or a sweep folder's path."""
    if _is_path(sweep_id):
        return (Path(sweep_id).expanduser() / RECORD).is_file()
    return sweep_id != "latest" and (Path(runs_dir) / sweep_id / RECORD).is_file()


def resolve_sweep(runs_dir: str | Path, sweep_id: str) -> SweepFolder:
    """The folder of ``sweep_id`` (``latest``: the newest sweep), or a RunError naming close ids."""
    runs_dir = Path(runs_dir)
    if _is_path(sweep_id):  # a sweep folder's path, from any runs folder (its trials are beside it)
        path = Path(sweep_id).expanduser()
        if (path / RECORD).is_file():
            return SweepFolder(path)
        raise RunError(f"no sweep at {sweep_id}: " + ("the folder has no sweep.json" if path.is_dir()
                                                      else "no such folder"))
    sweeps = list_sweeps(runs_dir)
    if sweep_id == "latest":
        if not sweeps:
            raise RunError(f"no sweeps in {runs_dir}/ yet: start one with 'nncli sweep CONFIG --grid ...'")
        return SweepFolder(sweeps[0])
    check_run_id(sweep_id)
    path = runs_dir / sweep_id
    if (path / RECORD).is_file():
        return SweepFolder(path)
    ids = [p.name for p in sweeps]
    close = difflib.get_close_matches(sweep_id, ids, n=3, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else (f" Sweeps: {', '.join(ids[:5])}." if ids else "")
    what = "a run, not a sweep" if (path / "run.json").is_file() else "no sweep"
    raise RunError(f"{runs_dir / sweep_id} is {what} (no {RECORD}).{hint}")
