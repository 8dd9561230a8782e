"""Data larger than memory: a ``.npy`` file memory-mapped, and lazy views of its samples.

    source = MappedArray("x.npy")                      # nothing read yet
    train = MappedSamples(source, train_index)         # float32 samples, gathered on demand
    train[[5, 0, 9]]                                   # (3, ...) float32: three rows read from the map

Pages of a map count in the process's resident memory while they are mapped in, and the kernel
keeps them as long as memory is plentiful, so an epoch that reads every sample would end with
the whole file resident. Worse, a recent kernel maps a file's page-cache folios whole (up to
2 MB) on a fault, so even one random batch can map most of a small file. :class:`MappedArray`
therefore reads rows in file order, in groups that touch at most a budget's worth of 2 MB
windows (:data:`WINDOW`), and hands the pages back after each group (``madvise(MADV_DONTNEED)``:
they stay in the page cache, so reading them again is cheap, but they leave this process). What
is mapped at any time stays under twice the budget (:func:`release_budget`).
"""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import numpy as np

from nncli.errors import DataError

WINDOW = 2 << 20  # the most the kernel maps on one fault: a PMD-sized page-cache folio, aligned in the file
MIN_RELEASE = 4 << 20  # bytes of windows mapped between releases, at least...
MAX_RELEASE = 256 << 20  # ...and at most; in between, a 32nd of the file


def _npy_header(f, where: str):
    """``(shape, fortran_order, dtype)`` from an open ``.npy`` file, left at the start of the data."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise ValueError(f"format version {version} cannot be memory-mapped here")
        return readers[version](f)
    except ValueError as err:
        raise DataError(f"not a readable .npy file: {err}", where) from None


def release_budget(file_bytes: int) -> int:
    """Bytes of a map that may be mapped in before they are released: a 32nd of the file, 4-256 MB."""
    return int(min(max(file_bytes // 32, MIN_RELEASE), MAX_RELEASE))


class MappedArray:
    """A ``.npy`` file's array, mapped read-only; rows are copied out and their pages released.

    Args:
        path: a ``.npy`` file holding a C-ordered numeric array (no pickles).
        budget: bytes read between page releases (default :func:`release_budget`).

    Example:
        >>> source = MappedArray("x.npy"); source.shape            # doctest: +SKIP
        (1000000, 1024)
    """

    def __init__(self, path, budget: int | None = None):
        self.path = Path(path)
        where = str(self.path)
        with open(self.path, "rb") as f:
            shape, fortran, dtype = _npy_header(f, where)
            offset = f.tell()
            size = self.path.stat().st_size
            if dtype.hasobject or dtype.kind not in "biuf":
                raise DataError(f"expected numbers, found an array of dtype {dtype}", where)
            if len(shape) == 0:
                raise DataError("expected an array with one entry per sample, found a scalar", where)
            needed = math.prod(shape) * dtype.itemsize
            if size - offset < needed:
                raise DataError(f"truncated: the header declares shape {shape} of {dtype}, {needed:,} bytes of "
                                f"data, but the file holds {size - offset:,}", where)
            if fortran and len(shape) > 1:
                raise DataError("is stored column by column (Fortran order), so each sample is spread over "
                                "the whole file; save it with np.save(path, np.ascontiguousarray(x)) to map it",
                                where)
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > offset else None
        self.array = (np.ndarray(shape, dtype, buffer=self._map, offset=offset) if self._map is not None
                      else np.zeros(shape, dtype))  # (n, ...) raw dtype, backed by the file
        if hasattr(mmap, "MADV_RANDOM") and self._map is not None:
            self._map.madvise(mmap.MADV_RANDOM)
        self.budget = release_budget(size) if budget is None else int(budget)
        self.offset = offset
        self.file_bytes = size
        self._read = 0
        self.releases = 0  # how often pages were handed back (for tests and `nncli data`)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    def __len__(self) -> int:
        return self.array.shape[0]

    @property
    def row_bytes(self) -> int:
        return math.prod(self.array.shape[1:]) * self.array.dtype.itemsize

    def take(self, rows) -> np.ndarray:
        """Copies of rows ``rows`` (an int array or a slice), in that order, in the file's dtype.

        The rows are read in file order, a group of at most a budget's worth of windows at a time,
        with the pages released after each group.
        """
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)  # (rows, ...)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        first = (self.offset + ordered * self.row_bytes) // WINDOW  # (rows,) each row's first and last window
        last = (self.offset + (ordered + 1) * self.row_bytes - 1) // WINDOW
        previous = np.concatenate([[-1], last[:-1]])  # rows are in file order: earlier windows are <= this
        added = np.maximum(last - np.maximum(first, previous + 1) + 1, 0)  # windows a row maps that others did not
        touched = np.cumsum(added)  # distinct windows mapped by the rows so far
        group = (touched - 1) // max(self.budget // WINDOW, 1)
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1, [len(rows)]])
        for a, b in zip(bounds[:-1], bounds[1:]):
            out[order[a:b]] = self.array[ordered[a:b]]
            self._count((int(added[a:b].sum()) + 1) * WINDOW)  # + the first row's window, if shared
        return out

    def chunks(self):
        """``(start, view)`` over the whole array, about half a budget at a time, in order.

        Each view reads the map directly (no copy); the pages are released after the next step.
        """
        step = max(1, self.budget // 2 // max(self.row_bytes, 1))
        for start in range(0, len(self), step):
            yield start, self.array[start:start + step]
            self._count(step * self.row_bytes + 2 * WINDOW)

    def _count(self, nbytes: int) -> None:
        self._read += nbytes
        if self._read >= self.budget:
            self.release()

    def release(self) -> None:
        """Hand the pages mapped so far back to the kernel (they are read again on demand)."""
        self._read = 0
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)
            self.releases += 1

    def check_finite(self, what: str) -> None:
        """Refuse NaN, inf and values beyond float32, in one pass (chunks, pages released)."""
        if self.dtype.kind != "f":
            return  # integers are always finite
        limit = np.finfo(np.float32).max
        for start, chunk in self.chunks():
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(chunk) <= limit)  # NaN, inf, and what float32 would make inf
            if bad.any():
                pos = np.unravel_index(int(np.argmax(bad)), bad.shape)
                index = (start + int(pos[0]), *(int(i) for i in pos[1:]))
                raise DataError(f"{what} at index {index}: expected a finite float32 number, found "
                                f"{chunk[pos].item()!r}", str(self.path))
        self.release()

    def __repr__(self) -> str:
        return f"MappedArray('{self.path}', shape={self.shape}, dtype={self.dtype})"


class MappedSamples:
    """Samples ``index`` of a :class:`MappedArray`, read on demand as float32, optionally normalized.

    It stands in for an ``(len(index), *sample_shape)`` float32 array wherever nncli reads one in
    pieces: ``len``, ``shape``, ``dtype``, and indexing by an int, a slice or an int array (which
    gathers those rows from the file). ``np.asarray`` reads every sample into memory.

    Args:
        source: the mapped file.
        index: the rows of ``source`` that are these samples, in order (int64).
        normalizer: applied to every gathered batch (``transform``), or None.
        sample_shape: one sample's shape (default the file's rows' shape).
    """

    def __init__(self, source: MappedArray, index, normalizer=None, sample_shape=None):
        self.source = source
        self.index = np.asarray(index, dtype=np.int64)
        self.normalizer = normalizer
        self.sample_shape = tuple(source.shape[1:] if sample_shape is None else sample_shape)
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        rows = self.index[key]
        if np.ndim(rows) == 0:
            return self[np.atleast_1d(key)][0]
        if isinstance(key, slice) and len(rows) and np.all(np.diff(rows) == 1):
            raw = self.source.take(slice(int(rows[0]), int(rows[-1]) + 1))  # one contiguous read
        else:
            raw = self.source.take(rows)
        x = raw.astype(np.float32, copy=False).reshape((len(rows), *self.sample_shape))  # (batch, ...)
        return x if self.normalizer is None else self.normalizer.transform(x)

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, len(self), 4096):
            out[start:start + 4096] = self[start:start + 4096]
        return out if dtype is None else out.astype(dtype, copy=False)

    def with_normalizer(self, normalizer) -> MappedSamples:
        """The same samples, normalized by ``normalizer`` when read."""
        return MappedSamples(self.source, self.index, normalizer, self.sample_shape)

    def __repr__(self) -> str:
        return f"MappedSamples({len(self)} samples of {self.source.path.name}, shape {self.shape})"
