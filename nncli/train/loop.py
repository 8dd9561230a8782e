"""The trainer: the Rindow chapter's GradientTape loop, with validation, metrics and callbacks.

It never prints: everything a user sees, and every policy that steers a run (early stopping,
learning-rate reduction), goes through callbacks (:mod:`nncli.train.callbacks`). Its whole state
(:class:`TrainState` plus the RNG and optimizer state the run folder saves) is
enough to continue bit-for-bit after an interruption, even mid-epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import nncli.autodiff as ad
from nncli.data import NDArrayDataset
from nncli.train.callbacks.base import Callback
from nncli.train.evaluate import EVAL_BATCH, evaluate

__all__ = ["Trainer", "TrainState", "NonFiniteLoss", "Callback", "better"]


class NonFiniteLoss(Exception):
    """Training produced a NaN or infinite loss."""

    def __init__(self, epoch: int, batch: int, value: float):
        self.epoch, self.batch, self.value = epoch, batch, value
        super().__init__(f"the loss became {value} at epoch {epoch}, batch {batch}")


def better(maximize: bool, value: float, best: float | None) -> bool:
    """Whether ``value`` is a new best for the run's monitor (``maximize``: the metric's own direction)."""
    if best is None:
        return not math.isnan(value)
    return value > best if maximize else value < best


@dataclass
class TrainState:
    """Where training is: restored from a checkpoint to continue exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch: int = 0  # batches completed in the current (unfinished) epoch
    best_value: float | None = None
    best_epoch: int | None = None
    sums: dict = field(default_factory=dict)  # per-sample sums of the unfinished epoch's loss
    metric_states: dict = field(default_factory=dict)  # the metrics' get_state() in the unfinished epoch
    seen: int = 0  # samples in those sums
    epoch_time: float = 0.0  # seconds spent in the unfinished epoch
    epoch_data_state: dict | None = None  # the shuffling state at the start of the unfinished epoch
    stopped_early: bool = False  # a callback stopped the run (``trainer.stop_training``)
    learning_rate: float | None = None  # the optimizer's rate as last saved (callbacks may lower it)
    restored_epoch: int | None = None  # a callback put this epoch's weights back when the run ended

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})  # es_best, wait: older checkpoints


class Trainer:
    """Fit a model with a loss and an optimizer on a dataset.

    Args:
        model: an ``nncli.nn.Model``.
        loss: a loss object, ``loss(trues, predicts) -> scalar tensor``.
        optimizer: an optimizer with ``update(params, grads)``.
        train_data: an ``NDArrayDataset`` of the training part.
        validation: ``(x, y)`` arrays, or None.
        metrics: ``{name: metric}`` with ``update_state``/``result``/``reset_state``.
        epochs: the epoch to stop at (counting completed epochs, so resuming keeps the total).
        monitor: the value whose best epoch is kept (``val_loss`` by default).
        compile: run the train step as a traced ``ad.Function``.
        callbacks: :class:`~nncli.train.callbacks.Callback` objects (or any object with some of
            its hooks), called in order.

    Example:
        >>> Trainer(model, loss, Adam(), NDArrayDataset(x, y, batch_size=32), epochs=10).fit()
        'completed'
    """

    def __init__(self, model, loss, optimizer, train_data: NDArrayDataset, *, validation=None,
                 metrics: dict | None = None, epochs: int = 10, monitor: str = "val_loss", compile: bool = True,
                 callbacks=(), eval_batch_size: int = EVAL_BATCH):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.train_data = train_data
        self.validation = validation
        self.metrics = dict(metrics or {})
        self.epochs = epochs
        self.monitor = monitor if validation is not None or not monitor.startswith("val_") else monitor[4:]
        self.compile = compile
        self.callbacks = list(callbacks)
        self.eval_batch_size = eval_batch_size
        self.state = TrainState()
        self.history: list[dict] = []
        self.stop_requested = False  # set by request_stop: stop at the next batch boundary
        self.stop_signal: int | None = None  # what asked first (signal.SIGINT, SIGTERM, ...), if anything
        self.consistent = True  # False while a step runs: weights and state may disagree
        self.warnings: list[str] = []  # problems callbacks reported (see warn)
        self.trained_weights: dict | None = None  # what training reached, while earlier weights are put back
        self._step = ad.function(self._train_step) if compile else self._train_step

    def request_stop(self, signum: int | None = None) -> None:
        """Stop at the next batch boundary (the state is then consistent and can be saved).

        ``signum`` says why (the first reason is kept), e.g. ``signal.SIGTERM``.
        """
        if not self.stop_requested:
            self.stop_signal = signum
        self.stop_requested = True

    @property
    def restored_epoch(self) -> int | None:
        """The epoch whose weights a callback put back at the end (``restore_weights``), else None."""
        return self.state.restored_epoch

    def restore_weights(self, weights: dict, epoch: int) -> None:
        """Put an earlier epoch's weights back as the run ends (restore_best_weights).

        The weights training reached are kept (checkpoints carry them), so that a resumed run
        that trains on continues from them, not from the restored ones.
        """
        if self.trained_weights is None:
            self.trained_weights = {p: v.numpy().copy() for p, v in self.model.named_variables()}
        self.model.load_named_weights(weights, source=f"the weights of epoch {epoch}")
        self.state.restored_epoch = epoch

    def _train_on_from_trained_weights(self) -> None:
        """Training goes on after a restore: continue from the weights training had reached."""
        if self.trained_weights is not None and not self.stop_training and self.state.epoch < self.epochs:
            self.model.load_named_weights(self.trained_weights, source="the weights the run stopped with")
            self.trained_weights, self.state.restored_epoch = None, None

    @property
    def stop_training(self) -> bool:
        """Set by a callback (early stopping) to end the run after this epoch, as in Keras."""
        return self.state.stopped_early

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.state.stopped_early = bool(value)

    def warn(self, message: str) -> None:
        """Report a problem that does not stop the run (shown at its end, kept in run.json)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def _notify(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            method = getattr(cb, hook, None)  # an object with only some of the hooks is a callback too
            if method is not None:
                method(self, *args)

    # -- one step ----------------------------------------------------------
    def _train_step(self, inputs, trues):
        params = self.model.trainable_variables
        with ad.GradientTape() as tape:
            predicts = self.model(inputs, training=True)
            loss = self.loss(trues, predicts)
        grads = tape.gradient(loss, params)
        self.optimizer.update(params, grads)
        return loss, predicts

    def _update_metrics(self, trues, predicts) -> dict[str, float]:
        """Add one batch to every metric; their values over all the batches since their reset.

        A metric keeps its own state over the epoch (an F1 or an AUC is not a mean of batch values).
        """
        for metric in self.metrics.values():
            metric.update_state(trues, predicts)
        return {name: float(metric.result()) for name, metric in self.metrics.items()}

    def maximize(self, name: str) -> bool:
        """Whether a larger ``name`` (``loss``, ``<metric>``, ``val_<metric>``) is better: its metric says."""
        metric = self.metrics.get(name[4:] if name.startswith("val_") else name)
        return bool(getattr(metric, "maximize", False))

    # -- the loop ------------------------------------------------------------
    def fit(self) -> str:
        """Train until ``epochs`` or early stopping; returns the final status.

        Raises :class:`NonFiniteLoss` (after ``on_train_end(..., "failed")``) and lets
        ``KeyboardInterrupt`` through after ``on_interrupt``; a stop asked for with
        :meth:`request_stop` is a KeyboardInterrupt at the next batch boundary.
        """
        status = "completed"
        self.stop_training = False  # a stop is decided by the callbacks this run has now
        try:
            self._notify("on_train_begin")
            self._train_on_from_trained_weights()
            while self.state.epoch < self.epochs and not self.stop_training:
                if self.stop_requested:
                    raise KeyboardInterrupt
                self._run_epoch()
            if self.stop_training:
                status = "early_stopped"
        except KeyboardInterrupt:
            self._notify("on_interrupt")
            raise
        except NonFiniteLoss:
            self._notify("on_train_end", "failed")
            raise
        self._notify("on_train_end", status)
        return status

    def _run_epoch(self) -> None:
        st = self.state
        epoch = st.epoch + 1
        if st.batch == 0:  # a fresh epoch; else we resume inside one
            st.epoch_data_state = self.train_data.get_state()
            st.sums, st.seen, st.epoch_time, st.metric_states = {}, 0, 0.0, {}
        else:
            self.train_data.set_state(st.epoch_data_state)
        for name, metric in self.metrics.items():
            metric.reset_state()
            if name in st.metric_states:
                metric.set_state(st.metric_states[name])
        self._notify("on_epoch_begin", epoch)
        n_batches = len(self.train_data)
        start = time.perf_counter() - st.epoch_time
        for index, (inputs, trues) in enumerate(self.train_data):
            if index < st.batch:
                continue  # done before the interruption
            if self.stop_requested:
                raise KeyboardInterrupt  # at a batch boundary: the state is consistent
            self._notify("on_batch_begin", epoch, index + 1)
            self.consistent = False
            loss, predicts = self._step(inputs, trues)
            value = float(loss)
            if not math.isfinite(value):
                raise NonFiniteLoss(epoch, index + 1, value)
            n = len(inputs)
            metric_logs = self._update_metrics(trues, np.asarray(predicts))
            st.metric_states = {name: metric.get_state() for name, metric in self.metrics.items()}
            st.sums["loss"] = st.sums.get("loss", 0.0) + value * n
            st.seen += n
            st.step += 1
            st.batch = index + 1
            st.epoch_time = time.perf_counter() - start
            self.consistent = True
            logs = {name: total / st.seen for name, total in st.sums.items()} | metric_logs
            self._notify("on_batch_end", epoch, index + 1, {**logs, "batches": n_batches})
        logs = {name: total / st.seen for name, total in st.sums.items()}
        logs.update({name: float(metric.result()) for name, metric in self.metrics.items()})
        if self.validation is not None:
            logs.update({f"val_{k}": v for k, v in self.evaluate(*self.validation).items()})
        logs["lr"] = float(self.optimizer.current_learning_rate()) if hasattr(
            self.optimizer, "current_learning_rate") else float("nan")
        logs["time_s"] = time.perf_counter() - start
        st.epoch, st.batch, st.sums, st.seen, st.epoch_time, st.metric_states = epoch, 0, {}, 0, 0.0, {}
        self._track_best(epoch, logs)
        self.history.append({"epoch": epoch, **logs})
        self._notify("on_epoch_end", epoch, logs)

    def _track_best(self, epoch: int, logs: dict) -> None:
        st = self.state
        value = logs.get(self.monitor)
        if value is not None and better(self.maximize(self.monitor), value, st.best_value):
            st.best_value, st.best_epoch = value, epoch

    def evaluate(self, x, y) -> dict[str, float]:
        """Loss (averaged over samples) and metrics (over all of them) of ``(x, y)`` in inference mode."""
        return evaluate(self.model, self.loss, self.metrics, x, y, self.eval_batch_size)
