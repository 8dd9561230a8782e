"""Generic builders of a compiled program's steps: one closure ``run(S)`` per instruction.

``S`` is the slot list of one replay; each closure has its slot indices and its output
buffer bound when it is made, so a replay step costs one Python call plus its numpy calls.
What a step computes comes from the op (its ``kernel``/``grad_kernel``, an ``ops.Kernel``,
or its own ``forward``/``backward``); nothing here knows a particular op.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops import NP, Kernel
from nncli.autodiff.ops.base import broadcast_axes

ndarray = np.ndarray
asarray = np.asarray


def sum_to(shape, g_shape) -> tuple[Kernel, tuple]:
    """The kernel summing a ``g_shape`` gradient down to ``shape`` as ``ops.sum_to`` does
    (``np.sum`` is ``np.add.reduce``), and the shape of the buffer it fills (keepdims)."""
    axes = broadcast_axes(g_shape, shape)
    lead = len(g_shape) - len(shape)
    reduce = np.add.reduce
    if len(axes) == lead:  # only leading axes (a bias): straight into ``shape``
        return Kernel(lambda out, g: reduce(g, axes, None, out), (0,)), shape
    keep = tuple(1 if k in axes else n for k, n in enumerate(g_shape))

    def fn(out, g):
        out = reduce(g, axes, None, out, True)
        return out.reshape(shape) if lead else out

    return Kernel(fn, (0,)), keep


def empty(shape, dtype, order=None) -> np.ndarray:
    """A new array of ``shape`` whose axes lie in memory in ``order`` (outermost first; None: C)."""
    if order is None or order == tuple(range(len(shape))):
        return np.empty(shape, dtype)
    return np.empty([shape[k] for k in order], dtype).transpose(np.argsort(order))


ADD = Kernel(np.add, (0, 1), ufunc=True, inplace=(0, 1))


def _ufunc_run(fn, reads, o, out, scalar):
    """``fn(*arrays[, out=out])`` for a numpy ufunc (0-d results made arrays when fresh)."""
    if len(reads) == 1:
        (a,) = reads
        if out is not None:
            def run(S): S[o] = fn(S[a], out=out)
        elif scalar:
            def run(S): S[o] = asarray(fn(S[a]))
        else:
            def run(S): S[o] = fn(S[a])
        return run
    a, b = reads
    if out is not None:
        def run(S): S[o] = fn(S[a], S[b], out=out)
    elif scalar:
        def run(S): S[o] = asarray(fn(S[a], S[b]))
    else:
        def run(S): S[o] = fn(S[a], S[b])
    return run


def _fn_run(fn, reads, o, out, fresh):
    """``fn(out, *arrays)`` for a kernel function; ``fresh`` (shape, dtype, layout): a new ``out``
    per call, laid out as eager's result was."""
    if out is None:
        shape, dtype, order = fresh
        def run(S): S[o] = fn(empty(shape, dtype, order), *[S[i] for i in reads])
    elif len(reads) == 1:
        (a,) = reads
        def run(S): S[o] = fn(out, S[a])
    elif len(reads) == 2:
        a, b = reads
        def run(S): S[o] = fn(out, S[a], S[b])
    else:
        def run(S): S[o] = fn(out, *[S[i] for i in reads])
    return run


def _fresh(maker, reads, o, shape, dtype, order):
    """A closure-built kernel whose result is returned: a new buffer (and closure) per call."""
    def run(S): maker(reads, o, empty(shape, dtype, order))(S)
    return run


def kernel_make(kernel: Kernel, reads, o, shape, dtype, order=None):
    """``make(buffer) -> run`` for a kernel step reading slots ``reads`` into slot ``o``."""
    if kernel.view:
        fn, (a,) = kernel.fn, reads

        def view(_):
            def run(S): S[o] = fn(S[a])
            return run
        return view
    if kernel.ufunc:
        return lambda out: _ufunc_run(kernel.fn, reads, o, out, shape == ())
    if kernel.run is not None:
        return lambda out: kernel.run(reads, o, out) if out is not None else _fresh(kernel.run, reads, o, shape,
                                                                                     dtype, order)
    return lambda out: _fn_run(kernel.fn, reads, o, out, (shape, dtype, order))


def forward_make(op, attrs, reads, writes, bump=()):
    """Run ``op.forward`` itself; ``writes`` is [out slot or None, saved slot or None];
    ``bump``: slots of the Variables it updates in place (their versions move on, as eagerly)."""
    fwd = op.forward

    def make(_):
        o, s = writes

        def run(S):
            y, saved = fwd(attrs, *[S[i] for i in reads])
            if o is not None:
                S[o] = y if type(y) is ndarray else asarray(y)
            if s is not None:
                S[s] = saved
            for v in bump:
                S[v]._version += 1
        return run
    return make


def backward_make(op, attrs, needs, g, xs, y, saved, outs):
    """Run ``op.backward(NP, ...)`` itself; ``outs`` pairs an input position with its slot."""
    bwd = op.backward

    def make(_):
        def run(S):
            grads = bwd(NP, S[g], [S[i] for i in xs], S[y], S[saved], attrs, needs)
            for i, w in outs:
                gi = grads[i]
                if gi is None:
                    raise RuntimeError(f"{op.__name__}.backward gave no gradient for input {i} on replay, "
                                       "though it did while tracing")
                S[w] = gi if type(gi) is ndarray else asarray(gi)
        return run
    return make


def call_make(fn, reads, o):
    """``S[o] = fn(*arrays)`` with a fresh result (casts, additions of mixed dtypes)."""
    def make(_):
        def run(S): S[o] = asarray(fn(*[S[i] for i in reads]))
        return run
    return make


def assign_make(var, reads, mode):
    """A traced ``Variable.assign*`` (``var``: the slot holding the Variable): replayed for its effect."""
    (a,) = reads

    def make(_):
        def run(S): S[var]._write(S[a], mode)
        return run
    return make


class ShapeChanged(Exception):
    """A value whose shape depends on values (a boolean mask's count) came out another shape
    on replay than when traced: the Function traces again."""


def guard_make(make, o, shape):
    """Wrap a step so that the replay stops when its result's shape differs from the traced one."""
    def guarded(buffer):
        run = make(buffer)

        def check(S):
            run(S)
            if S[o].shape != shape:
                raise ShapeChanged
        return check
    return guarded
