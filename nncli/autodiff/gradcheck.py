"""Gradient checking: the tape's gradients against central differences in float64.

The checked quantity is ``sum(f(*inputs) * upstream)`` with a random ``upstream`` (not only
``sum``), so a backward rule that mixes up output elements is caught too.

    >>> import numpy as np, nncli.autodiff as ad
    >>> check_gradients(ad.mul, [np.array(2.0), np.array([1.0, 3.0])]).ok
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import nncli.autodiff as ad


@dataclass(frozen=True)
class InputCheck:
    """The comparison for one input: tape and numeric gradients, the max abs error, and the verdict.

    ``numeric`` is NaN at elements that were not checked (see ``max_checks``); ``checked`` counts
    the elements that were.
    """

    name: str
    tape: np.ndarray
    numeric: np.ndarray
    error: float
    ok: bool
    checked: int


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of a check: the value of ``f``, the upstream gradient, one ``InputCheck`` per input."""

    value: np.ndarray
    upstream: np.ndarray
    inputs: tuple[InputCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.inputs)

    @property
    def max_error(self) -> float:
        return max((c.error for c in self.inputs), default=0.0)

    def __str__(self) -> str:
        lines = [f"{c.name}: max abs error {c.error:.3g} ({'OK' if c.ok else 'FAIL'})\n"
                 f"  tape    {c.tape.ravel()[:8]}\n  numeric {c.numeric.ravel()[:8]}" for c in self.inputs]
        return "\n".join(lines) or "no inputs checked"


def numeric_gradient(f: Callable[..., Any], inputs: Sequence[Any], upstream: Any, eps: float = 1e-6, *,
                     wrt: Sequence[int] | None = None,
                     indices: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Central-difference gradients of ``sum(f(*inputs) * upstream)`` in float64.

    One pair of ``f`` evaluations per input element; ``f`` itself should be vectorised.

    Args:
        f: maps the inputs (float64 arrays at the ``wrt`` positions) to an array-like.
        inputs: the point; inputs not in ``wrt`` are passed to ``f`` unchanged.
        upstream: an array of ``f``'s output shape.
        eps: the step.
        wrt: positions of the inputs to differentiate; default all.
        indices: per ``wrt`` input, flat element indices to evaluate (others are NaN); None for all.
    Returns:
        one float64 array per ``wrt`` input, in ``wrt`` order.

    >>> numeric_gradient(lambda x: x ** 2, [np.array([1.0, 2.0])], np.ones(2))
    [array([2., 4.])]
    """
    wrt = list(range(len(inputs))) if wrt is None else list(wrt)
    xs = [np.array(x, dtype=np.float64) if i in wrt else x for i, x in enumerate(inputs)]
    up = np.asarray(upstream, dtype=np.float64)

    def target() -> float:
        out = np.asarray(f(*xs), dtype=np.float64)
        if out.shape != up.shape:
            raise ValueError(f"f returned shape {out.shape}, but the upstream gradient has shape {up.shape}")
        return float(np.vdot(out, up))

    grads = []
    for k, i in enumerate(wrt):
        flat = xs[i].reshape(-1)  # a view: writing it moves the point f sees
        chosen = None if indices is None else indices[k]
        todo = range(flat.size) if chosen is None else chosen
        grad = np.full(flat.size, np.nan)
        for j in todo:
            orig = flat[j]
            flat[j] = orig + eps
            plus = target()
            flat[j] = orig - eps
            minus = target()
            flat[j] = orig
            grad[j] = (plus - minus) / (2 * eps)
        grads.append(grad.reshape(xs[i].shape))
    return grads


def check_gradients(f: Callable[..., Any], inputs: Sequence[Any], *, wrt: Sequence[int] | None = None,
                    names: Sequence[str] | None = None, variables: Mapping[str, Any] | None = None,
                    dtype: Any = np.float64, upstream: Any = "random", seed: int = 0, atol: float = 1e-5,
                    rtol: float = 1e-4, eps: float = 1e-6, max_checks: int | None = None) -> GradcheckResult:
    """Compare the tape gradient of ``sum(f(*inputs) * upstream)`` with central differences.

    The one gradient check of nncli: the engine's op tests, ``nncli check``'s per-layer check, the
    layer tests and ``nncli grad`` all come here. Floating inputs become ``ad.Variable``s
    (``dtype`` for the tape, float64 for the differences; those not in ``wrt`` are constants);
    other inputs (ints, int arrays, axes) pass unchanged. ``variables`` are Variables ``f``
    reads by itself (a layer's weights): they are checked too, the differences moving each one in
    place with ``assign`` and putting it back afterwards, however the check ends.

    Args:
        f: maps tensors to an ``ad.Tensor``, e.g. ``ad.matmul`` or ``lambda x: ad.sum(x, axis=0)``.
        inputs: arrays or numbers.
        wrt: positions to differentiate; default every floating input.
        names: one label per ``wrt`` input (default ``x0, x1, ...``).
        variables: ``{label: Variable}`` checked after the inputs (float64 ones, for a precise check).
        dtype: dtype of the tape's computation.
        upstream: ``"random"`` (seeded standard normal), ``"ones"`` (the gradient of the sum), or an array.
        atol, rtol: an element passes when ``|tape - numeric| <= atol + rtol * |numeric|``.
        max_checks: differentiate at most this many (seeded, random) elements per input or variable.

    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> check_gradients(lambda a: ad.sum(a * a, axis=0), [x]).inputs[0].error < 1e-6
    True
    >>> w = ad.Variable(np.array([2.0, -1.0]), dtype=np.float64)
    >>> [c.name for c in check_gradients(lambda a: a * w, [x[0]], variables={"w": w}).inputs]
    ['x0', 'w']
    """
    rng = np.random.default_rng(seed)
    wrt = _wrt(inputs, wrt)
    names = list(names) if names is not None else [f"x{i}" for i in wrt]
    held = dict(variables or {})
    weights = list(held.values())
    tensors = _tensors(inputs, wrt, dtype)
    sources = [tensors[i] for i in wrt] + weights
    with ad.GradientTape() as tape:
        tape.watch(sources)  # non-trainable variables too (a BatchNormalization's moving statistics)
        out = f(*tensors)
    value = _result(out)
    up = _upstream(upstream, value.shape, rng)
    grads = tape.gradient(out, sources, unconnected_gradients="zero", output_gradients=up.astype(value.dtype))
    originals = [np.array(w.numpy()) for w in weights]
    n = len(inputs)

    def f64(*arrays):
        for w, a in zip(weights, arrays[n:]):
            w.assign(a)
        return _result(f(*_tensors(arrays[:n], wrt, np.float64)))

    points = _float64(inputs) + [o.astype(np.float64) for o in originals]
    positions = wrt + list(range(n, n + len(weights)))
    chosen = [_sample(np.size(points[i]), max_checks, rng) for i in positions]
    try:
        numeric = numeric_gradient(f64, points, up, eps, wrt=positions, indices=chosen)
    finally:
        for w, o in zip(weights, originals):
            w.assign(o)
    checks = tuple(_compare(label, np.asarray(g), num, c, atol, rtol)
                   for label, g, num, c in zip([*names, *held], grads, numeric, chosen))
    return GradcheckResult(value, up, checks)


def check_second_order(f: Callable[..., Any], inputs: Sequence[Any], *, wrt: Sequence[int] | None = None,
                       names: Sequence[str] | None = None, seed: int = 0, atol: float = 1e-5,
                       rtol: float = 1e-4, eps: float = 1e-6) -> GradcheckResult:
    """Check second derivatives: the gradient of ``sum(grad * v)`` taken through nested tapes,
    against central differences of the (first-order) tape gradient; in float64.

    ``grad`` is the tape gradient of ``sum(f * upstream)``; ``upstream`` and ``v`` are random.

    >>> check_second_order(lambda x: ad.sum(ad.exp(x) * x), [np.array([0.5, -1.0])]).ok
    True
    """
    rng = np.random.default_rng(seed)
    wrt = _wrt(inputs, wrt)
    names = list(names) if names is not None else [f"x{i}" for i in wrt]
    value = _result(f(*_tensors(inputs, wrt, np.float64)))
    up = rng.standard_normal(value.shape)
    vs = [rng.standard_normal(np.shape(inputs[i])) for i in wrt]

    def directional(tensors: list) -> Any:  # sum_i sum(grad_i * v_i), recorded by any outer tape
        sources = [tensors[i] for i in wrt]
        with ad.GradientTape() as inner:
            inner.watch(sources)
            out = f(*tensors)
        grads = inner.gradient(out, sources, unconnected_gradients="zero", output_gradients=up)
        total = ad.as_tensor(0.0, np.float64)
        for g, v in zip(grads, vs):
            total = total + ad.sum(ad.mul(g, v))
        return total

    tensors = _tensors(inputs, wrt, np.float64)
    sources = [tensors[i] for i in wrt]
    with ad.GradientTape() as outer:
        outer.watch(sources)
        total = directional(tensors)
    second = outer.gradient(total, sources, unconnected_gradients="zero")
    numeric = numeric_gradient(lambda *a: _result(directional(_tensors(a, wrt, np.float64))),
                               _float64(inputs), np.array(1.0), eps, wrt=wrt)
    checks = tuple(_compare(n, np.asarray(g), num, None, atol, rtol) for n, g, num in zip(names, second, numeric))
    return GradcheckResult(value, up, checks)


def _is_float(x: Any) -> bool:
    return isinstance(x, (float, np.floating, np.ndarray, ad.Tensor)) and np.asarray(x).dtype.kind == "f"


def _wrt(inputs: Sequence[Any], wrt: Sequence[int] | None) -> list[int]:
    if wrt is None:
        return [i for i, x in enumerate(inputs) if _is_float(x)]
    wrt = list(wrt)
    for i in wrt:
        if not 0 <= i < len(inputs) or not _is_float(inputs[i]):
            raise ValueError(f"wrt position {i} is not a floating input (there are {len(inputs)} inputs)")
    return wrt


def _tensors(inputs: Sequence[Any], wrt: Sequence[int], dtype: Any) -> list:
    """Floating inputs as Variables of ``dtype`` (trainable only at ``wrt``); the rest unchanged."""
    return [ad.Variable(np.asarray(x), dtype=dtype, trainable=i in wrt) if _is_float(x) else x
            for i, x in enumerate(inputs)]


def _float64(inputs: Sequence[Any]) -> list:
    return [np.array(x, dtype=np.float64) if _is_float(x) else x for x in inputs]


def _result(out: Any) -> np.ndarray:
    if not isinstance(out, ad.Tensor):
        raise TypeError(f"the function must return an ad.Tensor, not {type(out).__name__}")
    return out.numpy()


def _upstream(kind: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if isinstance(kind, str):
        if kind == "random":
            return np.asarray(rng.standard_normal(shape))
        if kind == "ones":
            return np.ones(shape)
        raise ValueError(f"upstream must be 'random', 'ones' or an array, not {kind!r}")
    up = np.asarray(kind, dtype=np.float64)
    if up.shape != shape:
        raise ValueError(f"upstream has shape {up.shape}, the output {shape}")
    return up


def _sample(size: int, max_checks: int | None, rng: np.random.Generator) -> np.ndarray | None:
    if max_checks is None or size <= max_checks:
        return None
    return np.sort(rng.choice(size, max_checks, replace=False))


def _compare(name: str, tape: np.ndarray, numeric: np.ndarray, chosen: np.ndarray | None,
             atol: float, rtol: float) -> InputCheck:
    if tape.shape != numeric.shape:
        raise ValueError(f"{name}: the tape gradient has shape {tape.shape}, the input {numeric.shape}")
    t, n = tape.astype(np.float64).reshape(-1), numeric.reshape(-1)
    if chosen is not None:
        t, n = t[chosen], n[chosen]
    diff = np.abs(t - n)
    error = float(diff.max()) if diff.size else 0.0
    ok = bool(np.all(np.isfinite(t)) and np.all(np.isfinite(n)) and np.all(diff <= atol + rtol * np.abs(n)))
    return InputCheck(name, tape, numeric, error, ok, int(n.size))
