"""Fingerprints of training data: a SHA-256 of every data file's bytes, or of a built-in set's arrays.

A run records the fingerprint of what it trained on; resuming or evaluating it compares the data
as it is now, so an edited CSV or a changed built-in set is named instead of silently used.

    fp = data_fingerprint("data.csv", base_dir="configs")     # {"kind": "files", "files": [...]}
    fingerprint_changes(fp, data_fingerprint("data.csv", base_dir="configs"))   # [] while unchanged
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from nncli.data.builtin import BUILTIN_SETS, load_builtin

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> tuple[int, str]:
    """``(bytes, sha256 hex)`` of a file, read in 1 MiB chunks (never whole)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 over arrays' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def data_fingerprint(source: str, *, base_dir: str | Path = ".", labels: str | None = None, seed: int = 0,
                     samples: int | None = None, noise: float | None = None, validation: str | None = None,
                     test: str | None = None) -> dict:
    """What the data of a ``data:`` section is: its files' digests, or a built-in set's array digest.

    The validation and test files (``data.validation``, ``data.test``) are among the files, each
    under its role, whatever the source is.

    Example:
        >>> data_fingerprint("iris")["kind"], data_fingerprint("iris")["name"]
        ('builtin', 'iris')
    """
    files = []
    for role, name in (("source", None if source in BUILTIN_SETS else source), ("labels", labels),
                       ("validation", validation), ("test", test)):
        if name is None:
            continue
        path = (Path(base_dir) / Path(name).expanduser()).resolve()
        size, digest = file_digest(path)
        files.append({"role": role, "path": str(path), "bytes": size, "sha256": digest})
    if source in BUILTIN_SETS:
        x, y = load_builtin(source, seed=seed, samples=samples, noise=noise)
        return {"kind": "builtin", "name": source, "sha256": array_digest(x, y), **({"files": files} if files else {})}
    return {"kind": "files", "files": files}


def fingerprint_changes(recorded: dict, now: dict) -> list[str]:
    """One line per difference between a recorded fingerprint and the current one (empty: the same)."""
    lines = []
    if recorded.get("kind") == "builtin" or now.get("kind") == "builtin":
        if (recorded.get("name"), recorded.get("sha256")) != (now.get("name"), now.get("sha256")):
            lines.append(f"the built-in set '{recorded.get('name')}' has changed: its samples' sha256 was "
                         f"{str(recorded.get('sha256'))[:12]}…, it is {str(now.get('sha256'))[:12]}… now")
    old = {f["role"]: f for f in recorded.get("files", [])}  # with a built-in set: validation and test files
    new = {f["role"]: f for f in now.get("files", [])}
    for role in sorted(set(old) | set(new)):
        a, b = old.get(role), new.get(role)
        if a is None or b is None:
            lines.append(f"the {role} file {(a or b)['path']} was {'not ' if a is None else ''}used then")
        elif a["sha256"] != b["sha256"]:
            lines.append(f"{a['path']} has changed: {a['bytes']:,} bytes with sha256 {a['sha256'][:12]}… then, "
                         f"{b['bytes']:,} bytes with sha256 {b['sha256'][:12]}… now")
    return lines
