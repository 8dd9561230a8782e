"""The BLAS thread count: recorded with a run, and used again when it is resumed or evaluated.

OpenBLAS may split a matrix product differently with another number of threads, which changes the
last bits of the results (on the two-core machine nncli is tested on, 1 and 2 threads differ in
every metrics row). A run records the count it trained with in run.json; a resume and an eval of
it set the same count for their duration (through threadpoolctl), whatever the environment's
OPENBLAS_NUM_THREADS says now, so they continue or reproduce the run bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager


def blas_info() -> dict | None:
    """``{"threads": n, "library": "openblas 0.3.31"}`` of numpy's BLAS, or None if none is found."""
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl looks for
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"threads": int(pool["num_threads"]),
                    "library": f"{pool.get('internal_api', '?')} {pool.get('version') or ''}".strip()}
    return None


@contextmanager
def blas_threads(threads: int | None):
    """Run the block with ``threads`` BLAS threads (no change for None)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield
