"""A traced Function compiled: dead code removed, buffers planned, a flat list of closures to replay.

From the trace's instructions (``compile.trace``) a :class:`Program`

* removes the instructions no output, side effect or shape check needs;
* lets a copying view of a Variable be a real view when no side effect can change the
  Variable before the view's last use;
* gives buffer-writing kernels preallocated buffers, reused once their value is dead, and
  written in place over an input that dies at that step (``x @ W + b`` then ``relu`` share one);
* notes the shape checks (boolean masks) and whether they all come before the side effects,
  so that a failed check can stop a replay with nothing done.

Buffers live as long as the Program and are overwritten by the next call, so a returned value
is always a fresh array (or a copy) and never a buffer.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.compile.kernels import empty as _empty
from nncli.autodiff.tensor import Tensor

INF = 1 << 62


class Program:
    """A trace compiled to closures over array slots.

    Slots ``0..n_args-1`` hold the call's input arrays, then come the Variables (their live
    arrays, read at each call), constants and computed values.
    """

    def __init__(self, trace, outputs):
        self._shape, self._dtype, self._n_args = trace.shape, trace.dtype, trace.n_args
        self._vars, self._arg_vars = trace.vars, trace.arg_vars
        self._out_spec = _spec(outputs, trace.slot_of, trace.live, trace.n_args)
        out_slots = {leaf[1] for leaf in _leaves(self._out_spec) if leaf[0] == "slot"}
        kept = self._dead_code(trace.ins, out_slots)
        last, readers, effects = self._uses(kept, out_slots)
        for k, ins in enumerate(kept):
            if ins.alt is not None:
                self._maybe_view(k, ins, last, readers, effects)
        guards = [k for k, ins in enumerate(kept) if ins.guard is not None]
        # a shape check after a side effect could not stop the replay with nothing done
        self.eager_only = bool(guards and effects and effects[0] < guards[-1])
        self._plan_list = self._plan(kept, last)
        self.n_instructions = len(kept)
        self._runs = None
        self._template = [trace.const.get(i) for i in range(len(self._shape))]

    # -- passes ---------------------------------------------------------------------------
    @staticmethod
    def _dead_code(instructions, out_slots):
        needed = set(out_slots)
        kept = []
        for ins in reversed(instructions):
            if ins.effect or ins.guard is not None or any(w in needed for w in ins.writes if w is not None):
                if ins.kind == "forward":  # skip storing an output or ``saved`` nobody reads
                    ins.writes[:] = [w if w in needed or (ins.guard is not None and i == 0) else None
                                     for i, w in enumerate(ins.writes)]
                kept.append(ins)
                needed.update(ins.reads)
        kept.reverse()
        return kept

    @staticmethod
    def _uses(kept, out_slots):
        last, readers, effects = {}, {}, []
        for k, ins in enumerate(kept):
            for r in ins.reads:
                last[r] = k
                readers.setdefault(r, []).append(ins)
            if ins.effect:
                effects.append(k)
        for s in out_slots:
            last[s] = INF
        return last, readers, effects

    @staticmethod
    def _maybe_view(k, ins, last, readers, effects):
        """A Variable-owned copy becomes a view when nothing can change the Variable (no side
        effect) before the copy's last use, and no reader passes it on."""
        o, saved = ins.writes
        end = last.get(o, k)
        if saved is not None or end == INF or ins.guard is not None:
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
        index or None) pairs; the buffers are made at the first run."""
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
            key = (ins.keep if ins.keep is not None else ins.shape, np.dtype(ins.dtype), ins.layout)
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

    def _build(self):
        bufs = [_empty(shape, dtype, order) for shape, dtype, order in self._buffer_keys]
        self._runs = [ins.make(None if b is None else bufs[b]) for ins, b in self._plan_list]
        del self._plan_list

    @property
    def n_buffers(self) -> int:
        """How many preallocated buffers the replay uses."""
        return len(self._buffer_keys)

    # -- running ----------------------------------------------------------------------------
    def run(self, arrays, leaves, arg_tensor):
        """Replay on the input ``arrays`` (of the argument ``leaves``); ``arg_tensor(i)`` is input
        ``i`` as a tensor (if returned).

        Raises ``kernels.ShapeChanged`` when a shape check fails (before any side effect)."""
        if self._runs is None:
            self._build()
        S = self._template.copy()
        S[:self._n_args] = arrays
        for s, var in self._vars:
            S[s] = var._data
        for s, i in self._arg_vars:
            S[s] = leaves[i]
        for run in self._runs:
            run(S)
        spec = self._out_spec
        if spec[0] == "slot":  # one tensor returned: the common case, without the recursion
            s = spec[1]
            return Tensor._make(np.array(S[s]) if s in self._copy else S[s])
        return _rebuild(spec, S, self._copy, arg_tensor)


def _spec(value, slot_of, live, n_args):
    """The output structure with each tensor replaced by where its value comes from."""
    if isinstance(value, Tensor):
        s = slot_of.get(id(value))
        if s is not None and s < n_args:
            return ("arg", s)  # an input returned as it came (a Variable passed in: that one)
        if value._variable:
            return ("obj", value)  # the Variable itself, as eager returns it
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
