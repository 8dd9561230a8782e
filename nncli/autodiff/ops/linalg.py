"""Matrix products: ``matmul`` with numpy's broadcasting of batch axes and 1-d operands."""

from __future__ import annotations

import numpy as np

from nncli.autodiff.ops.base import Kernel, Primitive, same_float


def _swap(F, x):
    n = x.ndim
    return F.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _swap_axes(ndim):
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def _g_bt(out, g, b): return np.matmul(g, b.T, out=out)
def _at_g(out, g, a): return np.matmul(a.T, g, out=out)


class MatMul(Primitive):
    forward = staticmethod(lambda attrs, a, b: (np.matmul(a, b), None))

    @classmethod
    def kernel(cls, attrs, shapes, dtypes):
        return Kernel(np.matmul, (0, 1), ufunc=True) if same_float(dtypes) else None

    @staticmethod
    def backward(F, g, xs, y, s, attrs, needs):
        a, b = xs
        na, nb = a.ndim, b.ndim
        if na == 1 and nb == 1:  # inner product
            return (g * b if needs[0] else None, g * a if needs[1] else None)
        gs = g.shape
        if na == 1:  # (n,) @ (..., n, m) -> (..., m)
            grow = F.reshape(g, gs[:-1] + (1, gs[-1]))
            ga = F.reshape(F.matmul(grow, _swap(F, b)), gs[:-1] + (a.shape[0],)) if needs[0] else None
            gb = F.reshape(a, (-1, 1)) * grow if needs[1] else None
            return ga, gb
        if nb == 1:  # (..., n, m) @ (m,) -> (..., n)
            gcol = F.reshape(g, gs + (1,))
            ga = gcol * b if needs[0] else None
            gb = F.reshape(F.matmul(_swap(F, a), gcol), gs[:-1] + (b.shape[0],)) if needs[1] else None
            return ga, gb
        ga = F.matmul(g, _swap(F, b)) if needs[0] else None
        gb = F.matmul(_swap(F, a), g) if needs[1] else None
        return ga, gb

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype):
        na, nb = len(shapes[0]), len(shapes[1])
        if na < 2 or nb < 2:
            return None
        if i == 0:
            if nb == 2:
                return Kernel(_g_bt, ("g", 1))  # the transposes are views: BLAS reads them transposed
            axes = _swap_axes(nb)
            return Kernel(lambda out, g, b: np.matmul(g, b.transpose(axes), out=out), ("g", 1))
        if na == 2:
            return Kernel(_at_g, ("g", 0))
        axes = _swap_axes(na)
        return Kernel(lambda out, g, a: np.matmul(a.transpose(axes), g, out=out), ("g", 0))
