"""The last step of the config pipeline: validate the data and make the :class:`Config`.

The fixed sections are checked by their pydantic models (:mod:`~nncli.train.config.schema`),
components against the registries (:mod:`~nncli.train.config.components`), and then what
only the whole config can tell: files that must exist, monitors that must be logged, metrics
that must fit the loss. Every problem is collected; one ConfigError lists them all.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import nncli.train.callbacks  # noqa: F401 - registers the built-in callbacks (train.callbacks may name them)
from nncli.errors import ConfigError, did_you_mean
from nncli.nn import registry
from nncli.train import loggers  # importing it registers the built-in loggers
from nncli.train.config.components import Checker, unknown_name
from nncli.train.config.marks import Document, Key, describe, raise_problems
from nncli.train.config.result import Config
from nncli.train.config.schema import (BUILTIN_DATASETS, PATH_KEYS, SEQUENTIAL, DataConfig, SequentialConfig,
                                       SweepConfig, TopLevel, TrainConfig)

__all__ = ["validate"]


def validate(doc: Document, plugin_hint: str = "") -> Config:
    """The validated :class:`Config` of ``doc``, or a ConfigError listing every problem found so far.

    Args:
        plugin_hint: added to "unknown name" messages (say, when the config's plugins were not imported).
    """
    data, locator = doc.data, doc.locator
    if not isinstance(data, dict):
        raise_problems(doc.problems)
        raise ConfigError(f"{locator.at(())}: expected a mapping with the sections data, model, loss, "
                          f"optimizer, found {describe(data)}")
    if doc.base_failed:  # without its base the config lacks keys; each would be reported missing, wrongly
        raise_problems(doc.problems)
    earlier = list(doc.problems)
    check = Checker(locator, doc.problems, plugin_hint)
    if "base" in data:  # compose removed the file's own: this one came with --set
        check.add(("base",), "expected base: in a config file, found it in --set (base files are merged "
                             "before overrides apply; name the file in the config)")
    top = check.section(TopLevel, {k: v for k, v in data.items() if k != "base"}, ())
    data_cfg = check.section(DataConfig, data["data"], ("data",)) if isinstance(data.get("data"), dict) else None
    if data_cfg is not None:
        data_cfg = _check_parts(check, data_cfg, data["data"])
        _check_files(check, data_cfg, data["data"], doc)
    train = data.get("train")
    train_cfg = check.section(TrainConfig, train or {}, ("train",)) if isinstance(train, (dict, type(None))) else None
    model = _check_model(check, data["model"]) if isinstance(data.get("model"), (dict, str)) else None
    loss, optimizer = (check.component(kind, data[key], (key,)) if isinstance(data.get(key), (dict, str)) else None
                       for kind, key in (("losses", "loss"), ("optimizers", "optimizer")))
    if isinstance(train, (dict, type(None))):
        _check_metrics(check, train or {}, loss)
    if train_cfg is not None:
        train_cfg = _check_monitors(check, train_cfg, data_cfg)
        train_cfg = _check_loggers(check, train_cfg)
        train_cfg = _check_callbacks(check, train_cfg, optimizer)
    # a value whose ${...} failed was reported once: its raw text would only fail validation again
    sweep = check.section(SweepConfig, data["sweep"], ("sweep",)) if isinstance(data.get("sweep"), dict) else None
    raise_problems([p for p in check.problems if any(p is q for q in earlier)
                    or not any(p.path[: len(u)] == u for u in locator.unresolved)])
    seed = top.seed if top.seed is not None else secrets.randbelow(2**31)
    return Config(seed, data_cfg, model, loss, optimizer, train_cfg, list(top.plugins), doc.path, doc.base_dir,
                  locator, sweep)


def _check_parts(check: Checker, cfg: DataConfig, raw: dict) -> DataConfig:
    """A validation (test) file replaces the split: its default becomes 0, a split written beside it is refused.

    Keras's ``validation_data`` likewise overrides ``validation_split``; refusing both written keeps
    a config from saying two things.
    """
    for file_key, split_key in (("validation", "validation_split"), ("test", "test_split")):
        if getattr(cfg, file_key) is None:
            continue
        if check.written(("data", split_key)) and getattr(cfg, split_key) > 0:
            check.add(("data", split_key), f"expected either data.{file_key} (a file) or data.{split_key}, found "
                                           f"both: the {file_key} samples come from {getattr(cfg, file_key)!r}; "
                                           f"remove {split_key} (or set it to 0)")
        cfg = cfg.model_copy(update={split_key: 0.0})
    return cfg


def _check_files(check: Checker, cfg: DataConfig, raw: dict, doc: Document) -> None:
    if cfg.validation_split + cfg.test_split >= 1:
        key = "test_split" if "test_split" in raw else "validation_split"
        check.add(("data", key), f"expected validation_split + test_split < 1, found "
                                 f"{cfg.validation_split} + {cfg.test_split}")
    for section, key in PATH_KEYS:
        name = getattr(cfg, key)
        if name is None or (key == "source" and name in BUILTIN_DATASETS):
            continue
        looked = (doc.base_dir / Path(name).expanduser()).resolve() if name.strip() else doc.base_dir
        if name.strip() and looked.is_dir():
            check.add((section, key), f"expected a data file, found the directory {name!r} ({looked})")
        elif not name.strip() or not looked.exists():
            builtin = key == "source" and not Path(name).suffix and "/" not in name
            hint = did_you_mean(name, BUILTIN_DATASETS) if builtin else ""
            what = f"a built-in set ({', '.join(BUILTIN_DATASETS)}) or an existing file" if builtin else "an existing file"
            check.add((section, key), f"expected {what}, found {name!r}" + (hint or f" (no such file: {looked})"))


def _metric_names(task: str | None, kind: str | None = None) -> list[str]:
    """The short names of the registered metrics that fit ``task`` (classification or regression) and a loss's
    ``kind`` of labels (``sparse``, ``binary``...; None: any)."""
    table = registry.REGISTRY["metrics"]
    out = []
    for canonical in registry.names("metrics"):
        obj = registry.lookup("metrics", canonical)
        kinds = getattr(obj, "label_kinds", None)
        if getattr(obj, "task", None) in (None, task) and (kind is None or not kinds or kind in kinds):
            names = [n for n, o in table.items() if o is obj]  # registration order: the class name, then aliases
            out.append(next((n for n in names if n.islower()), names[0]))
    return out


def _check_metrics(check: Checker, raw: dict, loss: dict | None) -> None:
    """Each metric is registered, and fits the loss: no accuracy of a regression, no r2 of a classifier."""
    metrics = raw.get("metrics")
    loss_cls = registry.lookup("losses", loss["type"]) if loss else None
    kind = getattr(loss_cls, "label_kind", "unknown")  # None: a regression loss; a loss outside Loss: unknown
    task = None if kind == "unknown" else ("regression" if kind is None else "classification")
    fitting = ", ".join(_metric_names(task, kind if task == "classification" else None))
    for i, name in enumerate(metrics if isinstance(metrics, list) else []):
        if not isinstance(name, str):
            continue
        metric = registry.lookup("metrics", name)
        if metric is None:
            check.add(("train", "metrics", i), unknown_name("metrics", name) + check.plugin_hint)
            continue
        wants, kinds = getattr(metric, "task", None), getattr(metric, "label_kinds", None)
        if task is not None and wants is not None and wants != task:
            check.add(("train", "metrics", i),
                      f"expected a {task} metric ({fitting}) with the {task} loss "
                      f"{loss['type']}, found {name!r}, a {wants} metric")
        elif task == "classification" and kinds and kind not in kinds:
            check.add(("train", "metrics", i),
                      f"expected a metric for {kind} labels ({fitting}) with the loss "
                      f"{loss['type']}, found {name!r}, which needs {' or '.join(kinds)} labels "
                      f"(a loss such as BinaryCrossentropy)")


def _check_monitors(check: Checker, cfg: TrainConfig, data_cfg: DataConfig | None) -> TrainConfig:
    """Monitors name logged values; without a validation part, no val_ value is logged.

    Early stopping on a val_ value without validation is refused: it would watch nothing (Keras then
    never stops) or silently something else. The best checkpoint's default monitor, val_loss, becomes
    loss instead, written so in the resolved config.
    """
    validated = data_cfg is None or data_cfg.has_validation()
    train_values = ["loss", *cfg.metrics]
    logged = train_values + ([f"val_{m}" for m in train_values] if validated else [])
    monitors: list[tuple[Key, str]] = [(("train", "monitor"), cfg.monitor)]
    for section in ("early_stopping", "reduce_lr_on_plateau"):
        if getattr(cfg, section) is not None:
            monitors.append((("train", section, "monitor"), getattr(cfg, section).monitor))
    for where, name in monitors:
        written = check.written(where)
        if not validated and name.startswith("val_") and name[4:] in train_values:
            if where == ("train", "monitor") and not written:
                cfg = cfg.model_copy(update={"monitor": name[4:]})
                continue
            found = f"{name!r}" + ("" if written else " (the default)")
            check.add(where if written else where[:-1],
                      f"expected a value logged without validation ({', '.join(logged)}), found {found}: "
                      f"data.validation_split is 0 and there is no data.validation file, so nothing is validated; "
                      f"set data.validation_split above 0 (or data.validation to a file), or monitor: {name[4:]}")
        elif name not in logged:
            check.add(where, f"expected one of {', '.join(logged)}, found {name!r}{did_you_mean(name, logged)}")
    return cfg


def _check_loggers(check: Checker, cfg: TrainConfig) -> TrainConfig:
    """Each logger is registered, takes the params written, and has its package installed."""
    specs = []
    for i, spec in enumerate(cfg.loggers):
        path = ("train", "loggers", i)
        made = check.component("loggers", spec, path)
        if made is None:
            continue
        if made["type"] in (s["type"] for s in specs):
            check.add(path, f"expected each logger once, found {made['type']!r} again")
            continue
        problem = loggers.missing_package(made["type"])
        if problem:
            check.add(path, problem)
        specs.append(made)
    return cfg.model_copy(update={"loggers": specs})


def _check_callbacks(check: Checker, cfg: TrainConfig, optimizer: dict | None) -> TrainConfig:
    """``train.callbacks`` against the callbacks registry; a plateau needs a fixed learning rate."""
    specs = [check.component("callbacks", spec, ("train", "callbacks", i)) for i, spec in enumerate(cfg.callbacks)]
    lr = optimizer.get("learning_rate") if optimizer else None
    if cfg.reduce_lr_on_plateau is not None and isinstance(lr, dict):
        check.add(("train", "reduce_lr_on_plateau"),
                  f"expected a number as optimizer.learning_rate to reduce on a plateau, found the schedule "
                  f"{lr.get('type')} (as in Keras, a scheduled rate cannot also be reduced); drop one of the two")
    return cfg.model_copy(update={"callbacks": specs}) if None not in specs else cfg


def _check_model(check: Checker, spec: dict | str) -> dict | None:
    """The ``model:`` section: Sequential's own schema, or a registered model's signature."""
    path = ("model",)
    name = spec.get("type", SEQUENTIAL) if isinstance(spec, dict) else spec
    if not (isinstance(name, str) and name.replace("_", "").lower() == SEQUENTIAL.lower()):
        return check.component("models", spec, path, default_type=SEQUENTIAL)
    body: dict[str, Any] = {k: v for k, v in spec.items() if k != "type"} if isinstance(spec, dict) else {}
    cfg = check.section(SequentialConfig, body, path)
    raw_layers = body.get("layers")
    layers = [check.component("layers", layer, path + ("layers", i))
              for i, layer in enumerate(raw_layers if isinstance(raw_layers, list) else [])]
    if cfg is None or None in layers:
        return None
    entry = registry.lookup("models", SEQUENTIAL)
    return {"type": getattr(entry, "_registry_name", SEQUENTIAL), "input_shape": body["input_shape"],
            "layers": layers}
