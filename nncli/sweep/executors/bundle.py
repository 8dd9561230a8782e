"""What travels between the sweep and a cluster worker: a trial's config and files, and run folders.

No shared filesystem is assumed. A trial takes its resolved config and the files it names (data,
labels, plugin files) up to :func:`ship_limit` bytes each; a larger file is not sent and must
exist at the same path on every worker. The worker writes them into a folder of its own,
trains there, and sends the run folder back packed; the sweep unpacks it into the local runs
folder with every path in config.yaml and run.json put back to the local files.

    bundle = make_bundle(cfg.to_dict(absolute_paths=True), cache)       # on the sweep's side
    config_path, paths = unpack_bundle(bundle, folder)                   # on the worker
    blob = pack_run(run_dir)                                             # on the worker
    install_run(blob, runs_dir, run_id, bundle["config"], paths)         # back on the sweep's side
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import Any

import yaml

from nncli.errors import RunError

__all__ = ["SHIP_LIMIT_ENV", "ship_limit", "make_bundle", "unpack_bundle", "local_config", "pack_run",
           "extract_run", "install_run", "relocate", "BundleError"]

SHIP_LIMIT_ENV = "NNCLI_SWEEP_SHIP_LIMIT"  # bytes; a file larger than this stays where it is
DEFAULT_SHIP_LIMIT = 64 * 2**20
_SKIPPED = ("run.lock",)  # a lock belongs to the process holding it, on its machine
MAX_RUN_BYTES = 2**31  # most bytes of a run folder unpacked from a worker's answer


class BundleError(Exception):
    """A trial cannot run on this worker (a file it needs is not there)."""


def ship_limit() -> int:
    try:
        return int(os.environ.get(SHIP_LIMIT_ENV, DEFAULT_SHIP_LIMIT))
    except ValueError:
        return DEFAULT_SHIP_LIMIT


def _file_keys(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every value of the resolved config that names an existing file (absolute paths only)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _file_keys(v, path + (k,))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _file_keys(v, path + (i,))]
    if isinstance(node, str) and os.path.isabs(node) and os.path.isfile(node):
        return [path]
    return []


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _put(data: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def make_bundle(config: dict, cache: dict[str, bytes]) -> dict:
    """The trial's resolved ``config`` and its files: the bytes of each up to the limit, else its size only.

    ``cache`` (path -> bytes) is shared by a sweep's trials, so each file is read once.
    """
    limit, files = ship_limit(), []
    for path in _file_keys(config):
        name = _get(config, path)
        size = os.path.getsize(name)
        data = None
        if size <= limit:
            if name not in cache:
                cache[name] = Path(name).read_bytes()
            data = cache[name]
        files.append({"key": list(path), "path": name, "size": size, "data": data})
    return {"config": config, "files": files}


def unpack_bundle(bundle: dict, folder: Path) -> tuple[Path, dict[str, str]]:
    """Write the trial's files and config.yaml into ``folder``; ``(config path, {sweep path: worker path})``.

    Raises BundleError when a file that did not travel is missing here, or is not the same size.
    """
    config = json.loads(json.dumps(bundle["config"]))  # a copy: the bundle stays as sent
    paths: dict[str, str] = {}
    (folder / "files").mkdir(parents=True, exist_ok=True)
    limit = ship_limit()
    for i, entry in enumerate(bundle["files"]):
        key, name = tuple(entry["key"]), entry["path"]
        if entry["data"] is None:
            here = os.path.getsize(name) if os.path.isfile(name) else None
            if here != entry["size"]:
                found = "it is not there" if here is None else f"it has {here:,} bytes here"
                raise BundleError(
                    f"{name} ({entry['size']:,} bytes, more than the {limit:,} that travel with a trial; "
                    f"{SHIP_LIMIT_ENV} sets the limit) must exist at the same path on every worker, but {found}: "
                    "copy it there (or put it on a filesystem the workers share)")
            continue
        local = folder / "files" / f"{i}-{Path(name).name}"
        local.write_bytes(entry["data"])
        paths[name] = str(local)
        _put(config, key, str(local))
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path, paths


def local_config(bundle: dict, paths: dict[str, str]) -> dict:
    """The trial's resolved config with the paths ``paths`` maps (sweep -> worker) replaced."""
    config = json.loads(json.dumps(bundle["config"]))
    for entry in bundle["files"]:
        if entry["path"] in paths:
            _put(config, tuple(entry["key"]), paths[entry["path"]])
    return config


def pack_run(run_dir: Path) -> bytes:
    """The run folder as a gzipped tar (its lock left out)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(run_dir.rglob("*")):
            rel = path.relative_to(run_dir)
            if rel.name in _SKIPPED or rel.name.startswith(".") or path.is_symlink():
                continue
            if path.is_file() or path.is_dir():
                tar.add(path, arcname=str(rel), recursive=False)
    return buf.getvalue()


def extract_run(blob: bytes, dest: Path) -> None:
    """Unpack a run folder made by :func:`pack_run`: plain files and folders inside ``dest`` only."""
    total = 0
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if (not (member.isfile() or member.isdir()) or os.path.isabs(member.name) or ".." in parts
                    or not parts):
                raise RunError(f"a worker sent a run folder holding {member.name!r}, which is not a plain "
                               "file inside it; it was not unpacked")
            total += member.size
            if total > MAX_RUN_BYTES:
                raise RunError(f"a worker sent a run folder of more than {MAX_RUN_BYTES:,} bytes; it was not unpacked")
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _replace(node: Any, paths: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _replace(v, paths) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, paths) for v in node]
    if isinstance(node, str):
        for old, new in paths.items():
            node = node.replace(old, new)
    return node


def relocate(run_dir: Path, config: dict, paths: dict[str, str]) -> None:
    """Make a run folder moved between machines name this machine's files: config.yaml becomes ``config``
    (this side's resolved config), and every path in run.json is mapped by ``paths`` (old -> new)."""
    from nncli.train.runs import RunFolder

    run = RunFolder(run_dir)
    run.write_config(config)
    if (run_dir / "run.json").is_file():
        run.write_json(_replace(run.read_json(), paths))


def install_run(blob: bytes, runs_dir: Path, run_id: str, config: dict, paths: dict[str, str]) -> Path:
    """Put a run folder sent by a worker at ``runs_dir/run_id`` (replacing an earlier attempt's), relocated.

    It is unpacked into a hidden folder first, so a crash leaves the old folder or the new one.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    tmp, old = runs_dir / f".{run_id}.{token}.tmp", runs_dir / f".{run_id}.{token}.old"
    try:
        tmp.mkdir()
        extract_run(blob, tmp)
        relocate(tmp, config, paths)
        target = runs_dir / run_id
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return runs_dir / run_id
