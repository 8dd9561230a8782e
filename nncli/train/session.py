"""One training run from a config file: build, create or resume the run folder, train, record.

``train()`` is the one library call behind ``nncli train``. Every check that can
fail on the user's input (config, data, resume) runs before the run folder is
made, so bad input leaves nothing behind.
"""

from __future__ import annotations

import platform
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from nncli import __version__, nn
from nncli.data import NDArrayDataset
from nncli.errors import RunError
from nncli.train.build import Parts, build, output_units, prepare_targets
from nncli.train.config import Config, load_config
from nncli.train.loop import Callback, EarlyStopping, NonFiniteLoss, Trainer, TrainState
from nncli.train.runs import RunFolder, load_checkpoint, new_run_id, resolve_run, save_checkpoint

# Sections a resumed run must share with the run it continues (train.epochs and
# early stopping may change: "train 20 more epochs" is what resuming is for).
FROZEN = ("data", "model", "loss", "optimizer", "plugins")
FROZEN_TRAIN = ("metrics", "monitor")


class TrainingFailed(Exception):
    """The run stopped on a non-finite loss; the run folder says where."""

    def __init__(self, run: RunFolder, cause: NonFiniteLoss):
        self.run, self.cause = run, cause
        super().__init__(f"{cause}; the run is marked failed and the last good checkpoint is kept "
                         f"in {run.checkpoints}")


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


# -- checkpoints -------------------------------------------------------------------
OPTIMIZER = "optimizer/"  # prefix of optimizer slots in a checkpoint; weight paths never hold a "/"


def checkpoint_tensors(model, optimizer) -> dict[str, np.ndarray]:
    """Weights by path (``layers.0.kernel``) and optimizer slots (``optimizer/0.m``)."""
    tensors = {path: var.numpy() for path, var in model.named_variables()}
    tensors.update({OPTIMIZER + k: np.asarray(v) for k, v in optimizer.get_state().items()})
    return tensors


def split_checkpoint(tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The inverse of :func:`checkpoint_tensors`: ``(weights by path, optimizer state)``."""
    weights = {k: v for k, v in tensors.items() if "/" not in k}
    opt_state = {k[len(OPTIMIZER):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER)}
    if "iterations" in opt_state:  # safetensors stores a 0-d array with shape (1,)
        opt_state["iterations"] = opt_state["iterations"].reshape(())
    return weights, opt_state


def write_checkpoint(run: RunFolder, name: str, trainer: Trainer) -> None:
    meta = {"epoch": trainer.state.epoch, "step": trainer.state.step, "trainer": trainer.state.to_dict(),
            "rng": nn.random.get_state(), "data_rng": trainer.train_data.get_state(),
            "nncli": __version__}
    save_checkpoint(run.checkpoints / f"{name}.safetensors", checkpoint_tensors(trainer.model, trainer.optimizer),
                    meta)


def restore_checkpoint(path: Path, trainer: Trainer) -> dict:
    """Load weights, optimizer slots, RNG and trainer state from a checkpoint into ``trainer``."""
    tensors, meta = load_checkpoint(path)
    weights, opt_state = split_checkpoint(tensors)
    try:
        trainer.model.load_named_weights(weights, source=str(path))
        trainer.optimizer.set_state(opt_state)
        trainer.state = TrainState.from_dict(meta["trainer"])
        nn.random.set_state(meta["rng"])
        trainer.train_data.set_state(meta["data_rng"])
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"checkpoint {path} does not fit this run ({err}); it was not loaded") from None
    return meta


# -- recording ----------------------------------------------------------------------
class RunRecorder(Callback):
    """Writes metrics.csv, checkpoints and run.json as the trainer goes."""

    def __init__(self, run: RunFolder, info: dict, columns: list[str]):
        self.run, self.info, self.columns = run, info, columns
        self._samples, self._seconds = 0, 0.0

    def _write_info(self, trainer: Trainer, status: str) -> None:
        st = trainer.state
        last = trainer.history[-1] if trainer.history else {}
        self.info.update(
            status=status, updated=_now(), epochs_done=st.epoch, step=st.step,
            best={"monitor": trainer.monitor, "epoch": st.best_epoch, "value": st.best_value},
            final={k: v for k, v in last.items() if k not in ("epoch", "time_s")},
            throughput_samples_per_s=round(self._samples / self._seconds, 1) if self._seconds else None)
        if status != "running":
            self.info["finished"] = _now()
        self.run.write_json(self.info)

    def on_train_begin(self, trainer):
        self._write_info(trainer, "running")

    def on_epoch_end(self, trainer, epoch, logs):
        self._samples += len(trainer.train_data.inputs) if hasattr(trainer.train_data, "inputs") else 0
        self._seconds += logs.get("time_s", 0.0)
        self.run.append_metrics({"epoch": epoch, **logs}, self.columns)  # first: see truncate_metrics
        # best before last: a crash between the two then repeats this epoch on resume (rewriting
        # best with the same weights), instead of leaving best one improvement behind.
        if trainer.state.best_epoch == epoch:
            write_checkpoint(self.run, "best", trainer)
        write_checkpoint(self.run, "last", trainer)
        self._write_info(trainer, "running")

    def on_interrupt(self, trainer):
        if trainer.consistent:
            write_checkpoint(self.run, "last", trainer)
        self._write_info(trainer, "interrupted")

    def on_train_end(self, trainer, status):
        self._write_info(trainer, status)


@contextmanager
def deferred_interrupt(trainer: Trainer):
    """Turn the first Ctrl-C into a stop at the next batch boundary (a consistent state)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        trainer.stop_requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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

    Raises NncliError subclasses for bad input (before any file is written),
    :class:`TrainingFailed` for a non-finite loss, KeyboardInterrupt after recording an interrupt.
    """
    runs_dir = Path(runs_dir)
    cfg = load_config(config_path, overrides)
    run = None
    if resume is not None:
        run = RunFolder(resolve_run(runs_dir, resume))
        saved = load_config(run.path / "config.yaml")
        cfg.seed = saved.seed  # the run's seed, whatever the config says now
        _check_resumable(saved, cfg)
    elif run_id is not None:
        RunFolder.check_free(runs_dir, run_id)  # before any work, not only when the folder is made
    try:
        parts = build(cfg)
    except MemoryError as err:  # numpy refused an allocation: say so at the model, not in a traceback
        raise cfg.error("model", f"expected a model and data that fit in memory, found: {err}") from None
    trainer = make_trainer(cfg, parts, callbacks)
    columns = metric_columns(cfg, trainer.validation is not None)

    if run is None:
        run_id = run_id or new_run_id(Path(config_path).stem, runs_dir)
        info = {"run_id": run_id, "status": "running", "created": _now(), "config": str(config_path),
                "argv": list(argv if argv is not None else sys.argv), "seed": cfg.seed, "epochs": cfg.train.epochs,
                "versions": {"nncli": __version__, "numpy": np.__version__, "python": platform.python_version()},
                "data": _data_info(parts), "warnings": data_warnings(parts.data, run_id)}
        run = RunFolder.create(runs_dir, run_id, cfg.to_dict(absolute_paths=True), info)
    else:
        info = run.read_json()
        run.remove_partial_writes()
        last = run.checkpoints / "last.safetensors"
        if last.exists():
            restore_checkpoint(last, trainer)
        run.truncate_metrics(trainer.state.epoch)
        trainer.history = [row for row in run.read_metrics()]
        run.write_config(cfg.to_dict(absolute_paths=True))
        info.pop("error", None)  # a resumed run starts without the last attempt's failure
        info.update(epochs=cfg.train.epochs, resumed=info.get("resumed", []) + [_now()])
    recorder = RunRecorder(run, info, columns)
    trainer.callbacks.insert(0, recorder)
    try:
        # A non-finite loss is detected and reported by the trainer; numpy's own warnings
        # about overflow on the way there would only be noise.
        with deferred_interrupt(trainer), np.errstate(all="ignore"):
            status = trainer.fit()
    except NonFiniteLoss as err:
        info["error"] = str(err)
        recorder._write_info(trainer, "failed")
        if trainer.history:
            _plot(run)  # the curves up to the failure help to see why
        raise TrainingFailed(run, err) from None
    except (RunError, OSError) as err:  # a write to the run folder failed (disk full, folder gone)
        message = str(err) if isinstance(err, RunError) else (
            f"could not write to {run.path} ({err.strerror or err}); the last checkpoint is intact")
        info["error"] = message
        try:
            recorder._write_info(trainer, "failed")
        except OSError:
            pass  # run.json keeps its previous (complete) version
        raise RunError(f"{message}; continue with --resume {run.run_id} once it can be written") from None
    problem = _plot(run)
    return RunResult(run, status, trainer, cfg, data_warnings(parts.data, run.run_id) + ([problem] if problem else []))


def data_warnings(data, run_id: str) -> list[str]:
    """What to tell about the data before trusting the run: a tiny training part, a test part nothing used yet."""
    warnings = list(data.warnings)
    if data.x_test is not None:
        warnings.append(f"the {data.sources.get('test', 'test part')} ({len(data.x_test)} samples) is not used in "
                        f"training: score it with: nncli eval {run_id} --split test")
    return warnings


def _data_info(parts: Parts) -> dict:
    data = parts.data
    return {"source": data.source_desc, "input_shape": list(data.x_train.shape[1:]),
            "feature_names": list(data.feature_names) if data.feature_names is not None else None,
            "target": data.target_name, "classes": data.classes,
            "num_classes": data.num_classes, "normalizer": data.normalizer.to_dict() if data.normalizer else None,
            "train_samples": len(data.x_train), "validation_samples": 0 if data.x_val is None else len(data.x_val),
            "test_samples": 0 if data.x_test is None else len(data.x_test), "sources": dict(data.sources)}


def _plot(run: RunFolder) -> str | None:
    """Draw loss.png; a plotting problem never fails a run: it is returned as a warning."""
    from nncli.train.plot import plot_runs  # matplotlib is imported only in plot.py

    try:
        plot_runs([run.path], out=run.path / "loss.png")
    except Exception as err:  # noqa: BLE001 - the run itself succeeded
        return f"could not draw {run.path / 'loss.png'}: {err}"
    return None
