"""Why the parts of a config do not fit together, said at the key that needs changing.

:func:`~nncli.train.build.build` calls these when something fails after validation: a component
whose constructor refuses a value, a loss that cannot read the model's outputs, labels that
are not classes. Each message names the config key to change (``optimizer.learning_rate``,
``loss``, ``data.target``) and, where there is one, the fix.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from nncli.errors import ConfigError
from nncli.nn import registry

__all__ = ["named_param", "check_loss_outputs", "label_problem", "class_names_problem"]

MAX_SHOWN_CLASSES = 20  # a target with more distinct values than this (and than outputs) reads as regression


def named_param(spec: Any, message: str, prefix: str) -> str:
    """The dotted key of the parameter of ``spec`` that ``message`` names, else ``prefix``.

    Example: ``named_param({"type": "Adam", "learning_rate": -1}, "learning_rate must be >= 0", "optimizer")``
    gives ``"optimizer.learning_rate"``.
    """
    best = None
    for key, value in spec.items() if isinstance(spec, dict) else ():
        if key == "type":
            continue
        if isinstance(value, dict):
            inner = named_param(value, message, f"{prefix}.{key}")
            if inner != f"{prefix}.{key}":
                return inner
        if re.search(rf"\b{re.escape(str(key))}\b", message) and (best is None or len(key) > len(best)):
            best = key
    return f"{prefix}.{best}" if best else prefix


def check_loss_outputs(cfg, loss, units: int | None) -> None:
    """Refuse a loss that cannot read the model's outputs (binary with 3 units, softmax over 1)."""
    kind, name = getattr(loss, "label_kind", None), cfg.loss["type"]
    last = _last_layer(cfg)
    if units is None:
        return
    if kind == "binary" and units != 1:
        raise cfg.error("loss", f"{name} takes one output per sample (a probability, or a logit with "
                                f"from_logits: true), found a model with {units} outputs ({last}); for {units} "
                                f"classes use SparseCategoricalCrossentropy, or give {last} units: 1")
    if kind in ("sparse", "categorical") and units == 1:
        raise cfg.error("loss", f"{name} takes one output per class (at least 2), found a model with 1 output "
                                f"({last}), whose softmax is always 1; for two classes use BinaryCrossentropy "
                                f"(from_logits: true), or give {last} one unit per class")


def _last_layer(cfg) -> str:
    layers = cfg.model.get("layers")
    if isinstance(layers, list) and layers:
        return f"model.layers[{len(layers) - 1}]"
    return "model"


def label_problem(cfg, err, units: int, reload) -> ConfigError:
    """The error for labels that are not classes, at the key most likely wrong.

    ``reload()`` gives the data read without label checks (a PreparedData), to look at the target:
    non-integer or many distinct values read as a regression target (suggest mse); with
    ``data.target`` unset, a feature column of class ids is likely the label column (suggest it).
    """
    name = cfg.loss["type"]
    try:
        raw = reload()
    except Exception:  # noqa: BLE001 - the diagnosis is a courtesy; the original error still stands
        raw = None
    if raw is not None:
        y = np.asarray(raw.y_train).reshape(len(raw.y_train), -1)[:, 0]
        target = "the last column" if cfg.data.target is None else f"the column '{cfg.data.target}'"
        candidate = _label_column(raw, units) if cfg.data.target is None else None
        if candidate is not None:
            return cfg.error("data.target", f"expected the target ({target}, as data.target is not set) to hold class "
                                     f"ids 0..{units - 1} for {name}, but {err}; the column '{candidate}' holds class "
                                     f"ids: set data.target: {candidate}")
        distinct = np.unique(y).size
        if np.any(y != np.round(y)) or distinct > max(units, MAX_SHOWN_CLASSES):
            return cfg.error("loss", f"{name} needs class ids 0..{units - 1} as targets, but {err}; {target} of "
                                     f"{raw.source_desc} looks like a regression target ({distinct} distinct values "
                                     f"from {y.min():.4g} to {y.max():.4g}): use loss: mse with one output unit"
                                     + (", or set data.target to the column of class ids"
                                        if cfg.data.target is None else ""))
    last = _last_layer(cfg)
    ids = int(np.max(y)) + 1 if raw is not None and y.size and np.all(y >= 0) else None  # whole ids, by now
    if getattr(registry.lookup("losses", name), "label_kind", None) == "binary":
        return cfg.error("loss", f"{name} takes labels 0 and 1, but {err}" + (
            f": for {ids} classes use loss: {{type: SparseCategoricalCrossentropy, from_logits: true}} with {ids} "
            f"output units ({last})" if ids else ""))
    return cfg.error(last, f"the model has {units} outputs, but {err}" + (f"; give {last} units: {ids}" if ids else ""))


def class_names_problem(cfg, err, kind: str | None) -> ConfigError:
    """The error for a target of class names that the loss (a regression, a binary loss) or the model (too few
    outputs) cannot take; ``kind`` is the loss's ``label_kind``."""
    k, last, name = len(err.classes), _last_layer(cfg), cfg.loss["type"]
    if kind == "binary":
        return cfg.error("loss", f"{name} takes two classes, but {err.where}: {err.message}: for {k} classes use "
                                 f"loss: {{type: SparseCategoricalCrossentropy, from_logits: true}} with {k} output "
                                 f"units ({last})")
    if err.num_classes is None:
        return cfg.error("loss", f"{cfg.loss['type']} needs numbers as targets, but {err.where}: {err.message}: for "
                                 f"{k} classes use loss: {{type: SparseCategoricalCrossentropy, from_logits: true}} "
                                 f"with {k} output units ({last})")
    return cfg.error(last, f"the model has {err.num_classes} outputs, but {err.where}: {err.message}; give {last} "
                           f"units: {k}")


def _label_column(raw, units: int) -> str | None:
    """A feature column whose values are all class ids in [0, units), by name, if exactly one is."""
    names = raw.feature_names
    x = np.asarray(raw.x_train)
    if not names or x.ndim != 2 or x.shape[1] != len(names):
        return None
    whole = np.all(x == np.round(x), axis=0) & np.all((x >= 0) & (x < units), axis=0)
    found = [names[i] for i in np.flatnonzero(whole)]
    return found[0] if len(found) == 1 else None
