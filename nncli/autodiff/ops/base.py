"""The Primitive base class, the kernel descriptor, and array helpers every op family shares.

A primitive is one class holding its maths three ways, side by side:

* ``forward(attrs, *arrays) -> (out, saved)`` on numpy arrays, saving only what backward
  needs beyond the inputs and the output;
* ``backward(F, g, xs, y, saved, attrs, needs) -> grads``, one gradient per input (None
  where ``needs`` says it is not wanted), written once against a namespace ``F``: numpy
  arrays (``ops.NP``, first order) or differentiable tensors (``nncli.autodiff.functional``,
  higher order), told apart by ``F.graph``. Broadcasting is undone by the engine, not here;
* optionally ``kernel``/``grad_kernel``: the same numpy calls writing into a preallocated
  buffer, for compiled Functions (a :class:`Kernel`; None means "run forward/backward").

``F.apply(op, inputs, attrs)`` applies another primitive inside a rule, in either mode.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np


class Kernel(NamedTuple):
    """How a compiled Function computes one value into a buffer ``out``.

    ``fn`` is a ufunc called as ``fn(*arrays, out)`` when ``ufunc``, a view function
    ``fn(*arrays)`` when ``view`` (no buffer), else a function ``fn(out, *arrays)``.
    ``reads`` names the arrays: input positions (forward), or ``"g"`` (the upstream
    gradient), ``"y"`` (the op's output) and input positions (gradient kernels).
    ``inplace`` lists the ``reads`` positions whose buffer ``out`` may overwrite when that
    value dies at this step (every position for one ufunc; fewer for multi-step kernels).
    ``run``: ``run(reads, o, out) -> closure`` building the whole step as one function of the
    slot list (``S[o] = ...``), for multi-step kernels; then ``fn`` may be None.
    """

    fn: object
    reads: tuple
    ufunc: bool = False
    inplace: tuple = ()
    view: bool = False
    run: object = None


class Primitive:
    """Base of every primitive op (see the module docstring); subclass it to add one.

    Class attributes:
        stateful: it has side effects or draws random numbers: a traced Function runs it on
            every call and never folds it into a constant.
        differentiable: False for ops without a gradient (masks, comparisons): tapes do not
            record them at all.
        writes_inputs: its forward updates Variable inputs in place (an optimizer step); their
            version counters are bumped so that a tape holding the old values notices.
        array_fn: for an op whose forward is one function of its arrays saving nothing (a ufunc,
            ``sigmoid``): that function. ``forward`` then defaults to it, and eager ``apply``
            calls it directly (the same numpy calls, one Python call fewer per op).

    Example:
        >>> class Cube(ad.Primitive):
        ...     forward = staticmethod(lambda attrs, x: (x * x * x, None))
        ...     backward = staticmethod(lambda F, g, xs, y, saved, attrs, needs: (g * 3 * xs[0] * xs[0],))
        >>> ad.apply(Cube, (ad.Tensor([2.0]),)).numpy()
        array([8.], dtype=float32)
    """

    stateful = False
    differentiable = True
    writes_inputs = False
    view_of = None  # the view op a copying (Variable-owned) variant was made from
    array_fn = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and "array_fn" not in cls.__dict__:
            cls.array_fn = None  # a subclass's own forward is what runs, not an inherited array_fn

    @classmethod
    def forward(cls, attrs, *xs):
        if cls.array_fn is None:
            raise NotImplementedError
        return cls.array_fn(*xs), None

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        raise NotImplementedError

    @classmethod
    def kernel(cls, attrs, shapes, dtypes) -> Kernel | None:
        """The buffered forward for inputs of ``shapes``/``dtypes``, or None."""
        return None

    @staticmethod
    def shape_follows_values(attrs, dtypes) -> bool:
        """Whether the result's shape depends on the input values (a boolean mask's count): a
        compiled replay then checks it, and traces again when it changed."""
        return False

    @classmethod
    def grad_kernel(cls, attrs, i, shapes, dtype) -> Kernel | str | None:
        """How input ``i``'s gradient is computed (all values of float ``dtype``): a Kernel,
        ``"g"`` when it is the upstream gradient itself, or None to run ``backward``."""
        return None


class NoGrad(Primitive):
    """Base of ops whose result carries no gradient (indices, masks, comparisons)."""

    differentiable = False

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        return (None,) * len(xs)


# -- kernel helpers --------------------------------------------------------------
ALL = (0, 1, 2)


def same_float(dtypes) -> bool:
    """All of ``dtypes`` one floating dtype (the condition for a buffered kernel)."""
    first = dtypes[0]
    return first.kind == "f" and all(d == first for d in dtypes)


def ufunc_kernel(ufunc, n: int):
    """A ``kernel`` classmethod for an op whose forward is ``ufunc`` of its ``n`` float inputs."""
    def kernel(cls, attrs, shapes, dtypes):
        return Kernel(ufunc, tuple(range(n)), ufunc=True, inplace=ALL[:n]) if same_float(dtypes) else None
    return classmethod(kernel)


def grad_ufunc(ufunc, *reads, inplace=(0, 1)):
    """A ``grad_kernel`` classmethod: every needed input's gradient is ``ufunc(*reads)``."""
    def grad_kernel(cls, attrs, i, shapes, dtype):
        return Kernel(ufunc, reads, ufunc=True, inplace=inplace[:len(reads)])
    return classmethod(grad_kernel)


_CONSTANTS: dict = {}


def constant(value, dtype) -> np.ndarray:
    """``value`` as a cached 0-d array of ``dtype``: numpy combines it with arrays faster than
    a Python number, and it keeps the array's dtype."""
    key = (value, dtype)
    c = _CONSTANTS.get(key)
    if c is None:
        c = _CONSTANTS[key] = np.array(value, dtype=dtype)
    return c


_FILLED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def filled(value, shape, dtype) -> np.ndarray:
    """A read-only array of ``value`` of this shape, shared while something holds it. numpy's
    maximum and minimum run about three times faster against a whole array than against a 0-d
    one (their vector loops want both operands contiguous), so kernels that run many times on
    one shape (a compiled relu's ``maximum(x, 0)``) bind one of these; the results are the same."""
    key = (value, tuple(shape), np.dtype(dtype).str)
    c = _FILLED.get(key)
    if c is None:
        c = np.full(shape, value, dtype)
        c.flags.writeable = False
        _FILLED[key] = c
    return c


def array(x) -> np.ndarray:
    """``x`` as an array: ufuncs return numpy scalars for 0-d inputs, which cannot be ``out``."""
    return x if type(x) is np.ndarray else np.asarray(x)


# -- shapes and axes -----------------------------------------------------------
def axes_of(axis, ndim: int) -> tuple[int, ...] | None:
    """``axis`` (None, an int or a sequence, negative allowed) as sorted non-negative ints,
    or None for all axes; out-of-range or repeated axes raise ValueError."""
    if axis is None:
        return None
    items = [axis] if isinstance(axis, int | np.integer) else list(axis)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise TypeError(f"an axis must be an integer, not {a!r}")
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ValueError(f"axis {int(a)} is out of range for a tensor of rank {ndim}")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {tuple(items)}")
    return tuple(sorted(out))


def keep_shape(shape, axis) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` (normalised) with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def broadcast_axes(shape, target) -> tuple[int, ...]:
    """The axes of ``shape`` to sum over to undo its broadcasting from ``target``:
    the leading ones, and those where ``target`` has size 1 (kept, with keepdims)."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1)


def sum_to(g: np.ndarray, shape) -> np.ndarray:
    """Sum ``g`` down to ``shape``: undo numpy broadcasting (leading and size-1 axes)."""
    if g.shape == shape:
        return g
    out = np.sum(g, axis=broadcast_axes(g.shape, shape), keepdims=True)
    return out.reshape(shape) if g.ndim != len(shape) else out
