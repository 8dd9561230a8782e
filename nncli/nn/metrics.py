"""Metrics: Keras-style stateful averages over the samples seen since ``reset_state``.

``update_state(y_true, y_pred)`` takes numpy arrays (or tensors) of one batch,
``result()`` is the mean over every sample seen, so an epoch's result equals the
metric computed over all its samples at once, whatever the batch sizes.

    >>> m = accuracy_for(losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> m.update_state(np.array([0, 1]), np.array([[2.0, 1.0], [3.0, 0.0]])); m.result()
    0.5
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nncli.nn import losses  # noqa: F401 - the examples use it
from nncli.nn.registry import get as _registry_get
from nncli.nn.registry import register


def _match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``y_true`` reshaped to ``y_pred``'s shape where they differ by a trailing axis of 1."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    return y_true


class Metric:
    """Base class: a running mean of per-sample values (``_values`` gives them for a batch).

    Args:
        name: the label it is logged under.
    """

    def __init__(self, name: str | None = None):
        self.name = name or type(self)._default_name
        self.reset_state()

    _default_name = "metric"

    def reset_state(self) -> None:
        """Forget every sample seen."""
        self._total = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred) -> None:
        """Add one batch."""
        values = self._values(np.asarray(y_true), np.asarray(y_pred))
        self._total += float(np.sum(values))
        self._count += values.size

    def result(self) -> float:
        """The mean over the samples seen (0.0 before any, as Keras)."""
        return self._total / self._count if self._count else 0.0

    def _values(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register("metrics", aliases=("accuracy", "acc"))
class Accuracy(Metric):
    """The fraction of correct predictions, read the way the loss reads its labels.

    ``label_kind``: "sparse" (argmax of y_pred vs integer labels), "categorical" (argmax vs
    argmax of one-hot labels), "binary" (``y_pred > threshold`` vs ``y_true > 0.5``) or "auto"
    (chosen from the shapes, as Keras does for the name "accuracy": one output column is
    binary, labels of y_pred's shape are categorical, otherwise sparse).
    Use :func:`accuracy_for` to match a loss (threshold 0.0 for binary logits).

    Args:
        label_kind: how to read the labels.
        threshold: the binary decision threshold.
        name: the label it is logged under.

    Example:
        >>> m = Accuracy(label_kind="binary"); m.update_state([1, 0, 1], [0.9, 0.2, 0.4]); round(m.result(), 3)
        0.667
    """

    _default_name = "accuracy"

    def __init__(self, label_kind: Literal["auto", "sparse", "categorical", "binary"] = "auto",
                 threshold: float = 0.5, name: str | None = None):
        if label_kind not in ("auto", "sparse", "categorical", "binary"):
            raise ValueError(f"label_kind must be auto, sparse, categorical or binary, not {label_kind!r}")
        self.label_kind = label_kind
        self.threshold = float(threshold)
        super().__init__(name)

    def _kind(self, y_true: np.ndarray, y_pred: np.ndarray) -> str:
        if self.label_kind != "auto":
            return self.label_kind
        if y_pred.ndim == 0 or y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            return "binary"
        if y_true.shape == y_pred.shape:
            return "categorical"
        return "sparse"

    def _values(self, y_true, y_pred):
        kind = self._kind(y_true, y_pred)
        if kind == "binary":
            return (y_pred > self.threshold) == (_match_rank(y_true, y_pred) > 0.5)
        predicted = np.argmax(y_pred, axis=-1)
        if kind == "categorical":
            return predicted == np.argmax(_match_rank(y_true, y_pred), axis=-1)
        return predicted == _match_rank(y_true, predicted)

    def get_config(self) -> dict:
        return {"label_kind": self.label_kind, "threshold": self.threshold, "name": self.name}


def accuracy_for(loss, name: str = "accuracy") -> Accuracy:
    """The accuracy that reads labels as ``loss`` does (its ``label_kind`` and ``from_logits``).

    Example:
        >>> accuracy_for(losses.BinaryCrossentropy(from_logits=True)).threshold
        0.0
    """
    kind = getattr(loss, "label_kind", None) or "auto"
    logits = kind == "binary" and getattr(loss, "from_logits", False)
    return Accuracy(label_kind=kind, threshold=0.0 if logits else 0.5, name=name)


def _per_sample(errors: np.ndarray) -> np.ndarray:
    """The mean over the last axis per sample (Keras's reduction); 0-d and 1-d are per element."""
    return errors.mean(axis=-1) if errors.ndim >= 2 else errors


@register("metrics", aliases=("mse", "mean_squared_error"))
class MeanSquaredError(Metric):
    """Mean squared error over the samples seen.

    Example:
        >>> m = MeanSquaredError(); m.update_state([[0.0, 0.0]], [[1.0, 3.0]]); m.result()
        5.0
    """

    _default_name = "mse"

    def _values(self, y_true, y_pred):
        return _per_sample(np.square(y_pred - _match_rank(y_true, y_pred)))


@register("metrics", aliases=("mae", "mean_absolute_error"))
class MeanAbsoluteError(Metric):
    """Mean absolute error over the samples seen.

    Example:
        >>> m = MeanAbsoluteError(); m.update_state([[0.0, 0.0]], [[1.0, -3.0]]); m.result()
        2.0
    """

    _default_name = "mae"

    def _values(self, y_true, y_pred):
        return _per_sample(np.abs(y_pred - _match_rank(y_true, y_pred)))


def get(identifier, loss=None) -> Metric:
    """A metric from a name (logged under that name), a ``{'type': ...}`` dict or a Metric.

    An accuracy that does not say its ``label_kind`` follows ``loss`` (see :func:`accuracy_for`).

    Example:
        >>> get("acc", loss=losses.get("sparse_categorical_crossentropy")).label_kind
        'sparse'
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        name, args = identifier, {}
    elif isinstance(identifier, dict):
        name, args = identifier["type"], {k: v for k, v in identifier.items() if k != "type"}
    else:
        raise TypeError(f"expected a metric name, config dict or Metric, not {type(identifier).__name__}")
    cls = _registry_get("metrics", name)
    args.setdefault("name", name)
    if cls is Accuracy and loss is not None and "label_kind" not in args:
        args = {**accuracy_for(loss).get_config(), **args}
    return cls(**args)
