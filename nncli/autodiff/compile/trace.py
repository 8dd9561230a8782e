"""Tracing: a Function's Python runs once on concrete values while every op becomes an instruction.

The :class:`Trace` is ``STATE.trace`` while a Function traces. ``apply`` hands it each op,
``Variable.assign*`` each assignment, and a first-order ``tape.gradient`` asks it for its
:class:`TraceRules`, with which the tape's one backward loop computes the gradient values the
Python code goes on with and emits the instructions that recompute them on replay.

Instructions read and write *slots* (indices into one list per replay): the call's inputs
first, then Variables (read live at each call), constants and computed values. A value that
depends on no input, Variable or stateful op is folded into a constant; everything else is
*traced*, and reading a traced value in Python raises :class:`ConcretizationError`.
"""

from __future__ import annotations

import linecache
import os
import sys

import numpy as np

from nncli.autodiff.compile import kernels as K
from nncli.autodiff import ops as P
from nncli.autodiff.ops import Reshape
from nncli.autodiff.state import ConcretizationError
from nncli.autodiff.tape import ArrayRules
from nncli.autodiff.tensor import Tensor, WeakTensor

_ENGINE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # nncli/autodiff


class Ins:
    """One instruction: reads and writes slots; ``make(buffer)`` builds its run closure."""

    __slots__ = ("kind", "reads", "writes", "make", "kernel", "effect", "shape", "dtype", "keep", "alt",
                 "guard", "layout")

    def __init__(self, kind, reads, writes, make, kernel=None, effect=False, shape=None, dtype=None,
                 keep=None, guard=None, layout=None):
        # kind: "kernel" (an ops.Kernel: a buffer unless a view), "forward"/"backward" (the op's own
        # rule: results may share memory with the inputs), "fresh" (results are new arrays)
        self.kind, self.reads, self.writes, self.make, self.kernel = kind, tuple(reads), writes, make, kernel
        self.effect, self.shape, self.dtype, self.keep = effect, shape, dtype, keep
        self.alt = None  # (kernel, make) of a view replacing a Variable-owned copy, when safe
        self.guard = guard  # the traced shape a replay checks (a boolean mask's result)
        # the buffer's axis order, as eager's array had it: a reduction then adds in the same order
        self.layout = layout


def layout(arr: np.ndarray) -> tuple:
    """The order of ``arr``'s axes in memory, outermost first (C order: 0, 1, 2, ...)."""
    return tuple(sorted(range(arr.ndim), key=lambda k: -abs(arr.strides[k])))


class Trace:
    """The instructions and slots recorded while a Function's Python runs once."""

    def __init__(self, name: str):
        self.name = name
        self.shape: list = []
        self.dtype: list = []
        self.const: dict[int, object] = {}
        self.vars: list = []  # (slot, Variable) of the Variables read, not passed
        self.live: set[int] = set()
        self.slot_of: dict[int, int] = {}  # id(tensor) -> slot
        self.holders: list = []  # the tensors whose ids are keys above, alive while tracing
        self.saved_of: dict[int, int] = {}  # id(forward output) -> slot of its forward's ``saved``
        self.ins: list[Ins] = []
        self.weak: list = []
        self.n_args = 0
        self.arg_vars: list = []  # (object slot, argument index) of the Variables passed
        self.objects: dict[int, int] = {}  # id(Variable) -> the slot holding the Variable itself
        self.arg_index: dict[int, int] = {}  # id(Variable passed) -> its argument position
        self.tainted: dict[int, Tensor] = {}  # computed under no_record() from traced values

    # -- slots --------------------------------------------------------------------------
    def new(self, shape, dtype, live=True) -> int:
        self.shape.append(shape)
        self.dtype.append(dtype)
        s = len(self.shape) - 1
        if live:
            self.live.add(s)
        return s

    def constant(self, value) -> int:
        s = self.new(np.shape(value), getattr(value, "dtype", None), live=False)
        self.const[s] = value
        return s

    def slot(self, t) -> int:
        s = self.slot_of.get(id(t))
        if s is None:
            if t._variable:
                s = self.new(t._data.shape, t._data.dtype)
                self.vars.append((s, t))
            else:  # a value fixed at trace time (no input, Variable or stateful op under it)
                s = self.constant(t._data)
            self.slot_of[id(t)] = s
            self.holders.append(t)
        return s

    def bind(self, t, s) -> None:
        """Make slot ``s`` the value of tensor ``t`` (a gradient the Python code received)."""
        self.slot_of[id(t)] = s
        self.holders.append(t)

    def is_traced(self, t) -> bool:
        """Whether ``t``'s value depends on the call (an input, a Variable, a stateful op)."""
        return t._variable or self.slot_of.get(id(t)) in self.live or id(t) in self.tainted

    def argument(self, value) -> Tensor:
        """The tensor the traced code sees for one input leaf (an array becomes a weak tensor)."""
        if isinstance(value, Tensor):
            t = value
        else:
            arr = np.asarray(value).view()
            arr.flags.writeable = False
            t = WeakTensor._make(arr)
            self.weak.append(t)
        s = self.new(t._data.shape, t._data.dtype)
        if t._variable:
            self.arg_index.setdefault(id(t), self.n_args)
        self.slot_of.setdefault(id(t), s)
        self.holders.append(t)
        self.n_args += 1
        return t

    def object_slot(self, var) -> int:
        """The slot holding Variable ``var`` itself (for assignments and version counters)."""
        s = self.objects.get(id(var))
        if s is None:
            i = self.arg_index.get(id(var))
            if i is not None:  # passed in: each replay puts the Variable of that call here
                s = self.new(None, None, live=False)
                self.arg_vars.append((s, i))
            else:  # read by the function, not passed: the same Variable on every call
                s = self.constant(var)
                self.holders.append(var)
            self.objects[id(var)] = s
        return s

    def finish(self) -> None:
        """The tracing call is over: weak tensors the user may keep become plain tensors."""
        for t in self.weak:
            t.__class__ = Tensor
        self.weak = []

    # -- what the engine reports ----------------------------------------------------------
    def add(self, op, inputs, attrs, out, saved) -> None:
        """An op was applied (called by ``apply``)."""
        if self.tainted:
            for t in inputs:
                if id(t) in self.tainted:
                    self.refuse(t, f"{op.__name__} of a value computed under ad.no_record()",
                                "compute it outside the no_record() block, so that it is recorded")
        if inputs and all(t._weak for t in inputs):  # a function of array arguments alone stays weak
            out.__class__ = WeakTensor
            self.weak.append(out)
        if not (op.stateful or any(self.is_traced(t) for t in inputs)):
            return  # folded: its output is read as a constant
        reads = [self.slot(t) for t in inputs]
        y = out._data
        if op is Reshape and y.shape == inputs[0]._data.shape:  # the same array: no step at all
            self.bind(out, reads[0])
            return
        o = self.new(y.shape, y.dtype)
        self.bind(out, o)
        shapes, dtypes = [self.shape[r] for r in reads], [self.dtype[r] for r in reads]
        guard = y.shape if op.shape_follows_values(attrs, dtypes) else None
        kernel = None if op.stateful or guard else op.kernel(attrs, shapes, dtypes)
        if kernel is not None:
            make = K.kernel_make(kernel, reads, o, y.shape, y.dtype, layout(y))
            self.ins.append(Ins("kernel", reads, [o], make, kernel, shape=y.shape, dtype=y.dtype, layout=layout(y)))
            return
        sv = self.new(None, None)
        self.saved_of[id(out)] = sv
        writes = [o, sv]
        bump = tuple(self.object_slot(t) for t in inputs if t._variable) if op.writes_inputs else ()
        make = K.forward_make(op, attrs, reads, writes, bump)
        if guard is not None:
            make = K.guard_make(make, o, guard)
        ins = Ins("forward", reads, writes, make, effect=op.stateful, guard=guard)
        if op.view_of is not None:
            view = op.view_of.kernel(attrs, shapes, dtypes)
            if view is not None:
                ins.alt = (view, K.kernel_make(view, reads, o, y.shape, y.dtype))
        self.ins.append(ins)

    def assign(self, var, value: Tensor, mode: str) -> None:
        """``var.assign*(value)`` ran (called by Variable): replay it."""
        self.slot(var)
        reads = [self.slot(value)]
        make = K.assign_make(self.object_slot(var), reads, mode)
        self.ins.append(Ins("forward", reads, [None, None], make, effect=True))

    def gradient_rules(self) -> TraceRules:
        """The rules a first-order ``tape.gradient`` computes with while this traces."""
        return TraceRules(self)

    def refuse(self, t, what: str, instead: str):
        """Raise :class:`ConcretizationError` for reading ``t``'s value, naming the user's line."""
        where = _user_line()
        raise ConcretizationError(
            f"{what} reads the value of a traced tensor (shape {t.shape}, {t.dtype}) while ad.Function "
            f"traces {self.name}{where}. A Function runs its Python once to record a graph and then replays "
            f"the graph, so a value read here would be frozen into every later call. Instead, {instead}.")

    # -- emitting ---------------------------------------------------------------------------
    def emit_kernel(self, kernel, reads, value, buffer=None) -> int:
        """A kernel step computing ``value`` (its trace-time result); ``buffer``: what it writes,
        when that differs from the value (a reduction's keepdims result)."""
        s = self.new(value.shape, value.dtype)
        buffer = value if buffer is None else buffer
        keep = None if buffer is value else buffer.shape
        make = K.kernel_make(kernel, reads, s, buffer.shape, value.dtype, layout(buffer))
        self.ins.append(Ins("kernel", reads, [s], make, kernel, shape=value.shape, dtype=value.dtype, keep=keep,
                            layout=layout(buffer)))
        return s

    def emit_call(self, fn, reads, shape, dtype) -> int:
        s = self.new(shape, dtype)
        self.ins.append(Ins("fresh", reads, [s], K.call_make(fn, reads, s)))
        return s


def _user_line() -> str:
    """`` (at FILE:LINE: `source`)`` for the innermost frame outside the engine."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_ENGINE):
        frame = frame.f_back
    if frame is None:
        return ""
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(filename, lineno).strip()
    return f" (at {filename}:{lineno}: `{source}`)" if source else f" (at {filename}:{lineno})"


class TraceRules(ArrayRules):
    """The array rules, also emitting each step as instructions of the trace (one per gradient
    kernel, one generic step per node otherwise); gradients are known by their arrays."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.slots: dict[int, int] = {}  # id(gradient array) -> slot
        self.keep: list = []  # those arrays, alive while the loop runs

    def _put(self, value, s):
        self.slots[id(value)] = s
        self.keep.append(value)
        return value

    def seed(self, target, output_gradients):
        value = ArrayRules.seed(target, output_gradients)
        tr = self.trace
        if isinstance(output_gradients, Tensor):
            s = tr.slot(output_gradients)
            if value is not output_gradients._data:
                s = tr.emit_call(_Cast(value.dtype), [s], value.shape, value.dtype)
        else:
            s = tr.constant(value)
        return self._put(value, s)

    def node(self, node, g, needs):
        grads = [None if gi is None else np.asarray(gi) for gi in ArrayRules.node(node, g, needs)]
        op, inputs, out, saved, attrs, _ = node
        tr = self.trace
        gs, xs, y = self.slots[id(g)], [tr.slot(t) for t in inputs], tr.slot(out)
        dtypes = {t._data.dtype for t in inputs} | {out._data.dtype, g.dtype}
        dtype = next(iter(dtypes))
        uniform = saved is None and len(dtypes) == 1 and dtype.kind == "f"
        shapes = [t._data.shape for t in inputs]
        generic = []
        for i, gi in enumerate(grads):
            if not needs[i] or gi is None:
                continue
            spec = op.grad_kernel(attrs, i, shapes, dtype) if uniform else None
            if spec == "g":
                self._put(gi, gs)
            elif spec is not None:
                names = {"g": gs, "y": y}
                reads = [names[r] if isinstance(r, str) else xs[r] for r in spec.reads]
                self._put(gi, tr.emit_kernel(spec, reads, gi))
            else:
                generic.append((i, self._put(gi, tr.new(gi.shape, gi.dtype))))
        if generic:
            sv = tr.saved_of.get(id(out))
            if sv is None:
                sv = tr.constant(saved)
            outs = [(i, self.slots[id(gi)]) for i, gi in generic]
            make = K.backward_make(op, attrs, needs, gs, xs, y, sv, outs)
            tr.ins.append(Ins("backward", [gs, *xs, y, sv], [w for _, w in outs], make))
        return grads

    def sum_to(self, g, shape):
        value = np.asarray(ArrayRules.sum_to(g, shape))
        kernel, keep = K.sum_to(shape, g.shape)
        buffer = value if keep == shape else np.sum(g, axis=P.broadcast_axes(g.shape, shape), keepdims=True)
        return self._put(value, self.trace.emit_kernel(kernel, [self.slots[id(g)]], value, buffer))

    def add(self, prev, g):
        value = np.asarray(prev + g)
        reads = [self.slots[id(prev)], self.slots[id(g)]]
        if prev.dtype == g.dtype == value.dtype and prev.shape == g.shape:
            s = self.trace.emit_kernel(K.ADD, reads, value)
        else:
            s = self.trace.emit_call(np.add, reads, value.shape, value.dtype)
        return self._put(value, s)

    def result(self, source, g):
        t = ArrayRules.result(source, g)
        s = self.slots[id(g)]
        if t._data is not g:  # cast to the source's dtype
            s = self.trace.emit_call(_Cast(t.dtype), [s], t.shape, t.dtype)
        self.trace.bind(t, s)
        return t


class _Cast:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return x.astype(self.dtype)
