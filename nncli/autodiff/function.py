"""ad.Function: trace a Python function's calculation graph once per signature, then replay it.

The first call with a new input signature runs the function on its values while every
primitive op is recorded (``compile.trace``); a first-order ``tape.gradient`` inside becomes
compiled backward instructions. The result is compiled (``compile.program``) into closures
over preallocated buffers; later calls with the same signature replay them without running
the Python code, any Tensor object or the tape. See docs/function.md for what retraces and
what raises.

The signature: tensors, Variables and arrays by shape and dtype (float64 stays float64; the
graph reads, and assigns, whichever Variable is passed, as tf.function does), and which of
them are the same object; layers, models, optimizers and any other object by identity, held
through a weakref (so a graph dies with the objects it was traced for, and a recycled id never
selects it); plain values (numbers, strings, None) by value; lists, tuples, dicts by structure.

A Function reuses its buffers from call to call: do not call the same one from two threads
at once. Under a recording GradientTape (differentiated from outside) it runs the Python
function eagerly, so the tape sees every op and gradients of any order are exactly eager's.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from nncli.autodiff.compile.kernels import ShapeChanged
from nncli.autodiff.compile.program import Program
from nncli.autodiff.compile.trace import Trace
from nncli.autodiff.state import STATE
from nncli.autodiff.tensor import Tensor

ndarray = np.ndarray
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
MAX_SHAPE_VARIANTS = 8  # graphs kept per signature for the shapes of boolean-mask results


def _scan(value, leaves: list, refs: list, seen: dict):
    """Hashable description of one argument; its tensor-like leaves go to ``leaves`` and the
    objects keyed by identity to ``refs``."""
    kind = type(value)
    if kind is ndarray:
        leaves.append(value)
        return (value.shape, value.dtype)
    if isinstance(value, Tensor):  # a Variable too: the graph reads and assigns the one passed
        first = seen.setdefault(id(value), len(leaves))  # the same tensor twice is part of the graph
        leaves.append(value)
        return ("V" if value._variable else "T", value._data.shape, value._data.dtype, first)
    if kind in _PLAIN:
        return (kind, value)
    if isinstance(value, np.generic):
        leaves.append(np.asarray(value))
        return ((), value.dtype)
    if kind is list or kind is tuple:
        return (kind, tuple([_scan(v, leaves, refs, seen) for v in value]))
    if kind is dict:
        return (dict, tuple([(k, _scan(value[k], leaves, refs, seen)) for k in value]))
    try:
        ref = weakref.ref(value)
    except TypeError:  # no weakref: by value when hashable, else by identity, kept alive
        try:
            hash(value)
            return ("H", kind, value)
        except TypeError:
            refs.append(value)  # kept alive by the Function with the graph: its id stays its own
            return ("I", id(value))
    refs.append(value)
    return ("O", ref)


def _signature(args, kwargs):
    """``(key, leaves, refs)`` of a call."""
    leaves: list = []
    refs: list = []
    seen: dict = {}
    key = tuple([_scan(a, leaves, refs, seen) for a in args])
    if kwargs:
        key = (key, tuple([(k, _scan(kwargs[k], leaves, refs, seen)) for k in sorted(kwargs)]))
    return key, leaves, refs


def _substitute(value, tensors):
    """The arguments with each tensor-like leaf replaced by the next of ``tensors``."""
    if isinstance(value, Tensor | ndarray | np.generic):
        return next(tensors)
    if type(value) is list or type(value) is tuple:
        items = [_substitute(v, tensors) for v in value]
        return items if type(value) is list else tuple(items)
    if type(value) is dict:
        return {k: _substitute(value[k], tensors) for k in value}
    return value


def _arrays(leaves) -> list:
    return [v if type(v) is ndarray else v._data for v in leaves]


def _as_output(value) -> Tensor:
    """An input leaf returned as it was (an array as a read-only tensor of its dtype)."""
    if isinstance(value, Tensor):
        return value
    view = np.asarray(value).view()
    view.flags.writeable = False
    return Tensor._make(view)


def _recording() -> bool:
    tapes = STATE.tapes
    return bool(tapes) and any(t._recording for t in tapes)


def _forget(function_ref, key) -> None:
    """An object a graph was traced for died: drop that graph."""
    function = function_ref()
    if function is not None:
        function._programs.pop(key, None)


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
        self._programs: dict = {}  # signature -> [Program], the last one that replayed first
        self._pinned: dict = {}  # signature -> objects without weakrefs, keyed by id: kept alive
        self.trace_count = 0
        functools.update_wrapper(self, fn)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return _BoundFunction(self, obj)

    def __call__(self, *args, **kwargs):
        if STATE.trace is not None or _recording():
            # inside an outer Function's trace: inlined; under a recording tape: eager
            return self._fn(*args, **kwargs)
        key, leaves, refs = _signature(args, kwargs)
        programs = self._programs.get(key)
        if programs is not None:
            first = programs[0]
            if first.eager_only:
                return self._fn(*args, **kwargs)
            arrays = _arrays(leaves)
            for i, program in enumerate(programs):
                try:
                    out = program.run(arrays, leaves, lambda k: _as_output(leaves[k]))
                except ShapeChanged:  # a boolean mask selected another count: another graph
                    continue
                if i:
                    programs.insert(0, programs.pop(i))
                return out
        return self._trace(key, leaves, refs, args, kwargs)

    def _trace(self, key, leaves, refs, args, kwargs):
        trace = Trace(getattr(self._fn, "__qualname__", repr(self._fn)))
        tensors = [trace.argument(v) for v in leaves]
        call_args, call_kwargs = _substitute((args, kwargs), iter(tensors))
        STATE.trace = trace
        try:
            outputs = self._fn(*call_args, **call_kwargs)
        finally:
            STATE.trace = None
            trace.finish()
        program = Program(trace, outputs)
        del trace
        programs = self._programs.get(key)
        if programs is None:
            programs = self._programs[key] = []
            me = weakref.ref(self)
            for obj in refs:
                try:
                    weakref.finalize(obj, _forget, me, key)
                except TypeError:
                    self._pinned.setdefault(key, []).append(obj)
        programs.insert(0, program)
        del programs[MAX_SHAPE_VARIANTS:]
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
