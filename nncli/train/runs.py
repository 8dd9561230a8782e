"""The run folder: config.yaml, run.json, metrics.csv, checkpoints/, loss.png.

Every file that is rewritten is written to a temporary file and renamed over the old
one, so a crash at any moment leaves either the old or the new version, never half
of one. Checkpoints carry a SHA-256 of their tensors: a damaged one is refused.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

from nncli.errors import RunError

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHECKPOINTS = ("last", "best")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (os.umask can only be read by setting it)
FORMAT = "nncli-checkpoint-1"


def check_run_id(run_id: str) -> str:
    """A run id is one plain folder name: no separators, no ``..``, nothing hidden."""
    if not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise RunError(f"invalid run id '{run_id}': expected letters, digits, '.', '_' or '-' "
                       "(starting with a letter or digit), no path separators or '..'")
    if run_id == "latest":  # RUN_ID 'latest' means the newest run: a run called so could never be named
        raise RunError("invalid run id 'latest': it is reserved for the newest run; choose another --run-id")
    return run_id


def new_run_id(stem: str, runs_dir: Path, now: datetime | None = None) -> str:
    """``<config-stem>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... where taken."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "run"
    base = f"{stem}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    run_id, n = base, 1
    while (runs_dir / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def list_runs(runs_dir: Path) -> list[Path]:
    """Run folders (those with a run.json), newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "run.json").is_file()]  # hidden: half-made

    def created(p: Path) -> str:
        try:
            return json.loads((p / "run.json").read_text()).get("created", "")
        except (OSError, ValueError):
            return ""

    return sorted(runs, key=lambda p: (created(p), p.name), reverse=True)


def _is_path(run_id: str) -> bool:
    """A run named by its folder (``other/runs/my-run``, ``./my-run``) rather than by its id."""
    return "/" in run_id or os.sep in run_id or run_id in (".", "..") or run_id.startswith(("~", "./", "../"))


def resolve_run(runs_dir: str | Path, run_id: str) -> Path:
    """The folder of ``run_id`` (or of the newest run for ``latest``), or a RunError naming close ids.

    ``run_id`` may also be a run folder's path (``../other/runs/my-run``), from any runs folder.
    """
    runs_dir = Path(runs_dir)
    if _is_path(run_id):
        path = Path(run_id).expanduser()
        if path.is_dir() and (path / "run.json").is_file():
            return path
        what = "the folder has no run.json" if path.is_dir() else "no such folder"
        raise RunError(f"no run at {run_id}: {what} (name a run by its id in {runs_dir}/, by 'latest', "
                       "or by its folder's path)")
    runs = list_runs(runs_dir)
    if run_id == "latest":
        if not runs:
            raise RunError(f"no runs in {runs_dir}/ yet: train one with 'nncli train CONFIG'")
        return runs[0]
    check_run_id(run_id)
    path = runs_dir / run_id
    if path.is_dir() and (path / "run.json").is_file():
        return path
    if path.is_dir():
        raise RunError(f"{path} is not a run folder: it has no run.json")
    if Path(run_id).is_dir() and (Path(run_id) / "run.json").is_file():
        return Path(run_id)  # a run folder in the current folder, named as it is listed there
    ids = [p.name for p in runs]
    close = difflib.get_close_matches(run_id, ids, n=3, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else (f" Runs: {', '.join(ids[:5])}." if ids else "")
    raise RunError(f"no run '{run_id}' in {runs_dir}/.{hint}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (then sync the folder)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, np.ndarray], metadata: dict) -> None:
    """Write a safetensors checkpoint atomically; ``metadata`` values are stored as JSON."""
    from safetensors.numpy import save

    meta = {key: json.dumps(value) for key, value in metadata.items()}
    meta["format"] = FORMAT
    meta["sha256"] = _digest(tensors)
    blob = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta)
    try:
        atomic_write(path, blob)
    except OSError as err:
        raise RunError(f"could not write checkpoint {path} ({err.strerror or err}); "
                       "the previous checkpoint is intact") from None


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a checkpoint: tensors and decoded metadata, or a RunError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        blob = path.read_bytes()
        tensors = load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        raw_meta = json.loads(blob[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, OSError, UnicodeDecodeError) as err:
        raise RunError(f"checkpoint {path} is damaged or truncated and was not loaded ({err})") from None
    if raw_meta.get("format") != FORMAT or raw_meta.get("sha256") != _digest(tensors):
        raise RunError(f"checkpoint {path} failed its integrity check (corrupted); it was not loaded")
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items() if k not in ("format", "sha256")}
    except ValueError:
        raise RunError(f"checkpoint {path} has unreadable metadata; it was not loaded") from None
    return tensors, meta


class RunFolder:
    """One run's folder on disk and the files in it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    @property
    def run_id(self) -> str:
        return self.path.name

    @staticmethod
    def check_free(runs_dir: Path, run_id: str) -> Path:
        """The path a new run ``run_id`` would get; a RunError if the id is bad or taken."""
        check_run_id(run_id)
        path = runs_dir / run_id
        if runs_dir.exists() and not runs_dir.is_dir():
            raise RunError(f"cannot create run folder {path}: --runs-dir {runs_dir} is a file, expected a folder")
        if path.exists() or path.is_symlink():
            raise RunError(f"run folder {path} already exists: choose another --run-id, or --resume it")
        return path

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, config: dict, info: dict | None = None) -> RunFolder:
        """Make the folder with config.yaml (and run.json from ``info``), refusing an existing one.

        The files are written in a hidden folder renamed into place at the end, so a crash never
        leaves a half-made run folder (one that cannot be resumed, under an id that is taken).
        """
        runs_dir = Path(runs_dir)
        path = cls.check_free(runs_dir, run_id)
        tmp = runs_dir / f".{run_id}.{secrets.token_hex(4)}.tmp"
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            (tmp / "checkpoints").mkdir(parents=True)
            run = cls(tmp)
            run.write_config(config)
            if info is not None:
                run.write_json(info)
            os.rename(tmp, path)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RunError(f"cannot create run folder {path}: {err.strerror or err}") from None
        return cls(path)

    def remove_partial_writes(self) -> None:
        """Delete the temporary files of writes that a crash cut short (see :func:`atomic_write`)."""
        for folder in (self.path, self.checkpoints):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def write_config(self, config: dict) -> None:
        atomic_write(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())

    def read_json(self) -> dict:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError) as err:
            raise RunError(f"{self.path / 'run.json'} cannot be read: {err}") from None

    def write_json(self, info: dict) -> None:
        atomic_write(self.path / "run.json", (json.dumps(info, indent=2) + "\n").encode())

    def append_metrics(self, row: dict, columns: list[str]) -> None:
        """Add one epoch's row to metrics.csv (header once), flushed to disk."""
        path = self.path / "metrics.csv"
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(columns)
            writer.writerow([_cell(row.get(c)) for c in columns])
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the header and the first ``epochs`` rows (rows a crash wrote after the checkpoint go)."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return
        lines = path.read_text().splitlines(keepends=True)
        keep = lines[: 1 + epochs] if lines else []
        if len(keep) != len(lines):
            atomic_write(path, "".join(keep).encode())

    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.csv"
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(text: str):
    if text in ("", None):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
