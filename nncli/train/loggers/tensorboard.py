"""``train.loggers: [tensorboard]``: TensorBoard event files under ``runs/<id>/tensorboard/``.

Each finished epoch is one event at step = epoch holding every metrics.csv column (loss,
val_loss, the metrics, lr, time_s) as scalars; the resolved config goes to the HParams plugin
(a session start at step 0, a session end with the run's status), so ``tensorboard --logdir runs``
shows the runs side by side and their configs in the HPARAMS tab. The writer is the tensorboard
package's own (its record writer and protocol buffers, as PyTorch's SummaryWriter uses them);
nothing of TensorFlow is needed.

A resumed run continues the same TensorBoard run, exactly. Its checkpoint's history is the truth:
events at or after the first epoch the files lack (or, after a kill, epochs logged past the
checkpoint, which are trained again) are removed from the old files, each rewritten whole and
renamed into place, and those epochs are logged again from the history before training goes on.
The old files' hparams go too: the new file holds the run's one session, with the config it now has.
The new file also starts with TensorBoard's own purge marker (a SessionLog START at that step), so
a TensorBoard that had already read the stale events drops them too.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

from nncli.nn.registry import register
from nncli.train.loggers.base import Logger, LoggerRun, flat_config

__all__ = ["TensorBoardLogger", "FOLDER"]

FOLDER = "tensorboard"  # in the run folder
_EVENTS = re.compile(r"events\.out\.tfevents\.(\d+)\..*")
_STATUS = {"completed": "STATUS_SUCCESS", "early_stopped": "STATUS_SUCCESS", "failed": "STATUS_FAILURE",
           "interrupted": "STATUS_UNKNOWN"}


def event_files(folder: Path) -> list[Path]:
    """The event files of a TensorBoard run folder, in the order TensorBoard reads them (by name)."""
    return sorted(p for p in folder.iterdir() if _EVENTS.fullmatch(p.name) and p.is_file())


@register("loggers", name="tensorboard", aliases=("TensorBoard", "TensorBoardLogger"))
class TensorBoardLogger(Logger):
    """TensorBoard event files in the run folder: every metrics.csv column per epoch, the config as hparams.

    See the runs with ``tensorboard --logdir runs``; the HPARAMS tab lists each run's config
    beside its final metrics. Needs the tensorboard package: ``pip install 'nncli[tensorboard]'``.
    """

    requires = {"tensorboard": "tensorboard"}

    def __init__(self):
        super().__init__()
        self._file = self._writer = None

    # -- writing -----------------------------------------------------------------------------
    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def _flush(self) -> None:
        self._file.flush()  # each epoch reaches the file at once: a kill loses at most the epoch it cut

    def _epoch_event(self, epoch: int, logs: dict):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        values = [summary_pb2.Summary.Value(tag=key, simple_value=float(value))
                  for key, value in logs.items() if key != "epoch" and value is not None]
        return event_pb2.Event(wall_time=time.time(), step=epoch, summary=summary_pb2.Summary(value=values))

    def _hparams_event(self, plugin_data, tag: str):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import metadata

        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(plugin_data),
                          tensor=metadata.NULL_TENSOR)
        return event_pb2.Event(wall_time=time.time(), step=0, summary=summary)

    def _session_start(self, run: LoggerRun):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import summary_v2

        summary = summary_v2.hparams_pb(flat_config(run.config), trial_id=run.run_id)
        return event_pb2.Event(wall_time=time.time(), step=0, summary=summary)

    # -- the logger ----------------------------------------------------------------------------
    def open(self, run: LoggerRun) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder = run.path / FOLDER
        if folder.is_symlink():
            raise OSError(f"{folder} is a symbolic link: nncli never writes through links in a run folder")
        folder.mkdir(exist_ok=True)
        for leftover in folder.glob(".nncli-rewrite-*.tmp"):  # a rewrite that a crash cut short
            leftover.unlink()
        old = {path: list(_events(path)) for path in event_files(folder)}
        first = _first_unlogged(old.values(), run.epoch)
        for path, events in old.items():
            _drop_from(path, events, first)
        fd = os.open(folder / _new_name(old), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666)
        self._file = os.fdopen(fd, "wb")
        self._writer = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self._write(self._session_start(run))
        if old:  # TensorBoard's purge marker: a live TensorBoard forgets what it read from `first` on
            self._write(event_pb2.Event(wall_time=time.time(), step=first,
                                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        for row in run.history[first - 1:]:
            self._write(self._epoch_event(row["epoch"], row))
        self._flush()

    def log_epoch(self, epoch: int, logs: dict, improved: bool) -> None:
        self._write(self._epoch_event(epoch, logs))
        self._flush()

    def close(self, status: str) -> None:
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
        from tensorboard.plugins.hparams import metadata

        if self._file is None or self._file.closed:
            return
        try:
            end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(_STATUS.get(status, "STATUS_UNKNOWN")),
                                                 end_time_secs=time.time())
            self._write(self._hparams_event(plugin_data_pb2.HParamsPluginData(session_end_info=end),
                                            metadata.SESSION_END_INFO_TAG))
            self._flush()
        finally:
            self._file.close()


def _new_name(old: list[Path]) -> str:
    """A new event file's name, sorting after every old one (TensorBoard reads a run's files by name).

    The name starts with the time in seconds; a run resumed within the same second as its last
    file was made takes the next second, so that the order never depends on host names or pids.
    """
    stamp = int(time.time())
    for path in old:
        stamp = max(stamp, int(_EVENTS.fullmatch(path.name)[1]) + 1)
    return f"events.out.tfevents.{stamp:010d}.{socket.gethostname()}.{os.getpid()}.nncli"


def _events(path: Path):
    """The events of one file as written (a record cut by a crash ends it), with TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    return LegacyEventFileLoader(str(path)).Load()


def _first_unlogged(files, done: int) -> int:
    """The first epoch in 1..done that no file's events hold, else ``done + 1``."""
    logged = {event.step for events in files for event in events if event.HasField("summary") and event.step >= 1}
    return next((epoch for epoch in range(1, done + 1) if epoch not in logged), done + 1)


def _hparams(event) -> bool:
    return event.HasField("summary") and any(value.metadata.plugin_data.plugin_name == "hparams"
                                             for value in event.summary.value)


def _drop_from(path: Path, events: list, first: int) -> None:
    """Rewrite ``path`` without its events from step ``first`` on, nor its hparams (the new file has
    the run's session again, with the config it resumed with); a file with none is left alone."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    kept = [event for event in events if event.step < first and not _hparams(event)]
    if len(kept) == len(events):
        return
    tmp = path.with_name(f".nncli-rewrite-{os.getpid()}.tmp")  # no "tfevents" in it: TensorBoard skips it
    with open(tmp, "wb") as f:
        writer = RecordWriter(f)
        for event in kept:
            writer.write(event.SerializeToString())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
