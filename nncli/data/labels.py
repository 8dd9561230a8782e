"""Class names in a target column: text labels encoded as class ids, as Ludwig encodes a category.

The classes are the distinct labels (surrounding spaces stripped) in sorted order, as numpy's
``unique`` and scikit-learn's ``LabelEncoder`` sort them, so the same labels give the same ids
whatever the order of the rows or the reader that read them. A run keeps its classes (in
run.json); data read later for that run is mapped onto them with :func:`map_to_classes`.

    vocab = Vocabulary()
    codes = vocab.encode(["dog", "cat", "dog"])        # provisional ids, in order of first sight
    classes, ids = vocab.finish(codes)                  # ['cat', 'dog'], [1, 0, 1]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import numpy as np

from nncli.errors import DataError, LabelError

__all__ = ["Vocabulary", "map_to_classes", "shown_classes", "typo_hint", "close_class"]

SHOWN = 8  # class names listed in a message before "..."
RARE = 2  # a class of at most this many samples, beside a close name of many more, is likely a typo


def shown_classes(classes: list[str]) -> str:
    """``'a', 'b', 'c'`` (the first few of many, then how many more)."""
    names = ", ".join(repr(c) for c in classes[:SHOWN])
    return names + (f", ... ({len(classes) - SHOWN} more)" if len(classes) > SHOWN else "")


def close_class(name: str, classes: list[str]) -> str | None:
    """The one of ``classes`` that ``name`` most likely misspells (case aside, or a close spelling), if any."""
    others = [c for c in classes if c != name]
    same = [c for c in others if c.casefold() == name.casefold()]
    close = same or difflib.get_close_matches(name.casefold(), [c.casefold() for c in others], n=1, cutoff=0.8)
    return next((c for c in others if c.casefold() == close[0].casefold()), None) if close else None


def typo_hint(ids: np.ndarray, classes: list[str], place: Callable[[int], str]) -> str:
    """`` ('Setosa' is only in row 7, beside 'setosa' in 49: a typo?)`` for rare classes close to a common one.

    Class names are compared exactly (as Ludwig and scikit-learn do), so a label written once with
    another case or a slip of the keyboard becomes a class of its own; "add an output unit" is
    then the wrong fix. Empty when no class looks like that.
    """
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(classes))
    notes = []
    for c in np.flatnonzero((counts > 0) & (counts <= RARE)):
        near = close_class(classes[c], classes)
        if near is not None and counts[classes.index(near)] > 5 * counts[c]:
            rows = np.flatnonzero(ids == c)
            where = place(int(rows[0])) + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")
            notes.append(f"{classes[c]!r} is only at {where}, beside {near!r} in {counts[classes.index(near)]} "
                         "samples: a typo?")
    return f" ({'; '.join(notes[:3])})" if notes else ""


class Vocabulary:
    """The labels seen so far, each with a provisional id (the order in which they were first seen)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def _lookup(self, labels: list[str]) -> np.ndarray:
        """The provisional ids of ``labels`` (already stripped), new ones added."""
        ids = self._ids
        return np.fromiter((ids.setdefault(label, len(ids)) for label in labels), dtype=np.int32, count=len(labels))

    def encode(self, cells, place: Callable[[int], str] | None = None) -> np.ndarray | None:
        """Provisional ids ``(n,) int32`` of the text ``cells``.

        A label that is empty once stripped raises a DataError at ``place(i)`` (its file and cell), or
        gives ``None`` without ``place`` (the caller then hands over to a reader that can say where).
        """
        unique, inverse = np.unique(np.asarray(cells, dtype=str), return_inverse=True)  # one sort per chunk
        stripped = np.char.strip(unique)
        empty = np.flatnonzero(stripped == "")
        if empty.size:
            if place is None:
                return None
            first = int(np.flatnonzero(inverse.reshape(-1) == empty[0])[0])
            raise DataError("expected a class label, found an empty cell", place(first))
        return self._lookup(stripped.tolist())[inverse.reshape(-1)]

    def encode_arrow(self, column) -> np.ndarray | None:
        """:meth:`encode` for a pyarrow string array, through its dictionary encoding (no Python strings per row)."""
        encoded = column.dictionary_encode()
        labels = [label.strip() for label in encoded.dictionary.to_pylist()]
        if "" in labels:
            return None
        return self._lookup(labels)[encoded.indices.to_numpy(zero_copy_only=False)]

    def absorb(self, other: Vocabulary, codes: np.ndarray) -> np.ndarray:
        """``codes`` of ``other`` (a reader of another part of the file) as ids of this vocabulary."""
        return self._lookup(list(other._ids))[codes]

    def finish(self, codes: np.ndarray) -> tuple[list[str], np.ndarray]:
        """``(classes sorted, class ids int64)`` for provisional ``codes``."""
        labels = list(self._ids)
        classes = sorted(labels)
        rank = np.empty(len(labels), dtype=np.int64)
        rank[np.argsort(np.array(labels, dtype=object), kind="stable")] = np.arange(len(labels))
        return classes, rank[codes]


def map_to_classes(ids: np.ndarray, found: list[str], classes: list[str], place: Callable[[int], str],
                   context: str) -> np.ndarray:
    """Class ids over ``found`` (one file's classes) as ids over ``classes`` (the run's), int64.

    A label that is not one of ``classes`` raises a LabelError at ``place(i)`` of its first sample;
    ``context`` says where ``classes`` come from (``"the training file"``, ``"run 'r1'"``).
    """
    position = {name: i for i, name in enumerate(classes)}
    lut = np.array([position.get(name, -1) for name in found], dtype=np.int64)
    mapped = lut[ids] if len(lut) else np.zeros(len(ids), dtype=np.int64)
    unseen = np.flatnonzero(mapped < 0)
    if unseen.size:
        i = int(unseen[0])
        near = close_class(found[int(ids[i])], classes)
        raise LabelError(f"label {found[int(ids[i])]!r} is not one of the {len(classes)} classes of {context}: "
                         f"{shown_classes(classes)}" + (f" (did you mean {near!r}?)" if near else ""), place(i))
    return mapped
