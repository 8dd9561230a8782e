"""The compiled form of a traced Function: a flat list of steps over numpy arrays.

A trace (function.Trace) holds every primitive applied while the Python function
ran, in order, and one :class:`GradientRegion` per first-order ``tape.gradient``
call. :class:`Program` turns that into instructions that read and write a list of
array slots (indices fixed at compile time): no Tensor objects, no tape, no dict
lookups per op. On the way it

* folds steps that depend on no input, Variable or stateful op into constants;
* expands each gradient region into backward instructions (the tape's own loop,
  unrolled: same rules, same accumulation order, broadcasting undone with
  reductions whose axes are known at compile time), and removes dead code;
* gives buffer-writing kernels (kernels.py) preallocated output buffers, reused
  once their value is dead and written in place over an input that dies at that
  step (``x @ W + b`` then ``relu`` share one buffer);
* lets a copying view of a Variable (``ops.OWNED``) be a real view when no
  stateful step can change the Variable before the view's last use.

Buffers live as long as the Program and are overwritten by the next call, so a
returned value is always a fresh array (or a copy) and never a buffer.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff import kernels as K
from nncli.autodiff.ops import NP
from nncli.autodiff.tape import _check_versions
from nncli.autodiff.tensor import Tensor, Variable

INF = 1 << 62


class GradientRegion:
    """One first-order ``tape.gradient`` recorded in a trace (see :func:`record_gradient`)."""

    def __init__(self, target, seed, steps, sources, source_ids, results):
        self.target, self.seed, self.steps = target, seed, steps
        self.sources, self.source_ids, self.results = sources, source_ids, results


def record_gradient(trace, relevant, target, seed, output_gradients, sources, source_ids):
    """The tape's backward loop on arrays (as ``GradientTape._backward`` runs it with ``NP``),
    also remembering which gradients each node produced and their shapes; returns tensors."""
    grads = {id(target): seed}
    steps = []
    for node, needs in reversed(relevant):
        op, inputs, out, saved, attrs, versions = node
        key = id(out)
        g = grads.get(key) if key in source_ids else grads.pop(key, None)
        if g is None:
            continue
        if versions:
            _check_versions(op, versions)
        in_grads = op.backward(NP, g, [t._data for t in inputs], out._data, saved, attrs, needs)
        made = []
        for i, (t, need, gi) in enumerate(zip(inputs, needs, in_grads)):
            if not need or gi is None:
                continue
            made.append((i, np.shape(gi), np.result_type(gi)))
            if gi.shape != t._data.shape:
                gi = NP.sum_to(gi, t._data.shape)
            prev = grads.get(id(t))
            grads[id(t)] = gi if prev is None else prev + gi
        steps.append((node, needs, made))
    results = []
    for s in sources:
        g = grads.get(id(s)) if id(s) in source_ids else None
        results.append(None if g is None else Tensor._make(g if g.dtype == s.dtype else g.astype(s.dtype)))
    seed_value = output_gradients if isinstance(output_gradients, Tensor) else seed
    trace.steps.append(GradientRegion(target, seed_value, steps, list(sources), set(source_ids), results))
    return results


class _Ins:
    """One instruction: reads and writes slots; ``make(buffer)`` builds its run function."""

    __slots__ = ("kind", "reads", "writes", "effect", "kernel", "make", "shape", "dtype", "alt", "keep")

    def __init__(self, kind, reads, writes, make, kernel=None, effect=False, shape=None, dtype=None,
                 keep=None):
        # kind: "kernel" (kernels.py; a buffer unless a view), "forward"/"backward" (the op's own
        # rule: results may share memory with the inputs), "fresh" (results are new arrays)
        self.kind, self.reads, self.writes, self.make, self.kernel = kind, tuple(reads), writes, make, kernel
        self.effect, self.shape, self.dtype = effect, shape, dtype
        self.keep = keep  # the buffer shape when it differs from the result's (a reduction)
        self.alt = None  # (kernel, make) of a view replacing an OWNED copy, when safe


def _add_kernel():
    return K.Kernel(np.add, (0, 1), ufunc=True, inplace=(0, 1))


class Program:
    """A trace compiled to instructions over array slots.

    Slots ``0..len(inputs)-1`` hold the call's input arrays, then come the Variables
    (their live arrays, read at each call), constants and computed values.
    """

    def __init__(self, trace, inputs, outputs):
        self._slot_of: dict[int, int] = {}  # id(tensor) -> slot
        self._holders: list = []  # the tensors whose ids are keys above, alive while compiling
        self._shape: list = []
        self._dtype: list = []
        self._const: dict[int, object] = {}
        self._vars: list[tuple[int, Variable]] = []
        self._live: set[int] = set()
        self._saved_of: dict[int, int] = {}  # id(forward output) -> slot of its forward's ``saved``
        self._ins: list[_Ins] = []
        for t in inputs:
            s = self._new(t._data.shape, t._data.dtype, live=True)
            self._slot_of.setdefault(id(t), s)
        self._n_args = len(inputs)
        self._holders.extend(inputs)
        for step in trace.steps:
            if type(step) is GradientRegion:
                self._gradient(step)
            else:
                self._forward(*step)
        self._out_spec = _spec(outputs, self._slot_of, self._live, len(inputs))
        out_slots = {leaf[1] for leaf in _leaves(self._out_spec) if leaf[0] == "slot"}
        self._finish(out_slots)
        self.n_instructions = len(self._plan_list)
        del self._slot_of, self._holders, self._ins, self._saved_of, self._live

    # -- building -------------------------------------------------------------------
    def _new(self, shape, dtype, live=False) -> int:
        self._shape.append(shape)
        self._dtype.append(dtype)
        s = len(self._shape) - 1
        if live:
            self._live.add(s)
        return s

    def _constant(self, value) -> int:
        s = self._new(np.shape(value), getattr(value, "dtype", None))
        self._const[s] = value
        return s

    def _slot(self, t) -> int:
        s = self._slot_of.get(id(t))
        if s is None:
            if isinstance(t, Variable):
                s = self._new(t._data.shape, t._data.dtype, live=True)
                self._vars.append((s, t))
            else:  # a value fixed at trace time (no input, Variable or stateful op under it)
                s = self._constant(t._data)
            self._slot_of[id(t)] = s
            self._holders.append(t)
        return s

    def _is_live(self, t) -> bool:
        return isinstance(t, Variable) or self._slot_of.get(id(t)) in self._live

    def _forward(self, op, inputs, attrs, out):
        if not (op.stateful or any(self._is_live(t) for t in inputs)):
            return  # folded: its output is read as a constant
        reads = [self._slot(t) for t in inputs]
        if out is None:  # an Assign: only the side effect
            self._ins.append(_Ins("forward", reads, [None, None], K.forward_make(op, attrs, reads, [None, None]),
                                  effect=True))
            return
        y = out._data
        o = self._new(y.shape, y.dtype, live=True)
        self._slot_of[id(out)] = o
        self._holders.append(out)
        shapes, dtypes = [self._shape[r] for r in reads], [self._dtype[r] for r in reads]
        kernel = None if op.stateful else K.forward(op, attrs, shapes, dtypes)
        if kernel is not None:
            make = K.kernel_make(kernel, reads, o, y.shape, y.dtype)
            self._ins.append(_Ins("kernel", reads, [o], make, kernel, shape=y.shape, dtype=y.dtype))
            return
        saved = self._new(None, None, live=True)
        self._saved_of[id(out)] = saved
        writes = [o, saved]
        ins = _Ins("forward", reads, writes, K.forward_make(op, attrs, reads, writes), effect=op.stateful)
        view_op = K.view_of(op)
        if view_op is not None:
            view = K.forward(view_op, attrs, shapes, dtypes)
            ins.alt = (view, K.kernel_make(view, reads, o, y.shape, y.dtype))
        self._ins.append(ins)

    def _gradient(self, region: GradientRegion):
        seed = region.seed
        gslot = {id(region.target): self._slot(seed) if isinstance(seed, Tensor) else self._constant(seed)}
        for node, needs, made in region.steps:
            op, inputs, out, saved, attrs, _ = node
            key = id(out)
            g = gslot[key] if key in region.source_ids else gslot.pop(key)
            xs = [self._slot(t) for t in inputs]
            y = self._slot(out)
            x_shapes = [t._data.shape for t in inputs]
            dtypes = [t._data.dtype for t in inputs] + [out._data.dtype, self._dtype[g]]
            rule_op = K.view_of(op) or op
            contribs, generic = [], []
            for i, shape, dtype in made:
                spec = K.backward(rule_op, attrs, i, x_shapes, dtypes) if saved is None else None
                if spec == "g":
                    contribs.append((i, g))
                    continue
                c = self._new(shape, dtype, live=True)
                contribs.append((i, c))
                if spec is None:
                    generic.append((i, c))
                    continue
                names = {"g": g, "y": y}
                reads = [names[r] if isinstance(r, str) else xs[r] for r in spec.reads]
                make = K.kernel_make(spec, reads, c, shape, dtype)
                self._ins.append(_Ins("kernel", reads, [c], make, spec, shape=shape, dtype=dtype))
            if generic:
                sv = self._saved_of.get(key)
                if sv is None:
                    sv = self._constant(saved)
                make = K.backward_make(op, attrs, needs, g, xs, y, sv, generic)
                self._ins.append(_Ins("backward", [g, *xs, y, sv], [w for _, w in generic], make))
            for i, c in contribs:
                t = inputs[i]
                c = self._reduce(c, t._data.shape)
                prev = gslot.get(id(t))
                if prev is None:
                    gslot[id(t)] = c
                    continue
                shape, dtype = self._shape[c], np.result_type(self._dtype[prev], self._dtype[c])
                s = self._new(shape, dtype, live=True)
                kernel = _add_kernel()
                self._ins.append(_Ins("kernel", [prev, c], [s], K.kernel_make(kernel, [prev, c], s, shape, dtype),
                                      kernel, shape=shape, dtype=dtype))
                gslot[id(t)] = s
        for source, result in zip(region.sources, region.results):
            if result is None:
                continue
            s = gslot[id(source)]
            if self._dtype[s] != result.dtype:
                s = self._cast(s, result.dtype)
            self._slot_of[id(result)] = s
            self._holders.append(result)

    def _reduce(self, c, shape) -> int:
        """Slot of ``c`` summed down to ``shape`` (undoing broadcasting), or ``c`` itself."""
        if self._shape[c] == shape:
            return c
        kernel, keep = K.sum_to(shape, self._shape[c])
        dtype = self._dtype[c]
        r = self._new(shape, dtype, live=True)
        self._ins.append(_Ins("kernel", [c], [r], K.kernel_make(kernel, [c], r, keep, dtype), kernel,
                              shape=shape, dtype=dtype, keep=keep))
        return r

    def _cast(self, s, dtype) -> int:
        r = self._new(self._shape[s], dtype, live=True)

        def make(_):
            def run(S): S[r] = S[s].astype(dtype)
            return run
        self._ins.append(_Ins("fresh", [s], [r], make))
        return r

    # -- finishing: dead code, views, buffers -------------------------------------------
    def _finish(self, out_slots):
        needed = set(out_slots)
        kept = []
        for ins in reversed(self._ins):
            if ins.effect or any(w in needed for w in ins.writes if w is not None):
                if ins.kind == "forward":  # skip storing an output or ``saved`` nobody reads
                    ins.writes[:] = [w if w in needed else None for w in ins.writes]
                kept.append(ins)
                needed.update(ins.reads)
        kept.reverse()
        last, readers, effects = {}, {}, []
        for k, ins in enumerate(kept):
            for r in ins.reads:
                last[r] = k
                readers.setdefault(r, []).append(ins)
            if ins.effect:
                effects.append(k)
        for s in out_slots:
            last[s] = INF
        for k, ins in enumerate(kept):
            if ins.alt is not None:
                self._maybe_view(k, ins, last, readers, effects)
        self._plan_list = self._plan(kept, last)
        self._runs = None
        self._template = [self._const.get(i) for i in range(len(self._shape))]

    @staticmethod
    def _maybe_view(k, ins, last, readers, effects):
        """An OWNED copy of a Variable becomes a view when nothing can change the Variable
        (no stateful step) before the copy's last use, and no reader passes it on."""
        o, saved = ins.writes
        end = last.get(o, k)
        if saved is not None or end == INF:
            return
        if any(r.kind != "kernel" or r.kernel.view for r in readers.get(o, ())):
            return
        if any(k < e <= end for e in effects):
            return
        ins.kernel, ins.make = ins.alt
        ins.kind, ins.writes = "kernel", [o]

    def _plan(self, kept, last):
        """Choose each buffered instruction's output buffer: an input dying here (in place), a
        dead buffer of the same shape and dtype, or a new one. Returns (instruction, buffer
        index or None) pairs; the buffers are made at the first run, once the trace is freed."""
        keys: list[tuple] = []  # per buffer: (shape, dtype)
        busy: list[int] = []  # per buffer: the last instruction reading a value in it
        pool: dict[tuple, list[int]] = {}
        roots: dict[int, tuple] = {}  # slot -> buffers its array may share memory with
        exact: dict[int, int] = {}  # slot -> the buffer it is
        plan = []
        for k, ins in enumerate(kept):
            if ins.kind != "kernel" or ins.kernel.view:
                shared = () if ins.kind == "fresh" else tuple({b for r in ins.reads for b in roots.get(r, ())})
                for w in ins.writes:
                    if w is not None:
                        roots[w] = shared
                        for b in shared:
                            busy[b] = max(busy[b], last.get(w, k))
                plan.append((ins, None))
                continue
            (w,) = ins.writes
            end = last.get(w, k)
            if end == INF:  # returned: a fresh array each call
                roots[w] = ()
                plan.append((ins, None))
                continue
            key = (ins.keep if ins.keep is not None else ins.shape, np.dtype(ins.dtype))
            b = self._pick(k, ins, key, keys, busy, pool, roots, exact)
            if b is None:
                b = len(keys)
                keys.append(key)
                busy.append(end)
                pool.setdefault(key, []).append(b)
            busy[b] = end
            roots[w] = (b,)
            if ins.keep is None or ins.keep == ins.shape:
                exact[w] = b
            plan.append((ins, b))
        self._copy = {s for s, r in roots.items() if r}
        self._buffer_keys = keys
        return plan

    def _build(self):
        bufs = [np.empty(shape, dtype) for shape, dtype in self._buffer_keys]
        self._runs = [ins.make(None if b is None else bufs[b]) for ins, b in self._plan_list]
        del self._plan_list

    @property
    def n_buffers(self) -> int:
        """How many preallocated buffers the replay uses."""
        return len(self._buffer_keys)

    @staticmethod
    def _pick(k, ins, key, keys, busy, pool, roots, exact):
        inplace = ins.kernel.inplace
        others = [r for p, r in enumerate(ins.reads) if p not in inplace]
        for p in inplace:
            b = exact.get(ins.reads[p])
            if b is None or busy[b] > k or keys[b] != key:
                continue
            if all(b not in roots.get(q, ()) for q in others):
                return b
        for b in pool.get(key, ()):
            if busy[b] < k:
                return b
        return None

    # -- running ------------------------------------------------------------------------
    def run(self, arrays, arg_tensor):
        """Replay on the input ``arrays``; ``arg_tensor(i)`` is input ``i`` as a tensor (if returned)."""
        if self._runs is None:
            self._build()
        S = self._template.copy()
        S[:self._n_args] = arrays
        for s, var in self._vars:
            S[s] = var._data
        for run in self._runs:
            run(S)
        spec = self._out_spec
        if spec[0] == "slot":  # one tensor returned: the common case, without the recursion
            s = spec[1]
            return Tensor._make(np.array(S[s]) if s in self._copy else S[s])
        return _rebuild(spec, S, self._copy, arg_tensor)


def _spec(value, slot_of, live, n_args):
    """The output structure with each tensor replaced by where its value comes from."""
    if isinstance(value, Variable):
        return ("obj", value)  # the Variable itself, as eager returns it
    if isinstance(value, Tensor):
        s = slot_of.get(id(value))
        if s is not None and s < n_args:
            return ("arg", s)
        return ("slot", s) if s is not None and s in live else ("obj", value)
    if isinstance(value, list | tuple):
        items = [_spec(v, slot_of, live, n_args) for v in value]
        return ("list" if isinstance(value, list) else "tuple", items)
    if isinstance(value, dict):
        return ("dict", {k: _spec(v, slot_of, live, n_args) for k, v in value.items()})
    return ("obj", value)


def _leaves(spec):
    kind, body = spec
    if kind in ("list", "tuple"):
        for item in body:
            yield from _leaves(item)
    elif kind == "dict":
        for item in body.values():
            yield from _leaves(item)
    else:
        yield spec


def _rebuild(spec, S, copy, arg_tensor):
    kind, body = spec
    if kind == "slot":
        return Tensor._make(np.array(S[body]) if body in copy else S[body])
    if kind == "arg":
        return arg_tensor(body)
    if kind == "obj":
        return body
    if kind == "dict":
        return {k: _rebuild(v, S, copy, arg_tensor) for k, v in body.items()}
    items = [_rebuild(v, S, copy, arg_tensor) for v in body]
    return items if kind == "list" else tuple(items)
