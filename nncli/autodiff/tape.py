"""GradientTape: records the ops run on watched values and differentiates them.

The tape is literally a list of the nodes recorded, in execution order, which is
already a topological order of the graph. ``gradient`` makes one forward pass to
find what depends on the sources, then one reversed loop that accumulates
gradients: no recursion, so a 100,000-op chain is fine. Nodes point at their
inputs and output, never the other way round, so dropping the tape frees the
graph without the cycle collector.
"""

from __future__ import annotations

import contextlib

import numpy as np

from nncli.autodiff.tensor import Tensor, Variable


class _State:
    """What every op checks: the tapes that record and the Function being traced."""

    tapes: list[GradientTape] = []
    trace = None  # a function.Trace while an ad.Function traces


STATE = _State


# A recorded op application is a tuple (a class instance costs more per op):
# (op, inputs, out, saved, attrs, versions), where versions lists (variable, version
# seen) for Variable inputs, which can change in place before backward runs.
_new = object.__new__
ndarray = np.ndarray


def apply(op, inputs, attrs=None):
    """Run primitive ``op`` forward on tensors ``inputs`` and record it where needed."""
    n = len(inputs)
    if n == 1:
        data, saved = op.forward(attrs, inputs[0]._data)
    elif n == 2:
        data, saved = op.forward(attrs, inputs[0]._data, inputs[1]._data)
    else:
        data, saved = op.forward(attrs, *[t._data for t in inputs])
    out = _new(Tensor)
    out._data = data if type(data) is ndarray else np.asarray(data)  # ufuncs give scalars for 0-d
    if STATE.tapes:
        _record(op, inputs, out, saved, attrs)
    if STATE.trace is not None:
        STATE.trace.add(op, inputs, attrs, out)
    return out


def _record(op, inputs, out, saved, attrs):
    node = None
    for tape in STATE.tapes:
        if not tape._recording:
            continue
        tracked = tape._tracked
        hit = False
        for t in inputs:
            if id(t) in tracked:
                hit = True
            elif type(t) is Variable and tape._watch_accessed and t.trainable:
                tape._watch_one(t)
                hit = True
        if hit:
            if node is None:
                versions = None
                for t in inputs:
                    if type(t) is Variable:
                        versions = [(t, t._version)] if versions is None else versions + [(t, t._version)]
                node = (op, inputs, out, saved, attrs, versions)
            tape._nodes.append(node)
            tracked.add(id(out))


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
        persistent: allow more than one ``gradient`` call.
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
        self._tracked: set[int] = set()
        self._watched: list[Tensor] = []
        self._recording = False
        self._used = False

    def __enter__(self) -> GradientTape:
        self._recording = True
        STATE.tapes.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._recording = False
        if self in STATE.tapes:
            STATE.tapes.remove(self)

    def _watch_one(self, t: Tensor) -> None:
        if id(t) not in self._tracked:
            self._tracked.add(id(t))
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

    @contextlib.contextmanager
    def stop_recording(self):
        """Run the block without recording on this tape."""
        was = self._recording
        self._recording = False
        try:
            yield
        finally:
            self._recording = was

    def gradient(self, target, sources, unconnected_gradients="none", output_gradients=None):
        """Gradients of ``target`` with respect to ``sources``, in the structure of ``sources``.

        Args:
            target: a tensor; a non-scalar target means the gradient of its sum
                (or of ``sum(target * output_gradients)`` when those are given).
            sources: a tensor, or a list/tuple/dict of them.
            unconnected_gradients: ``"none"`` gives None for a source the target does
                not depend on, ``"zero"`` gives zeros.
            output_gradients: the upstream gradient, of the target's shape.
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
        was_recording = self._recording
        self._recording = False
        try:
            grads = self._backward(target, flat, output_gradients)
        finally:
            self._recording = was_recording
            if not self.persistent:
                self._nodes, self._tracked = [], set()  # free the graph
        results = []
        for s, g in zip(flat, grads):
            if g is None and unconnected_gradients == "zero":
                g = np.zeros(s.shape, dtype=s.dtype)
            if g is not None and not isinstance(g, Tensor):
                g = Tensor._make(g if g.dtype == s.dtype else g.astype(s.dtype))
            results.append(g)
        return _unflatten(sources, iter(results))

    def _backward(self, target, sources, output_gradients):
        from nncli.autodiff import functional as AD
        from nncli.autodiff.ops import NP

        # Record the backward ops too when another tape (higher order) or a trace listens;
        # a trace that compiles first-order gradients itself gets them as one step instead.
        trace = STATE.trace
        graph_mode = any(t._recording for t in STATE.tapes if t is not self) or (
            trace is not None and not getattr(trace, "compiles_gradients", False))
        F = AD if graph_mode else NP

        # Forward pass: which recorded values depend on a watched source.
        source_ids = {id(s) for s in sources if id(s) in self._tracked and s.dtype.kind == "f"}
        needed = set(source_ids)
        relevant = []
        for node in self._nodes:
            needs = [id(t) in needed for t in node[1]]
            if True in needs:
                needed.add(id(node[2]))
                relevant.append((node, needs))
        if id(target) not in needed:
            return [None] * len(sources)

        if output_gradients is None:
            seed = np.ones(target.shape, dtype=target.dtype)
        else:
            seed = np.asarray(output_gradients, dtype=target.dtype)
            if seed.shape != target.shape:
                raise ValueError(f"output_gradients has shape {seed.shape}, the target {target.shape}")
        if trace is not None and not graph_mode:  # see function.Trace.gradient
            return trace.gradient(relevant, target, seed, output_gradients, sources, source_ids)
        grads = {id(target): Tensor(seed, dtype=target.dtype) if graph_mode else seed}
        pop = grads.pop

        for node, needs in reversed(relevant):
            op, inputs, out, saved, attrs, versions = node
            key = id(out)
            g = grads.get(key) if key in source_ids else pop(key, None)
            if g is None:
                continue
            if versions:
                _check_versions(op, versions)
            if graph_mode:
                in_grads = op.backward(F, g, inputs, out, saved, attrs, needs)
            elif len(inputs) == 1:  # the common unary case, without the generic loop
                t = inputs[0]
                gi = op.backward(F, g, [t._data], out._data, saved, attrs, needs)[0]
                if gi is not None:
                    if gi.shape != t._data.shape:
                        gi = F.sum_to(gi, t._data.shape)
                    k = id(t)
                    prev = grads.get(k)
                    grads[k] = gi if prev is None else prev + gi
                continue
            else:
                in_grads = op.backward(F, g, [t._data for t in inputs], out._data, saved, attrs, needs)
            for t, need, gi in zip(inputs, needs, in_grads):
                if not need or gi is None:
                    continue
                if gi.shape != t._data.shape:
                    gi = F.sum_to(gi, t._data.shape)
                k = id(t)
                prev = grads.get(k)
                grads[k] = gi if prev is None else prev + gi
        return [grads.get(id(s)) if id(s) in source_ids else None for s in sources]


def _check_versions(op, versions) -> None:
    for var, version in versions:
        if var._version != version:
            raise RuntimeError(
                f"variable {var.name or ''} of shape {var.shape} was modified in place (assign) "
                f"after {op.__name__} used it and before gradient(); its gradient would be "
                "wrong. Compute the gradient before updating it.")
