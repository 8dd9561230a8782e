"""One training run from a config file: build, create or resume the run folder, train, record.

``train()`` is the one library call behind ``nncli train``; it reads top to bottom. Every check
that can fail on the user's input (config, data, resume, --init-from) runs before the run folder
is made or changed, so bad input leaves nothing behind. The process holds the run's lock from the
moment the folder is made (or the resume starts) until it returns. The jobs it calls on live in
their own modules: :mod:`~nncli.train.resume`, :mod:`~nncli.train.warmstart`,
:mod:`~nncli.train.recorder` (the run files), :mod:`~nncli.train.signals`,
:mod:`~nncli.train.layout` (what a checkpoint holds).
"""

from __future__ import annotations

import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.data import NDArrayDataset
from nncli.errors import NncliError, RunError
from nncli.train import faults
from nncli.train.build import Parts, build, build_callbacks, output_units, prepare_targets
from nncli.train.config import Config, load_config
from nncli.train.layout import checkpoint_tensors, split_checkpoint, write_checkpoint
from nncli.train.loop import NonFiniteLoss, Trainer
from nncli.train.recorder import RunRecorder, new_info
from nncli.train.resume import check_data, prepare_resume, resume_command, resumed_config
from nncli.train.runs import RunFolder, resolve_run
from nncli.train.signals import StopSignals, signal_name
from nncli.train.threads import blas_info, blas_threads
from nncli.train.warmstart import read_init_source

__all__ = ["train", "RunResult", "TrainingFailed", "TrainingInterrupted", "make_trainer", "metric_columns",
           "resume_command", "checkpoint_tensors", "split_checkpoint", "write_checkpoint"]  # older imports kept


class TrainingFailed(Exception):
    """The run stopped on a non-finite loss; the run folder says where."""

    def __init__(self, run: RunFolder, cause: NonFiniteLoss, kept_epoch: int | None):
        self.run, self.cause = run, cause
        kept = (f"the last good checkpoint (after epoch {kept_epoch}) is kept in {run.checkpoints}"
                if kept_epoch is not None else "no epoch finished, so there is no checkpoint")
        super().__init__(f"{cause}; the run is marked failed and {kept}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM, SIGHUP or a closed stdout stopped the run; it was saved (see ``saved``).

    ``command`` is the command that resumes it, as it can be typed in the same folder.
    """

    def __init__(self, run: RunFolder, signum: int, epoch: int, batch: int, saved: bool, command: str = ""):
        self.run, self.signum, self.epoch, self.batch, self.saved = run, signum, epoch, batch, saved
        self.command = command
        super().__init__(f"{signal_name(signum)} at epoch {epoch + 1}, batch {batch}")


@dataclass
class RunResult:
    """What ``train`` leaves: the folder, the final status and the trainer (with its history)."""

    run: RunFolder
    status: str
    trainer: Trainer
    config: Config
    warnings: list[str] = field(default_factory=list)  # problems that did not fail the run
    changes: list[str] = field(default_factory=list)  # what a resume changed (``train.epochs: 6 -> 10``)


def metric_columns(cfg: Config, has_validation: bool) -> list[str]:
    cols = ["epoch", "loss"] + (["val_loss"] if has_validation else [])
    for name in cfg.train.metrics:
        cols += [name] + ([f"val_{name}"] if has_validation else [])
    return cols + ["lr", "time_s"]


def make_trainer(cfg: Config, parts: Parts, callbacks=()) -> Trainer:
    """The trainer for built parts: datasets, validation arrays, the config's callbacks, then ``callbacks``."""
    data, units = parts.data, output_units(parts.model)
    y_train = prepare_targets(parts.loss, data.y_train, units)
    dataset = NDArrayDataset(data.x_train, y_train, batch_size=cfg.data.batch_size,
                             shuffle=cfg.data.shuffle, seed=cfg.seed)
    validation = None
    if data.x_val is not None and len(data.x_val):
        validation = (data.x_val, prepare_targets(parts.loss, data.y_val, units))
    return Trainer(parts.model, parts.loss, parts.optimizer, dataset, validation=validation,
                   metrics=parts.metrics, epochs=cfg.train.epochs, monitor=cfg.train.monitor,
                   compile=cfg.train.compile, callbacks=[*build_callbacks(cfg), *callbacks])


def train(config_path: str | Path | None = None, *, overrides=(), run_id: str | None = None,
          runs_dir: str | Path = "runs", resume: str | None = None, init_from: str | None = None,
          init_optimizer: bool = False, trust_plugins: bool = False, callbacks=(), argv=None) -> RunResult:
    """Train from a config file into ``runs_dir/<run-id>/``, or continue the run ``resume``.

    Args:
        config_path: the YAML config; optional with ``resume`` (the run's own config.yaml is used).
        overrides: ``KEY=VALUE`` strings as ``--set`` gives them (on resume only what may change).
        resume: a run id, ``latest`` or a run folder's path to continue exactly where it stopped.
        init_from: ``RUN``, ``RUN:best`` or ``RUN:last``: a new run that starts from that run's weights.
        init_optimizer: with ``init_from``, take its optimizer state (slots, step count) too.
        trust_plugins: resuming without a config imports the plugins the run's config.yaml lists.
        callbacks: more callbacks (after the config's).

    Raises NncliError subclasses for bad input (before any file is written), :class:`TrainingFailed`
    for a non-finite loss, :class:`TrainingInterrupted` (a KeyboardInterrupt) after saving a stop
    asked for by Ctrl-C, SIGTERM, SIGHUP or ``trainer.request_stop``.
    """
    runs_dir = Path(runs_dir)
    argv = list(argv if argv is not None else sys.argv)
    _check_arguments(config_path, resume, init_from, init_optimizer, run_id)
    with ExitStack() as stack:
        run = info = None
        changes: list[str] = []
        if resume is not None:
            run = RunFolder(resolve_run(runs_dir, resume))
            stack.enter_context(run.lock(argv))  # a live writer is refused before anything is read
            info = run.read_json()
            cfg, changes = resumed_config(run, info, config_path, overrides, trust_plugins)
        else:
            cfg = load_config(config_path, overrides)
            if run_id is not None:
                RunFolder.check_free(runs_dir, run_id)  # before any work, not only when the folder is made
        parts = _build(cfg)
        if info is not None:
            check_data(run, info, cfg)
        trainer = make_trainer(cfg, parts, callbacks)
        source = None
        if init_from is not None:
            source = read_init_source(runs_dir, init_from, parts.model, parts.optimizer, init_optimizer)
            source.apply(parts.model, parts.optimizer)
        columns = metric_columns(cfg, trainer.validation is not None)
        blas = (info.get("blas") if info is not None else None) or blas_info()
        stack.enter_context(blas_threads(blas["threads"] if blas else None))
        signals = stack.enter_context(StopSignals(trainer))
        warnings: list[str] = []
        with signals.shield():
            if run is None:
                info = new_info(cfg, config_path, argv, parts, blas)
                if source is not None:
                    info["init_from"] = source.record()
                run, lock = RunFolder.create(runs_dir, run_id, cfg.to_dict(absolute_paths=True), info,
                                             stem=Path(config_path).stem, argv=argv)
                stack.enter_context(lock)
            else:
                warnings = prepare_resume(run, trainer, info, cfg, columns, changes)
        warnings = data_warnings(parts.data, run.run_id) + warnings
        info["warnings"] = warnings  # written to run.json as training begins
        recorder = RunRecorder(run, info, columns, signals, changes)
        if resume is not None and (run.checkpoints / "last.safetensors").exists():
            recorder.saved_epoch = trainer.state.epoch
        trainer.callbacks.append(recorder)  # last: it saves what the others have decided this epoch
        if faults.active():
            trainer.callbacks.append(_Faults())
        for cb in trainer.callbacks:
            getattr(cb, "set_run", lambda run: None)(recorder)
        command = resume_command(run, runs_dir, config_path, bool(cfg.plugins))
        loggers = _start_loggers(cfg, run, info, trainer, warnings)  # after the recorder: it writes first
        try:
            result = _fit(run, trainer, recorder, cfg, info, warnings, command)
        finally:
            for logger in loggers:  # a stop the trainer did not see (a failed write) still closes them
                logger.finish("failed")
        result.changes = changes
        return result


def _start_loggers(cfg: Config, run: RunFolder, info: dict, trainer: Trainer, warnings: list[str]) -> list:
    """Open ``train.loggers`` on the run (a resumed one gets what it lacks); they report problems as warnings.

    A warning also goes to run.json's ``warnings``, written with the run's next update.
    """
    if not cfg.train.loggers:
        return []
    from nncli.train.loggers import LoggerRun, make_loggers

    def warn(message: str) -> None:
        warnings.append(message)
        if info.get("warnings") is not warnings:
            info.setdefault("warnings", []).append(message)

    loggers = make_loggers(cfg.train.loggers)
    shared = LoggerRun(run.path, cfg.to_dict(absolute_paths=True), info, list(trainer.history), warn)
    for logger in loggers:
        logger.start(shared)
    trainer.callbacks.extend(loggers)
    return loggers


def _check_arguments(config_path, resume, init_from, init_optimizer, run_id) -> None:
    if config_path is None and resume is None:
        raise NncliError("expected a CONFIG to train (nncli train CONFIG), or --resume RUN to continue a run "
                         "from its folder")
    if init_from is not None and resume is not None:
        raise NncliError("--init-from starts a new run from another run's weights, --resume continues a run: "
                         "give one of the two")
    if run_id is not None and resume is not None:
        raise NncliError(f"--run-id names a new run, --resume continues run '{resume}' in its own folder: give one "
                         "of the two (to branch off a run, start a new one with --init-from it)")
    if init_optimizer and init_from is None:
        raise NncliError("--init-optimizer takes the optimizer state of the run --init-from names: give "
                         "--init-from RUN too")


def _build(cfg: Config) -> Parts:
    try:
        return build(cfg)
    except MemoryError as err:  # numpy refused an allocation: say so at the model, not in a traceback
        raise cfg.error("model", f"expected a model and data that fit in memory, found: {err}") from None


class _Faults:
    """The test hook of :mod:`nncli.train.faults` at batch boundaries."""

    def on_batch_end(self, trainer, epoch, batch, logs):
        faults.batch_done(lambda: trainer.stop_requested)


def _fit(run: RunFolder, trainer: Trainer, recorder: RunRecorder, cfg: Config, info: dict,
         warnings: list[str], command: str) -> RunResult:
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
                                  trainer.consistent, command) from None
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
    return RunResult(run, status, trainer, cfg, warnings + trainer.warnings + ([problem] if problem else []))


def data_warnings(data, run_id: str) -> list[str]:
    """What to tell about the data before trusting the run: a tiny training part, a test part nothing used yet."""
    warnings = list(data.warnings)
    if data.x_test is not None:
        warnings.append(f"the {data.sources.get('test', 'test part')} ({len(data.x_test)} samples) is not used in "
                        f"training: score it with: nncli eval {run_id} --split test")
    return warnings


def _plot(run: RunFolder) -> str | None:
    """Draw loss.png; a plotting problem never fails a run: it is returned as a warning."""
    from nncli.train.plot import plot_runs  # matplotlib is imported only in plot.py

    try:
        plot_runs([run.path], out=run.path / "loss.png")
    except Exception as err:  # noqa: BLE001 - the run itself succeeded
        return f"could not draw {run.path / 'loss.png'}: {err}"
    return None
