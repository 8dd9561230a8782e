"""Tensor, ``apply`` (the one way an op runs and is recorded), and the operand rules the
Python operators follow (Variable, the mutable subclass, is in variable.py).

A tensor wraps one numpy array. Users see it read-only (``numpy()``, ``np.asarray``), so an
array saved for backward cannot change under the tape. While an ``ad.Function`` traces, reading a traced tensor's value in Python raises
:class:`ConcretizationError` instead of freezing it.

Operand rules: a Python number or numpy array combined with a tensor takes the tensor's
dtype (float32 stays float32); two float tensors of different dtypes are an error.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff import ops as P
from nncli.autodiff.record import record
from nncli.autodiff.state import STATE, ConcretizationError

DEFAULT_FLOAT = np.dtype(np.float32)
ndarray = np.ndarray
_new = object.__new__

__all__ = ["ConcretizationError", "DEFAULT_FLOAT", "Tensor", "WeakTensor", "apply", "as_tensor"]


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


def _traced(value) -> bool:
    trace = STATE.trace
    return trace is not None and isinstance(value, Tensor) and trace.is_traced(value)


def _operator(op):
    """The Tensor method ``self <op> o``: two plain tensors of one dtype (the common case) go
    straight to ``apply``; everything else through the operand rules of :func:`binary`."""
    def method(self, o):
        if type(o) is Tensor and type(self) is Tensor and self._data.dtype is o._data.dtype:
            return apply(op, (self, o))
        return binary(op, self, o)
    return method


class Tensor:
    """An immutable n-dimensional value; the result of every op.

    Example:
        >>> t = ad.Tensor([1.0, 2.0]); (t * 2).numpy()
        array([2., 4.], dtype=float32)
    """

    __slots__ = ("_data", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our operators: ndarray + Tensor -> Tensor
    _variable = False  # read by the engine instead of isinstance checks
    _weak = False  # see WeakTensor

    def __new__(cls, value=None, dtype=None):
        if _traced(value):  # inside a trace: a recorded copy, not a frozen one
            return _copy(value, dtype)
        return _new(cls)

    def __init__(self, value, dtype=None):
        if not _traced(value):
            self._data = to_array(value, dtype)

    @classmethod
    def _make(cls, arr: np.ndarray) -> Tensor:
        """Wrap an array an op just made (no copy)."""
        t = _new(cls)
        t._data = arr if type(arr) is ndarray else np.asarray(arr)  # ufuncs give scalars for 0-d
        return t

    # -- reading the value ------------------------------------------------------
    def _concrete(self, what: str, instead: str) -> None:
        """Raise when a Function is tracing and this tensor's value depends on its inputs."""
        trace = STATE.trace
        if trace is not None and trace.is_traced(self):
            trace.refuse(self, what, instead)

    def numpy(self) -> np.ndarray:
        """The value as a read-only numpy array (a tape may have saved it for backward)."""
        self._concrete("numpy()", "compute with nncli.autodiff ops, or return the tensor from the "
                                  "function and read it after the call")
        view = self._data.view()
        view.flags.writeable = False
        return view

    def __array__(self, dtype=None, copy=None):
        self._concrete("np.asarray() (or another numpy function)",
                       "use the nncli.autodiff op instead (ad.exp, ad.where, ad.one_hot, indexing x[i], ...)")
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        if copy:
            return self._data.copy()
        view = self._data.view()
        view.flags.writeable = False
        return view

    def item(self):
        self._concrete("item()", "keep it a tensor, or return it from the function")
        return self._data.item()

    def tolist(self):
        self._concrete("tolist()", "keep it a tensor, or return it from the function")
        return self._data.tolist()

    def __float__(self) -> float:
        self._concrete("float()", "keep it a tensor (ad ops accept tensors wherever numbers go), or "
                                  "return it from the function and convert it after the call")
        return float(self._data)

    def __int__(self) -> int:
        self._concrete("int()", "keep it a tensor, or pass the number as a non-tensor argument")
        return int(self._data)

    def __index__(self) -> int:
        self._concrete("its use as a Python index or size", "index with the tensor itself (x[i]), "
                                                            "or pass the number as a non-tensor argument")
        return self._data.__index__()

    def __bool__(self) -> bool:
        self._concrete("bool() (an if, while, and/or on a tensor)",
                       "ad.where(condition, a, b) computes both branches and picks per element")
        return bool(self._data)

    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)
        return format(float(self) if self._data.ndim == 0 else self.numpy(), spec)

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

    def __iter__(self):
        """The rows, each one a recorded op (shapes are static, so this reads no value)."""
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (getitem(self, i) for i in range(len(self._data)))

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        return f"{type(self).__name__}({body}, dtype={self._data.dtype})"

    __hash__ = object.__hash__

    # -- operators (differentiable) ------------------------------------------------
    __add__ = _operator(P.Add)
    def __radd__(self, o): return binary(P.Add, o, self)
    __sub__ = _operator(P.Sub)
    def __rsub__(self, o): return binary(P.Sub, o, self)
    __mul__ = _operator(P.Mul)
    def __rmul__(self, o): return binary(P.Mul, o, self)
    __truediv__ = _operator(P.Div)
    def __rtruediv__(self, o): return binary(P.Div, o, self)
    __pow__ = _operator(P.Pow)
    def __rpow__(self, o): return binary(P.Pow, o, self)
    __matmul__ = _operator(P.MatMul)
    def __rmatmul__(self, o): return binary(P.MatMul, o, self)
    def __neg__(self): return unary(P.Neg, self)
    def __pos__(self): return self
    def __abs__(self): return unary(P.Abs, self)
    def __getitem__(self, index): return getitem(self, index)
    # Comparisons give boolean tensors without gradient (usable in where() and indexing, also traced).
    def __lt__(self, o): return compare(np.less, self, o)
    def __le__(self, o): return compare(np.less_equal, self, o)
    def __gt__(self, o): return compare(np.greater, self, o)
    def __ge__(self, o): return compare(np.greater_equal, self, o)

    @property
    def T(self) -> Tensor:
        return transpose(self)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def sum(self, axis=None, keepdims=False) -> Tensor:
        return reduction(P.Sum, self, axis, keepdims)

    def mean(self, axis=None, keepdims=False) -> Tensor:
        return mean(self, axis, keepdims)


class WeakTensor(Tensor):
    """An array argument of a Function while it traces, and what ops make of such arguments alone.

    In eager code a numpy array meeting a tensor takes the tensor's dtype, and a function of
    the array alone sees it through ``as_tensor`` (float64 becomes float32). Traced, the array
    is a tensor of its own dtype (float64 stays float64); being weak, it converts where the
    array would have been converted, so compiled results equal eager ones.
    """

    __slots__ = ()
    _weak = True


# -- applying a primitive ----------------------------------------------------------
def apply(op, inputs, attrs=None) -> Tensor:
    """Run primitive ``op`` on the tensors ``inputs`` and record it on the tapes and trace.

    Args:
        op: a :class:`Primitive` subclass.
        inputs: a tuple of tensors (``ad.as_tensor`` converts other values).
        attrs: the op's non-tensor parameters (axes, shapes, ...), passed to its rules.

    Example:
        >>> ad.apply(ad.ops.Exp, (ad.Tensor([0.0]),)).numpy()
        array([1.], dtype=float32)
    """
    n = len(inputs)
    fn = op.array_fn  # forward is fn of the arrays, nothing saved: called without op.forward
    if n == 2:
        a, b = inputs
        if fn is not None:
            data, saved = fn(a._data, b._data), None
        else:
            data, saved = op.forward(attrs, a._data, b._data)
    elif n == 1:
        a = b = inputs[0]
        if fn is not None:
            data, saved = fn(a._data), None
        else:
            data, saved = op.forward(attrs, a._data)
    else:
        a = b = None
        data, saved = (fn(*[t._data for t in inputs]), None) if fn is not None else \
            op.forward(attrs, *[t._data for t in inputs])
    out = _new(Tensor)
    out._data = data = data if type(data) is ndarray else np.asarray(data)  # ufuncs give scalars for 0-d
    tapes = STATE.tapes
    if tapes and op.differentiable and data.dtype.kind == "f":
        if type(a) is Tensor and type(b) is Tensor and len(tapes) == 1:
            # record()'s rule for the common case: one tape, one or two inputs, no Variable among them
            # (nothing to watch automatically, no versions to keep)
            tape = tapes[0]
            if tape._recording:
                tracked = tape._tracked
                if a in tracked or b in tracked:
                    tape._nodes.append((op, inputs, out, saved, attrs, None))
                    tracked.add(out)
        else:
            record(tapes, op, inputs, out, saved, attrs)
    trace = STATE.trace
    if trace is not None:
        trace.add(op, inputs, attrs, out, saved)
    if fn is None and op.writes_inputs:  # (an op with an array_fn writes nothing)
        for t in inputs:
            if t._variable:
                t._version += 1
    return out


# -- operands ------------------------------------------------------------------------
def as_tensor(x, dtype=None) -> Tensor:
    """``x`` as a tensor: itself when it is one (cast when ``dtype`` differs), else a constant.

    A numpy array of the right dtype is shared, not copied (as ``np.asarray``); other values
    become float32 when floating, unless ``dtype`` is given.

    Example:
        >>> ad.as_tensor(np.arange(3)).dtype
        dtype('int64')
    """
    if isinstance(x, Tensor):
        if x._weak:
            return _strong(x, dtype)
        if dtype is None or x._data.dtype == dtype:
            return x
        return cast(x, dtype)
    if type(x) is ndarray and (dtype is None and x.dtype.kind in "biu" or x.dtype == DEFAULT_FLOAT and dtype
                               in (None, DEFAULT_FLOAT) or dtype is not None and x.dtype == dtype):
        view = x.view()
        view.flags.writeable = False  # a tape may save it for backward
        return Tensor._make(view)
    return Tensor(x, dtype)


def _strong(x: Tensor, dtype=None) -> Tensor:
    """A weak argument converted as eager converts an array: to ``dtype``, else float64 to float32."""
    target = np.dtype(dtype) if dtype is not None else (DEFAULT_FLOAT if x._data.dtype == np.float64
                                                          else x._data.dtype)
    out = apply(P.Cast, (x,), target) if target != x._data.dtype else apply(P.Reshape, (x,), x._data.shape)
    out.__class__ = Tensor
    return out


def _copy(x: Tensor, dtype=None) -> Tensor:
    """``ad.Tensor(x)`` of a traced tensor: a recorded copy without gradient, as eager's constant."""
    target = np.dtype(dtype) if dtype is not None else (DEFAULT_FLOAT if x._data.dtype == np.float64
                                                          else x._data.dtype)
    out = apply(P.Mask, (x,), _Copy(target))
    out.__class__ = Tensor
    return out


class _Copy:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return np.array(x, dtype=self.dtype)


def _const(x, like: Tensor) -> Tensor:
    """A non-tensor operand as a constant of ``like``'s dtype (no promotion)."""
    arr = np.asarray(x)
    if like._data.dtype.kind == "f":
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot combine a {arr.dtype} value with a {like.dtype} tensor")
        arr = arr.astype(like._data.dtype, copy=False)
    t = Tensor._make(np.array(arr))
    if like._weak:
        t.__class__ = WeakTensor
    return t


def pair(a, b) -> tuple[Tensor, Tensor]:
    """The two operands as tensors of one dtype under the operand rules (see the module docstring):
    numbers and arrays take the tensor's dtype, an int tensor meeting a float one is cast, two float
    tensors of different dtypes are an error, and a traced array argument converts as an array would."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a._data.dtype, b._data.dtype
        if da != db:
            if a._weak and b._weak:  # two arrays in eager: numpy's promotion
                target = np.result_type(da, db)
                return (a if da == target else cast(a, target)), (b if db == target else cast(b, target))
            if a._weak and db.kind == "f":  # an array meeting a float tensor takes its dtype
                return cast(a, db), b
            if b._weak and da.kind == "f":
                return a, cast(b, da)
            fa, fb = da.kind == "f", db.kind == "f"
            if fa and fb:
                raise TypeError(
                    f"cannot combine {da} and {db} tensors; convert one with ad.cast(x, '{da}')")
            if fa:
                b = cast(b, da)
            elif fb:
                a = cast(a, db)
        return a, b
    if ta:
        return a, _const(b, a)
    if tb:
        return _const(a, b), b
    a = as_tensor(a)
    return a, _const(b, a)


def binary(op, a, b) -> Tensor:
    """``op`` of two operands under the operand rules."""
    if type(a) is Tensor and type(b) is Tensor and a._data.dtype is b._data.dtype:
        return apply(op, (a, b))
    if type(a) is Tensor and type(b) in (float, int) and a._data.dtype.kind == "f":
        return apply(op, (a, Tensor._make(np.array(b, dtype=a._data.dtype))))
    return apply(op, pair(a, b))


def unary(op, x, attrs=None) -> Tensor:
    return apply(op, (x if type(x) is Tensor else as_tensor(x),), attrs)


def compare(ufunc, a, b) -> Tensor:
    """A comparison ufunc of two operands: a boolean tensor without gradient."""
    return apply(P.Compare, pair(a, b), ufunc)


def cast(x, dtype) -> Tensor:
    """``x`` converted to ``dtype``; a gradient flows back only between float dtypes."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    dtype = np.dtype(dtype)
    if x._data.dtype == dtype:
        return x
    return apply(P.Cast, (x,), dtype)


# -- the functions behind Tensor methods ------------------------------------------------
def _view_op(op, owned, x):
    """Ops that return views copy when they read a Variable (assign() would change the view)."""
    return owned if x._variable else op


def reduction(op, x, axis=None, keepdims=False) -> Tensor:
    x = x if type(x) is Tensor else as_tensor(x)
    return apply(op, (x,), (P.base.axes_of(axis, x._data.ndim), bool(keepdims)))


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Mean over ``axis``: the sum divided by the count, as numpy (nan over an empty axis)."""
    x = x if type(x) is Tensor else as_tensor(x)
    axes = P.base.axes_of(axis, x._data.ndim)
    total = apply(P.Sum, (x,), (axes, bool(keepdims)))
    count = x._data.size if axes is None else int(np.prod([x._data.shape[a] for a in axes]))
    if total._data.dtype.kind != "f":  # integers and booleans: a float64 mean, as numpy's
        total = cast(total, np.float64)
    if count == 0:  # numpy and torch give nan (0/0), without dividing by zero here
        return binary(P.Mul, total, float("nan"))
    return binary(P.Div, total, count)


def transpose(x, axes=None) -> Tensor:
    """Permute axes (reverse them when ``axes`` is None); negative axes count from the end."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    if axes is not None:
        ndim = x._data.ndim
        axes = tuple(int(a) for a in axes)
        if any(not -ndim <= a < ndim for a in axes) or sorted(a % ndim for a in axes) != list(range(ndim)):
            raise ValueError(f"axes {axes} are not a permutation of the {ndim} axes of shape {x.shape}")
        axes = tuple(a % ndim for a in axes)
    return apply(_view_op(P.Transpose, P.OWNED_TRANSPOSE, x), (x,), axes)


def reshape(x, shape) -> Tensor:
    """The same values in a new shape (one entry may be -1)."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(n) for n in shape)
    if x._data.shape == shape:
        return x
    return apply(_view_op(P.Reshape, P.OWNED_RESHAPE, x), (x,), shape)


def _template(index, tensors: list):
    """An index template: tensors in it become :class:`ops.Slot` places (op inputs)."""
    if isinstance(index, tuple):
        return tuple(_template(i, tensors) for i in index)
    if isinstance(index, Tensor):
        tensors.append(index if not index._weak else _strong(index, index._data.dtype))
        return P.Slot(len(tensors) - 1)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x, index) -> Tensor:
    """``x[index]``: basic and advanced indexing (index tensors and boolean masks), differentiable."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    tensors: list = []
    template = _template(index, tensors)
    return apply(_view_op(P.GetItem, P.OWNED_GETITEM, x), (x, *tensors), template)
