"""What ``nncli config`` shows: the resolved config, every default filled in, and where each value came from.

    explained = explain_config("configs/quickstart.yaml", ["train.epochs=5"])
    for e in explained.entries:
        print(format_path(e.path), e.value, e.origin)   # train.epochs 5 --set train.epochs=5

An origin is a file and line (``configs/base.yaml:12``, with the ``${...}`` it was written as
when interpolated), ``--set KEY=VALUE``, or ``default``. ``schema_rows`` lists the fixed keys
with their types, defaults and descriptions (``nncli config --schema``).
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from nncli.nn import registry
from nncli.train.config.components import param_defaults
from nncli.train.config.marks import Document, Key, format_path
from nncli.train.config.pipeline import plugin_hint, resolve
from nncli.train.config.reader import read_document
from nncli.train.config.result import Config
from nncli.train.config.schema import (CheckpointConfig, DataConfig, EarlyStoppingConfig, ReduceLROnPlateauConfig,
                                       SequentialConfig, SweepConfig, TopLevel, TrainConfig)
from nncli.train.config.validate import validate

__all__ = ["Entry", "Explained", "explain_config", "schema_rows", "json_schema"]

DEFAULT, DRAWN = "default", "default: drawn at random when a run starts"
_SPLIT_FILES = {("data", "validation_split"): "validation", ("data", "test_split"): "test"}  # a file replaces it


@dataclass(frozen=True)
class Entry:
    """One resolved value: a leaf (a scalar, a list of scalars, an empty mapping or list)."""

    path: Key
    value: Any
    origin: str  # "file:line", "file:line (${...})", "--set KEY=VALUE", "default", or DRAWN


@dataclass(frozen=True)
class Explained:
    """The validated config and its entries, in the config's order."""

    config: Config
    entries: list[Entry]
    files: list[str]  # the config file, then the base files it was composed from

    def to_dict(self) -> dict[str, dict]:
        """``{dotted key: {"value": ..., "source": ...}}`` for ``--json``."""
        return {format_path(e.path): {"value": e.value, "source": e.origin} for e in self.entries}


def explain_config(path: str | Path, overrides: Iterable[str] = (), *, import_plugins: bool = True) -> Explained:
    """Load ``path`` as ``nncli train`` would and say where each value of the result came from.

    Raises:
        ConfigError: as :func:`~nncli.train.config.load_config` does.
    """
    doc = resolve(read_document(Path(path)), overrides, import_plugins=import_plugins)
    written = copy.deepcopy(doc.data)
    cfg = validate(doc, plugin_hint(doc, import_plugins))
    resolved = cfg.to_dict()
    _fill_component_defaults(resolved)
    entries = [Entry(p, v, _origin(doc, written, p)) for p, v in _leaves(resolved, ())]
    files = list(dict.fromkeys(m.source for m in doc.locator.values.values()))
    return Explained(cfg, entries, files)


def _leaves(data: Any, path: Key):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(data, list) and any(isinstance(v, (dict, list)) for v in data):
        for i, value in enumerate(data):
            yield from _leaves(value, path + (i,))
    else:
        yield path, data


def _fill_component_defaults(resolved: dict) -> None:
    """Add each component's unwritten parameters with their defaults (the layers, loss, optimizer...)."""
    def fill(spec: Any, kinds: tuple[str, ...]) -> None:
        if not (isinstance(spec, dict) and isinstance(spec.get("type"), str)):
            return
        kind = next((k for k in kinds if registry.lookup(k, spec["type"]) is not None), None)
        if kind is None:
            return
        for key, value in param_defaults(kind, spec["type"]).items():
            spec.setdefault(key, value)
        for value in spec.values():  # nested components: a wrapped layer, a schedule
            for item in value if isinstance(value, list) else [value]:
                fill(item, ("layers", "schedules", "initializers", "models"))

    fill(resolved.get("loss"), ("losses",))
    fill(resolved.get("optimizer"), ("optimizers",))
    model = resolved.get("model")
    if isinstance(model, dict) and isinstance(model.get("layers"), list) and "input_shape" in model:
        for layer in model["layers"]:
            fill(layer, ("layers", "models"))
    else:
        fill(model, ("models",))


def _get(data: Any, path: Key) -> tuple[bool, Any]:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False, None
    return True, data


def _origin(doc: Document, written: Any, path: Key) -> str:
    locator = doc.locator
    override = locator.override_at(path)
    if override is not None:
        return f"--set {override}"
    if path == ("seed",):
        found, seed = _get(written, path)
        if not found or seed is None:
            return DRAWN
    found, _ = _get(written, path)
    parent_found, parent = _get(written, path[:-1])
    short_name = path[-1:] == ("type",) and parent_found and isinstance(parent, str)  # `loss: mse`
    if not (found or short_name):
        file_key = _SPLIT_FILES.get(path)
        if file_key is not None and _get(written, ("data", file_key))[1] is not None:
            return f"default: 0, as data.{file_key} is a file"
        return DEFAULT
    here = path
    while here not in locator.values and here:
        here = here[:-1]
    mark = locator.values.get(here)
    if mark is None:
        return doc.locator.source
    text = next((locator.interpolated[p] for p in (path, here) if p in locator.interpolated), None)
    where = f"{mark.source}:{mark.line}" if mark.line else mark.source
    return f"{where} ({text})" if text else where


# ---- the schema --------------------------------------------------------------------------------
def _type_text(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        return " | ".join(parts) + (" | null" if type(None) in args else "")
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}" if args and args[0] is not Any else "list"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    names = {int: "integer", float: "number", str: "string", bool: "true | false", dict: "mapping"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _default_text(info) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return "[]" if value == [] else str(value)


_NESTED = {"data": DataConfig, "model": SequentialConfig, "train": TrainConfig, "early_stopping": EarlyStoppingConfig,
           "reduce_lr_on_plateau": ReduceLROnPlateauConfig, "checkpoint": CheckpointConfig, "sweep": SweepConfig}


def schema_rows() -> list[dict[str, str]]:
    """``[{key, type, default, description}]`` for every fixed key, in the order of a config file.

    Example: ``next(r for r in schema_rows() if r["key"] == "data.batch_size")["default"]  # "32"``
    """
    rows: list[dict[str, str]] = []

    def add(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = f"{prefix}{name}"
            nested = _NESTED.get(name) if model in (TopLevel, TrainConfig) else None
            rows.append({"key": key, "type": _type_text(info.annotation) if nested is None or name != "model"
                         else "mapping | string", "default": _default_text(info),
                         "description": info.description or ""})
            if nested is not None:
                add(nested, f"{key}.")

    add(TopLevel, "")
    return rows


def json_schema() -> dict:
    """A JSON Schema of the config file, for editors (yaml-language-server) and scripts."""
    schema = TopLevel.model_json_schema()
    props = schema["properties"]
    for name, model in (("data", DataConfig), ("train", TrainConfig)):
        sub = model.model_json_schema()
        schema.setdefault("$defs", {}).update(sub.pop("$defs", {}))
        props[name] = {**sub, "description": props[name].get("description", "")}
    schema["title"] = "nncli config"
    return schema
