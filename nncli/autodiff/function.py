"""ad.Function: trace a Python function's calculation graph once per signature, then replay it.

The first call with a new input signature (shapes and dtypes of the tensors,
non-tensor arguments by value) runs the function eagerly while recording every
primitive op into a :class:`Trace`; a first-order ``tape.gradient`` inside it is
recorded as one region rather than op by op. The trace is then compiled
(compiled.py) into a flat list of numpy steps over preallocated buffers, and later
calls with the same signature replay that, without running the Python code, any
Tensor object or the tape. As with ``tf.function``, Python side effects,
value-dependent Python branches and values computed with numpy from a tensor's array
happen at trace time only (the latter become constants); Variable assignments,
optimizer updates and random ops (stateful primitives) are replayed, and Variables
are read live. A Function reuses its buffers from call to call: do not call the same
one from two threads at once.

When a GradientTape is recording (the Function is differentiated from outside),
the function runs eagerly instead, so the tape sees every op and gradients of any
order are exactly eager's.
"""

from __future__ import annotations

import functools

import numpy as np

from nncli.autodiff.compiled import Program, record_gradient
from nncli.autodiff.ops import Primitive
from nncli.autodiff.tape import STATE
from nncli.autodiff.tensor import _TRACE_HOOK, Tensor, Variable


class Assign(Primitive):
    """A traced ``Variable.assign*``: replayed for its side effect."""

    stateful = True

    @staticmethod
    def forward(attrs, value):
        var, mode = attrs
        var._write(value, mode)
        return None, None


def record_assign(var: Variable, value, mode: str) -> None:
    """Called by ``Variable.assign*``: inside a trace, remember the assignment as a step."""
    trace = STATE.trace
    if trace is not None:
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value), dtype=var.dtype)
        trace.add(Assign, (value,), (var, mode), None)


_TRACE_HOOK.append(record_assign)


class Trace:
    """The steps recorded while a Function traces: ``(op, inputs, attrs, out)`` tuples and
    one ``compiled.GradientRegion`` per first-order ``tape.gradient`` call."""

    compiles_gradients = True  # read by GradientTape: call gradient() below instead of recording ops

    def __init__(self):
        self.steps: list = []

    def add(self, op, inputs, attrs, out) -> None:
        self.steps.append((op, inputs, attrs, out))

    def gradient(self, relevant, target, seed, output_gradients, sources, source_ids):
        """A first-order gradient on arrays, recorded as one region; returns its tensors."""
        return record_gradient(self, relevant, target, seed, output_gradients, sources, source_ids)


# -- signatures ----------------------------------------------------------------
_F64, _F32 = np.dtype(np.float64), np.dtype(np.float32)
ndarray = np.ndarray


def _scan(value, leaves: list):
    """Hashable description of one argument (tensors by shape and dtype, Variables and other
    objects by identity, plain values by value); its tensor-like leaves go to ``leaves``."""
    kind = type(value)
    if kind is ndarray:  # becomes a tensor; float64 arrays as float32
        leaves.append(value)
        dtype = value.dtype
        return (value.shape, _F32 if dtype == _F64 else dtype)
    if kind is Tensor:
        leaves.append(value)
        return ("T", value._data.shape, value._data.dtype)
    if isinstance(value, Variable):
        leaves.append(value)
        return ("V", id(value))
    if isinstance(value, Tensor):
        leaves.append(value)
        return ("T", value._data.shape, value._data.dtype)
    if isinstance(value, np.ndarray | np.generic):
        leaves.append(value)
        return (np.shape(value), _F32 if value.dtype == _F64 else value.dtype)
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return (kind, tuple([_scan(v, leaves) for v in value]))
    if isinstance(value, dict):
        return (dict, tuple([(k, _scan(value[k], leaves)) for k in sorted(value)]))
    if value is None or kind in (bool, int, float, str):
        return (kind, value)
    return ("O", id(value))  # other objects (a model, an optimizer) by identity


def _signature(args, kwargs) -> tuple:
    """``(key, leaves)`` of a call: the graph cache key and the tensor-like arguments in order."""
    leaves: list = []
    key = tuple([_scan(a, leaves) for a in args])
    if kwargs:
        key = (key, tuple([(k, _scan(kwargs[k], leaves)) for k in sorted(kwargs)]))
    return key, leaves


def _to_tensor(value):
    if isinstance(value, Tensor):
        return value
    value = np.asarray(value)
    if value.dtype == np.float64:
        return Tensor._make(value.astype(np.float32))
    view = value.view()
    view.flags.writeable = False
    return Tensor._make(view)


def _substitute(value, tensors):
    """The arguments with each tensor-like leaf replaced by the next of ``tensors``."""
    if isinstance(value, Tensor | np.ndarray | np.generic):
        return next(tensors)
    if isinstance(value, list | tuple):
        items = [_substitute(v, tensors) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _substitute(value[k], tensors) for k in sorted(value)}
    return value


def _array(value) -> np.ndarray:
    """An argument leaf as the array a replay reads (float64 becomes float32, as tracing does)."""
    if type(value) is ndarray and value.dtype != _F64:
        return value
    if isinstance(value, Tensor):
        return value._data
    if value.dtype == _F64:
        return np.asarray(value, dtype=_F32)
    return np.asarray(value)


def _recording() -> bool:
    tapes = STATE.tapes
    return bool(tapes) and any(t._recording for t in tapes)


class Function:
    """A Python function traced into a graph once per input signature and replayed after.

    Args:
        fn: computes with ``nncli.autodiff`` ops on its tensor arguments.

    Example:
        >>> f = ad.Function(lambda a, b, c: ad.square(a * b + c))
        >>> f(ad.Variable(2.0), ad.Variable(3.0), ad.Variable(4.0)).numpy()
        array(100., dtype=float32)
        >>> f.trace_count
        1
    """

    def __init__(self, fn):
        self._fn = fn
        self._programs: dict = {}  # signature -> compiled.Program
        self.trace_count = 0
        functools.update_wrapper(self, fn)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return _BoundFunction(self, obj)

    def __call__(self, *args, **kwargs):
        if STATE.trace is not None:  # called while an outer Function traces: inline it
            return self._fn(*args, **kwargs)
        key, leaves = _signature(args, kwargs)
        program = self._programs.get(key)
        if program is not None and not _recording():
            return program.run([_array(v) for v in leaves], lambda i: _to_tensor(leaves[i]))
        tensors = [_to_tensor(v) for v in leaves]
        call_args, call_kwargs = _substitute((args, kwargs), iter(tensors))
        if _recording():  # differentiated from outside: eager, so the tape records every op
            return self._fn(*call_args, **call_kwargs)
        trace = Trace()
        STATE.trace = trace
        try:
            outputs = self._fn(*call_args, **call_kwargs)
        finally:
            STATE.trace = None
        self._programs[key] = Program(trace, tensors, outputs)
        self.trace_count += 1
        return outputs


class _BoundFunction:
    """A Function used as a method: ``self`` becomes the first argument."""

    def __init__(self, function: Function, obj):
        self._function, self._obj = function, obj

    def __call__(self, *args, **kwargs):
        return self._function(self._obj, *args, **kwargs)

    @property
    def trace_count(self) -> int:
        return self._function.trace_count


def function(fn):
    """Decorator form of :class:`Function`.

    Example:
        >>> @ad.function
        ... def f(x):
        ...     return ad.sum(x * x)
    """
    return Function(fn)
