"""From a validated config to objects: the model, loss, optimizer, metrics and data.

    cfg = load_config("configs/quickstart.yaml")
    parts = build(cfg)          # parts.model, parts.loss, parts.optimizer, parts.metrics, parts.data
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli import nn
from nncli.data import BUILTIN_SETS, PreparedData, prepare_data
from nncli.data.prepare import ClassNamesError
from nncli.errors import ConfigError, DataError, LabelError, NncliError, TargetError
from nncli.nn import registry
from nncli.train.diagnose import check_loss_outputs, class_names_problem, label_problem, named_param


@dataclass
class Parts:
    """Everything a training run is made of."""

    model: nn.Model
    loss: object
    optimizer: object
    metrics: dict
    data: PreparedData | None = None


def _params(spec: dict) -> tuple[str, dict]:
    spec = dict(spec)
    return spec.pop("type"), spec


class LayerBuildError(ValueError):
    """Layer ``index`` of a Sequential config could not be made (``shape``: or not for this input shape)."""

    def __init__(self, index: int, err: Exception, shape: tuple | None = None):
        self.index, self.shape = index, shape
        super().__init__(str(err))


def build_model(model_spec: dict, dtype=None) -> nn.Model:
    """The model a config's ``model:`` section describes, built for its input shape."""
    kind, params = _params(model_spec)
    if registry.lookup("models", kind) is nn.Sequential:
        layers = []
        for i, spec in enumerate(params["layers"]):
            spec = {"type": spec} if isinstance(spec, str) else dict(spec)
            if dtype is not None:
                spec["dtype"] = str(np.dtype(dtype))
            try:
                layers.append(nn.layer_from_config(spec))
            except (TypeError, ValueError) as err:
                raise LayerBuildError(i, err) from None
        model = nn.Sequential(layers)
        if params.get("input_shape") is not None:
            shape = tuple(params["input_shape"])
            for i, layer in enumerate(layers):  # one by one, so that a shape error names its layer
                try:
                    if not layer.built:
                        layer.build(shape)
                    shape = layer.compute_output_shape(shape)
                except (TypeError, ValueError) as err:
                    raise LayerBuildError(i, err, shape) from None
            model.input_shape = tuple(params["input_shape"])
            model.build(model.input_shape)
        return model
    return registry.build("models", model_spec if dtype is None else {**model_spec, "dtype": str(np.dtype(dtype))})


def build_loss(loss_spec: dict):
    return registry.build("losses", loss_spec)


def build_optimizer(optimizer_spec: dict):
    return registry.build("optimizers", optimizer_spec)  # a learning_rate mapping is a schedule: the optimizer builds it


def build_metrics(names: list[str], loss) -> dict:
    """``{name: metric}``, each reading labels as the loss does (label kind, logits), as in Keras."""
    from nncli.nn import metrics

    return {name: metrics.get(name, loss=loss) for name in names}


def output_units(model: nn.Model) -> int | None:
    """The size of the model's last output axis (the number of classes of a classifier)."""
    shape = model.compute_output_shape(model._build_shape) if getattr(model, "_build_shape", None) else None
    if shape and isinstance(shape, tuple) and shape[-1] is not None:
        return int(shape[-1])
    return None


def num_classes_for(loss, units: int | None) -> int | None:
    """How many classes the labels may name, or None for regression."""
    kind = getattr(loss, "label_kind", None)
    if kind in ("sparse", "categorical"):
        return units
    if kind == "binary":
        return 2
    return None


def build(cfg, with_data: bool = True) -> Parts:
    """Build every part of a run from a validated :class:`~nncli.train.config.Config`.

    Raises a ConfigError (with the config's file and line) when the parts do not fit:
    the data's shape against ``model.input_shape``, labels against the model's outputs.
    """
    nn.random.seed(cfg.seed)
    model = _made(cfg, "model", lambda: build_model(cfg.model))
    loss = _made(cfg, "loss", lambda: build_loss(cfg.loss))
    optimizer = _made(cfg, "optimizer", lambda: build_optimizer(cfg.optimizer))
    metrics = _made(cfg, "train.metrics", lambda: build_metrics(cfg.train.metrics, loss))
    units = output_units(model)
    check_loss_outputs(cfg, loss, units)
    parts = Parts(model, loss, optimizer, metrics)
    if with_data:
        parts.data = build_data(cfg, parts)
    return parts


def build_data(cfg, parts: Parts, keep_raw: bool = False, classes: list[str] | None = None) -> PreparedData:
    """The config's data, prepared for the built model and loss (checked against both).

    ``keep_raw`` keeps the samples as loaded too (see :func:`~nncli.data.prepare_data`);
    ``classes`` are the class names to map a text target onto (a run's), default the data's own.
    """
    d = cfg.data
    model, loss = parts.model, parts.loss
    units = output_units(model)
    # paths made relative to the working folder (or absolute): what messages show; base_dir is then "."
    source = d.source if d.source in BUILTIN_SETS else shown_path(cfg.resolve_path(d.source))
    files = {key: shown_path(cfg.resolve_path(getattr(d, key))) if getattr(d, key) else None
             for key in ("labels", "validation", "test")}

    def load(num_classes, validation_split=d.validation_split, test_split=d.test_split, normalize=d.normalize,
             parts_files=True):
        return prepare_data(source=source, base_dir=".", labels=files["labels"], target=d.target,
                            header=d.header, validation=files["validation"] if parts_files else None,
                            test=files["test"] if parts_files else None, x_key=d.x_key, y_key=d.y_key,
                            samples=d.samples, noise=d.noise, validation_split=validation_split,
                            test_split=test_split, normalize=normalize, seed=cfg.seed, num_classes=num_classes,
                            classes=classes, memory_map=d.memory_map, keep_raw=keep_raw)

    try:
        data = load(num_classes_for(loss, units))
    except ClassNamesError as err:
        raise class_names_problem(cfg, err, getattr(loss, "label_kind", None)) from None
    except LabelError as err:  # say which part of the config is likely wrong: the loss, the target, the units
        if any(f and err.where and err.where.startswith(f) for f in (files["validation"], files["test"])):
            raise  # a label of the validation or test file: the message names its file and row
        raise label_problem(cfg, err, num_classes_for(loss, units),
                            lambda: load(None, 0.0, 0.0, "none", parts_files=False)) from None
    except TargetError as err:  # the target column is not in the file
        raise cfg.error("data.target", str(err)) from None
    check_fit(cfg, model, loss, data, units)
    return data


def shown_path(path: Path) -> str:
    """``path`` as messages show it: relative to the working folder when it is inside it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _made(cfg, key: str, make):
    """``make()``, with a failure placed at the config key (and parameter) it is about."""
    try:
        return make()
    except NncliError:
        raise
    except LayerBuildError as err:
        where = f"model.layers[{err.index}]"
        spec = cfg.model["layers"][err.index]
        if err.shape is None:
            raise cfg.error(named_param(spec, str(err), where), f"the layer cannot be built: {err}") from None
        source = "the model's input_shape" if err.index == 0 else (
            f"the output of model.layers[{err.index - 1}], {cfg.model['layers'][err.index - 1]['type']}")
        raise cfg.error(named_param(spec, str(err), where), f"{spec['type']} cannot be built for inputs of shape "
                                                            f"{list(err.shape)} per sample ({source}): {err}") from None
    except MemoryError as err:  # numpy refused an allocation: say so at the part, not in a traceback
        raise cfg.error(key, f"expected a {key.split('.')[0]} that fits in memory, found: {err}") from None
    except (TypeError, ValueError) as err:
        spec = {"model": cfg.model, "loss": cfg.loss, "optimizer": cfg.optimizer}.get(key)
        raise cfg.error(named_param(spec, str(err), key), f"the {key.split('.')[0]} cannot be built: {err}") from None


def check_fit(cfg, model, loss, data: PreparedData, units: int | None) -> None:
    """Refuse data whose shape does not fit the model, naming both."""
    want = tuple(cfg.model.get("input_shape") or ())
    have = tuple(data.x_train.shape[1:])
    if want and want != have:
        raise ConfigError(str(cfg.error(
            "model.input_shape",
            f"expected the data's sample shape {list(have)} (from {data.source_desc}), found {list(want)}"
            + ("; add a Reshape layer to change it" if np.prod(want) == np.prod(have) else ""))))
    kind = getattr(loss, "label_kind", None)
    if kind is None and units is not None:
        y = data.y_train
        width = y.shape[1] if y.ndim > 1 else 1
        if width != units:
            raise ConfigError(str(cfg.error(
                "loss", f"expected targets with {units} value(s) per sample to match the model's output, "
                        f"found {width} in {data.source_desc}")))


def prepare_targets(loss, y: np.ndarray, units: int | None) -> np.ndarray:
    """Labels in the form the loss takes: one-hot rows for categorical cross-entropy."""
    kind = getattr(loss, "label_kind", None)
    if kind == "categorical" and y.ndim == 1 and units:
        out = np.zeros((len(y), units), dtype=np.float32)
        out[np.arange(len(y)), y] = 1.0
        return out
    if kind == "binary" and y.ndim == 1:
        return y.astype(np.float32).reshape(-1, 1)
    return y


def build_callbacks(cfg) -> list:
    """The callbacks a config's ``train:`` section asks for, each with its state key, in the order they run:
    early stopping, learning-rate reduction, ``train.callbacks`` in the order listed, periodic checkpoints."""
    from nncli.train.callbacks import EarlyStopping, PeriodicCheckpoint, ReduceLROnPlateau

    t = cfg.train
    out = []
    if t.early_stopping is not None:
        out.append(EarlyStopping(**t.early_stopping.model_dump()))
    if t.reduce_lr_on_plateau is not None:
        out.append(ReduceLROnPlateau(**t.reduce_lr_on_plateau.model_dump()))
    for i, spec in enumerate(t.callbacks):
        cb = _made(cfg, f"train.callbacks[{i}]", lambda spec=spec: registry.build("callbacks", spec))
        cb.state_key = f"callbacks[{i}]"
        out.append(cb)
    if t.checkpoint is not None:
        cb = PeriodicCheckpoint(**t.checkpoint.model_dump())
        cb.state_key = "checkpoint"
        out.append(cb)
    return out
