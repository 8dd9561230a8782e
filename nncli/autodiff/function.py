"""ad.Function: trace a Python function's calculation graph once per signature, then replay it.

The first call with a new input signature (shapes and dtypes of the tensors,
non-tensor arguments by value) runs the function eagerly while recording every
primitive op into a :class:`Trace`; later calls with the same signature replay
the recorded steps without running the Python code again. As with
``tf.function``, Python side effects and value-dependent Python branches happen
at trace time only; Variable assignments and random ops are replayed.
"""

from __future__ import annotations

import functools

import numpy as np

from nncli.autodiff.ops import Primitive
from nncli.autodiff.tape import STATE, apply
from nncli.autodiff.tensor import _TRACE_HOOK, Tensor, Variable


class Assign(Primitive):
    """A traced ``Variable.assign*``: replayed for its side effect."""

    stateful = True

    @staticmethod
    def forward(attrs, value):
        var, mode = attrs
        target = var._data
        if mode == "assign":
            target[...] = value
        elif mode == "assign_add":
            np.add(target, value, out=target, casting="same_kind")
        else:
            np.subtract(target, value, out=target, casting="same_kind")
        var._version += 1
        return None, None


def record_assign(var: Variable, value, mode: str) -> None:
    """Called by ``Variable.assign*``: inside a trace, remember the assignment as a step."""
    trace = STATE.trace
    if trace is not None:
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value), dtype=var.dtype)
        trace.add(Assign, (value,), (var, mode), None)


_TRACE_HOOK.append(record_assign)


class Trace:
    """The steps recorded while a Function traces: ``(op, inputs, attrs, out)``."""

    def __init__(self):
        self.steps: list[tuple] = []

    def add(self, op, inputs, attrs, out) -> None:
        self.steps.append((op, inputs, attrs, out))


# -- signatures ----------------------------------------------------------------
def _key(value):
    """Hashable description of one argument: tensors by shape and dtype, the rest by value."""
    if isinstance(value, Variable):
        return ("V", id(value))
    if isinstance(value, Tensor):
        return ("T", value.shape, value.dtype.str)
    if isinstance(value, np.ndarray | np.generic):  # becomes a tensor; float64 arrays as float32
        dtype = np.float32 if value.dtype == np.float64 else value.dtype
        return ("T", np.shape(value), np.dtype(dtype).str)
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _key(v)) for k, v in sorted(value.items())))
    if value is None or isinstance(value, bool | int | float | str):
        return ("P", type(value).__name__, value)
    return ("O", id(value))  # other objects (a model, an optimizer) by identity


def _leaves(value, out):
    """The tensor-like leaves of the arguments, in a fixed order."""
    if isinstance(value, Tensor | np.ndarray | np.generic):
        out.append(value)
    elif isinstance(value, list | tuple):
        for v in value:
            _leaves(v, out)
    elif isinstance(value, dict):
        for k in sorted(value):
            _leaves(value[k], out)
    return out


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


class Graph:
    """One traced signature: the steps to replay and where the outputs come from."""

    def __init__(self, trace: Trace, inputs: list[Tensor], outputs):
        arg_index = {id(t): i for i, t in reversed(list(enumerate(inputs)))}
        self.output_structure = outputs
        out_leaves = [o for o in _flat(outputs) if isinstance(o, Tensor)]

        # Which values depend on the inputs, on Variables or on a stateful op: those are
        # recomputed each call; the rest were computed once at trace time (constants).
        live = set(arg_index)
        for op, ins, attrs, out in trace.steps:
            if op.stateful or any(id(t) in live or type(t) is Variable for t in ins):
                if out is not None:
                    live.add(id(out))
        # Dead code: keep only steps that feed an output or have a side effect.
        wanted = {id(o) for o in out_leaves}
        kept = []
        for step in reversed(trace.steps):
            op, ins, attrs, out = step
            if op.stateful or (out is not None and id(out) in wanted and id(out) in live):
                kept.append(step)
                wanted.update(id(t) for t in ins)
        kept.reverse()
        self.steps = kept
        self.arg_index = arg_index
        self.live = live
        self.trace_tensors = trace  # keeps the traced constants alive while the graph exists

    def run(self, inputs: list[Tensor]):
        values: dict[int, Tensor] = {}
        arg_index, live = self.arg_index, self.live

        def fetch(t):
            i = arg_index.get(id(t))
            if i is not None:
                return inputs[i]
            if id(t) in live:
                return values[id(t)]
            return t  # a Variable (read live) or a constant captured at trace time

        for op, ins, attrs, out in self.steps:
            args = tuple(fetch(t) for t in ins)
            if op is Assign:
                Assign.forward(attrs, args[0]._data)
                continue
            values[id(out)] = apply(op, args, attrs)
        return _rebuild(self.output_structure, fetch)


def _flat(value):
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flat(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _flat(v)
    else:
        yield value


def _rebuild(value, fetch):
    if isinstance(value, Tensor):
        return fetch(value)
    if isinstance(value, list | tuple):
        items = [_rebuild(v, fetch) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _rebuild(v, fetch) for k, v in value.items()}
    return value


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
        self._graphs: dict = {}
        self.trace_count = 0
        functools.update_wrapper(self, fn)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return _BoundFunction(self, obj)

    def __call__(self, *args, **kwargs):
        if STATE.trace is not None:  # called while an outer Function traces: inline it
            return self._fn(*args, **kwargs)
        key = (_key(args), _key(kwargs))
        leaves = [_to_tensor(v) for v in _leaves((args, kwargs), [])]
        graph = self._graphs.get(key)
        if graph is not None:
            return graph.run(leaves)
        call_args, call_kwargs = _substitute((args, kwargs), iter(leaves))
        trace = Trace()
        previous, STATE.trace = STATE.trace, trace
        try:
            outputs = self._fn(*call_args, **call_kwargs)
        finally:
            STATE.trace = previous
        self._graphs[key] = Graph(trace, leaves, outputs)
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
