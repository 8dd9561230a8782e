"""GradientTape, and :func:`backward`: the one backward loop of the engine.

A tape is literally the list of nodes recorded while it was open, in execution order,
which is already a topological order. :func:`backward` makes one forward pass over it to
find what depends on the sources (none when they are what the tape watches: its tracked set
already says), then one reversed loop that accumulates gradients: no
recursion, so a 100,000-op chain is fine. Nodes point at their inputs and output, never the
other way round, so dropping the tape frees the graph without the cycle collector.

*How* each node's gradients are computed is the caller's choice of rules: on numpy arrays
(:data:`ARRAYS`, first order), on tensors whose ops are themselves recorded (:data:`TENSORS`,
for higher order), or the rules of a Function being traced, which also emit the compiled
instructions (``compile.trace``). All share this loop: same order, same accumulation.

Tape semantics follow TensorFlow's: a persistent tape records its own ``gradient`` while its
block is open (so it differentiates its own gradients), a non-persistent one stops recording
there; ``output_gradients`` are differentiable; re-entering an open tape is an error; no
gradient flows through integer or boolean values.
"""

from __future__ import annotations

import contextlib

import numpy as np

import nncli.autodiff.functional as functional
from nncli.autodiff.ops import NP, sum_to
from nncli.autodiff.state import STATE
from nncli.autodiff.tensor import Tensor
from nncli.autodiff.variable import Variable


class ArrayRules:
    """First-order gradients on numpy arrays (the rules' ``F`` is ``ops.NP``)."""

    @staticmethod
    def seed(target, output_gradients):
        if output_gradients is None:
            return np.ones(target.shape, dtype=target.dtype)
        g = output_gradients._data if isinstance(output_gradients, Tensor) else output_gradients
        return np.asarray(g, dtype=target.dtype)

    @staticmethod
    def node(node, g, needs):
        op, inputs, out, saved, attrs, _ = node
        return op.backward(NP, g, [t._data for t in inputs], out._data, saved, attrs, needs)

    sum_to = staticmethod(sum_to)

    @staticmethod
    def add(prev, g):
        return prev + g

    @staticmethod
    def result(source, g):
        return Tensor._make(g if g.dtype == source.dtype else g.astype(source.dtype))


class TensorRules:
    """Gradients as recorded ops (``F`` is ``nncli.autodiff.functional``): differentiable again."""

    @staticmethod
    def seed(target, output_gradients):
        if output_gradients is None:
            return Tensor._make(np.ones(target.shape, dtype=target.dtype))
        return functional.as_tensor(output_gradients, target.dtype)  # a tensor stays in the graph

    @staticmethod
    def node(node, g, needs):
        op, inputs, out, saved, attrs, _ = node
        return op.backward(functional, g, inputs, out, saved, attrs, needs)

    sum_to = staticmethod(functional.sum_to)
    add = staticmethod(functional.add)

    @staticmethod
    def result(source, g):
        return g if g.dtype == source.dtype else functional.cast(g, source.dtype)


ARRAYS, TENSORS = ArrayRules(), TensorRules()


def backward(nodes, target, sources, output_gradients, rules, watched, complete=None) -> list:
    """Gradients of ``target`` w.r.t. ``sources`` over the recorded ``nodes``, computed by ``rules``.

    Returns one gradient per source (as ``rules.result`` makes it), None where the target does
    not depend on the source. Only float sources among the ``watched`` tensors get gradients.
    Values are keyed by the tensors themselves (never by ``id``, which a freed tensor passes on).
    With :data:`ARRAYS` the loop calls each op's rule itself, on the arrays (the same call
    ``ArrayRules.node`` makes), and one- and two-input nodes are unrolled: this loop is most of
    what an eager op costs.

    ``complete``: the tape's watched tensors. ``watched`` is them and every recorded output, and
    every node was recorded because one of its inputs was in it: so when the sources include
    them all, what depends on the sources is exactly ``watched``, every node is relevant, and
    the forward pass is skipped (the common case: gradient w.r.t. what the tape watches).
    """
    srcs = {s for s in sources if s in watched and s._data.dtype.kind == "f"}
    if complete is not None and len(srcs) >= len(complete) and all(w in srcs for w in complete):
        needed, relevant = watched, nodes
    else:
        needed = set(srcs)
        relevant = []
        mark, keep = needed.add, relevant.append
        for node in nodes:  # forward pass: which recorded values depend on a source
            for t in node[1]:
                if t in needed:
                    mark(node[2])
                    keep(node)
                    break
    if target not in needed:
        return [None] * len(sources)
    seed = rules.seed(target, output_gradients)
    if seed.shape != target.shape:
        raise ValueError(f"output_gradients has shape {seed.shape}, the target {target.shape}")
    grads = {target: seed}
    pop, get = grads.pop, grads.get
    node_grads, reduce, add = rules.node, rules.sum_to, rules.add
    arrays = rules is ARRAYS
    for node in reversed(relevant):
        op, inputs, out, saved, attrs, versions = node
        g = get(out) if out in srcs else pop(out, None)
        if g is None:
            continue
        if versions:
            _check_versions(op, versions)
        n = len(inputs)
        if n == 1:  # a relevant one-input node needs its input's gradient
            t = inputs[0]
            gi = (op.backward(NP, g, (t._data,), out._data, saved, attrs, _NEED1) if arrays
                  else node_grads(node, g, _NEED1))[0]
            if gi is not None:
                shape = t._data.shape
                if gi.shape != shape:  # undo broadcasting, once, here
                    gi = reduce(gi, shape)
                grads[t] = add(grads[t], gi) if t in grads else gi
        elif n == 2:
            a, b = inputs
            needs = (a in needed, b in needed)
            ga, gb = (op.backward(NP, g, (a._data, b._data), out._data, saved, attrs, needs) if arrays
                      else node_grads(node, g, needs))
            if ga is not None and needs[0]:
                shape = a._data.shape
                if ga.shape != shape:
                    ga = reduce(ga, shape)
                grads[a] = add(grads[a], ga) if a in grads else ga
            if gb is not None and needs[1]:
                shape = b._data.shape
                if gb.shape != shape:
                    gb = reduce(gb, shape)
                grads[b] = add(grads[b], gb) if b in grads else gb
        else:
            needs = [t in needed for t in inputs]
            in_grads = (op.backward(NP, g, [t._data for t in inputs], out._data, saved, attrs, needs) if arrays
                        else node_grads(node, g, needs))
            for t, need, gi in zip(inputs, needs, in_grads):
                if not need or gi is None:
                    continue
                shape = t._data.shape
                if gi.shape != shape:
                    gi = reduce(gi, shape)
                grads[t] = add(grads[t], gi) if t in grads else gi
    return [rules.result(s, grads[s]) if s in srcs and s in grads else None for s in sources]


_NEED1 = (True,)


def _check_versions(op, versions) -> None:
    for var, version in versions:
        if var._version != version:
            raise RuntimeError(
                f"variable {var.name or ''} of shape {var.shape} was modified in place (assign) "
                f"after {op.__name__} used it and before gradient(); its gradient would be "
                "wrong. Compute the gradient before updating it.")


def _flatten(structure, out):
    if isinstance(structure, list | tuple):
        for item in structure:
            _flatten(item, out)
    elif isinstance(structure, dict):
        for key in structure:
            _flatten(structure[key], out)
    else:
        out.append(structure)
    return out


def _unflatten(structure, flat):
    if isinstance(structure, list | tuple):
        items = [_unflatten(item, flat) for item in structure]
        return items if isinstance(structure, list) else tuple(items)
    if isinstance(structure, dict):
        return {key: _unflatten(structure[key], flat) for key in structure}
    return next(flat)


class GradientTape:
    """Record operations so that gradients can be taken with respect to watched values.

    Args:
        persistent: allow more than one ``gradient`` call; while its block is open, such a tape
            also records its own gradient computations (differentiate them with it again).
        watch_accessed_variables: watch every trainable Variable an op reads.

    Example:
        >>> a = ad.Variable(2.0); b = ad.Variable(3.0)
        >>> with ad.GradientTape() as tape:
        ...     c = a * b
        >>> [float(g) for g in tape.gradient(c, [a, b])]
        [3.0, 2.0]
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self.persistent = persistent
        self._watch_accessed = watch_accessed_variables
        self._nodes: list[tuple] = []
        self._tracked: set[Tensor] = set()  # watched values and what depends on them
        self._watched: list[Tensor] = []
        self._recording = False
        self._used = False

    def __enter__(self) -> GradientTape:
        if self._recording:
            raise ValueError("this GradientTape is already recording: its with block is still open "
                             "(a tape cannot be re-entered inside its own block)")
        self._recording = True
        STATE.tapes.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        self._recording = False
        if self in STATE.tapes:
            STATE.tapes.remove(self)

    def _watch_one(self, t: Tensor) -> None:
        if t not in self._tracked:
            self._tracked.add(t)
            self._watched.append(t)

    def watch(self, tensors) -> None:
        """Record operations on ``tensors`` (a tensor or a nested list of them) from now on."""
        for t in _flatten(tensors, []):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch takes tensors, not {type(t).__name__}")
            self._watch_one(t)

    def watched_variables(self) -> list[Variable]:
        """The Variables this tape watches, in the order first watched."""
        return [t for t in self._watched if isinstance(t, Variable)]

    def reset(self) -> None:
        """Forget everything recorded so far (the tape keeps recording if its block is open)."""
        self._nodes, self._tracked, self._watched, self._used = [], set(), [], False

    @contextlib.contextmanager
    def stop_recording(self):
        """Run the block without recording on this tape (it must be recording)."""
        if not self._recording:
            raise ValueError("stop_recording() needs a tape that is recording (inside its with block)")
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def gradient(self, target, sources, unconnected_gradients="none", output_gradients=None):
        """Gradients of ``target`` with respect to ``sources``, in the structure of ``sources``.

        Args:
            target: a tensor; a non-scalar target means the gradient of its sum
                (or of ``sum(target * output_gradients)`` when those are given).
            sources: a tensor, or a list/tuple/dict of them.
            unconnected_gradients: ``"none"`` gives None for a source the target does
                not depend on, ``"zero"`` gives zeros.
            output_gradients: the upstream gradient, of the target's shape (differentiable).
        """
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero', not {unconnected_gradients!r}")
        if self._used and not self.persistent:
            raise RuntimeError(
                "gradient() was already called on this non-persistent GradientTape; "
                "create it with GradientTape(persistent=True) to call gradient() more than once")
        if not isinstance(target, Tensor):
            raise TypeError(f"the target must be a tensor, not {type(target).__name__}")
        flat = _flatten(sources, [])
        for s in flat:
            if not isinstance(s, Tensor):
                raise TypeError(f"sources must be tensors, not {type(s).__name__}")
        self._used = True
        own = self._recording and self.persistent  # records its own gradient ops (TensorFlow's rule)
        if self._recording and not self.persistent:
            self._stop()  # as TensorFlow: a non-persistent tape stops recording at its gradient
        if own or any(t._recording for t in STATE.tapes if t is not self):
            rules = TENSORS
        elif STATE.trace is not None:
            rules = STATE.trace.gradient_rules()
        else:
            rules = ARRAYS
        nodes = list(self._nodes) if own else self._nodes
        try:
            grads = backward(nodes, target, flat, output_gradients, rules, self._tracked, self._watched)
        finally:
            if not self.persistent:
                self._nodes, self._tracked = [], set()  # free the graph
        results = [functional.as_tensor(np.zeros(s.shape, dtype=s.dtype), s.dtype) if g is None and
                   unconnected_gradients == "zero" else g for s, g in zip(flat, grads)]
        return _unflatten(sources, iter(results))
