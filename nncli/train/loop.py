"""The trainer: the Rindow chapter's GradientTape loop, with validation, metrics and early stopping.

It never prints: everything a user sees goes through callbacks. Its whole state
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


class NonFiniteLoss(Exception):
    """Training produced a NaN or infinite loss."""

    def __init__(self, epoch: int, batch: int, value: float):
        self.epoch, self.batch, self.value = epoch, batch, value
        super().__init__(f"the loss became {value} at epoch {epoch}, batch {batch}")


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "auto"  # auto: maximise what its metric maximises (accuracy, f1, auc, r2), minimise the rest


def better(mode: str, maximize: bool, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``best``; ``maximize`` is the metric's own direction (for mode auto)."""
    if best is None:
        return not math.isnan(value)
    maximise = mode == "max" or (mode == "auto" and maximize)
    return value > best + min_delta if maximise else value < best - min_delta


@dataclass
class TrainState:
    """Where training is: restored from a checkpoint to continue exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch: int = 0  # batches completed in the current (unfinished) epoch
    best_value: float | None = None
    best_epoch: int | None = None
    es_best: float | None = None  # the early-stopping monitor's best value
    wait: int = 0  # epochs without improvement, for early stopping
    sums: dict = field(default_factory=dict)  # per-sample sums of the unfinished epoch's loss
    metric_states: dict = field(default_factory=dict)  # the metrics' get_state() in the unfinished epoch
    seen: int = 0  # samples in those sums
    epoch_time: float = 0.0  # seconds spent in the unfinished epoch
    epoch_data_state: dict | None = None  # the shuffling state at the start of the unfinished epoch
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        return cls(**data)


class Callback:
    """Hooks the trainer calls; subclass and override what you need."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...
    def on_train_end(self, trainer: Trainer, status: str) -> None: ...


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
        early_stopping: an :class:`EarlyStopping`, or None.
        monitor: the value whose best epoch is kept (``val_loss`` by default).
        compile: run the train step as a traced ``ad.Function``.
        callbacks: reporting hooks.

    Example:
        >>> Trainer(model, loss, Adam(), NDArrayDataset(x, y, batch_size=32), epochs=10).fit()
        'completed'
    """

    def __init__(self, model, loss, optimizer, train_data: NDArrayDataset, *, validation=None,
                 metrics: dict | None = None, epochs: int = 10, early_stopping: EarlyStopping | None = None,
                 monitor: str = "val_loss", compile: bool = True, callbacks=(), eval_batch_size: int = 1024):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.train_data = train_data
        self.validation = validation
        self.metrics = dict(metrics or {})
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.monitor = monitor if validation is not None or not monitor.startswith("val_") else monitor[4:]
        self.compile = compile
        self.callbacks = list(callbacks)
        self.eval_batch_size = eval_batch_size
        self.state = TrainState()
        self.history: list[dict] = []
        self.stop_requested = False  # set by request_stop: stop at the next batch boundary
        self.stop_signal: int | None = None  # what asked first (signal.SIGINT, SIGTERM, ...), if anything
        self.consistent = True  # False while a step runs: weights and state may disagree
        self._step = ad.function(self._train_step) if compile else self._train_step

    def request_stop(self, signum: int | None = None) -> None:
        """Stop at the next batch boundary (the state is then consistent and can be saved).

        ``signum`` says why (the first reason is kept), e.g. ``signal.SIGTERM``.
        """
        if not self.stop_requested:
            self.stop_signal = signum
        self.stop_requested = True

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
        try:
            for cb in self.callbacks:
                cb.on_train_begin(self)
            while self.state.epoch < self.epochs and not self.state.stopped_early:
                if self.stop_requested:
                    raise KeyboardInterrupt
                self._run_epoch()
            if self.state.stopped_early:
                status = "early_stopped"
        except KeyboardInterrupt:
            for cb in self.callbacks:
                cb.on_interrupt(self)
            raise
        except NonFiniteLoss:
            for cb in self.callbacks:
                cb.on_train_end(self, "failed")
            raise
        for cb in self.callbacks:
            cb.on_train_end(self, status)
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
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        n_batches = len(self.train_data)
        start = time.perf_counter() - st.epoch_time
        for index, (inputs, trues) in enumerate(self.train_data):
            if index < st.batch:
                continue  # done before the interruption
            if self.stop_requested:
                raise KeyboardInterrupt  # at a batch boundary: the state is consistent
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
            for cb in self.callbacks:
                cb.on_batch_end(self, epoch, index + 1, {**logs, "batches": n_batches})
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
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _track_best(self, epoch: int, logs: dict) -> None:
        st = self.state
        value = logs.get(self.monitor)
        if value is not None and better("auto", self.maximize(self.monitor), value, st.best_value):
            st.best_value, st.best_epoch = value, epoch
        self._early_stopping_step(logs)

    def _early_stopping_step(self, logs: dict) -> None:
        st, es = self.state, self.early_stopping
        if es is None:
            return
        monitored = logs.get(es.monitor)
        if monitored is None:
            return
        if better(es.mode, self.maximize(es.monitor), monitored, st.es_best, es.min_delta):
            st.es_best = monitored
            st.wait = 0
        else:
            st.wait += 1
            if st.wait > es.patience:
                st.stopped_early = True

    def recompute_early_stopping(self) -> None:
        """Early stopping's state as if ``early_stopping`` had watched ``history`` from the start.

        A resumed run may loosen, tighten or drop early stopping: the stop is decided under the
        policy it has now (so a stopped run trains on when the new policy would not have stopped).
        """
        st = self.state
        st.es_best, st.wait, st.stopped_early = None, 0, False
        for logs in self.history:
            if st.stopped_early:
                break
            self._early_stopping_step(logs)

    def evaluate(self, x, y) -> dict[str, float]:
        """Loss (averaged over samples) and metrics (over all of them) of ``(x, y)`` in inference mode."""
        total = 0.0
        for metric in self.metrics.values():
            metric.reset_state()
        for start in range(0, len(x), self.eval_batch_size):
            xb, yb = x[start:start + self.eval_batch_size], y[start:start + self.eval_batch_size]
            predicts = self.model(xb, training=False)
            total += float(self.loss(yb, predicts)) * len(xb)
            metric_values = self._update_metrics(yb, np.asarray(predicts))
        return {"loss": total / len(x), **(metric_values if len(x) else {})}
