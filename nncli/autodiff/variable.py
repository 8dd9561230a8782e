"""Variable: a mutable, trainable leaf tensor.

It changes only through ``assign``/``assign_add``/``assign_sub``, in place, each of which
bumps a version counter that a tape checks before it uses a saved Variable; while an
``ad.Function`` traces, the assignment is also recorded, so every replay performs it.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.state import STATE
from nncli.autodiff.tensor import Tensor, to_array

_new = object.__new__


class Variable(Tensor):
    """A mutable leaf holding state such as weights; tapes watch it when it is used.

    Args:
        value: initial value (number, nested list or array); copied.
        dtype: defaults to float32 for Python numbers and floating arrays.
        trainable: whether tapes watch it automatically and models list it as trainable.
        name: an optional label.

    Example:
        >>> w = ad.Variable([1.0, 2.0], name="w"); w.assign_sub([0.5, 0.5]); w.numpy()
        array([0.5, 1.5], dtype=float32)
    """

    __slots__ = ("trainable", "name", "_version")
    _variable = True

    def __new__(cls, *args, **kwargs):
        return _new(cls)

    def __init__(self, value, dtype=None, trainable=True, name=None):
        if isinstance(value, Tensor):
            value._concrete("ad.Variable(x)", "create Variables outside the function (or from numpy "
                                              "values), and assign() traced values to them")
        arr = to_array(value, dtype)
        self._data = arr if arr.flags.c_contiguous else arr.copy()
        self.trainable = bool(trainable)
        self.name = name
        self._version = 0

    def _checked(self, value) -> np.ndarray:
        arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        if arr.shape != self._data.shape and np.broadcast_shapes(arr.shape, self._data.shape) != self._data.shape:
            raise ValueError(f"cannot assign shape {arr.shape} to variable {self.name or ''} of shape {self._data.shape}")
        return arr

    def assign(self, value) -> Variable:
        """Set the value in place (same shape; cast to the variable's dtype)."""
        return self._update(value, "assign")

    def assign_add(self, value) -> Variable:
        """Add ``value`` in place."""
        return self._update(value, "assign_add")

    def assign_sub(self, value) -> Variable:
        """Subtract ``value`` in place."""
        return self._update(value, "assign_sub")

    def _update(self, value, mode: str) -> Variable:
        arr = self._checked(value)
        trace = STATE.trace
        if trace is not None:  # a traced Function replays the assignment
            trace.assign(self, value if isinstance(value, Tensor) else Tensor._make(np.array(arr)), mode)
        self._write(arr, mode)
        return self

    def _write(self, arr: np.ndarray, mode: str) -> None:
        """The in-place update itself (also what a traced assignment replays)."""
        target = self._data
        if mode == "assign":
            target[...] = arr
        elif mode == "assign_add":
            np.add(target, arr, out=target, casting="same_kind")
        else:
            np.subtract(target, arr, out=target, casting="same_kind")
        self._version += 1

    def _bump(self) -> None:
        """Mark the value as changed after an in-place update made directly on its array."""
        self._version += 1

    def __repr__(self) -> str:
        label = f", name={self.name!r}" if self.name else ""
        body = np.array2string(self._data, separator=", ", prefix="Variable(")
        return f"Variable({body}, dtype={self._data.dtype}{label})"
