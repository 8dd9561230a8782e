"""Indexing primitives: ``x[index]``, its adjoint scatter-add, and ``one_hot``.

An index is kept as a template: ints, slices, None, Ellipsis and constant arrays as they
are, and a :class:`Slot` wherever the index held a tensor, whose array then comes in as an
op input. So a traced Function reads each call's indices (Embedding ids, labels, a boolean
mask) instead of the ones it saw while tracing.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, NoGrad, Primitive


class Slot:
    """In an index template: the place of the n-th index tensor (an op input, not a constant)."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __repr__(self) -> str:
        return f"Slot({self.n})"


def fill(template, arrays):
    """The index with each :class:`Slot` replaced by its array."""
    if isinstance(template, tuple):
        return tuple(arrays[i.n] if isinstance(i, Slot) else i for i in template)
    return arrays[template.n] if isinstance(template, Slot) else template


def is_basic(template) -> bool:
    """True when ``x[index]`` is a view (no index arrays, constant or not)."""
    items = template if isinstance(template, tuple) else (template,)
    return all(i is None or i is Ellipsis or isinstance(i, int | slice | np.integer) for i in items)


def _advanced_unique(index) -> bool:
    """Whether every position the index selects is selected once (no integer arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    return not any(isinstance(i, np.ndarray) and i.dtype != bool for i in items)


class GetItem(Primitive):
    """``x[index]``; index tensors are inputs after ``x`` (attrs: the template)."""

    forward = staticmethod(lambda template, x, *idx: (x[fill(template, idx)], None))

    @staticmethod
    def backward(F, g, xs, y, s, template, needs):
        return (F.apply(ScatterAdd, (g, *xs[1:]), (xs[0].shape, template)),) + (None,) * (len(xs) - 1)

    @classmethod
    def kernel(cls, template, shapes, dtypes):
        return Kernel(lambda x: x[template], (0,), view=True) if is_basic(template) else None

    @staticmethod
    def shape_follows_values(template, dtypes) -> bool:
        """A boolean mask's count sets the result's shape: a replay must check it."""
        return any(d == bool for d in dtypes[1:])


class ScatterAdd(Primitive):
    """The adjoint of indexing: zeros of ``shape`` with ``g`` added at ``index``;
    attrs ``(shape, template)``, index tensors are inputs after ``g``."""

    @staticmethod
    def forward(attrs, g, *idx):
        shape, template = attrs
        index = fill(template, idx)
        out = np.zeros(shape, dtype=g.dtype)
        if is_basic(index) or _advanced_unique(index):
            out[index] = g
        else:  # repeated integer indices accumulate
            np.add.at(out, index, g)
        return out, None

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        return (F.getitem(g, fill(attrs[1], xs[1:])),) + (None,) * (len(xs) - 1)


def class_ids(values: np.ndarray, depth: int, what: str = "one_hot", floats: bool = False) -> np.ndarray:
    """``values`` as integer ids in ``[0, depth)``; whole-number floats too when ``floats``.

    Raises:
        TypeError: non-integer values (floats unless allowed).
        ValueError: a fractional value or one out of range (the first one is named).
    """
    if values.dtype.kind == "f" and floats:
        ints = values.astype(np.intp)
        if not np.array_equal(ints, values):
            bad = values.reshape(-1)[np.flatnonzero(ints.reshape(-1) != values.reshape(-1))[0]]
            raise ValueError(f"{what} takes whole-number indices, found {bad!r}")
        values = ints
    elif values.dtype.kind not in "iu":
        raise TypeError(f"{what} takes integer indices, not {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= depth):
        flat = values.reshape(-1)
        bad = flat[np.flatnonzero((flat < 0) | (flat >= depth))[0]]
        raise ValueError(f"{what}: index {int(bad)} is out of range for depth {depth} (indices must lie in "
                         f"[0, {depth}))")
    return values


class OneHot(NoGrad):
    """``(..., depth)`` rows with a 1 at each index; attrs ``(depth, dtype)``."""

    @staticmethod
    def forward(attrs, indices):
        depth, dtype = attrs
        ids = class_ids(indices, depth)
        out = np.zeros(ids.shape + (depth,), dtype=dtype)
        np.put_along_axis(out, ids[..., None], 1, axis=-1)
        return out, None
