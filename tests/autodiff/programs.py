"""Random programs over the whole op set, for the compiled-vs-eager differential test.

A program is a list of steps ``(op name, operand positions, parameters)`` over a pool that
starts with the float inputs and an integer ``ids`` input; every step appends one value.
:func:`draw_program` builds one with hypothesis, keeping only steps that run for both input
shape sets (tried on sample values), so the same program can be called with new shapes.
:func:`run` executes a program with ``nncli.autodiff`` ops, eagerly or while a Function traces.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import nncli.autodiff as ad

# op name -> (arity, function(params, *values), parameter strategy or None)
AXES = st.sampled_from([None, 0, -1, 1, -2, (0, -1), (-1, 0)])


def _safe_div(p, ids, a, b): return a / (ad.abs(b) + 0.5)
def _safe_log(p, ids, x): return ad.log(ad.abs(x) + 0.5)
def _safe_sqrt(p, ids, x): return ad.sqrt(ad.abs(x) + 0.25)
def _safe_exp(p, ids, x): return ad.exp(ad.tanh(x) * 3.0)
def _safe_pow(p, ids, a, b): return ad.pow(ad.abs(a) + 0.5, ad.tanh(b))
def _where(p, ids, a, b): return ad.where(a > b, a, b * 0.5)
def _reduce(name):
    def f(p, ids, x):
        axis, keep = p
        return getattr(ad, name)(x, axis=axis, keepdims=keep)
    return f


def _transpose(p, ids, x):
    perm = [int(i) for i in np.argsort(p[:x.ndim])] if x.ndim else []
    return ad.transpose(x, [a - x.ndim if (a + k) % 2 else a for k, a in enumerate(perm)])  # some negative


def _reshape(p, ids, x):
    if p == "flat":
        return ad.reshape(x, (-1,))
    if p == "merge" and x.ndim >= 2:
        return ad.reshape(x, x.shape[:-2] + (x.shape[-2] * x.shape[-1],))
    return ad.expand_dims(x, -1 if p == "last" else 0)


def _slice(p, ids, x):
    if x.ndim == 0:
        raise ValueError("nothing to slice")
    return {"tail": lambda: x[1:], "step": lambda: x[..., ::2], "first": lambda: x[0],
            "col": lambda: x[..., -1], "rev": lambda: x[::-1]}[p]()


def _concat(p, ids, a, b): return ad.concat([a, b], axis=p)
def _stack(p, ids, a, b): return ad.stack([a, b * 2.0], axis=p)


def _split(p, ids, x):
    parts = ad.split(x, 2, axis=p)
    return parts[0] - parts[1] * 0.5


def _cast_round_trip(p, ids, x):
    other = np.float64 if x.dtype == np.float32 else np.float32
    return ad.cast(ad.cast(x, other) * 1.5, x.dtype)


def _cast_int(p, ids, x):  # no gradient flows through the integers (TensorFlow's rule)
    return ad.cast(ad.cast(x * 3.0, "int32"), x.dtype) + x


OPS = {
    "add": (2, lambda p, ids, a, b: a + b, None), "sub": (2, lambda p, ids, a, b: a - b, None),
    "mul": (2, lambda p, ids, a, b: a * b, None), "div": (2, _safe_div, None),
    "maximum": (2, lambda p, ids, a, b: ad.maximum(a, b), None), "minimum": (2, lambda p, ids, a, b: ad.minimum(a, b), None),
    "pow": (2, _safe_pow, None), "where": (2, _where, None),
    "matmul": (2, lambda p, ids, a, b: a @ b, None),
    "gram": (1, lambda p, ids, x: x @ ad.transpose(x, list(range(x.ndim - 2)) + [-1, -2]) if x.ndim > 1 else x @ x,
             None),
    "matmul_t": (2, lambda p, ids, a, b: ad.matmul(a, ad.transpose(b, list(range(b.ndim - 2)) + [-1, -2])), None),
    "concat": (2, _concat, st.sampled_from([0, -1, 1])), "stack": (2, _stack, st.sampled_from([0, -1])),
    "neg": (1, lambda p, ids, x: -x, None), "exp": (1, _safe_exp, None), "log": (1, _safe_log, None),
    "sqrt": (1, _safe_sqrt, None), "square": (1, lambda p, ids, x: ad.square(x), None),
    "abs": (1, lambda p, ids, x: ad.abs(x), None), "sin": (1, lambda p, ids, x: ad.sin(x), None),
    "cos": (1, lambda p, ids, x: ad.cos(x), None), "tanh": (1, lambda p, ids, x: ad.tanh(x), None),
    "sigmoid": (1, lambda p, ids, x: ad.sigmoid(x * 4.0), None), "relu": (1, lambda p, ids, x: ad.relu(x), None),
    "softplus": (1, lambda p, ids, x: ad.softplus(x), None), "clip": (1, lambda p, ids, x: ad.clip(x, -0.5, 0.8), None),
    "stop_gradient": (1, lambda p, ids, x: ad.stop_gradient(x) * x, None),
    "softmax": (1, lambda p, ids, x: ad.softmax(x, axis=p), st.sampled_from([-1, 0])),
    "log_softmax": (1, lambda p, ids, x: ad.log_softmax(x, axis=p), st.sampled_from([-1, 0])),
    "sum": (1, _reduce("sum"), st.tuples(AXES, st.booleans())),
    "mean": (1, _reduce("mean"), st.tuples(AXES, st.booleans())),
    "max": (1, _reduce("max"), st.tuples(AXES, st.booleans())),
    "min": (1, _reduce("min"), st.tuples(AXES, st.booleans())),
    "logsumexp": (1, _reduce("logsumexp"), st.tuples(AXES, st.booleans())),
    "transpose": (1, _transpose, st.permutations(range(4))),
    "reshape": (1, _reshape, st.sampled_from(["flat", "merge", "last", "first"])),
    "slice": (1, _slice, st.sampled_from(["tail", "step", "first", "col", "rev"])),
    "split": (1, _split, st.sampled_from([0, -1])),
    "cast": (1, _cast_round_trip, None), "cast_int": (1, _cast_int, None),
    "gather_ids": (1, lambda p, ids, x: x[ids] * 1.0, None),  # ids: the integer input (a tensor when traced)
    "take_ids": (1, lambda p, ids, x: ad.take(x, ids, axis=-1), None),
    "gather_const": (1, lambda p, ids, x: x[np.array([1, 0, 1])], None),
    "mask": (1, lambda p, ids, x: x[x > 0.1] * 2.0, None),
    "where_mask": (1, lambda p, ids, x: ad.where(x < 0.0, ad.square(x), x), None),
    "one_hot": (1, lambda p, ids, x: ad.one_hot(ids, 3, x.dtype) * ad.sum(x), None),
}
DYNAMIC_SAFE = {"neg", "exp", "log", "sqrt", "square", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus",
                "clip", "sum", "mean", "max", "min", "logsumexp", "stop_gradient", "cast", "where_mask"}


def _dims(draw):
    """An input shape template: per axis "B" (2 in the first shape set, 3 in the second) or 1..3."""
    rank = draw(st.integers(0, 3))
    return tuple(draw(st.sampled_from(["B", 1, 2, 3])) for _ in range(rank))


def _shape(template, b):
    return tuple(b if d == "B" else d for d in template)


SHAPE_SETS = (2, 3)  # the value of "B" in each set


@st.composite
def draw_program(draw, max_steps: int = 8):
    """``(input templates, steps)``: 1-3 float inputs and up to 8 steps valid for both shape sets."""
    templates = [_dims(draw) for _ in range(draw(st.integers(1, 3)))]
    # hypothesis favours early choices; a drawn permutation of the op names spreads them evenly
    names = list(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(sorted(OPS)))
    rng = np.random.default_rng(0)
    samples = [[ad.Tensor(rng.standard_normal(_shape(t, b)), dtype=np.float64) for t in templates]
               for b in SHAPE_SETS]
    ids = [np.array([0, 1, 1]) for _ in SHAPE_SETS]
    dynamic = [False] * len(templates)
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        name = str(draw(st.sampled_from(names)))
        arity, fn, params = OPS[name]
        p = draw(params) if params is not None else None
        for _attempt in range(4):  # a few operand choices: matmul and concat need matching shapes
            args = [draw(st.integers(0, len(dynamic) - 1)) for _ in range(arity)]
            if any(dynamic[a] for a in args) and (arity > 1 or name not in DYNAMIC_SAFE):
                continue
            try:
                outs = [_apply(name, fn, p, [pool[a] for a in args], i) for pool, i in zip(samples, ids)]
            except (ValueError, IndexError, TypeError, np.exceptions.AxisError):
                continue  # not valid for these shapes: try other operands
            for pool, out in zip(samples, outs):
                pool.append(out)
            dynamic.append(name == "mask" or any(dynamic[a] for a in args))
            steps.append((name, tuple(args), p))
            break
    return templates, steps


def _apply(name, fn, p, args, ids):
    return fn(p, ids, *args)


def run(steps, xs, ids):
    """The program's last value (the first input when there are no steps)."""
    pool = list(xs)
    for name, args, p in steps:
        pool.append(_apply(name, OPS[name][1], p, [pool[a] for a in args], ids))
    return pool[-1]


def inputs(templates, b, dtype, seed):
    """Float inputs of the shape set ``b`` and an ids array, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(_shape(t, b)).astype(dtype) for t in templates]
    return xs, rng.integers(0, 2, 3)
