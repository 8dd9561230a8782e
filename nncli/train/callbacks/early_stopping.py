"""``train.early_stopping``: stop when the monitored value stops improving, by Keras's rule.

Keras's rule (``keras.callbacks.EarlyStopping``), epochs counted from 1 here: every epoch adds one
to ``wait``; an improvement sets it back to 0 (unless ``baseline`` is not beaten) and never stops;
otherwise training stops once ``wait >= patience`` (never after the first epoch). So patience 1
stops one epoch after the best, patience 0 at the first epoch without improvement.

Its state (best value and epoch, wait, the epoch it stopped at, the best weights) is saved with
every checkpoint. A resumed run whose early stopping differs from the saved one (or is new)
decides again from the run's history, as if that policy had watched it from the start: a run
stopped under a tighter policy trains on under a looser one.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nncli.nn.registry import register
from nncli.train.callbacks.base import Callback
from nncli.train.callbacks.monitor import Monitor, finite_or_none

__all__ = ["EarlyStopping"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    config: dict
    best: float | None
    best_epoch: Annotated[int, Field(ge=1)] | None
    wait: Annotated[int, Field(ge=0)]
    stopped_epoch: Annotated[int, Field(ge=1)] | None
    best_weights: dict | None = None


@register("callbacks")
class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs (Keras's meaning).

    Args:
        monitor: the logged value to watch: ``loss``, ``val_loss``, ``<metric>``, ``val_<metric>``.
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping (1: stop one epoch after the best).
        mode: ``auto`` (the metric's own direction: accuracy, f1, auc, r2 are maximised), ``min``, ``max``.
        baseline: a value to beat; epochs that do not beat it count towards patience.
        restore_best_weights: when it stops the run, put the weights of its best epoch back
            (they are then what ``checkpoints/last.safetensors`` holds).
        start_from_epoch: epochs to let pass before watching (warm-up).

    Example:
        >>> EarlyStopping("val_loss", patience=2).patience
        2
    """

    state_key = "early_stopping"

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: Literal["auto", "min", "max"] = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        if patience < 0 or start_from_epoch < 0:
            raise ValueError("patience and start_from_epoch must be >= 0")
        self.monitor = Monitor(monitor, mode, min_delta)
        self.patience, self.baseline = int(patience), baseline
        self.restore_best_weights, self.start_from_epoch = bool(restore_best_weights), int(start_from_epoch)
        self._saved_config: dict | None = None
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def get_config(self) -> dict:
        m = self.monitor
        return {"monitor": m.name, "min_delta": m.min_delta, "patience": self.patience, "mode": m.mode,
                "baseline": self.baseline, "restore_best_weights": self.restore_best_weights,
                "start_from_epoch": self.start_from_epoch}

    # -- the rule ------------------------------------------------------------------------------
    def _step(self, epoch: int, logs: dict, weights=None) -> bool:
        """One epoch's end under Keras's rule; whether it stops. ``weights``: the model's, to copy."""
        current = logs.get(self.monitor.name)
        if current is None or epoch - 1 < self.start_from_epoch:
            return False
        if self.restore_best_weights and self.best_weights is None and weights is not None:
            self.best_weights, self.best_epoch = weights(), epoch  # nothing better seen yet
        self.wait += 1
        if self.monitor.improves(current, self.best):
            self.best, self.best_epoch = float(current), epoch
            if self.restore_best_weights and weights is not None:
                self.best_weights = weights()
            if self.baseline is None or self.monitor.improves(current, self.baseline):
                self.wait = 0
            return False
        if self.wait >= self.patience and epoch > 1:
            self.stopped_epoch = epoch
            return True
        return False

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_begin(self, trainer) -> None:
        self.monitor.resolve(trainer.maximize(self.monitor.name))
        if self._saved_config != self.get_config():
            self._replay(trainer)
        if self.stopped_epoch is not None:
            trainer.stop_training = True

    def _replay(self, trainer) -> None:
        """Decide again from the history, as if this policy had watched the run from its start."""
        kept = self.best_weights if self._saved_config is not None else None
        kept_epoch = self.best_epoch
        self._reset()
        for row in trainer.history:
            if self._step(row["epoch"], row):
                break
        if self.restore_best_weights and trainer.history:
            if kept is not None and kept_epoch == self.best_epoch:
                self.best_weights = kept
            else:
                trainer.warn(f"early stopping: the weights of epoch {self.best_epoch} (its best under the changed "
                             "policy) are not in the checkpoint, so restore_best_weights restores only from the "
                             "next improvement on")
        self._saved_config = self.get_config()

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self._step(epoch, logs, lambda: {p: v.numpy().copy() for p, v in trainer.model.named_variables()}):
            trainer.stop_training = True

    def on_train_end(self, trainer, status) -> None:
        if status == "early_stopped" and self.stopped_epoch is not None and self.restore_best_weights \
                and self.best_weights is not None:
            trainer.restore_weights(self.best_weights, self.best_epoch)

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"config": self.get_config(), "best": finite_or_none(self.best), "best_epoch": self.best_epoch,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def set_state(self, state: dict) -> None:
        checked = _State.model_validate(state)
        self.best, self.best_epoch, self.wait = checked.best, checked.best_epoch, checked.wait
        self.stopped_epoch, self.best_weights = checked.stopped_epoch, checked.best_weights
        self._saved_config = checked.config
