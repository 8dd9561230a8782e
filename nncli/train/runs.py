"""The run folder: config.yaml, run.json, metrics.csv, checkpoints/, loss.png, run.lock.

Every file that is rewritten is written to a temporary file and renamed over the old one, so a
crash at any moment leaves either the old or the new version, never half of one. Writes never
follow a symbolic link inside a run folder, and the cleanup after a crash deletes only the
temporary files nncli itself names. A process that writes a run holds ``run.lock`` (an OS file
lock the kernel releases when the process dies), so a second writer is refused, and a run whose
run.json says ``running`` while nobody holds the lock is known to have crashed.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import stat
import time
from datetime import datetime
from pathlib import Path

import yaml

from nncli.errors import RunError, close_matches
from nncli.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401 - re-exported
from nncli.train.files import open_folder, atomic_write
from nncli.train.runinfo import validate_run_info

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
CHECKPOINTS = ("last", "best")
LOCK = "run.lock"
# The files nncli writes in a run folder (and in checkpoints/): only their temporary files are cleaned up.
RUN_FILES = ("config.yaml", "run.json", "metrics.csv", "loss.png")
CHECKPOINT_FILES = tuple(f"{name}.safetensors" for name in CHECKPOINTS)
EPOCH_CHECKPOINT = re.compile(r"epoch-(?P<epoch>\d{4,7})\.safetensors")  # train.checkpoint: {every, keep}
_TMP = re.compile(r"\.(?P<name>.+)\.nncli-[0-9a-f]{8}\.tmp")
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)  # rename refused: the name is in use


def check_run_id(run_id: str) -> str:
    """A run id is one plain folder name: no separators, no ``..``, nothing hidden, no control characters."""
    if not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise RunError(f"invalid run id {run_id!r}: expected letters, digits, '.', '_' or '-' "
                       "(starting with a letter or digit), no path separators or '..'")
    if run_id == "latest":  # RUN_ID 'latest' means the newest run: a run called so could never be named
        raise RunError("invalid run id 'latest': it is reserved for the newest run; choose another --run-id")
    return run_id


def new_run_id(stem: str, now: datetime | None = None) -> str:
    """``<config-stem>-<YYYYmmdd-HHMMSS>``; :meth:`RunFolder.create` adds ``-2``, ``-3``... where taken."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "run"
    return f"{stem}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"


def list_runs(runs_dir: Path) -> list[Path]:
    """Run folders (those with a run.json), newest first; a run.json that cannot be read sorts last."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "run.json").is_file()]  # hidden: half-made

    def created(p: Path) -> str:
        try:
            value = json.loads((p / "run.json").read_text()).get("created", "")
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            return ""
        return value if isinstance(value, str) else ""

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
    close = close_matches(run_id, ids, n=3)
    hint = f" Closest: {', '.join(close)}." if close else (f" Runs: {', '.join(ids[:5])}." if ids else "")
    raise RunError(f"no run '{run_id}' in {runs_dir}/.{hint}")


# -- the lock --------------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``<run>/run.lock``, held while this process writes the run.

    The kernel releases it when the process ends, however it ends, so it never goes stale. The
    file names its holder (pid, host, command) for the message a second writer gets; readers
    probe it with a shared lock for an instant (:func:`is_locked`), which a writer retries past.
    """

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    @classmethod
    def acquire(cls, folder: Path, argv: list[str] | None = None) -> RunLock:
        dir_fd = open_folder(folder, follow=False)
        try:
            fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunError(f"{folder / LOCK} is a symbolic link: nncli never writes through links in a "
                               "run folder") from None
            raise
        finally:
            os.close(dir_fd)
        try:
            for _ in range(1000):  # a reader's probe holds a shared lock for microseconds: try again
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if _held_exclusively(fd):
                        raise RunError(f"run '{folder.name}' is being written by {_holder(fd)}: wait for it "
                                       "to finish, or stop it (Ctrl-C, or kill PID) and resume then") from None
                    time.sleep(0.001)
            else:
                raise RunError(f"could not lock run '{folder.name}' ({folder / LOCK}): it is being read "
                               "without pause; try again")
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "argv": list(argv or []),
                      "since": datetime.now().astimezone().isoformat(timespec="seconds")}
            try:  # who holds the lock is only for messages: a full disk here is no reason to stop
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            except OSError:
                pass
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, folder / LOCK)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _held_exclusively(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode())
        argv = " ".join(info.get("argv") or [])
        return f"process {info['pid']} on {info['host']}" + (f" ({argv}, since {info['since']})" if argv else "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "another process"


def is_locked(folder: Path) -> bool:
    """Whether a live process holds the run's lock (so a ``running`` run is really running)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: no process of this nncli ever wrote the run, or it is gone
    try:
        return _held_exclusively(fd)
    finally:
        os.close(fd)


# -- the folder ------------------------------------------------------------------------------------
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
    def create(cls, runs_dir: Path, run_id: str | None, config: dict, info: dict, *, stem: str = "run",
               argv: list[str] | None = None) -> tuple[RunFolder, RunLock]:
        """Make the folder with config.yaml and run.json, locked by this process; refuse an existing one.

        The files are written in a hidden folder renamed into place at the end, so a crash never
        leaves a half-made run folder. The rename is the atomic step that takes the id: with
        ``run_id`` None the id is ``new_run_id(stem)``, and when another launch took it first the
        next suffix is tried (``-2``, ``-3``...); an explicit ``run_id`` that is taken is refused.
        """
        runs_dir = Path(runs_dir)
        base = run_id or new_run_id(stem)
        if run_id:
            cls.check_free(runs_dir, base)
        elif runs_dir.exists() and not runs_dir.is_dir():
            raise RunError(f"cannot create run folder {runs_dir / base}: --runs-dir {runs_dir} is a file, "
                           "expected a folder")
        tmp = runs_dir / f".{base}.{secrets.token_hex(4)}.tmp"
        lock = None
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            (tmp / "checkpoints").mkdir(parents=True)
            lock = RunLock.acquire(tmp, argv)
            run = cls(tmp)
            run.write_config(config)
            for n in range(1, 10_000):
                candidate = base if n == 1 else f"{base}-{n}"
                if not run_id and ((runs_dir / candidate).exists() or (runs_dir / candidate).is_symlink()):
                    continue  # taken already: no need to try the rename
                info["run_id"] = candidate
                run.write_json(info)
                try:
                    os.rename(tmp, runs_dir / candidate)
                    return cls(runs_dir / candidate), lock
                except OSError as err:
                    if err.errno not in _TAKEN:
                        raise
                    if run_id:
                        raise RunError(f"run folder {runs_dir / candidate} already exists: choose another "
                                       "--run-id, or --resume it") from None
            raise RunError(f"cannot create run folder {runs_dir / base}: 10,000 runs of that name exist")
        except BaseException as err:
            if lock is not None:
                lock.release()
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, OSError):
                raise RunError(f"cannot create run folder {runs_dir / base}: {err.strerror or err}") from None
            raise

    def lock(self, argv: list[str] | None = None) -> RunLock:
        """Take the run's lock for writing, after checking that nothing in the folder is a symbolic link."""
        self.check_no_links()
        try:
            return RunLock.acquire(self.path, argv)
        except OSError as err:
            raise RunError(f"cannot write to run folder {self.path} ({err.strerror or err})") from None

    def check_no_links(self) -> None:
        """A RunError if the run folder, checkpoints/ or a file nncli writes there is a symbolic link."""
        entries = [self.path, self.checkpoints, self.path / LOCK, *(self.path / n for n in RUN_FILES),
                   *(self.checkpoints / n for n in CHECKPOINT_FILES),
                   *(self.checkpoints / f"epoch-{e:04d}.safetensors" for e in self.epoch_checkpoints())]
        for entry in entries:
            if entry.is_symlink():
                raise RunError(f"{entry} is a symbolic link: nncli never writes through links in a run folder "
                               f"(it points to {os.readlink(entry)}; replace it with the file itself)")

    def remove_partial_writes(self) -> None:
        """Delete the temporary files of writes that a crash cut short, and nothing else.

        Only regular files named as :func:`atomic_write` names them, for files nncli writes there.
        """
        for folder, names in ((self.path, RUN_FILES), (self.checkpoints, CHECKPOINT_FILES)):
            dir_fd = open_folder(folder, follow=False)
            try:
                for entry in os.listdir(dir_fd):
                    match = _TMP.fullmatch(entry)
                    ours = match and (match["name"] in names or (
                        folder == self.checkpoints and EPOCH_CHECKPOINT.fullmatch(match["name"])))
                    if ours and stat.S_ISREG(
                            os.stat(entry, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                        os.unlink(entry, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)

    def epoch_checkpoints(self) -> list[int]:
        """The epochs of the periodic checkpoints (``checkpoints/epoch-0007.safetensors``), oldest first."""
        try:
            names = os.listdir(self.checkpoints)
        except OSError:
            return []
        return sorted(int(m["epoch"]) for m in map(EPOCH_CHECKPOINT.fullmatch, names) if m)

    def delete_checkpoint(self, name: str) -> None:
        """Remove ``checkpoints/<name>.safetensors`` (a regular file, never through a link)."""
        dir_fd = open_folder(self.checkpoints, follow=False)
        try:
            entry = f"{name}.safetensors"
            if stat.S_ISREG(os.stat(entry, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(entry, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(dir_fd)

    def write_config(self, config: dict) -> None:
        atomic_write(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode(), follow_links=False)

    def read_json(self) -> dict:
        """run.json, checked against its schema: a RunError saying what is wrong, never a crash later."""
        path = self.path / "run.json"
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as err:
            raise RunError(f"{path} cannot be read: {err}") from None
        return validate_run_info(raw, str(path))

    def write_json(self, info: dict) -> None:
        atomic_write(self.path / "run.json", (json.dumps(info, indent=2) + "\n").encode(), follow_links=False)

    def append_metrics(self, row: dict, columns: list[str]) -> None:
        """Add one epoch's row to metrics.csv (header once), flushed to disk; never through a link."""
        dir_fd = open_folder(self.path, follow=False)
        try:
            fd = os.open("metrics.csv", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=dir_fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunError(f"{self.path / 'metrics.csv'} is a symbolic link: nncli never writes through "
                               "links in a run folder") from None
            raise
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "a", newline="") as f:
            writer = csv.writer(f)
            if os.fstat(fd).st_size == 0:
                writer.writerow(columns)
            writer.writerow([_cell(row.get(c)) for c in columns])
            f.flush()
            os.fsync(f.fileno())

    def write_metrics(self, rows: list[dict], columns: list[str]) -> None:
        """Replace metrics.csv with ``rows`` (header first), atomically: how a resume rebuilds it."""
        lines = [columns] + [[_cell(row.get(c)) for c in columns] for row in rows]
        atomic_write(self.path / "metrics.csv", _csv_text(lines).encode(), follow_links=False)

    def read_metrics(self) -> list[dict]:
        """The rows of metrics.csv as numbers; a row that is cut, glued or garbled is left out."""
        return read_metrics_rows(self.path / "metrics.csv")[0]


def read_metrics_rows(path: Path) -> tuple[list[dict], int]:
    """``(good rows, number of bad rows)`` of a metrics.csv; a bad row has the wrong number of cells
    or a cell that is not a number."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return [], 0
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return [], 0
    header = next(csv.reader([lines[0]]))
    rows, bad = [], 0
    for line in lines[1:]:
        try:
            cells = next(csv.reader([line.replace("\x00", "")]))
        except (csv.Error, StopIteration):
            bad += 1
            continue
        values = [_number(c) for c in cells]
        if len(cells) != len(header) or any(isinstance(v, str) for v in values):
            bad += 1
            continue
        rows.append(dict(zip(header, values)))
    return rows, bad


def _csv_text(lines: list[list[str]]) -> str:
    import io

    out = io.StringIO()
    csv.writer(out).writerows(lines)
    return out.getvalue()


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
