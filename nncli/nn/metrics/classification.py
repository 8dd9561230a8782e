"""Classification metrics: accuracy, precision, recall, F1 and (binary) ROC AUC.

Each reads the labels the way the loss does (``label_kind``): "sparse" (class ids against the
argmax of y_pred), "categorical" (one-hot labels against the argmax), "binary" (``y_pred >
threshold`` against ``y_true > 0.5``) or "auto" (chosen from the shapes, as Keras does for the
name "accuracy": one output column is binary, labels of y_pred's shape are categorical,
otherwise sparse). :func:`~nncli.nn.metrics.get` with a loss fills these in from the loss.

Precision, recall and F1 are macro averages over the classes that occur in the labels or the
predictions for a multi-class model, and those of the positive class for a one-output binary
model (as scikit-learn's defaults and Keras's ``Precision``/``Recall``).

    >>> m = F1Score(label_kind="sparse")
    >>> m.update_state(np.array([0, 1, 1]), np.array([[2.0, 1.0], [0.0, 3.0], [3.0, 0.0]])); round(m.result(), 3)
    0.667
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nncli.nn.metrics.base import MeanMetric, Metric, match_rank
from nncli.nn.registry import register

__all__ = ["Accuracy", "Precision", "Recall", "F1Score", "AUC", "accuracy_for"]

LabelKind = Literal["auto", "sparse", "categorical", "binary"]
_KINDS = ("auto", "sparse", "categorical", "binary")


class _ReadsLabels:
    """The label kind and binary threshold shared by the classification metrics."""

    label_kind: str
    threshold: float

    def _set_labels(self, label_kind: str, threshold: float) -> None:
        if label_kind not in _KINDS:
            raise ValueError(f"label_kind must be auto, sparse, categorical or binary, not {label_kind!r}")
        self.label_kind, self.threshold = label_kind, float(threshold)

    def _kind(self, y_true: np.ndarray, y_pred: np.ndarray) -> str:
        if self.label_kind != "auto":
            return self.label_kind
        if y_pred.ndim == 0 or y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            return "binary"
        if y_true.shape == y_pred.shape:
            return "categorical"
        return "sparse"

    def _classes(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """``(true class ids, predicted class ids, number of classes, binary)``, flat int64."""
        kind = self._kind(y_true, y_pred)
        if kind == "binary":
            true = match_rank(y_true, y_pred) > 0.5
            return true.reshape(-1).astype(np.int64), (y_pred > self.threshold).reshape(-1).astype(np.int64), 2, True
        predicted = np.argmax(y_pred, axis=-1)
        if kind == "categorical":
            true = np.argmax(match_rank(y_true, y_pred), axis=-1)
        else:
            true = match_rank(y_true, predicted).astype(np.int64)
        return true.reshape(-1), predicted.reshape(-1), int(y_pred.shape[-1]), False


@register("metrics", aliases=("accuracy", "acc"))
class Accuracy(_ReadsLabels, MeanMetric):
    """The fraction of correct predictions, read the way the loss reads its labels.

    Use :func:`accuracy_for` to match a loss (threshold 0.0 for binary logits).

    Args:
        label_kind: how to read the labels (see the module).
        threshold: the binary decision threshold.
        name: the label it is logged under.

    Example:
        >>> m = Accuracy(label_kind="binary"); m.update_state([1, 0, 1], [0.9, 0.2, 0.4]); round(m.result(), 3)
        0.667
    """

    maximize = True
    task = "classification"
    _default_name = "accuracy"

    def __init__(self, label_kind: LabelKind = "auto", threshold: float = 0.5, name: str | None = None):
        self._set_labels(label_kind, threshold)
        super().__init__(name)

    def _values(self, y_true, y_pred):
        true, predicted, _, _ = self._classes(y_true, y_pred)
        return true == predicted

    def get_config(self) -> dict:
        return {"label_kind": self.label_kind, "threshold": self.threshold, "name": self.name}


class _ConfusionMetric(_ReadsLabels, Metric):
    """Counts per class of true positives, predictions and labels; subclasses score one class."""

    maximize = True
    task = "classification"

    def __init__(self, label_kind: LabelKind = "auto", threshold: float = 0.5, name: str | None = None):
        self._set_labels(label_kind, threshold)
        super().__init__(name)

    def reset_state(self) -> None:
        self._counts = np.zeros((3, 0), dtype=np.int64)  # rows: true positives, predicted, labelled
        self._binary = False

    def update_state(self, y_true, y_pred) -> None:
        true, predicted, n, binary = self._classes(np.asarray(y_true), np.asarray(y_pred))
        if true.size and true.min() < 0:
            raise ValueError(f"class ids must be >= 0, found {int(true.min())}")
        n = max(n, self._counts.shape[1], int(true.max(initial=-1)) + 1)
        batch = np.stack([np.bincount(true[true == predicted], minlength=n), np.bincount(predicted, minlength=n),
                          np.bincount(true, minlength=n)])
        if self._counts.shape[1] < n:
            self._counts = np.pad(self._counts, ((0, 0), (0, n - self._counts.shape[1])))
        self._counts += batch
        self._binary = binary

    def result(self) -> float:
        tp, predicted, labelled = self._counts.astype(np.float64)
        if not self._counts.size:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.nan_to_num(self._score(tp, predicted, labelled), nan=0.0)  # 0/0 counts as 0, as sklearn
        if self._binary:
            return float(scores[1])
        present = (predicted + labelled) > 0
        return float(scores[present].mean()) if present.any() else 0.0

    def _score(self, tp: np.ndarray, predicted: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_state(self) -> dict:
        return {"counts": self._counts.tolist(), "binary": self._binary}

    def set_state(self, state: dict) -> None:
        counts = np.array(state["counts"], dtype=np.int64)
        self._counts = counts.reshape(3, -1) if counts.size else np.zeros((3, 0), dtype=np.int64)
        self._binary = bool(state["binary"])

    def get_config(self) -> dict:
        return {"label_kind": self.label_kind, "threshold": self.threshold, "name": self.name}


@register("metrics", aliases=("precision",))
class Precision(_ConfusionMetric):
    """Of the samples predicted as a class, the share that are: tp / (tp + fp), macro averaged.

    Example:
        >>> m = Precision(label_kind="binary"); m.update_state([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]); m.result()
        0.5
    """

    _default_name = "precision"

    def _score(self, tp, predicted, labelled):
        return tp / predicted


@register("metrics", aliases=("recall",))
class Recall(_ConfusionMetric):
    """Of the samples of a class, the share predicted as it: tp / (tp + fn), macro averaged.

    Example:
        >>> m = Recall(label_kind="binary"); m.update_state([1, 0, 1, 1], [0.9, 0.8, 0.2, 0.7]); round(m.result(), 3)
        0.667
    """

    _default_name = "recall"

    def _score(self, tp, predicted, labelled):
        return tp / labelled


@register("metrics", aliases=("f1", "f1_score"))
class F1Score(_ConfusionMetric):
    """The harmonic mean of precision and recall per class, 2 tp / (2 tp + fp + fn), macro averaged.

    Example:
        >>> m = F1Score(label_kind="binary"); m.update_state([1, 0, 1, 1], [0.9, 0.8, 0.2, 0.7]); round(m.result(), 3)
        0.667
    """

    _default_name = "f1"

    def _score(self, tp, predicted, labelled):
        return 2 * tp / (predicted + labelled)


@register("metrics", aliases=("auc", "roc_auc"))
class AUC(Metric):
    """Area under the ROC curve of a binary classifier, from a histogram of its scores.

    The scores (probabilities, or sigmoids of logits with ``from_logits``) are counted into
    ``num_thresholds`` equal bins per class, so the state stays small whatever the number of
    samples; the area is the trapezoid rule over the bin edges, which counts a positive and a
    negative in the same bin as half ordered (as Keras's ``AUC`` with its 200 thresholds). NaN
    while only one class has been seen.

    Args:
        num_thresholds: bins of the score histogram.
        from_logits: the predictions are logits (a sigmoid gives the score).
        name: the label it is logged under.

    Example:
        >>> m = AUC(); m.update_state([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]); m.result()
        0.75
    """

    maximize = True
    task = "classification"
    label_kinds = ("binary",)
    _default_name = "auc"

    def __init__(self, num_thresholds: int = 200, from_logits: bool = False, name: str | None = None):
        if not isinstance(num_thresholds, int) or num_thresholds < 2:
            raise ValueError(f"num_thresholds must be an integer >= 2, not {num_thresholds!r}")
        self.num_thresholds, self.from_logits = num_thresholds, bool(from_logits)
        super().__init__(name)

    def reset_state(self) -> None:
        self._hist = np.zeros((2, self.num_thresholds), dtype=np.int64)  # rows: negatives, positives

    def update_state(self, y_true, y_pred) -> None:
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if y_pred.ndim >= 2 and y_pred.shape[-1] != 1:
            raise ValueError(f"AUC is for binary classifiers with one output, found {y_pred.shape[-1]} outputs")
        positive = (match_rank(np.asarray(y_true), y_pred) > 0.5).reshape(-1)
        scores = y_pred.reshape(-1)
        if self.from_logits:
            scores = 0.5 * (1.0 + np.tanh(0.5 * scores))  # the sigmoid, without overflow
        bins = np.clip((scores * self.num_thresholds).astype(np.int64), 0, self.num_thresholds - 1)
        self._hist += np.stack([np.bincount(bins[~positive], minlength=self.num_thresholds),
                                np.bincount(bins[positive], minlength=self.num_thresholds)])

    def result(self) -> float:
        negatives, positives = self._hist.astype(np.float64)
        n_neg, n_pos = negatives.sum(), positives.sum()
        if not n_neg or not n_pos:
            return float("nan")
        below = np.cumsum(negatives) - negatives  # negatives scored in a lower bin
        return float(np.sum(positives * (below + 0.5 * negatives)) / (n_pos * n_neg))

    def get_state(self) -> dict:
        return {"hist": self._hist.tolist()}

    def set_state(self, state: dict) -> None:
        self._hist = np.array(state["hist"], dtype=np.int64).reshape(2, self.num_thresholds)

    def get_config(self) -> dict:
        return {"num_thresholds": self.num_thresholds, "from_logits": self.from_logits, "name": self.name}


def accuracy_for(loss, name: str = "accuracy") -> Accuracy:
    """The accuracy that reads labels as ``loss`` does (its ``label_kind`` and ``from_logits``).

    Example:
        >>> from nncli.nn import losses
        >>> accuracy_for(losses.BinaryCrossentropy(from_logits=True)).threshold
        0.0
    """
    kind = getattr(loss, "label_kind", None) or "auto"
    logits = kind == "binary" and getattr(loss, "from_logits", False)
    return Accuracy(label_kind=kind, threshold=0.0 if logits else 0.5, name=name)
