"""The tape side of recording an op: which open tapes keep the node, and what they watch.

A recorded op application is a tuple ``(op, inputs, out, saved, attrs, versions)`` (a class
instance costs more per op), where ``versions`` lists ``(variable, version seen)`` for the
Variable inputs, which may change in place before backward runs. A tape keeps a node when
one of its inputs is watched or depends on a watched value; the node's output then depends
on it too. Only float results are tracked: no gradient flows through an integer or boolean
value (as with TensorFlow's tape), and ops without a gradient are never recorded.

Tapes hold the tensors themselves (never ``id``s, which a freed tensor passes on). ``apply``
applies this rule itself in the common case (one tape, one or two inputs, no Variable among
them), where a call here would be a good part of what an op costs.
"""

from __future__ import annotations

from nncli.autodiff.state import STATE


def record(tapes, op, inputs, out, saved, attrs) -> None:
    """Append the node to every recording tape of ``tapes`` that watches one of ``inputs``
    (``apply`` has checked that the op is differentiable and ``out`` is float)."""
    node = None
    for tape in tapes:
        if not tape._recording:
            continue
        tracked = tape._tracked  # the tensors themselves: no id() per check
        hit = False
        for t in inputs:
            if t in tracked:
                hit = True
            elif t._variable and tape._watch_accessed and t.trainable and t._data.dtype.kind == "f":
                tape._watch_one(t)
                hit = True
        if hit:
            if node is None:
                versions = None
                for t in inputs:
                    if t._variable:
                        versions = [(t, t._version)] if versions is None else versions + [(t, t._version)]
                node = (op, inputs, out, saved, attrs, versions)
            tape._nodes.append(node)
            tracked.add(out)
