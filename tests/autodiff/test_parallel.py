"""The thread pool for large elementwise passes: every task runs once, on several threads, and
failures and thread counts behave."""

import os
import threading

import numpy as np
import pytest

from nncli.autodiff import parallel


@pytest.fixture(autouse=True)
def default_threads_after():
    yield
    parallel.set_threads(None)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_task_runs_once_and_shares_go_to_different_threads(n):
    parallel.set_threads(n)
    done = [None] * 7
    main = threading.get_ident()

    def task(k):
        def run():
            done[k] = threading.get_ident()
        return run

    parallel.run([task(k) for k in range(7)])
    assert all(d is not None for d in done)
    assert set(done[:7 // n]) == {main}  # the first share runs on the calling thread
    if n > 1:  # the others on the pool's threads (one of them may take two shares)
        assert main not in done[7 // n:] and 2 <= len(set(done)) <= n


def test_numpy_work_split_over_threads_is_the_same_bits():
    x = np.random.default_rng(0).standard_normal(10_001).astype(np.float32)
    one = np.sqrt(x * x + 1)
    out = np.empty_like(x)
    cuts = [0, 2_500, 5_000, 7_777, 10_001]
    parallel.set_threads(2)
    parallel.run([lambda a=a, b=b: np.sqrt(x[a:b] * x[a:b] + 1, out=out[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert np.array_equal(out, one)


def test_a_failing_task_raises_after_the_others_finish():
    parallel.set_threads(2)
    finished = []

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallel.run([lambda: finished.append(0), fail])
    with pytest.raises(ValueError, match="boom"):
        parallel.run([fail, lambda: finished.append(1)])
    assert sorted(finished) == [0, 1]


def test_the_count_follows_the_blas_variables(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    parallel.set_threads(None)
    assert parallel.threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    parallel.set_threads(None)
    assert parallel.threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a count: the next variable decides
    parallel.set_threads(None)
    assert parallel.threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises((ValueError, TypeError)):
        parallel.set_threads(bad)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_pool():
    parallel.set_threads(2)
    parallel.run([lambda: None, lambda: None])  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker thread is not here; a new pool must do the work
        try:
            done = []
            parallel.run([lambda: done.append(0), lambda: done.append(1)])
            os._exit(0 if sorted(done) == [0, 1] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
