"""One training run from a config file: build, create or resume the run folder, train, record.

``train()`` is the one library call behind ``nncli train``. Every check that can fail on the
user's input (config, data, resume) runs before the run folder is made or changed, so bad input
leaves nothing behind. The process holds the run's lock from the moment the folder is made (or
the resume starts) until it returns.
"""

from __future__ import annotations

import platform
import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from nncli import __version__
from nncli.data import NDArrayDataset
from nncli.errors import RunError
from nncli.train import faults
from nncli.train.build import Parts, build, output_units, prepare_targets
from nncli.train.config import Config, load_config
from nncli.train.layout import checkpoint_tensors, restore_checkpoint, split_checkpoint, write_checkpoint
from nncli.train.loop import Callback, EarlyStopping, NonFiniteLoss, Trainer
from nncli.train.runinfo import check_data_unchanged, config_fingerprint
from nncli.train.runs import RunFolder, read_metrics_rows, resolve_run
from nncli.train.signals import StopSignals, signal_name
from nncli.train.threads import blas_info, blas_threads

__all__ = ["train", "RunResult", "TrainingFailed", "TrainingInterrupted", "make_trainer", "metric_columns",
           "checkpoint_tensors", "split_checkpoint", "write_checkpoint"]

# Sections a resumed run must share with the run it continues (train.epochs and
# early stopping may change: "train 20 more epochs" is what resuming is for).
FROZEN = ("data", "model", "loss", "optimizer", "plugins")
FROZEN_TRAIN = ("metrics", "monitor")


class TrainingFailed(Exception):
    """The run stopped on a non-finite loss; the run folder says where."""

    def __init__(self, run: RunFolder, cause: NonFiniteLoss, kept_epoch: int | None):
        self.run, self.cause = run, cause
        kept = (f"the last good checkpoint (after epoch {kept_epoch}) is kept in {run.checkpoints}"
                if kept_epoch is not None else "no epoch finished, so there is no checkpoint")
        super().__init__(f"{cause}; the run is marked failed and {kept}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM, SIGHUP or a closed stdout stopped the run; it was saved (see ``saved``)."""

    def __init__(self, run: RunFolder, signum: int, epoch: int, batch: int, saved: bool):
        self.run, self.signum, self.epoch, self.batch, self.saved = run, signum, epoch, batch, saved
        super().__init__(f"{signal_name(signum)} at epoch {epoch + 1}, batch {batch}")


@dataclass
class RunResult:
    """What ``train`` leaves: the folder, the final status and the trainer (with its history)."""

    run: RunFolder
    status: str
    trainer: Trainer
    config: Config
    warnings: list[str] = field(default_factory=list)  # problems that did not fail the run


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _diff(old, new, path=""):
    """Lines ``path: old -> new`` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _diff(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _diff(a, b, f"{path}[{i}]")
    elif old != new:
        yield f"{path}: {old!r} in the run, {new!r} now"


def _check_resumable(saved: Config, cfg: Config) -> None:
    old, new = saved.to_dict(absolute_paths=True), cfg.to_dict(absolute_paths=True)
    lines = [line for key in FROZEN for line in _diff({key: old[key]}, {key: new[key]})]
    lines += [line for key in FROZEN_TRAIN
              for line in _diff({"train": {key: old["train"][key]}}, {"train": {key: new["train"][key]}})]
    if lines:
        raise RunError("cannot resume: the config differs from the run's in what it trains:\n  "
                       + "\n  ".join(lines) + "\nstart a new run instead (without --resume)")


# -- recording ----------------------------------------------------------------------
class RunRecorder(Callback):
    """Writes metrics.csv, checkpoints and run.json as the trainer goes; a signal never cuts a write."""

    def __init__(self, run: RunFolder, info: dict, columns: list[str], signals: StopSignals):
        self.run, self.info, self.columns, self.signals = run, info, columns, signals
        self._samples, self._seconds = 0, 0.0
        self.saved_epoch: int | None = None  # the epoch of checkpoints/last.safetensors

    def write_info(self, trainer: Trainer, status: str) -> None:
        st = trainer.state
        last = trainer.history[-1] if trainer.history else {}
        self.info.update(
            status=status, updated=_now(), epochs_done=st.epoch, step=st.step,
            best={"monitor": trainer.monitor, "epoch": st.best_epoch, "value": st.best_value},
            final={k: v for k, v in last.items() if k not in ("epoch", "time_s")},
            throughput_samples_per_s=round(self._samples / self._seconds, 1) if self._seconds else None)
        if status != "running":
            self.info["finished"] = _now()
        with self.signals.shield():
            self.run.write_json(self.info)

    def save(self, name: str, trainer: Trainer) -> None:
        with self.signals.shield():
            write_checkpoint(self.run, name, trainer, self.columns)
        if name == "last":
            self.saved_epoch = trainer.state.epoch

    def on_train_begin(self, trainer):
        self.write_info(trainer, "running")

    def on_epoch_end(self, trainer, epoch, logs):
        self._samples += len(trainer.train_data.inputs) if hasattr(trainer.train_data, "inputs") else 0
        self._seconds += logs.get("time_s", 0.0)
        with self.signals.shield():
            self.run.append_metrics({"epoch": epoch, **logs}, self.columns)
        # best before last: a crash between the two then repeats this epoch on resume (rewriting
        # best with the same weights), instead of leaving best one improvement behind.
        if trainer.state.best_epoch == epoch:
            self.save("best", trainer)
        self.save("last", trainer)
        self.write_info(trainer, "running")

    def on_interrupt(self, trainer):
        with self.signals.shield():  # the save of an interrupt is never cut by the next signal
            if trainer.consistent:
                self.save("last", trainer)
            self.write_info(trainer, "interrupted")

    def on_train_end(self, trainer, status):
        self.write_info(trainer, status)


class _Faults(Callback):
    """The test hook of :mod:`nncli.train.faults` at batch boundaries."""

    def on_batch_end(self, trainer, epoch, batch, logs):
        faults.batch_done(lambda: trainer.stop_requested)


def metric_columns(cfg: Config, has_validation: bool) -> list[str]:
    cols = ["epoch", "loss"] + (["val_loss"] if has_validation else [])
    for name in cfg.train.metrics:
        cols += [name] + ([f"val_{name}"] if has_validation else [])
    return cols + ["lr", "time_s"]


def make_trainer(cfg: Config, parts: Parts, callbacks=()) -> Trainer:
    """The trainer for built parts: datasets, validation arrays, early stopping."""
    data, units = parts.data, output_units(parts.model)
    y_train = prepare_targets(parts.loss, data.y_train, units)
    dataset = NDArrayDataset(data.x_train, y_train, batch_size=cfg.data.batch_size,
                             shuffle=cfg.data.shuffle, seed=cfg.seed)
    validation = None
    if data.x_val is not None and len(data.x_val):
        validation = (data.x_val, prepare_targets(parts.loss, data.y_val, units))
    es = cfg.train.early_stopping
    early = None
    if es is not None:  # without a validation part, watch the training value instead
        monitor = es.monitor[4:] if validation is None and es.monitor.startswith("val_") else es.monitor
        early = EarlyStopping(monitor, es.patience, es.min_delta, es.mode)
    return Trainer(parts.model, parts.loss, parts.optimizer, dataset, validation=validation,
                   metrics=parts.metrics, epochs=cfg.train.epochs, early_stopping=early,
                   monitor=cfg.train.monitor, compile=cfg.train.compile, callbacks=callbacks)


def train(config_path: str | Path, *, overrides=(), run_id: str | None = None, runs_dir: str | Path = "runs",
          resume: str | None = None, callbacks=(), argv=None) -> RunResult:
    """Train from a config file into ``runs_dir/<run-id>/`` (or continue ``resume``).

    Raises NncliError subclasses for bad input (before any file is written), :class:`TrainingFailed`
    for a non-finite loss, :class:`TrainingInterrupted` (a KeyboardInterrupt) after saving a stop
    asked for by Ctrl-C, SIGTERM, SIGHUP or ``trainer.request_stop``.
    """
    runs_dir = Path(runs_dir)
    argv = list(argv if argv is not None else sys.argv)
    cfg = load_config(config_path, overrides)
    with ExitStack() as stack:
        run = info = None
        if resume is not None:
            run = RunFolder(resolve_run(runs_dir, resume))
            stack.enter_context(run.lock(argv))  # a live writer is refused before anything is read
            info = run.read_json()
            saved = load_config(run.path / "config.yaml", import_plugins=False)  # the run's own: never run
            cfg.seed = saved.seed  # the run's seed, whatever the config says now
            _check_resumable(saved, cfg)
        elif run_id is not None:
            RunFolder.check_free(runs_dir, run_id)  # before any work, not only when the folder is made
        try:
            parts = build(cfg)
        except MemoryError as err:  # numpy refused an allocation: say so at the model, not in a traceback
            raise cfg.error("model", f"expected a model and data that fit in memory, found: {err}") from None
        if info is not None:
            changes = check_data_unchanged(info, cfg, "resuming")
            if changes:
                raise RunError(f"cannot resume run '{run.run_id}': its data has changed since it was trained: "
                               + "; ".join(changes) + ". Resuming would train on other data; start a new run")
        trainer = make_trainer(cfg, parts, callbacks)
        columns = metric_columns(cfg, trainer.validation is not None)
        blas = (info.get("blas") if info is not None else None) or blas_info()
        stack.enter_context(blas_threads(blas["threads"] if blas else None))
        signals = stack.enter_context(StopSignals(trainer))
        warnings: list[str] = []
        with signals.shield():
            if run is None:
                info = _new_info(cfg, config_path, argv, parts, blas)
                run, lock = RunFolder.create(runs_dir, run_id, cfg.to_dict(absolute_paths=True), info,
                                             stem=Path(config_path).stem, argv=argv)
                stack.enter_context(lock)
            else:
                warnings = _prepare_resume(run, trainer, info, cfg, columns)
        recorder = RunRecorder(run, info, columns, signals)
        if resume is not None and (run.checkpoints / "last.safetensors").exists():
            recorder.saved_epoch = trainer.state.epoch
        trainer.callbacks.insert(0, recorder)
        if faults.active():
            trainer.callbacks.append(_Faults())
        return _fit(run, trainer, recorder, cfg, info, warnings)


def _new_info(cfg: Config, config_path, argv: list[str], parts: Parts, blas: dict | None) -> dict:
    return {"run_id": None, "status": "running", "created": _now(), "config": str(config_path), "argv": argv,
            "seed": cfg.seed, "epochs": cfg.train.epochs,
            "versions": {"nncli": __version__, "numpy": np.__version__, "python": platform.python_version()},
            "data": {**_data_info(parts), "fingerprint": config_fingerprint(cfg)}, "blas": blas}


def _prepare_resume(run: RunFolder, trainer: Trainer, info: dict, cfg: Config, columns: list[str]) -> list[str]:
    """Restore the last checkpoint, rebuild metrics.csv from it, record the resume; warnings to show."""
    last, best = run.checkpoints / "last.safetensors", run.checkpoints / "best.safetensors"
    done = info.get("epochs_done") or 0
    warnings = []
    if last.exists():
        restore_checkpoint(last, trainer, columns)
    elif done or best.exists():
        raise RunError(f"cannot resume run '{run.run_id}': {last} is missing, but the run finished {done} "
                       f"epochs; resuming would start again from epoch 0 and throw them away. Restore the file, "
                       "or start a new run")
    else:  # killed before its first checkpoint: starting from epoch 0 is continuing
        rows, _ = read_metrics_rows(run.path / "metrics.csv")
        if rows:
            raise RunError(f"cannot resume run '{run.run_id}': {last} is missing, but metrics.csv has "
                           f"{len(rows)} finished epochs; restore the file, or start a new run")
    if trainer.state.best_epoch is not None and not best.exists():
        warnings.append(f"{best} is missing: the weights of the best epoch ({trainer.state.best_epoch}) are "
                        "lost; it is written again when an epoch beats that one")
    trainer.recompute_early_stopping()
    try:
        run.remove_partial_writes()
        run.write_metrics(trainer.history, columns)  # every finished epoch once, from the checkpoint
        run.write_config(cfg.to_dict(absolute_paths=True))
        info.pop("error", None)  # a resumed run starts without the last attempt's failure
        info.update(epochs=cfg.train.epochs, resumed=info.get("resumed", []) + [_now()], warnings=warnings)
        run.write_json(info)
    except OSError as err:
        raise RunError(f"cannot resume run '{run.run_id}': writing to {run.path} failed "
                       f"({err.strerror or err}); nothing was trained. Continue with --resume {run.run_id} once "
                       "it can be written") from None
    return warnings


def _fit(run: RunFolder, trainer: Trainer, recorder: RunRecorder, cfg: Config, info: dict,
         warnings: list[str]) -> RunResult:
    try:
        # A non-finite loss is detected and reported by the trainer; numpy's own warnings
        # about overflow on the way there would only be noise.
        with np.errstate(all="ignore"):
            status = trainer.fit()
    except NonFiniteLoss as err:
        info["error"] = str(err)
        recorder.write_info(trainer, "failed")
        if trainer.history:
            _plot(run)  # the curves up to the failure help to see why
        raise TrainingFailed(run, err, recorder.saved_epoch) from None
    except KeyboardInterrupt:
        st = trainer.state
        raise TrainingInterrupted(run, trainer.stop_signal or signal.SIGINT, st.epoch, st.batch,
                                  trainer.consistent) from None
    except (RunError, OSError) as err:  # a write to the run folder failed (disk full, folder gone)
        kept = (f"the last checkpoint is intact (after epoch {recorder.saved_epoch})"
                if recorder.saved_epoch is not None else "no checkpoint was written yet")
        message = str(err) if isinstance(err, RunError) else (
            f"could not write to {run.path} ({err.strerror or err}); {kept}")
        info["error"] = message
        try:
            recorder.write_info(trainer, "failed")
        except (OSError, RunError):
            pass  # run.json keeps its previous (complete) version
        raise RunError(f"{message}; continue with --resume {run.run_id} once it can be written") from None
    problem = _plot(run)
    return RunResult(run, status, trainer, cfg, warnings + ([problem] if problem else []))


def _data_info(parts: Parts) -> dict:
    data = parts.data
    return {"source": data.source_desc, "input_shape": list(data.x_train.shape[1:]),
            "feature_names": list(data.feature_names) if data.feature_names is not None else None,
            "num_classes": data.num_classes, "normalizer": data.normalizer.to_dict() if data.normalizer else None,
            "train_samples": len(data.x_train), "validation_samples": 0 if data.x_val is None else len(data.x_val)}


def _plot(run: RunFolder) -> str | None:
    """Draw loss.png; a plotting problem never fails a run: it is returned as a warning."""
    from nncli.train.plot import plot_runs  # matplotlib is imported only in plot.py

    try:
        plot_runs([run.path], out=run.path / "loss.png")
    except Exception as err:  # noqa: BLE001 - the run itself succeeded
        return f"could not draw {run.path / 'loss.png'}: {err}"
    return None
