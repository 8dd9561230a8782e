"""The process's resident memory, and its peak over a stretch of work (what ``nncli data`` reports).

Resident memory (RSS) counts every page the process holds: numpy's arrays, pyarrow's buffers
(which tracemalloc does not see), and the pages of a memory-mapped file that are in memory.

    with PeakMemory() as peak:
        data = prepare_data(...)
    peak.above_start      # bytes: the highest RSS during the block, less the RSS at its start
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes (Linux), or None where there is no /proc."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss() -> int | None:
    """The resident memory now, in bytes (None where the OS does not say)."""
    return _status("VmRSS")


def peak_rss() -> int:
    """The highest resident memory since the process started (or since :func:`reset_peak`)."""
    hwm = _status("VmHWM")
    if hwm is not None:
        return hwm
    kb_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb_or_bytes if sys.platform == "darwin" else kb_or_bytes * 1024


def reset_peak() -> bool:
    """Start the peak afresh from the current RSS (Linux: ``clear_refs``); False where it cannot."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """Measure the time and the peak resident memory of a ``with`` block, above its start.

    ``exact`` is False where the peak could not be reset, so that ``above_start`` may include a
    higher peak from before the block.
    """

    def __enter__(self) -> PeakMemory:
        self.exact = reset_peak()
        self.start = rss() or peak_rss()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.peak = peak_rss()
        self.above_start = max(self.peak - self.start, 0)
