import json

import numpy as np
import pytest

from nncli.data import NDArrayDataset


def paired(n=10, features=3):
    """Inputs whose first column is the sample id, and targets equal to the id."""
    x = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, features))
    return x, np.arange(n)


@pytest.mark.parametrize("n, batch_size, sizes", [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 5, [3]), (1, 1, [1])])
def test_len_counts_the_last_partial_batch(n, batch_size, sizes):
    ds = NDArrayDataset(*paired(n), batch_size=batch_size, seed=0)
    assert len(ds) == len(sizes)
    assert [x.shape[0] for x, _ in ds] == sizes


def test_unshuffled_batches_are_in_order_and_are_views():
    x, y = paired(10)
    batches = list(NDArrayDataset(x, y, batch_size=4, shuffle=False))
    assert np.array_equal(np.concatenate([b for _, b in batches]), y)
    assert all(np.shares_memory(bx, x) for bx, _ in batches)


def test_shuffled_epochs_are_permutations_that_keep_pairs_and_differ():
    x, y = paired(50)
    ds = NDArrayDataset(x, y, batch_size=8, seed=3)
    epochs = []
    for _ in range(3):
        ids = []
        for bx, by in ds:
            assert np.array_equal(bx[:, 0], by)  # input and target of a sample stay together
            ids.append(by)
        epochs.append(np.concatenate(ids))
    for ids in epochs:
        assert sorted(ids.tolist()) == list(range(50))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.arange(50))


def test_same_seed_same_order():
    x, y = paired(30)
    a = [by for _, by in NDArrayDataset(x, y, batch_size=7, seed=11)]
    b = [by for _, by in NDArrayDataset(x, y, batch_size=7, seed=11)]
    c = [by for _, by in NDArrayDataset(x, y, batch_size=7, seed=12)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_state_round_trip_resumes_shuffling_bit_for_bit():
    x, y = paired(37)
    run = NDArrayDataset(x, y, batch_size=5, seed=7)
    for _ in range(2):
        list(run)
    state = json.loads(json.dumps(run.get_state()))  # as a checkpoint would store it
    uninterrupted = list(run)

    resumed = NDArrayDataset(x, y, batch_size=5, seed=999)
    resumed.set_state(state)
    again = list(resumed)
    assert len(again) == len(uninterrupted)
    for (ax, ay), (bx, by) in zip(uninterrupted, again):
        assert np.array_equal(ax, bx) and np.array_equal(ay, by)


def test_get_state_is_a_copy():
    ds = NDArrayDataset(*paired(10), seed=1)
    state = ds.get_state()
    list(ds)
    assert ds.get_state() != state


def test_without_tests_batches_are_inputs_and_none():
    x, _ = paired(5)
    batches = list(NDArrayDataset(x, batch_size=2, seed=0))
    assert all(by is None for _, by in batches)
    assert sum(bx.shape[0] for bx, _ in batches) == 5


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match=r"inputs has 10 .* tests has 9"):
        NDArrayDataset(np.zeros((10, 2)), np.zeros(9))


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_bad_batch_size_is_refused(size):
    with pytest.raises(ValueError, match="batch_size"):
        NDArrayDataset(np.zeros((4, 2)), batch_size=size)


def test_set_state_refuses_something_else():
    ds = NDArrayDataset(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="get_state"):
        ds.set_state({"epoch": 3})
    with pytest.raises(ValueError, match="MT19937"):
        ds.set_state({**ds.get_state(), "bit_generator": "MT19937"})
