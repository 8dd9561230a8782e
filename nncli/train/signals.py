"""Stop signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP end a run at the next batch boundary, saved.

SLURM and Kubernetes send SIGTERM before they kill a job, a closed terminal sends SIGHUP; all three
are handled like Ctrl-C. The first asks the trainer to stop at the next batch boundary, where the
state is consistent and is saved. A second one stops at once (the previous checkpoint is kept) —
except while a run file is being written: then it waits until the write is done, so a save is
never cut in half. A signal that was ignored when nncli started (``nohup``) stays ignored.

    with StopSignals(trainer) as signals:
        with signals.shield():          # a write that a signal must not cut
            ...
        trainer.fit()
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by ``signum``: 128 + its number (130 for Ctrl-C)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """Installs the stop handlers on entry (main thread only) and restores the previous ones on exit."""

    def __init__(self, trainer):
        self.trainer = trainer
        self._shielded = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                current = signal.getsignal(signum)
                if current is signal.SIG_IGN:
                    continue  # nohup, or a background job of a shell: the user asked not to be stopped
                self._previous[signum] = current
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        first = not self.trainer.stop_requested
        self.trainer.request_stop(signum)
        if not first and not self._shielded:
            raise KeyboardInterrupt  # a second signal: stop now (the last checkpoint is kept)

    @contextmanager
    def shield(self):
        """While inside, a signal only asks for the stop: the write in progress is finished first."""
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
