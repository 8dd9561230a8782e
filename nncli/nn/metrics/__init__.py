"""Metrics: Keras-style state over the samples seen since ``reset_state``, registered under "metrics".

    >>> from nncli.nn import losses
    >>> m = get("f1", loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> m.update_state(np.array([0, 1]), np.array([[2.0, 1.0], [3.0, 0.0]])); m.result()
    0.3333333333333333

Classification: accuracy, precision, recall, f1 (macro), auc (binary). Regression: mse, mae, r2.
Each class says whether it is maximised (``maximize``) and which losses it fits (``task``).
"""

from __future__ import annotations

import inspect

import numpy as np  # noqa: F401 - the examples use it

from nncli.nn.metrics.base import MeanMetric, Metric, match_rank
from nncli.nn.metrics.classification import AUC, Accuracy, F1Score, Precision, Recall, accuracy_for
from nncli.nn.metrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score
from nncli.nn.registry import get as _registry_get

__all__ = ["Metric", "MeanMetric", "Accuracy", "Precision", "Recall", "F1Score", "AUC", "MeanSquaredError",
           "MeanAbsoluteError", "R2Score", "accuracy_for", "for_loss", "get", "match_rank"]


def for_loss(cls, loss) -> dict:
    """Arguments that make a metric class read labels as ``loss`` does (``label_kind``, ``threshold``,
    ``from_logits``), for the parameters the class takes.

    Example:
        >>> from nncli.nn import losses
        >>> for_loss(Precision, losses.BinaryCrossentropy(from_logits=True))
        {'label_kind': 'binary', 'threshold': 0.0}
    """
    kind = getattr(loss, "label_kind", None)
    logits = bool(getattr(loss, "from_logits", False))
    params = inspect.signature(cls.__init__).parameters
    out = {}
    if "label_kind" in params and kind:
        out["label_kind"] = kind
    if "threshold" in params and kind == "binary":
        out["threshold"] = 0.0 if logits else 0.5
    if "from_logits" in params and kind:
        out["from_logits"] = logits
    return out


def get(identifier, loss=None) -> Metric:
    """A metric from a name (logged under that name), a ``{'type': ...}`` dict or a Metric.

    Arguments the identifier leaves out are read from ``loss`` (see :func:`for_loss`).

    Example:
        >>> from nncli.nn import losses
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
    if loss is not None and inspect.isclass(cls):
        given = set(args)
        if "label_kind" in given and "threshold" not in given:
            given.add("threshold")  # an explicit label kind keeps the default threshold
        args = {**{k: v for k, v in for_loss(cls, loss).items() if k not in given}, **args}
    return cls(**args)
