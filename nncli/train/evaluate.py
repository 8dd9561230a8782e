"""Scoring a model on arrays in inference mode: the loss averaged over samples and every metric.

    values = evaluate(model, loss, metrics, x, y)      # {"loss": 0.097, "accuracy": 0.969}

What the trainer logs as ``val_*`` and what ``nncli eval`` prints are this one function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["evaluate", "EVAL_BATCH"]

EVAL_BATCH = 1024  # samples per forward pass


def evaluate(model, loss, metrics: dict, x, y, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """Loss (averaged over samples) and metrics (over all of them) of ``(x, y)`` with ``training=False``.

    Each metric is reset first and keeps its state over the batches (an F1 is not a mean of batches).
    """
    total = 0.0
    for metric in metrics.values():
        metric.reset_state()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        predicts = model(xb, training=False)
        total += float(loss(yb, predicts)) * len(xb)
        outputs = np.asarray(predicts)
        for metric in metrics.values():
            metric.update_state(yb, outputs)
    values = {"loss": total / len(x) if len(x) else float("nan")}
    if len(x):
        values.update({name: float(metric.result()) for name, metric in metrics.items()})
    return values
