"""The metric interface: Keras-style state over every sample seen since ``reset_state``.

``update_state(y_true, y_pred)`` takes numpy arrays (or tensors) of one batch and ``result()``
is the value over every sample seen, so an epoch's result equals the metric computed over all
its samples at once, whatever the batch sizes. ``get_state()``/``set_state()`` give that state
as plain JSON-ready data, so a run interrupted mid-epoch resumes with the same sums.

Each class says how to read it: ``maximize`` (a larger value is better: accuracy, f1, auc, r2;
early stopping and the best checkpoint use it), ``task`` ("classification", "regression", or
None for any loss) and ``label_kinds`` (the label kinds it can read, None for any).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Metric", "MeanMetric", "match_rank"]


def match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``y_true`` reshaped to ``y_pred``'s shape where they differ by a trailing axis of 1."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    return y_true


class Metric:
    """Base class of metrics.

    Subclasses define ``reset_state``, ``update_state``, ``result``, ``get_state`` and ``set_state``
    (or derive from :class:`MeanMetric`, which needs only ``_values``).

    Args:
        name: the label it is logged under.
    """

    maximize = False  # whether a larger value is better
    task: str | None = None  # "classification", "regression", or None: fits any loss
    label_kinds: tuple[str, ...] | None = None  # label kinds it can read (sparse, categorical, binary); None: any
    _default_name = "metric"

    def __init__(self, name: str | None = None):
        self.name = name or type(self)._default_name
        self.reset_state()

    def reset_state(self) -> None:
        """Forget every sample seen."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred) -> None:
        """Add one batch."""
        raise NotImplementedError

    def result(self) -> float:
        """The value over the samples seen."""
        raise NotImplementedError

    def get_state(self) -> dict:
        """The state as plain data (numbers and lists), for a checkpoint."""
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state`."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MeanMetric(Metric):
    """A running mean of per-sample values; ``_values(y_true, y_pred)`` gives them for a batch."""

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred) -> None:
        values = self._values(np.asarray(y_true), np.asarray(y_pred))
        self._total += float(np.sum(values))
        self._count += values.size

    def result(self) -> float:
        """The mean over the samples seen (0.0 before any, as Keras)."""
        return self._total / self._count if self._count else 0.0

    def get_state(self) -> dict:
        return {"total": self._total, "count": self._count}

    def set_state(self, state: dict) -> None:
        self._total, self._count = float(state["total"]), int(state["count"])

    def _values(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError
