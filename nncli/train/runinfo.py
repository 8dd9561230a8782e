"""The schema of run.json: what a reader may rely on, checked before any of it is used.

A run.json that does not fit (hand-edited, from another tool, cut by a disk) is one clear
RunError naming the field, so ``nncli runs`` lists that run as unreadable and every other
command for every other run goes on as if it were not there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nncli.data.fingerprint import data_fingerprint, fingerprint_changes
from nncli.errors import RunError

STATUSES = ("running", "completed", "early_stopped", "interrupted", "failed")
_Count = Annotated[int, Field(ge=0)]
_Number = float | None  # NaN and infinities allowed: a metric may be undefined


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class BestInfo(_Part):
    monitor: str | None = None
    epoch: Annotated[int, Field(ge=1)] | None = None
    value: _Number = None


class FileFingerprint(_Part):
    role: str
    path: str
    bytes: _Count
    sha256: str


class Fingerprint(_Part):
    """See :func:`nncli.data.fingerprint.data_fingerprint`."""

    kind: Literal["files", "builtin"]
    files: list[FileFingerprint] = []
    name: str | None = None
    sha256: str | None = None


class DataInfo(_Part):
    source: str
    input_shape: list[Annotated[int, Field(ge=1)]]
    feature_names: list[str] | None = None
    num_classes: Annotated[int, Field(ge=1)] | None = None
    normalizer: dict[str, Any] | None = None
    train_samples: _Count | None = None
    validation_samples: _Count | None = None
    fingerprint: Fingerprint | None = None


class BlasInfo(_Part):
    threads: Annotated[int, Field(ge=1)]
    library: str | None = None


class InitFrom(_Part):
    """Where a run started by ``--init-from`` took its weights (see :mod:`nncli.train.warmstart`)."""

    run_id: str
    path: str
    checkpoint: str
    epoch: _Count | None = None
    optimizer: bool = False


class ResumeChange(_Part):
    """What one resume changed in the config (``train.epochs: 6 -> 10``)."""

    resumed: str
    changed: list[str]


class RunInfo(_Part):
    """run.json. Unknown keys are kept (a newer nncli may add some); known ones must have their type."""

    run_id: str | None = None  # the folder name is what names a run
    status: Literal[STATUSES]
    created: str | None = None
    updated: str | None = None
    finished: str | None = None
    config: str | None = None
    argv: list[str] = []
    seed: _Count | None = None
    epochs: Annotated[int, Field(ge=1)] | None = None
    versions: dict[str, str] = {}
    data: DataInfo | None = None
    epochs_done: _Count = 0
    step: _Count = 0
    best: BestInfo | None = None
    final: dict[str, _Number] = {}
    throughput_samples_per_s: _Number = None
    resumed: list[str] = []
    error: str | None = None
    blas: BlasInfo | None = None
    warnings: list[str] = []
    init_from: InitFrom | None = None
    changes: list[ResumeChange] = []
    restored_epoch: Annotated[int, Field(ge=1)] | None = None  # restore_best_weights put this epoch's weights back


def validate_run_info(raw: Any, where: str) -> dict:
    """``raw`` (parsed run.json) if it fits :class:`RunInfo`, else a RunError naming the first bad field."""
    try:
        RunInfo.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the top level"
        found = first.get("input")
        shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise RunError(f"{where} is not a valid run.json: {field}: {first['msg'].lower()}, found {shown}{more}") \
            from None
    return raw


# -- the data a run trained on ------------------------------------------------------------------
def config_fingerprint(cfg) -> dict:
    """The fingerprint of the data a config's ``data:`` section names (see :mod:`nncli.data.fingerprint`)."""
    d = cfg.data
    return data_fingerprint(d.source, base_dir=cfg.base_dir, labels=d.labels, seed=cfg.seed, samples=d.samples,
                            noise=d.noise, validation=d.validation, test=d.test)


def check_data_unchanged(info: dict, cfg, what: str) -> list[str]:
    """How the data differs from what run ``info`` recorded (empty: the same, or nothing recorded)."""
    recorded = (info.get("data") or {}).get("fingerprint")
    if not recorded:
        return []
    try:
        return fingerprint_changes(recorded, config_fingerprint(cfg))
    except OSError as err:
        return [f"{err.filename or 'a data file'} cannot be read ({err.strerror or err}) to check it for {what}"]
