"""Tensor (an immutable op result) and Variable (a mutable, trainable leaf).

Both wrap one numpy array. Users see it read-only (``numpy()``, ``np.asarray``),
so an array saved for backward cannot be changed under the tape; a Variable
changes only through ``assign``/``assign_add``/``assign_sub``, which bump a
version counter that the tape checks before it uses a saved Variable.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)

# Set by functional.py: the differentiable functions the Python operators call.
_OPERATORS: dict = {}
# Set by function.py: records Variable assignments while an ad.Function traces.
_TRACE_HOOK: list = []


def to_array(value, dtype=None) -> np.ndarray:
    """A fresh array of ``value``; floating values become float32 unless ``dtype`` is given."""
    if isinstance(value, Tensor):
        value = value._data
    if dtype is not None:
        return np.array(value, dtype=dtype)
    arr = np.array(value)
    if arr.dtype == np.float64:
        return arr.astype(DEFAULT_FLOAT)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot make a tensor of {arr.dtype} values")
    return arr


class Tensor:
    """An immutable n-dimensional value; the result of every op.

    Example:
        >>> t = ad.Tensor([1.0, 2.0]); (t * 2).numpy()
        array([2., 4.], dtype=float32)
    """

    __slots__ = ("_data", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our operators: ndarray + Tensor -> Tensor

    def __init__(self, value, dtype=None):
        self._data = to_array(value, dtype)

    @classmethod
    def _make(cls, arr: np.ndarray) -> Tensor:
        """Wrap an array an op just made (no copy)."""
        t = object.__new__(cls)
        t._data = arr if type(arr) is np.ndarray else np.asarray(arr)  # ufuncs give scalars for 0-d
        return t

    # -- array protocol -------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The value as a read-only numpy array (a tape may have saved it for backward)."""
        view = self._data.view()
        view.flags.writeable = False
        return view

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self.numpy()

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        return len(self._data)

    def item(self):
        return self._data.item()

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        return f"{type(self).__name__}({body}, dtype={self._data.dtype})"

    __hash__ = object.__hash__

    # -- operators (differentiable; see ops.py) --------------------------
    def __add__(self, o): return _OPERATORS["add"](self, o)
    def __radd__(self, o): return _OPERATORS["add"](o, self)
    def __sub__(self, o): return _OPERATORS["sub"](self, o)
    def __rsub__(self, o): return _OPERATORS["sub"](o, self)
    def __mul__(self, o): return _OPERATORS["mul"](self, o)
    def __rmul__(self, o): return _OPERATORS["mul"](o, self)
    def __truediv__(self, o): return _OPERATORS["div"](self, o)
    def __rtruediv__(self, o): return _OPERATORS["div"](o, self)
    def __pow__(self, o): return _OPERATORS["pow"](self, o)
    def __rpow__(self, o): return _OPERATORS["pow"](o, self)
    def __matmul__(self, o): return _OPERATORS["matmul"](self, o)
    def __rmatmul__(self, o): return _OPERATORS["matmul"](o, self)
    def __neg__(self): return _OPERATORS["neg"](self)
    def __pos__(self): return self
    def __abs__(self): return _OPERATORS["abs"](self)
    def __getitem__(self, index): return _OPERATORS["getitem"](self, index)

    # Comparisons (<, <=, >, >=) are set by functional.py: boolean tensors without gradient.

    @property
    def T(self) -> Tensor:
        return _OPERATORS["transpose"](self)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return _OPERATORS["reshape"](self, shape)

    def sum(self, axis=None, keepdims=False) -> Tensor:
        return _OPERATORS["sum"](self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False) -> Tensor:
        return _OPERATORS["mean"](self, axis=axis, keepdims=keepdims)


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

    def __init__(self, value, dtype=None, trainable=True, name=None):
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
        if _TRACE_HOOK:  # a traced Function records the assignment, to replay it
            _TRACE_HOOK[0](self, value, mode)
        self._write(self._checked(value), mode)
        return self

    def _write(self, arr: np.ndarray, mode: str) -> None:
        """The in-place update itself (also what a traced ``Assign`` step replays)."""
        target = self._data
        if mode == "assign":
            target[...] = arr
        elif mode == "assign_add":
            np.add(target, arr, out=target, casting="same_kind")
        else:
            np.subtract(target, arr, out=target, casting="same_kind")
        self._version += 1

    def _bump(self) -> None:
        """Mark the value as changed after an in-place update made directly on ``_data``."""
        self._version += 1

    def __repr__(self) -> str:
        label = f", name={self.name!r}" if self.name else ""
        body = np.array2string(self._data, separator=", ", prefix="Variable(")
        return f"Variable({body}, dtype={self._data.dtype}{label})"
