"""Shape primitives: transpose, reshape, broadcast_to, concat, and their Variable-owned copies.

The view ops return numpy views. Applied to a Variable they must copy instead, since
``assign`` would change a view under the tape; :func:`owned` makes that copying variant,
which a compiled Function turns back into a view where nothing can assign in between.
"""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, Primitive


def owned(view_op):
    """The same op on a Variable: its result is a copy (a view would change under assign())."""

    def forward(attrs, x, *rest):
        out, saved = view_op.forward(attrs, x, *rest)
        return (np.array(out) if np.may_share_memory(out, x) else out), saved

    return type(view_op.__name__, (view_op,), {"forward": staticmethod(forward), "view_of": view_op,
                                               "kernel": classmethod(lambda cls, a, s, d: None)})


class Transpose(Primitive):
    """attrs: a permutation of non-negative axes (None reverses them)."""

    forward = staticmethod(lambda axes, x: (np.transpose(x, axes), None))

    @staticmethod
    def backward(F, g, xs, y, s, axes, needs):
        return (F.transpose(g, None if axes is None else tuple(np.argsort(axes))),)

    @classmethod
    def kernel(cls, axes, shapes, dtypes):
        return Kernel(lambda x: np.transpose(x, axes), (0,), view=True)

    @classmethod
    def grad_kernel(cls, axes, i, shapes, dtype):
        back = None if axes is None else tuple(np.argsort(axes))
        return Kernel(lambda g: np.transpose(g, back), ("g",), view=True)


class Reshape(Primitive):
    """attrs: the new shape (may hold one -1)."""

    forward = staticmethod(lambda shape, x: (np.reshape(x, shape), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.reshape(g, xs[0].shape),))

    @classmethod
    def kernel(cls, shape, shapes, dtypes):
        return Kernel(lambda x: np.reshape(x, shape), (0,), view=True)

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        shape = shapes[0]
        return Kernel(lambda g: np.reshape(g, shape), ("g",), view=True)


class BroadcastTo(Primitive):
    forward = staticmethod(lambda shape, x: (np.broadcast_to(x, shape), None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (F.sum_to(g, xs[0].shape),))

    @classmethod
    def kernel(cls, shape, shapes, dtypes):
        return Kernel(lambda x: np.broadcast_to(x, shape), (0,), view=True)


class Concat(Primitive):
    """attrs: the (non-negative) axis."""

    forward = staticmethod(lambda axis, *xs: (np.concatenate(xs, axis=axis), None))

    @staticmethod
    def backward(F, g, xs, y, s, axis, needs):
        grads, start = [], 0
        for x, need in zip(xs, needs):
            stop = start + x.shape[axis]
            grads.append(F.getitem(g, (slice(None),) * axis + (slice(start, stop),)) if need else None)
            start = stop
        return grads


OWNED_TRANSPOSE, OWNED_RESHAPE, OWNED_BROADCAST = owned(Transpose), owned(Reshape), owned(BroadcastTo)
