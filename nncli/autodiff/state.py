"""What every op checks: the tapes that record and the Function being traced.

``STATE.tapes`` lists the GradientTapes whose ``with`` block is open (innermost last);
``STATE.trace`` is the :class:`~nncli.autodiff.compile.trace.Trace` of the ``ad.Function``
being traced, or None. Nothing outside the engine touches them: layers and losses that
must run ops unrecorded use :func:`no_record`.
"""

from __future__ import annotations

import contextlib


class ConcretizationError(TypeError):
    """A traced tensor's value was read in Python while an ``ad.Function`` traced.

    The trace runs the Python function once, on concrete values, to record its graph;
    a value read there (``float(x)``, ``x.numpy()``, ``if x > 0:``) would be frozen into
    every later call, so the engine refuses instead of returning it. The message names
    the line and the op to use (as JAX's concretization error does).
    """


class _State:
    __slots__ = ("tapes", "trace")

    def __init__(self):
        self.tapes: list = []
        self.trace = None


STATE = _State()


class _Suspended:
    """Stands in for a trace inside ``no_record()``: ops run unrecorded. Results computed there from
    traced values (a layer run on zeros reads its live weights) are *tainted*: harmless while only
    their shapes are used, but reading their values, or passing them to a recorded op, would freeze
    them into the graph, so both raise."""

    __slots__ = ("trace",)

    def __init__(self, trace):
        self.trace = trace

    def add(self, op, inputs, attrs, out, saved) -> None:
        trace = self.trace
        if any(trace.is_traced(t) for t in inputs):
            trace.tainted[id(out)] = out

    def is_traced(self, t) -> bool:
        return self.trace.is_traced(t)

    def refuse(self, t, what: str, instead: str):
        return self.trace.refuse(t, what, instead)

    def gradient_rules(self):
        raise ConcretizationError("tape.gradient() under ad.no_record() while an ad.Function traces would "
                                  "compute a gradient the graph cannot replay; call it outside the block")

    def assign(self, var, value, mode) -> None:
        self.trace.refuse(var, f"{mode}() under ad.no_record()",
                          "assign outside the no_record() block, so that every call replays it")


@contextlib.contextmanager
def no_record():
    """Run a block without recording on any tape (nor on a Function being traced).

    For work on values that do not come from the computation being differentiated or
    traced, such as building a layer on a batch of zeros. Inside a trace, an op in the
    block that reads a traced tensor raises: its result would be frozen into the graph.

    Example:
        >>> with ad.no_record():
        ...     y = layer(np.zeros((1, 3), np.float32))   # builds the layer, records nothing
    """
    tapes, trace = STATE.tapes, STATE.trace
    STATE.tapes = []
    STATE.trace = None if trace is None else _Suspended(getattr(trace, "trace", trace))
    try:
        yield
    finally:
        STATE.tapes, STATE.trace = tapes, trace
