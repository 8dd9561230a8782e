"""Regression metrics: mean squared and absolute error, and R² (the coefficient of determination)."""

from __future__ import annotations

import numpy as np

from nncli.nn.metrics.base import MeanMetric, Metric, match_rank
from nncli.nn.registry import register

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "R2Score"]


def _per_sample(errors: np.ndarray) -> np.ndarray:
    """The mean over the last axis per sample (Keras's reduction); 0-d and 1-d are per element."""
    return errors.mean(axis=-1) if errors.ndim >= 2 else errors


class _MeanError(MeanMetric):
    """The mean over samples of an elementwise error of ``y_pred - y_true`` (``_error``)."""

    task = "regression"

    def _values(self, y_true, y_pred):
        return _per_sample(type(self)._error(y_pred - match_rank(y_true, y_pred)))


@register("metrics", aliases=("mse", "mean_squared_error"))
class MeanSquaredError(_MeanError):
    """Mean squared error over the samples seen.

    Example:
        >>> m = MeanSquaredError(); m.update_state([[0.0, 0.0]], [[1.0, 3.0]]); m.result()
        5.0
    """

    _default_name = "mse"
    _error = np.square


@register("metrics", aliases=("mae", "mean_absolute_error"))
class MeanAbsoluteError(_MeanError):
    """Mean absolute error over the samples seen.

    Example:
        >>> m = MeanAbsoluteError(); m.update_state([[0.0, 0.0]], [[1.0, -3.0]]); m.result()
        2.0
    """

    _default_name = "mae"
    _error = np.abs


@register("metrics", aliases=("r2", "r2_score"))
class R2Score(Metric):
    """R², the share of the targets' variance the predictions explain: 1 - SS_res / SS_tot.

    Computed over every sample seen, per output column, then averaged over the columns (as
    scikit-learn's ``r2_score`` and Keras's ``R2Score`` with uniform averaging). The targets'
    variance is accumulated with Chan's parallel update, so a large mean loses no precision. A
    column whose targets are all equal scores 1.0 when predicted exactly, else 0.0 (as scikit-learn).

    Example:
        >>> m = R2Score(); m.update_state([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]); m.result()
        0.5
    """

    maximize = True
    task = "regression"
    _default_name = "r2"

    def reset_state(self) -> None:
        self._n = 0
        self._mean = self._m2 = self._ss_res = None  # per column, float64

    def update_state(self, y_true, y_pred) -> None:
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = match_rank(np.asarray(y_true, dtype=np.float64), y_pred)
        cols = y_pred.shape[-1] if y_pred.ndim >= 2 else 1
        t, p = y_true.reshape(-1, cols), y_pred.reshape(-1, cols)  # (samples, columns)
        n = len(t)
        if not n:
            return
        mean_b = t.mean(axis=0)
        m2_b = np.square(t - mean_b).sum(axis=0)
        res_b = np.square(t - p).sum(axis=0)
        if self._mean is None:
            self._n, self._mean, self._m2, self._ss_res = n, mean_b, m2_b, res_b
            return
        if len(mean_b) != len(self._mean):
            raise ValueError(f"y_pred has {len(mean_b)} columns, earlier batches had {len(self._mean)}")
        total = self._n + n
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2_b + np.square(delta) * (self._n * n / total)
        self._ss_res = self._ss_res + res_b
        self._n = total

    def result(self) -> float:
        if self._mean is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - self._ss_res / self._m2
        constant = self._m2 == 0
        r2 = np.where(constant, np.where(self._ss_res == 0, 1.0, 0.0), r2)
        return float(np.mean(r2))

    def get_state(self) -> dict:
        if self._mean is None:
            return {"n": 0}
        return {"n": self._n, "mean": self._mean.tolist(), "m2": self._m2.tolist(), "ss_res": self._ss_res.tolist()}

    def set_state(self, state: dict) -> None:
        self.reset_state()
        if state.get("n"):
            self._n = int(state["n"])
            self._mean, self._m2, self._ss_res = (np.array(state[k], dtype=np.float64) for k in ("mean", "m2", "ss_res"))
