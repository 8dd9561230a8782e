"""What every logger shares: the run it is told about, and failures that never cost the training.

A logger is a trainer callback that sends a run to another tool. It implements ``open``,
``log_epoch`` and ``close``; the hooks here call them so that any exception (a server that does
not answer, a full disk, a bug in a plugin's logger) becomes one warning, and the logger sends
nothing more in this run while training and the run folder go on. Resuming the run sends the
other tool what it lacks, from the checkpoint's history (each logger's ``open`` does that).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nncli.train.callbacks.base import Callback

__all__ = ["Logger", "LoggerRun", "flat_config"]


@dataclass
class LoggerRun:
    """What a logger is told about its run when it opens.

    ``history`` holds the finished epochs so far, ``{"epoch": n, **metrics.csv columns}``: on a
    resume, those of the checkpoint the run continues from, which the other tool must end up with
    exactly once (epochs it holds beyond them are trained again). ``info`` is run.json as the run
    writes it: a logger keeps what it needs to continue (an MLflow run id) with :meth:`keep`, under
    run.json's ``loggers``. ``warn`` reports a problem that does not stop the run.
    """

    path: Path  # the run folder
    config: dict  # the resolved config, as in config.yaml
    info: dict
    history: list[dict]
    warn: Callable[[str], None] = lambda message: None

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def best(self) -> Path:
        """The best checkpoint's file (it may not exist yet)."""
        return self.path / "checkpoints" / "best.safetensors"

    @property
    def epoch(self) -> int:
        """The epochs already finished: 0 for a new run."""
        return len(self.history)

    def recorded(self, logger: str) -> dict:
        """What ``logger`` kept in run.json when it last ran (empty for a new run)."""
        return dict((self.info.get("loggers") or {}).get(logger) or {})

    def keep(self, logger: str, data: dict) -> None:
        """Keep ``data`` for ``logger`` in run.json (written with the run's next update)."""
        self.info.setdefault("loggers", {})[logger] = data


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Logger(Callback):
    """A trainer callback that sends the run's epochs to another tool; register subclasses as "loggers".

    Subclasses implement :meth:`open`, :meth:`log_epoch` and :meth:`close`, and name the packages
    they import in ``requires`` (module -> pip extra of nncli), so that a config naming a logger
    whose package is missing is refused before training.

    Example:
        >>> @register("loggers", name="printer")
        ... class Printer(Logger):
        ...     def log_epoch(self, epoch, logs, improved):
        ...         print(epoch, logs["loss"], "best so far" if improved else "")
    """

    requires: dict[str, str] = {}  # module to import -> the nncli extra that installs it

    def __init__(self):
        self.run: LoggerRun | None = None
        self.failed = False  # it raised once: it sends nothing more in this run
        self.closed = False

    @property
    def name(self) -> str:
        return getattr(type(self), "_registry_name", type(self).__name__)

    @classmethod
    def missing(cls) -> tuple[str, str] | None:
        """``(module, extra)`` of the first required package that is not installed, else None."""
        for module, extra in cls.requires.items():
            if importlib.util.find_spec(module) is None:
                return module, extra
        return None

    # -- what a logger implements ----------------------------------------------------------
    def open(self, run: LoggerRun) -> None:
        """Start (or continue) sending ``run``: afterwards the other tool holds ``run.history`` exactly."""

    def log_epoch(self, epoch: int, logs: dict, improved: bool) -> None:
        """Send one finished epoch: every metrics.csv column but ``epoch``.

        ``improved``: this epoch is the best so far, and checkpoints/best.safetensors now holds it.
        """

    def close(self, status: str) -> None:
        """The run stopped with ``status`` (completed, early_stopped, failed, interrupted)."""

    # -- called by the session and the trainer ---------------------------------------------
    def start(self, run: LoggerRun) -> None:
        """Open the logger for ``run``; a failure is a warning, and the logger stays off."""
        self.run = run
        self._guard("could not start", self.open, run)

    def finish(self, status: str) -> None:
        """Close the logger once, whichever way the run stopped."""
        if not self.closed and self.run is not None:
            self.closed = True
            self._guard("could not close", self.close, status)

    def on_epoch_end(self, trainer, epoch, logs):
        self._guard(f"could not log epoch {epoch}", self.log_epoch, epoch, dict(logs),
                    trainer.state.best_epoch == epoch)

    def on_interrupt(self, trainer):
        self.finish("interrupted")

    def on_train_end(self, trainer, status):
        self.finish(status)

    def _guard(self, what: str, fn, *args) -> None:
        if self.failed or self.run is None:
            return
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - whatever the other tool does, training goes on
            self.failed = True
            self.run.warn(f"{self.name} logger {what} ({_first_line(err)}); it sends nothing more in this run. "
                          f"Training goes on and metrics.csv has every epoch; resume the run "
                          f"(nncli train --resume {self.run.run_id}) to send what is missing")


def flat_config(config: dict) -> dict[str, bool | int | float | str]:
    """A nested config as flat ``{dotted.key: scalar}``, the form hyperparameter tables take.

    Lists of plain values stay one JSON value (``model.input_shape: "[64]"``); lists holding
    mappings are numbered (``model.layers.0.units: 128``); null is ``"null"``.

    Example: ``flat_config({"model": {"layers": [{"units": 4}]}})  # {"model.layers.0.units": 4}``
    """
    out: dict = {}

    def walk(value, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else str(name))
        elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
            for i, item in enumerate(value):
                walk(item, f"{key}.{i}")
        elif isinstance(value, (list, dict)) or value is None:
            out[key] = json.dumps(value)
        else:
            out[key] = value

    walk(config, "")
    return out
