"""NDArrayDataset: mini-batches of numpy arrays, reshuffled each epoch from a resumable generator."""

from __future__ import annotations

import numpy as np

from nncli.data.loaders import is_positive_int


class NDArrayDataset:
    """Iterate over ``(inputs, trues)`` mini-batches of in-memory arrays.

    Each ``for`` loop over the dataset is one epoch. With ``shuffle=True`` every epoch draws a new
    order from the dataset's own ``np.random.Generator``; :meth:`get_state` / :meth:`set_state`
    save and restore that generator between epochs, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.

    Args:
        inputs: array ``(n, ...)``; batches are cut along the first axis. Anything with ``shape``,
            ``len`` and indexing by slices and index arrays is used as it is, unread until
            batches are taken: a ``np.memmap``, or the memory-mapped samples that
            :func:`~nncli.data.prepare_data` makes of a large ``.npy`` file.
        tests: the matching targets ``(n, ...)``, or ``None``. Without targets every batch is
            ``(inputs_batch, None)``, so ``for x, y in dataset`` reads the same either way.
        batch_size: samples per batch; the last batch holds what is left over.
        shuffle: reorder the samples at the start of every epoch.
        seed: seed of the generator (``None``: fresh entropy from the OS).

    Example:
        >>> ds = NDArrayDataset(np.zeros((10, 3)), np.arange(10), batch_size=4, seed=0)
        >>> len(ds), [x.shape[0] for x, y in ds]
        (3, [4, 4, 2])
    """

    def __init__(self, inputs, tests=None, batch_size: int = 32, shuffle: bool = True, seed=None):
        inputs = _samples(inputs)
        if inputs.ndim == 0:
            raise ValueError("inputs must have a first (sample) axis; got a scalar")
        if tests is not None:
            tests = np.asarray(tests)
            if tests.ndim == 0 or tests.shape[0] != inputs.shape[0]:
                found = "a scalar" if tests.ndim == 0 else f"{tests.shape[0]} (shape {tests.shape})"
                raise ValueError(f"inputs and tests must have the same number of samples: inputs has "
                                 f"{inputs.shape[0]} (shape {inputs.shape}), tests has {found}")
        if not is_positive_int(batch_size):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.inputs = inputs
        self.tests = tests
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self._rng = np.random.default_rng(seed)

    @property
    def num_samples(self) -> int:
        """The number of samples (the length of the first axis)."""
        return self.inputs.shape[0]

    def __len__(self) -> int:
        """The number of batches per epoch, the last partial batch included."""
        return -(-self.num_samples // self.batch_size)

    def __iter__(self):
        n, size = self.num_samples, self.batch_size
        if not self.shuffle:  # basic slices: views, no copies
            for start in range(0, n, size):
                stop = start + size
                yield self.inputs[start:stop], None if self.tests is None else self.tests[start:stop]
            return
        order = self._rng.permutation(n)  # drawn when the epoch starts
        for start in range(0, n, size):
            index = order[start:start + size]  # one gather per array per batch
            yield _gather(self.inputs, index), None if self.tests is None else _gather(self.tests, index)

    def get_state(self) -> dict:
        """The shuffling generator's state, as a JSON-serialisable dict (take it between epochs).

        Example:
            >>> state = ds.get_state(); ds2.set_state(state)    # ds2 now shuffles like ds
        """
        return _copy_state(self._rng.bit_generator.state)

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state`; the next epoch shuffles as it would have."""
        if not isinstance(state, dict) or "bit_generator" not in state:
            raise ValueError(f"not a dataset state (expected a dict from get_state()), got {state!r}")
        expected = type(self._rng.bit_generator).__name__
        if state["bit_generator"] != expected:
            raise ValueError(f"dataset state is for a {state['bit_generator']} generator, expected {expected}")
        self._rng.bit_generator.state = _copy_state(state)

    def __repr__(self) -> str:
        tests = None if self.tests is None else self.tests.shape
        return (f"NDArrayDataset(inputs={self.inputs.shape}, tests={tests}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, batches={len(self)})")


def _samples(values):
    """``values`` as it is when it can be cut into batches without reading it all, else an array."""
    if isinstance(values, np.ndarray) or all(hasattr(values, a) for a in ("shape", "__len__", "__getitem__")):
        return values
    return np.asarray(values)


def _gather(values, index: np.ndarray):
    """Samples ``index`` of ``values``, in that order: one gather."""
    return np.take(values, index, axis=0) if isinstance(values, np.ndarray) else values[index]


def _copy_state(state: dict) -> dict:
    """A deep copy of a bit-generator state made of dicts and ints (no numpy objects)."""
    return {k: _copy_state(v) if isinstance(v, dict) else (int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in state.items()}
