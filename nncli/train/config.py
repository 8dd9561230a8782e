"""Config files: the schema and its defaults, validation against the registries, loading.

    cfg = load_config("configs/quickstart.yaml", overrides=["train.epochs=5"])
    cfg.data.batch_size, cfg.train.epochs, cfg.model["layers"][0], cfg.seed

Fixed sections (``data``, ``train``, the top level) are pydantic models below, which hold
every default. Components (layers, loss, optimizer, schedules, models) are checked against
the ``__init__`` signature of the registered class (:mod:`nncli.train.components`). Every
problem found is reported in one :class:`~nncli.errors.ConfigError`, one line each:
``file:line:col: dotted.path: expected X, found Y``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import math
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nncli.data.builtin import MAX_SAMPLES
from nncli.errors import ConfigError
from nncli.nn import registry
from nncli.train.components import Checker, unknown_name
from nncli.train.yamlio import (Key, Locator, Problem, apply_overrides, describe, did_you_mean, parse_key,
                                raise_problems, read_yaml)

__all__ = ["Config", "DataConfig", "TrainConfig", "EarlyStoppingConfig", "SweepConfig", "load_config",
           "config_from_dict", "BUILTIN_DATASETS"]

BUILTIN_DATASETS = ("digits", "iris", "xor", "moons", "spirals", "circles", "toy")  # as in SPEC.md
SEQUENTIAL = "Sequential"  # model.type when the config leaves it out

_Count = Annotated[int, Field(ge=1)]
MAX_EPOCHS = 1_000_000  # a run that could never finish is refused, not started
MAX_SAMPLE_VALUES = 10**8  # values in one sample (the product of input_shape): 400 MB of float32
_Share = Annotated[float, Field(ge=0, lt=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# ---- the fixed sections: every default lives here -------------------------------------------
class DataConfig(_Section):
    """The ``data:`` section: where the samples come from and how they are batched."""

    source: str  # required: a built-in set (digits, iris, ...) or a file path relative to the config
    labels: str | None = None  # second file holding the labels of .npy / IDX inputs
    target: str | None = None  # CSV target column; None: the last column
    x_key: str = "x"  # .npz key of the inputs
    y_key: str = "y"  # .npz key of the labels
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | None = None  # size of a generated set; None: the set's own default
    noise: Annotated[float, Field(ge=0)] | None = None  # noise of a generated set; None: its default
    validation_split: _Share = 0.2  # share of the samples held out for validation
    test_split: _Share = 0.0  # share held out for a final test (validation_split + test_split < 1)
    normalize: Literal["none", "standard", "minmax"] = "none"  # feature scaling fitted on training rows
    batch_size: _Count = 32  # samples per training step
    shuffle: bool = True  # reshuffle the training samples every epoch


class EarlyStoppingConfig(_Section):
    """``train.early_stopping``: stop when the monitored value stops improving."""

    monitor: str = "val_loss"  # the logged value to watch (loss, val_loss, a metric, val_<metric>)
    patience: Annotated[int, Field(ge=0)] = 5  # epochs without improvement before stopping
    min_delta: Annotated[float, Field(ge=0)] = 0.0  # smallest change that counts as an improvement
    mode: Literal["auto", "min", "max"] = "auto"  # auto: max for accuracy-like names, else min


class TrainConfig(_Section):
    """The ``train:`` section: how long and what to log."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 10  # passes over the training samples
    metrics: list[str] = []  # names from the metrics registry, logged as <name> and val_<name>
    compile: bool = True  # run the training step as a traced ad.Function
    early_stopping: EarlyStoppingConfig | None = None  # null: never stop early; true: the defaults
    monitor: str = "val_loss"  # the value that decides checkpoints/best.safetensors

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _switch(cls, value):
        return {} if value is True else (None if value is False else value)


MAX_TRIALS = 10_000  # most trials in one sweep (a grid multiplies quickly)
_Trials = Annotated[int, Field(ge=1, le=MAX_TRIALS)]


class SweepConfig(_Section):
    """The ``sweep:`` section, read by ``nncli sweep`` (``nncli train`` ignores it): the trials, where they run.

    Keys are config keys as ``--set`` writes them (``model.layers[0].units``); ``nncli sweep``
    checks them, the distributions and every trial's config before the first trial starts.
    """

    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None  # key -> values; each combination a trial
    random: _Trials | None = None  # this many trials drawn at random from `space`
    sampler: Literal["random", "tpe"] | None = None  # with `trials`: random draws, or Optuna's TPE
    trials: _Trials | None = None  # trials of `sampler`
    space: dict[str, str] | None = None  # key -> loguniform(a, b) | uniform(a, b) | choice(x, y, ...)
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None  # of the random draws; null: draw one and record it
    workers: Annotated[int, Field(ge=1, le=1024)] = 1  # trials at once on this machine
    cluster: str | None = None  # tcp://HOST:PORT of a Dask scheduler: the trials run on its workers
    retries: Annotated[int, Field(ge=0, le=100)] = 2  # more attempts for a trial whose worker or process was lost
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None  # BLAS threads per trial; null: the cores shared out


class SequentialConfig(_Section):
    """``model:`` when its type is Sequential (the default): a stack of layers."""

    input_shape: list[_Count] = Field(min_length=1)  # required: one sample's shape, no batch axis
    layers: list[Any] = Field(min_length=1)  # required: each {type: <layer>, ...} or a layer name

    @field_validator("input_shape")
    @classmethod
    def _bounded(cls, shape: list[int]) -> list[int]:
        values = math.prod(shape)  # refused before any array of that size is made
        if values > MAX_SAMPLE_VALUES:
            raise ValueError(f"a sample shape of at most {MAX_SAMPLE_VALUES:,} values (this one has {values:,})")
        return shape


class _TopLevel(_Section):
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None  # null: draw one and record it
    data: dict  # required, see DataConfig
    model: dict | str  # required: Sequential (see SequentialConfig) or a registered model
    loss: str | dict  # required: a loss name, or {type: <loss>, ...params}
    optimizer: str | dict  # required: an optimizer name, or {type: <optimizer>, ...params}
    train: dict | None = None  # see TrainConfig; absent: all its defaults
    plugins: list[str] = []  # python files (relative to the config) or modules imported first
    sweep: dict | None = None  # see SweepConfig


# ---- the result ------------------------------------------------------------------------------
@dataclass(eq=False)
class Config:
    """A validated config. Components are ``{"type": CanonicalName, **params as written}``.

    Component parameters are kept as written (their defaults are not filled in); fixed
    sections have all their defaults. Two configs are equal when their ``to_dict()`` are.
    """

    seed: int
    data: DataConfig
    model: dict
    loss: dict
    optimizer: dict
    train: TrainConfig
    plugins: list[str]
    path: Path | None  # the config file, None for config_from_dict
    base_dir: Path  # folder that relative data and plugin paths start from
    locator: Locator = field(default=None, repr=False)  # where each value was written
    sweep: SweepConfig | None = None  # the ``sweep:`` section; not part of what a run trains (see to_dict)

    def error(self, path: Key | str, message: str) -> ConfigError:
        """A ConfigError about the value at ``path``, placed at its file line or ``--set``.

        Example: ``raise cfg.error("model.layers[2].units", "expected units > 0, found -1")``
        """
        path = parse_key(path) or () if isinstance(path, str) else tuple(path)
        return ConfigError(str(Problem((self.locator or Locator("<config>")).at(path), path, message)))

    def resolve_path(self, name: str) -> Path:
        """A path from the config, made absolute against :attr:`base_dir`."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def to_dict(self, absolute_paths: bool = False) -> dict:
        """The resolved config as plain data for ``yaml.safe_dump``.

        Args:
            absolute_paths: write file paths (data files, plugin files) as absolute paths, so
                the dump can be loaded from another folder (such as a run folder).

        Example: ``yaml.safe_dump(cfg.to_dict(absolute_paths=True))``
        """
        data = self.data.model_dump()
        plugins = list(self.plugins)
        if absolute_paths:
            if data["source"] not in BUILTIN_DATASETS:
                data["source"] = str(self.resolve_path(data["source"]))
            if data["labels"] is not None:
                data["labels"] = str(self.resolve_path(data["labels"]))
            plugins = [str(self.resolve_path(p)) if _is_file_plugin(p, self.base_dir) else p for p in plugins]
        return {"seed": self.seed, "data": data, "model": copy.deepcopy(self.model),
                "loss": copy.deepcopy(self.loss), "optimizer": copy.deepcopy(self.optimizer),
                "train": self.train.model_dump(), "plugins": plugins}

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override and validate a YAML config file.

    Args:
        path: the config file; relative data and plugin paths start from its folder.
        overrides: ``KEY=VALUE`` strings as given to ``--set``, applied in order.

    Raises:
        ConfigError: listing every problem, one per line, each with ``file:line:col``.

    Example: ``load_config("configs/iris.yaml", ["train.epochs=3"]).train.epochs  # 3``
    """
    path = Path(path)
    data, locator, problems = read_yaml(path)
    return _build(data, locator, problems, overrides, path, path.resolve().parent)


def config_from_dict(data: dict, source: str = "<dict>", overrides: Iterable[str] = (),
                     base_dir: str | Path | None = None) -> Config:
    """Validate a config given as Python data (not modified); ``source`` names it in errors.

    Example: ``config_from_dict({"data": {"source": "xor"}, "model": {...}, "loss": "mse",
    "optimizer": "adam"}).data.batch_size  # 32``
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _build(copy.deepcopy(data), Locator(source), [], overrides, None, base.resolve())


def _build(data: Any, locator: Locator, problems: list[Problem], overrides: Iterable[str],
           path: Path | None, base_dir: Path) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{locator.at(())}: expected a mapping with the sections data, model, loss, "
                          f"optimizer, found {describe(data)}")
    problems = problems + apply_overrides(data, locator, overrides)
    check = Checker(locator, problems)
    top = check.section(_TopLevel, data, ())
    plugins = data.get("plugins")
    for i, entry in enumerate(plugins if isinstance(plugins, list) else []):
        if isinstance(entry, str):
            problem = _import_plugin(entry, base_dir, path)
            if problem:
                check.add(("plugins", i), problem)
    data_cfg = check.section(DataConfig, data.get("data"), ("data",)) if isinstance(data.get("data"), dict) else None
    if data_cfg is not None:
        _check_data(check, data_cfg, data["data"], base_dir)
    train = data.get("train")
    train_cfg = None
    if isinstance(train, (dict, type(None))):
        train_cfg = check.section(TrainConfig, train or {}, ("train",))
        _check_train(check, train_cfg, train or {})
    model = _check_model(check, data["model"]) if isinstance(data.get("model"), (dict, str)) else None
    loss, optimizer = (check.component(kind, data[key], (key,)) if isinstance(data.get(key), (dict, str)) else None
                       for kind, key in (("losses", "loss"), ("optimizers", "optimizer")))
    sweep = check.section(SweepConfig, data["sweep"], ("sweep",)) if isinstance(data.get("sweep"), dict) else None
    raise_problems(check.problems)
    seed = top.seed if top.seed is not None else secrets.randbelow(2**31)
    return Config(seed, data_cfg, model, loss, optimizer, train_cfg, list(top.plugins), path, base_dir, locator,
                  sweep)


def _check_data(check: Checker, cfg: DataConfig, raw: dict, base_dir: Path) -> None:
    if cfg.validation_split + cfg.test_split >= 1:
        key = "test_split" if "test_split" in raw else "validation_split"
        check.add(("data", key), f"expected validation_split + test_split < 1, found "
                                 f"{cfg.validation_split} + {cfg.test_split}")
    for key in ("source", "labels"):
        name = getattr(cfg, key)
        if name is None or (key == "source" and name in BUILTIN_DATASETS):
            continue
        if name.strip() and (base_dir / Path(name).expanduser()).is_dir():
            check.add(("data", key), f"expected a data file, found the directory {name!r}")
        elif not name.strip() or not (base_dir / Path(name).expanduser()).exists():
            builtin = key == "source" and not Path(name).suffix and "/" not in name
            hint = did_you_mean(name, BUILTIN_DATASETS) if builtin else ""
            what = f"a built-in set ({', '.join(BUILTIN_DATASETS)}) or an existing file" if builtin else "an existing file"
            check.add(("data", key), f"expected {what}, found {name!r}{hint or ' (no such file)'}")


def _check_train(check: Checker, cfg: TrainConfig | None, raw: dict) -> None:
    metrics = raw.get("metrics")
    for i, name in enumerate(metrics if isinstance(metrics, list) else []):
        if isinstance(name, str) and registry.lookup("metrics", name) is None:
            check.add(("train", "metrics", i), unknown_name("metrics", name))
    if cfg is None:
        return
    logged = ["loss", "val_loss", *cfg.metrics, *(f"val_{m}" for m in cfg.metrics)]
    monitors = [(("train", "monitor"), cfg.monitor)]
    if cfg.early_stopping is not None:
        monitors.append((("train", "early_stopping", "monitor"), cfg.early_stopping.monitor))
    for where, name in monitors:
        if name not in logged:
            check.add(where, f"expected one of {', '.join(logged)}, found {name!r}{did_you_mean(name, logged)}")


def _check_model(check: Checker, spec: dict | str) -> dict | None:
    """The ``model:`` section: Sequential's own schema, or a registered model's signature."""
    path = ("model",)
    name = spec.get("type", SEQUENTIAL) if isinstance(spec, dict) else spec
    if not (isinstance(name, str) and name.replace("_", "").lower() == SEQUENTIAL.lower()):
        return check.component("models", spec, path, default_type=SEQUENTIAL)
    body = {k: v for k, v in spec.items() if k != "type"} if isinstance(spec, dict) else {}
    cfg = check.section(SequentialConfig, body, path)
    raw_layers = body.get("layers")
    layers = [check.component("layers", layer, path + ("layers", i))
              for i, layer in enumerate(raw_layers if isinstance(raw_layers, list) else [])]
    if cfg is None or None in layers:
        return None
    entry = registry.lookup("models", SEQUENTIAL)
    return {"type": getattr(entry, "_registry_name", SEQUENTIAL), "input_shape": body["input_shape"],
            "layers": layers}


# ---- plugins ---------------------------------------------------------------------------------
_LOADED_PLUGINS: dict[Path, object] = {}  # plugin files already imported, by resolved path
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _is_file_plugin(entry: str, base_dir: Path) -> bool:
    """A path (``x.py``, ``a/b``, or an existing file such as the config) rather than a module name."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry or (base_dir / entry).is_file()


def _import_plugin(entry: str, base_dir: Path, config_path: Path | None) -> str | None:
    """Import one plugin file or module; a problem message if that fails."""
    if not _is_file_plugin(entry, base_dir):
        if not _MODULE_NAME.fullmatch(entry):
            return f"expected a .py file or a module name, found {entry!r}"
        try:
            importlib.import_module(entry)
        except ModuleNotFoundError as err:
            if err.name and (entry == err.name or entry.startswith(err.name + ".")):
                return f"expected an importable module, found no module named {entry!r}"
            return f"expected a module that imports cleanly, found ModuleNotFoundError: {err}"
        except (Exception, SystemExit) as err:
            return f"expected a module that imports cleanly, found {type(err).__name__}: {err}"
        return None
    file = (base_dir / Path(entry).expanduser()).resolve()
    if config_path is not None and file == config_path.resolve():
        return "expected a Python plugin file, found this config file itself"
    if file.suffix != ".py":
        return f"expected a .py file, found {entry!r}"
    if not file.is_file():
        return f"expected an existing Python file, found no such file ({file})"
    if file in _LOADED_PLUGINS:
        return None
    name = "nncli_plugin_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:
        sys.modules.pop(name, None)
        return f"expected a plugin that imports cleanly, found {type(err).__name__}: {err}"
    _LOADED_PLUGINS[file] = module
    return None
