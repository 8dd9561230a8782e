"""Large elementwise passes on every core the process has.

numpy runs each ufunc on one thread, while BLAS (and XLA, for its fused elementwise kernels)
uses all of them. For the few passes big enough to be worth it, the optimizers' update over all
parameters at once, the work is cut into contiguous ranges and the ranges run on a small pool of
threads: numpy releases the GIL inside its loops, so the threads run at the same time. Every
element goes through the same operations in the same order on any thread, so the result is the
same bits whatever the thread count.

The count follows the BLAS's: ``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` when set (a sweep
trial pinned to one thread gets one), else the cores this process may run on.
:func:`set_threads` changes it.

    >>> x = np.arange(8.0); parallel.run([lambda: np.sqrt(x[:4], out=x[:4]), lambda: np.sqrt(x[4:], out=x[4:])])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_threads: int | None = None
_pool: ThreadPoolExecutor | None = None


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _default_threads() -> int:
    for name in _THREAD_VARIABLES:
        try:
            n = int(os.environ.get(name, "").split(",")[0])
        except ValueError:
            continue
        if n > 0:
            return n
    return cpu_count()


def threads() -> int:
    """How many threads :func:`run` uses (1: everything on the calling thread)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (None: the default again, from the environment)."""
    global _threads, _pool
    if n is not None and (isinstance(n, bool) or int(n) != n or n < 1):
        raise ValueError(f"threads must be a whole number >= 1, not {n!r}")
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _threads = None if n is None else int(n)


def run(tasks: Sequence[Callable[[], None]]) -> None:
    """Run every task, the list cut into :func:`threads` contiguous shares; the calling thread runs
    the first share. Returns when all are done; an exception raised by a task is raised then."""
    n = min(threads(), len(tasks))
    if n <= 1:
        for task in tasks:
            task()
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=threads() - 1, thread_name_prefix="nncli-parallel")
    cuts = [len(tasks) * k // n for k in range(n + 1)]
    futures = [_pool.submit(_run_all, tasks[a:b]) for a, b in zip(cuts[1:-1], cuts[2:])]
    try:
        _run_all(tasks[:cuts[1]])
    finally:
        for f in futures:
            f.result()


def _run_all(tasks) -> None:
    for task in tasks:
        task()


def _forget_pool_in_child() -> None:
    """A forked child has none of the parent's threads: it starts its own pool when it needs one."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
