"""Checkpoints: what is in one, how it is written, and every check before anything in it is used.

A checkpoint is a safetensors file: the model's weights by path (``layers.0.kernel``), the optimizer's
slots (``optimizer/0.m``, ``optimizer/iterations``), the finished epochs' metrics rows
(``run/history``, float64, one row per epoch), weight snapshots callbacks keep
(``callbacks/early_stopping/best_weights/layers.0.kernel``), and JSON metadata (epoch, step,
trainer state, RNG states, the history's column names, each callback's state). A SHA-256 over the tensors *and* the metadata is stored with
them, so one flipped bit anywhere is refused. Reading checks the size and the header before any
tensor data is read (and, given the model, that every name, shape and dtype is the one expected),
then the digest, then every metadata value for type, range and finiteness.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli.errors import RunError
from nncli.train.files import atomic_write

FORMAT = "nncli-checkpoint-2"  # digest over tensors and metadata
FORMAT_1 = "nncli-checkpoint-1"  # digest over tensors only: readable for weights, never resumed
OPTIMIZER = "optimizer/"  # prefix of optimizer slots; weight paths never hold a "/"
HISTORY = "run/history"
CALLBACKS = "callbacks/"  # prefix of callbacks' weight snapshots: callbacks/<key>/<field>/<weight path>
TRAINED = "run/trained/"  # the weights training reached, when a callback put earlier ones back: run/trained/<path>
MAX_SNAPSHOTS = 8  # weight snapshots all callbacks together may keep (each the model's size)
MAX_HEADER = 100 * 2**20  # bytes of JSON header; safetensors itself refuses more
MAX_EPOCHS = 1_000_000  # as train.epochs
MAX_STEPS = 2**62
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": None, "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


# -- writing ------------------------------------------------------------------------------------
def _digest(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode() + b"\0" + str(arr.dtype.str).encode() + str(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    for key in sorted(k for k in meta if k != "sha256"):
        h.update(b"meta\0" + key.encode() + b"\0" + meta[key].encode() + b"\0")
    return h.hexdigest()


def _digest_v1(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, np.ndarray], metadata: dict) -> None:
    """Write a checkpoint atomically (never through a link); ``metadata`` values are stored as JSON."""
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = {key: json.dumps(value) for key, value in metadata.items()}
    meta["format"] = FORMAT
    meta["sha256"] = _digest(tensors, meta)
    existed = Path(path).is_file()
    try:
        atomic_write(Path(path), save(tensors, metadata=meta), follow_links=False)
    except OSError as err:
        kept = "the previous checkpoint is intact" if existed else "no earlier checkpoint of it exists"
        raise RunError(f"could not write checkpoint {path} ({err.strerror or err}); {kept}") from None


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Layout:
    """The tensors a checkpoint must hold for a model: ``{name: (shape, dtype)}``.

    ``optional`` names (the optimizer's slots, absent before its first step) are all there or none;
    ``history_columns`` is the width of ``run/history`` (any number of rows), None to skip it.
    ``snapshots``: the weights a callback's snapshot may hold (``callbacks/<key>/<field>/<path>``,
    each shaped as the weight ``<path>``), at most :data:`MAX_SNAPSHOTS` copies of the model.
    """

    tensors: dict[str, tuple[tuple[int, ...], np.dtype]]
    optional: set[str] = field(default_factory=set)
    history_columns: int | None = None
    snapshots: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None

    def problems(self, entries: dict[str, tuple[tuple[int, ...], np.dtype]]) -> list[str]:
        found = dict(entries)
        history = found.pop(HISTORY, None)
        out = []
        if self.snapshots is not None:
            snapshot = {n: found.pop(n) for n in [n for n in found if n.startswith(CALLBACKS)]}
            out += _snapshot_problems(snapshot, self.snapshots)
            trained = {n[len(TRAINED):]: found.pop(n) for n in [n for n in found if n.startswith(TRAINED)]}
            if trained and trained != self.snapshots:
                out.append(f"{TRAINED}* holds {len(trained)} weights that are not the model's {len(self.snapshots)}")
        missing = [n for n in self.tensors if n not in found and n not in self.optional]
        slots = [n for n in self.optional if n in found]
        if slots and len(slots) != len(self.optional):
            missing += sorted(self.optional - set(slots))
        extra = sorted(n for n in found if n not in self.tensors)
        if missing:
            out.append(f"missing {', '.join(missing[:5])}")
        if extra:
            out.append(f"unexpected {', '.join(extra[:5])}")
        for name, (shape, dtype) in found.items():
            want = self.tensors.get(name)
            if want is None:
                continue
            shapes = [want[0], (1,)] if name == OPTIMIZER + "iterations" and want[0] == () else [want[0]]
            if shape not in shapes or dtype != want[1]:
                out.append(f"{name} is {dtype} {list(shape)}, expected {want[1]} {list(want[0])}")
        if self.history_columns is not None and history is not None:
            shape, dtype = history
            if len(shape) != 2 or shape[1] != self.history_columns or shape[0] > MAX_EPOCHS or dtype != np.float64:
                out.append(f"{HISTORY} is {dtype} {list(shape)}, expected float64 [epochs, {self.history_columns}]")
        return out


def _snapshot_problems(found: dict, weights: dict) -> list[str]:
    out, groups = [], set()
    for name, (shape, dtype) in found.items():
        parts = name[len(CALLBACKS):].split("/")
        want = weights.get(parts[-1]) if len(parts) == 3 else None
        if want is None:
            out.append(f"unexpected {name}")
        elif (shape, dtype) != want:
            out.append(f"{name} is {dtype} {list(shape)}, expected {want[1]} {list(want[0])}")
        groups.add(tuple(parts[:2]))
    if len(groups) > MAX_SNAPSHOTS:
        out.append(f"{len(groups)} weight snapshots of callbacks, at most {MAX_SNAPSHOTS} expected")
    return out


def _damaged(path: Path, why: str) -> RunError:
    return RunError(f"checkpoint {path} is damaged or truncated and was not loaded ({why})")


def _read_header(f, path: Path, size: int) -> tuple[dict, dict, int]:
    """``(entries {name: (dtype, shape, start, end)}, raw metadata, data length)`` from the header alone."""
    if size < 8:
        raise _damaged(path, f"{size} bytes, too short for a header")
    length = int.from_bytes(f.read(8), "little")
    if length > min(MAX_HEADER, size - 8):
        raise _damaged(path, f"its header claims {length:,} bytes in a file of {size:,}")
    try:
        header = json.loads(f.read(length))
    except (ValueError, UnicodeDecodeError) as err:
        raise _damaged(path, f"unreadable header: {err}") from None
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a mapping")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _damaged(path, "its metadata is not a mapping of strings")
    entries, data_len = {}, size - 8 - length
    for name, entry in header.items():
        try:
            dtype = np.dtype(DTYPES[entry["dtype"]])
            shape = tuple(entry["shape"])
            start, end = entry["data_offsets"]
            ok = all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (*shape, start, end))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok or end - start != math.prod(shape) * dtype.itemsize:
            raise _damaged(path, f"tensor {name!r} has a bad header entry")
        entries[name] = (dtype, shape, start, end)
    spans = sorted((s, e) for _, _, s, e in entries.values())
    covered = 0
    for start, end in spans:
        if start != covered:
            raise _damaged(path, "its tensors overlap or leave gaps")
        covered = end
    if covered != data_len:
        raise _damaged(path, f"its tensors need {covered:,} bytes of data, the file has {data_len:,}")
    return entries, meta, data_len


def load_checkpoint(path: Path, layout: Layout | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a checkpoint: ``(tensors, decoded metadata)``, or a RunError.

    The size and the header are checked before any data is read; with ``layout`` every tensor's
    name, shape and dtype too, so a file of the wrong size is never read whole. A format-1
    checkpoint (metadata not under the digest) is read with ``meta["format"] == 1``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise RunError(f"checkpoint {path} is not a regular file; it was not loaded")
            entries, raw_meta, data_len = _read_header(f, path, st.st_size)
            if layout is not None:
                problems = layout.problems({n: (e[1], e[0]) for n, e in entries.items()})
                if problems:
                    raise RunError(f"checkpoint {path} does not fit this run ({'; '.join(problems)}); "
                                   "it was not loaded")
            data = f.read(data_len)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except OSError as err:
        raise RunError(f"checkpoint {path} cannot be read ({err.strerror or err})") from None
    if len(data) != data_len:
        raise _damaged(path, "it changed while being read")
    tensors = {name: np.frombuffer(data, dtype, math.prod(shape), start).reshape(shape)
               for name, (dtype, shape, start, _) in entries.items()}
    fmt = raw_meta.get("format")
    if fmt == FORMAT:
        ok = raw_meta.get("sha256") == _digest(tensors, raw_meta)
    elif fmt == FORMAT_1:
        ok = raw_meta.get("sha256") == _digest_v1(tensors)
    else:
        ok = False
    if not ok:
        raise RunError(f"checkpoint {path} failed its integrity check (corrupted); it was not loaded")
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items() if k not in ("format", "sha256")}
    except ValueError:
        raise RunError(f"checkpoint {path} has unreadable metadata; it was not loaded") from None
    if fmt == FORMAT_1:
        meta["format"] = 1
    return tensors, meta


# -- the metadata's schema -------------------------------------------------------------------------
_Strict = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
_Count = Annotated[int, Field(ge=0, le=MAX_STEPS)]


class _PCG64Inner(BaseModel):
    model_config = _Strict
    state: Annotated[int, Field(ge=0, lt=2**128)]
    inc: Annotated[int, Field(ge=0, lt=2**128)]


class RngState(BaseModel):
    """A numpy PCG64 bit generator's state, as ``bit_generator.state`` gives it."""

    model_config = _Strict
    bit_generator: Literal["PCG64"]
    state: _PCG64Inner
    has_uint32: Annotated[int, Field(ge=0, le=1)]
    uinteger: Annotated[int, Field(ge=0, lt=2**32)]


class TrainStateSchema(BaseModel):
    """:class:`nncli.train.loop.TrainState` as a checkpoint stores it."""

    model_config = _Strict
    epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
    step: _Count
    batch: _Count
    best_value: float | None
    best_epoch: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None
    es_best: float | None = None  # early stopping's, in checkpoints before callbacks had a state
    wait: _Count = 0
    sums: dict[str, Annotated[float, Field(allow_inf_nan=True)]]
    metric_states: dict[str, dict[str, Any]] = {}  # each metric's get_state(): numbers and lists of them
    seen: _Count
    epoch_time: Annotated[float, Field(ge=0)]
    epoch_data_state: RngState | None
    stopped_early: bool
    learning_rate: Annotated[float, Field(ge=0)] | None = None
    restored_epoch: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = None


class CallbackEntry(BaseModel):
    """One callback's saved state: its class, its plain-data state, the fields that are weight snapshots."""

    model_config = _Strict
    type: str
    state: dict[str, Any]
    weights: list[str] = []


class CheckpointMeta(BaseModel):
    """Everything in a format-2 checkpoint's metadata."""

    model_config = _Strict
    epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
    step: _Count
    trainer: TrainStateSchema
    rng: RngState
    data_rng: RngState
    nncli: str
    columns: list[str]
    callbacks: dict[str, CallbackEntry] = {}


def check_metadata(meta: dict, path: Path, batches: int, history: np.ndarray | None) -> CheckpointMeta:
    """The metadata, checked for type, range and agreement with itself and the history rows."""
    if meta.get("format") == 1:
        raise RunError(f"checkpoint {path} was written by an older nncli whose digest does not cover its "
                       "metadata, so it cannot be resumed safely; evaluate it, or start a new run")
    try:
        checked = CheckpointMeta.model_validate(meta)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunError(f"checkpoint {path} has a bad metadata value at {where}: {first['msg']} "
                       f"(found {first.get('input')!r:.60}); it was not loaded") from None
    st = checked.trainer
    problems = [f"metric state {name}.{key} holds {str(value)[:40]!r}, expected finite numbers"
                for name, state in st.metric_states.items() for key, value in state.items() if not _numbers(value)]
    problems += [f"the state of callback {key} holds {str(value)[:40]!r} at {field}, expected plain data "
                 "(finite numbers, strings, lists, mappings)"
                 for key, entry in checked.callbacks.items() for field, value in entry.state.items()
                 if not _plain(value)]
    if (st.epoch, st.step) != (checked.epoch, checked.step):
        problems.append(f"its trainer state is at epoch {st.epoch}, step {st.step}, its header at "
                        f"epoch {checked.epoch}, step {checked.step}")
    if st.batch > batches:
        problems.append(f"it is at batch {st.batch} of an epoch of {batches} batches")
    if st.best_epoch is not None and st.best_epoch > st.epoch:
        problems.append(f"its best epoch {st.best_epoch} is after its last finished epoch {st.epoch}")
    if history is not None:
        epochs = history[:, 0] if history.size else np.zeros(0)
        if len(history) != st.epoch or not np.array_equal(epochs, np.arange(1, st.epoch + 1)):
            problems.append(f"it carries {len(history)} metrics rows for {st.epoch} finished epochs")
    if problems:
        raise RunError(f"checkpoint {path} contradicts itself ({'; '.join(problems)}); it was not loaded")
    return checked


def _numbers(value, depth: int = 0) -> bool:
    """A finite number, or a (nested, bounded) list of them: what a metric's state is made of."""
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) < 2**63
    return isinstance(value, list) and depth < 4 and len(value) <= 10**6 and all(_numbers(v, depth + 1) for v in value)


def _plain(value, depth: int = 0) -> bool:
    """Plain data as a callback's state holds it: None, bools, strings, finite numbers, lists, mappings."""
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if depth >= 8:
        return False
    if isinstance(value, list):
        return len(value) <= 10**6 and all(_plain(v, depth + 1) for v in value)
    return isinstance(value, dict) and all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())


def check_finite(tensors: dict[str, np.ndarray], path: Path) -> None:
    """A RunError naming the first weight or slot that holds NaN or infinity."""
    for name, arr in tensors.items():
        if name != HISTORY and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RunError(f"checkpoint {path}: {name} holds NaN or infinite values; it was not loaded")


def check_iterations(value: np.ndarray, path: Path) -> int:
    if value.dtype.kind not in "iu" or value.size != 1 or not 0 <= int(value.reshape(())) <= MAX_STEPS:
        raise RunError(f"checkpoint {path}: optimizer/iterations is {value.dtype} {list(value.shape)} "
                       f"({value.reshape(-1)[:3].tolist()}), expected one integer from 0 to {MAX_STEPS}; "
                       "it was not loaded")
    return int(value.reshape(()))
