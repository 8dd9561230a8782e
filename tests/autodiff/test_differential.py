"""Compiled against eager on random programs over the whole op set (tests/autodiff/programs.py).

Each program runs inside an ``ad.Function`` and directly, on several calls: new values, new
shapes, back to the first shapes (a replay of the first graph), and with the inputs passed as
Variables, computing its value, the
first-order gradient inside the function (a compiled gradient region), the second-order one
(nested tapes inside the function, recorded ops) and the gradient from an outer tape. In
float32 compiled and eager must agree bit for bit (the same numpy calls run); in float64 to
1e-12. ``PROGRAMS`` per dtype run in CI (at least 500 in all; NNCLI_PROGRAMS sets another count).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncli.autodiff as ad
import programs as P

PROGRAMS = int(__import__("os").environ.get("NNCLI_PROGRAMS", 260))  # per dtype: 520 programs in all
# (shape set, value seed, inputs as Variables): new values, new shapes, a replay of the first graph,
# then Variables (their views become copies eagerly, views again where the compiled graph can)
CALLS = [(2, 0, False), (2, 1, False), (3, 2, False), (2, 3, False), (2, 4, True), (2, 5, True)]


def first_order(steps):
    def f(xs, ids):
        xs = [ad.as_tensor(x, x.dtype) for x in xs]
        with ad.GradientTape() as tape:
            tape.watch(xs)
            out = P.run(steps, xs, ids)
            loss = ad.sum(ad.sin(out) * out)
        return out, loss, tape.gradient(loss, xs, unconnected_gradients="zero")
    return f


def second_order(steps):
    def f(xs, ids):
        xs = [ad.as_tensor(x, x.dtype) for x in xs]
        with ad.GradientTape() as outer:
            outer.watch(xs)
            with ad.GradientTape() as inner:
                inner.watch(xs)
                out = P.run(steps, xs, ids)
                loss = ad.sum(ad.sin(out) * out)
            grads = inner.gradient(loss, xs, unconnected_gradients="zero")
            total = ad.sum(ad.stack([ad.sum(g * g) for g in grads]))
        return total, outer.gradient(total, xs, unconnected_gradients="zero")
    return f


def assert_same(got, want, dtype, what):
    if isinstance(want, list | tuple):
        assert len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, dtype, f"{what}[{i}]")
        return
    assert (got is None) == (want is None), what
    if want is None:
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype and g.shape == w.shape, f"{what}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
    if dtype == np.float32:
        np.testing.assert_array_equal(g, w, err_msg=what)  # bit for bit (and nan where nan)
    else:
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=what)


def check_program(templates, steps, dtype, seed):
    compiled = [ad.function(first_order(steps)), ad.function(second_order(steps))]
    eager = [first_order(steps), second_order(steps)]
    for b, k, variables in CALLS:
        xs, ids = P.inputs(templates, b, dtype, seed + k)
        for fast, slow, label in zip(compiled, eager, ("first order", "second order")):
            args = [[ad.Variable(x, dtype=dtype) for x in xs] if variables else xs for _ in range(2)]
            assert_same(fast(args[0], ids), slow(args[1], ids), dtype, f"{label}, shape set {b}, call {k}: {steps}")
    # differentiated from outside: the Function under a recording tape
    xs, ids = P.inputs(templates, 2, dtype, seed)
    results = []
    for fn in (compiled[0], eager[0]):
        variables = [ad.Variable(x, dtype=dtype) for x in xs]
        with ad.GradientTape() as tape:
            out, loss, _ = fn(variables, ids)
        results.append((out, loss, tape.gradient(loss, variables, unconnected_gradients="zero")))
    assert_same(results[0], results[1], dtype, f"outer tape: {steps}")
    return len(compiled[0]._programs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_compiled_equals_eager_on_random_programs(dtype):
    ran = []

    @settings(max_examples=PROGRAMS, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(P.draw_program(), st.integers(0, 2**16))
    def each(program, seed):
        templates, steps = program
        check_program(templates, steps, dtype, seed)
        ran.append(steps)

    each()
    assert len(ran) >= PROGRAMS  # every drawn program ran all its calls
    names = {name for steps in ran for name, _, _ in steps}
    assert names == set(P.OPS), f"ops never drawn: {sorted(set(P.OPS) - names)}"
