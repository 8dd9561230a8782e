"""The recorder: writes a run's files as the trainer goes (metrics.csv, checkpoints, run.json).

It is the last callback of a run: at an epoch's end the other callbacks have updated their state
(early stopping's counters, a lowered learning rate) before it is saved. Every write is shielded
from stop signals (a signal never cuts one) and goes through the run folder's link-safe writers.

    recorder = RunRecorder(run, info, columns, signals)
    trainer.callbacks.append(recorder)
"""

from __future__ import annotations

import platform
from datetime import datetime

import numpy as np

from nncli import __version__
from nncli.train.callbacks.base import Callback
from nncli.train.layout import write_checkpoint
from nncli.train.runinfo import config_fingerprint
from nncli.train.runs import RunFolder

__all__ = ["RunRecorder", "new_info", "now"]


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def new_info(cfg, config_path, argv: list[str], parts, blas: dict | None) -> dict:
    """run.json of a new run, before its first epoch."""
    return {"run_id": None, "status": "running", "created": now(), "config": str(config_path), "argv": argv,
            "seed": cfg.seed, "epochs": cfg.train.epochs,
            "versions": {"nncli": __version__, "numpy": np.__version__, "python": platform.python_version()},
            "data": {**_data_info(parts), "fingerprint": config_fingerprint(cfg)}, "blas": blas}


def _data_info(parts) -> dict:
    data = parts.data
    return {"source": data.source_desc, "input_shape": list(data.x_train.shape[1:]),
            "feature_names": list(data.feature_names) if data.feature_names is not None else None,
            "target": data.target_name, "classes": data.classes,
            "num_classes": data.num_classes, "normalizer": data.normalizer.to_dict() if data.normalizer else None,
            "train_samples": len(data.x_train), "validation_samples": 0 if data.x_val is None else len(data.x_val),
            "test_samples": 0 if data.x_test is None else len(data.x_test), "sources": dict(data.sources)}


class RunRecorder(Callback):
    """Writes metrics.csv, checkpoints and run.json as the trainer goes; a signal never cuts a write.

    Callbacks get it through ``set_run``: ``path``, ``run_id``, ``changes`` (what a resume
    changed), ``init_from`` (run.json's record of a warm start), ``save_checkpoint(name, trainer)``,
    ``epoch_checkpoints()``, ``delete_checkpoint(name)``.
    """

    def __init__(self, run: RunFolder, info: dict, columns: list[str], signals, changes: list[str] = ()):
        self.run, self.info, self.columns, self.signals = run, info, columns, signals
        self.changes = list(changes)
        self._samples, self._seconds = 0, 0.0
        self.saved_epoch: int | None = None  # the epoch of checkpoints/last.safetensors

    @property
    def path(self):
        return self.run.path

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def init_from(self) -> dict | None:
        """Where a warm-started run's weights came from (run.json's ``init_from``), else None."""
        return self.info.get("init_from")

    # -- what callbacks may call -----------------------------------------------------------------
    def save_checkpoint(self, name: str, trainer) -> None:
        """Write ``checkpoints/<name>.safetensors`` from the trainer's state, atomically."""
        with self.signals.shield():
            write_checkpoint(self.run, name, trainer, self.columns)
        if name == "last":
            self.saved_epoch = trainer.state.epoch

    def epoch_checkpoints(self) -> list[int]:
        return self.run.epoch_checkpoints()

    def delete_checkpoint(self, name: str) -> None:
        with self.signals.shield():
            self.run.delete_checkpoint(name)

    # -- run.json --------------------------------------------------------------------------------
    def write_info(self, trainer, status: str) -> None:
        st = trainer.state
        last = trainer.history[-1] if trainer.history else {}
        self.info.update(
            status=status, updated=now(), epochs_done=st.epoch, step=st.step,
            best={"monitor": trainer.monitor, "epoch": st.best_epoch, "value": st.best_value},
            final={k: v for k, v in last.items() if k not in ("epoch", "time_s")},
            throughput_samples_per_s=round(self._samples / self._seconds, 1) if self._seconds else None)
        if trainer.restored_epoch is not None:
            self.info["restored_epoch"] = trainer.restored_epoch
        else:
            self.info.pop("restored_epoch", None)  # a resumed run trained on from where it had stopped
        if trainer.warnings:
            self.info["warnings"] = list(dict.fromkeys([*self.info.get("warnings", []), *trainer.warnings]))
        if status != "running":
            self.info["finished"] = now()
        with self.signals.shield():
            self.run.write_json(self.info)

    # -- hooks -----------------------------------------------------------------------------------
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
            self.save_checkpoint("best", trainer)
        self.save_checkpoint("last", trainer)
        self.write_info(trainer, "running")

    def on_interrupt(self, trainer):
        with self.signals.shield():  # the save of an interrupt is never cut by the next signal
            if trainer.consistent:
                self.save_checkpoint("last", trainer)
            self.write_info(trainer, "interrupted")

    def on_train_end(self, trainer, status):
        if status != "failed" and trainer.history:
            # the state as training left it: the stop decided, the best weights put back (restore_best_weights)
            self.save_checkpoint("last", trainer)
        self.write_info(trainer, status)
