"""``train.reduce_lr_on_plateau``: lower the learning rate when the monitored value stops improving.

Keras's rule (``keras.callbacks.ReduceLROnPlateau``): an improvement (by more than ``min_delta``)
sets ``wait`` to 0; otherwise, outside a cooldown, ``wait`` grows by one and at ``patience`` the
learning rate becomes ``max(lr * factor, min_lr)`` (if it is above ``min_lr``), ``wait`` goes back
to 0 and ``cooldown`` epochs follow in which nothing is counted.

The learning rate it set is part of the optimizer's state in the checkpoint; its counters are its
own state, so a resumed run reduces at exactly the epochs an uninterrupted one does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nncli.nn.registry import register
from nncli.train.callbacks.base import Callback
from nncli.train.callbacks.monitor import Monitor, finite_or_none

__all__ = ["ReduceLROnPlateau"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    best: float | None
    wait: Annotated[int, Field(ge=0)]
    cooldown_counter: Annotated[int, Field(ge=0)]
    reductions: list[Annotated[int, Field(ge=1)]] = []


@register("callbacks")
class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Args:
        monitor: the logged value to watch (``val_loss`` by default).
        factor: the multiplier, above 0 and below 1.
        patience: epochs without improvement before a reduction.
        mode: ``auto`` (the metric's own direction), ``min`` or ``max``.
        min_delta: the smallest change that counts as an improvement.
        cooldown: epochs after a reduction in which nothing is counted.
        min_lr: the learning rate never goes below this.

    The optimizer's learning rate must be a number, not a schedule (as in Keras).

    Example:
        >>> ReduceLROnPlateau(factor=0.5, patience=2).factor
        0.5
    """

    state_key = "reduce_lr_on_plateau"

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: Literal["auto", "min", "max"] = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be above 0 and below 1 (Keras refuses factor >= 1), not {factor!r}")
        if patience < 0 or cooldown < 0 or min_lr < 0:
            raise ValueError("patience, cooldown and min_lr must be >= 0")
        self.monitor = Monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown, self.min_lr = float(factor), int(patience), int(cooldown), float(min_lr)
        self.best: float | None = None
        self.wait = self.cooldown_counter = 0
        self.reductions: list[int] = []  # the epochs at whose end the rate was lowered

    def get_config(self) -> dict:
        m = self.monitor
        return {"monitor": m.name, "factor": self.factor, "patience": self.patience, "mode": m.mode,
                "min_delta": m.min_delta, "cooldown": self.cooldown, "min_lr": self.min_lr}

    def on_train_begin(self, trainer) -> None:
        self.monitor.resolve(trainer.maximize(self.monitor.name))

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        current = logs.get(self.monitor.name)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor.improves(current, self.best):
            self.best, self.wait = float(current), 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = trainer.optimizer
                old = float(optimizer.learning_rate)
                if old > np.float32(self.min_lr):
                    optimizer.learning_rate = max(old * self.factor, self.min_lr)
                    self.reductions.append(epoch)
                    self.cooldown_counter, self.wait = self.cooldown, 0

    def get_state(self) -> dict:
        return {"best": finite_or_none(self.best), "wait": self.wait, "cooldown_counter": self.cooldown_counter,
                "reductions": list(self.reductions)}

    def set_state(self, state: dict) -> None:
        checked = _State.model_validate(state)
        self.best, self.wait, self.cooldown_counter = checked.best, checked.wait, checked.cooldown_counter
        self.reductions = list(checked.reductions)
