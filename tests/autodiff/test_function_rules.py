"""docs/function.md's rules, one test each: what retraces, what replays, what runs eagerly, what raises."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn


def test_the_docs_example_traces_once_and_assigns_on_every_call():
    w = ad.Variable(np.ones((3, 2), np.float32))
    eager_w = ad.Variable(np.ones((3, 2), np.float32))

    def make(var):
        def step(x):
            with ad.GradientTape() as tape:
                loss = ad.mean(ad.square(x @ var))
            var.assign_sub(tape.gradient(loss, var) * 0.1)
            return loss
        return step

    fast, slow = ad.function(make(w)), make(eager_w)
    for x in (np.ones((4, 3), np.float32), np.full((4, 3), 0.5, np.float32), np.ones((4, 3), np.float32)):
        assert np.array_equal(fast(x).numpy(), slow(x).numpy())
    assert np.array_equal(w.numpy(), eager_w.numpy()) and fast.trace_count == 1


def test_a_variable_passed_is_the_one_assigned_and_returned():
    f = ad.function(lambda v, x: v.assign_add(x))
    a, b = ad.Variable([1.0, 2.0]), ad.Variable([3.0, 4.0])
    f(a, np.ones(2, np.float32))
    assert f(b, np.ones(2, np.float32)) is b
    np.testing.assert_array_equal(a.numpy(), [2, 3])
    np.testing.assert_array_equal(b.numpy(), [4, 5])
    assert f.trace_count == 1


def test_the_same_tensor_twice_is_part_of_the_signature():
    f = ad.function(lambda a, b: a * 10.0 + b)
    t, u = ad.Tensor([1.0]), ad.Tensor([2.0])
    assert f(t, t).numpy()[0] == 11.0
    assert f(t, u).numpy()[0] == 12.0  # not the graph in which both arguments were one tensor
    assert f.trace_count == 2


def test_objects_without_weakrefs_are_compared_by_value():
    f = ad.function(lambda x, scale: x * scale[0])
    x = np.ones(2, np.float32)
    assert float(f(x, (2.0,))[0]) == 2.0 and float(f(x, (2.0,))[0]) == 2.0
    assert float(f(x, (3.0,))[0]) == 3.0
    assert f.trace_count == 2


def test_state_read_without_being_passed_is_read_live():
    model = nn.Sequential([nn.layers.Dense(2)], input_shape=[3])
    f = ad.function(lambda x: model(x))
    x = np.ones((1, 3), np.float32)
    f(x)
    model.set_weights([np.full((3, 2), 2.0, np.float32), np.zeros(2, np.float32)])
    np.testing.assert_array_equal(f(x).numpy(), [[6.0, 6.0]])
    assert f.trace_count == 1


def test_up_to_eight_mask_counts_per_signature():
    f = ad.function(lambda x: ad.sum(x[x > 0.0]))
    rows = [np.where(np.arange(10) < k, 1.0, -1.0).astype(np.float32) for k in range(10)]
    for x in rows + rows[2:]:  # ten counts, then the last eight again: kept, no new trace
        assert float(f(x)) == float(np.sum(x[x > 0]))
    assert f.trace_count == 10
    assert len(next(iter(f._programs.values()))) == 8
    f(rows[0])  # dropped for the last eight: traced again
    assert f.trace_count == 11


def test_a_mask_after_an_assignment_runs_that_signature_eagerly():
    v = ad.Variable([0.0])

    def f(x):
        v.assign_add(ad.sum(x, axis=0, keepdims=True)[:1])
        return ad.sum(x[x > 0.0])

    fast = ad.function(f)
    results = [float(fast(x)) for x in (np.array([1, -1], np.float32), np.array([1, 2], np.float32))]
    assert results == [1.0, 3.0] and float(v.numpy()[0]) == 3.0  # assigned once per call, never twice
    assert fast.trace_count == 1


def test_python_side_effects_happen_while_tracing_only():
    calls = []
    f = ad.function(lambda x: calls.append(1) or x * 2.0)
    for _ in range(3):
        f(np.ones(2, np.float32))
    assert calls == [1]


def test_a_function_called_while_another_traces_is_inlined():
    inner = ad.function(lambda x: x * 2.0)
    outer = ad.function(lambda x: inner(x) + 1.0)
    assert float(outer(np.float32(1.0))) == 3.0 and float(outer(np.float32(2.0))) == 5.0
    assert inner.trace_count == 0 and outer.trace_count == 1


def test_a_recording_tape_outside_runs_the_function_eagerly():
    calls = []
    f = ad.function(lambda x: calls.append(1) or ad.sum(x * x))
    x = ad.Variable([1.0, 2.0])
    for _ in range(2):
        with ad.GradientTape() as tape:
            y = f(x)
        np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0])
    assert calls == [1, 1] and f.trace_count == 0


def test_copies_and_iteration_of_traced_tensors_are_recorded():
    def f(x):
        with ad.GradientTape() as tape:
            tape.watch(x)
            frozen_looking = ad.Tensor(x)  # a copy without gradient, recomputed on every call
            rows = [row * 2.0 for row in x]  # each row a recorded x[i]
            y = ad.sum(ad.stack(rows)) + ad.sum(frozen_looking)
        return y, tape.gradient(y, x)

    fast = ad.function(f)
    for scale in (1.0, 3.0):
        x = np.arange(6, dtype=np.float32).reshape(3, 2) * scale
        (y1, g1), (y2, g2) = fast(x), f(ad.Tensor(x))
        assert float(y1) == float(y2) == 3 * x.sum()
        np.testing.assert_array_equal(g1.numpy(), np.full((3, 2), 2.0))
        np.testing.assert_array_equal(g2.numpy(), g1.numpy())


def test_values_computed_under_no_record_from_traced_ones_may_not_enter_the_graph():
    w = ad.Variable([1.0, 2.0])

    def leaks(x):
        with ad.no_record():
            scale = w * 2.0  # reads the live weights, unrecorded: a constant if it were let through
        return x * scale

    def reads(x):
        with ad.no_record():
            doubled = x * 2.0
        return doubled.numpy()

    for f, what in ((leaks, "Mul of a value computed under ad.no_record()"), (reads, "numpy()")):
        with pytest.raises(ad.ConcretizationError, match=re.escape(what)):
            ad.function(f)(np.ones(2, np.float32))
    with ad.no_record():  # eagerly it just does not record
        assert float(ad.sum(ad.Tensor([1.0, 2.0]) * 2.0)) == 6.0


def test_a_layer_built_on_zeros_inside_a_trace_is_fine():
    """Sequential without input_shape builds on its first call, here inside the trace: its layers run
    on zeros under no_record (reading their new weights) only for the output shapes."""
    model = nn.Sequential([nn.layers.Dense(3), nn.layers.MultiHeadAttention(1, 2), nn.layers.Dense(1)])
    f = ad.function(lambda x: model(x))
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(f(x).numpy(), model(x).numpy())
    np.testing.assert_array_equal(f(x * 2).numpy(), model(x * 2).numpy())


def test_float64_arrays_meeting_float32_weights_give_eagers_float32_result():
    w = ad.Variable(np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32))
    fn = lambda x: ad.sum(ad.tanh(x @ w) * 2.0) + ad.sum(x * 0.5)  # noqa: E731
    fast = ad.function(fn)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((3, 4))  # float64
        got, want = fast(x), fn(x)
        assert got.dtype == want.dtype == np.float32 and np.array_equal(got.numpy(), want.numpy())


def test_a_graph_keeps_nothing_of_a_dead_layer_alive():
    import gc
    import weakref

    f = ad.function(lambda layer, x: layer(x))
    layer = nn.layers.Dense(3)
    f(layer, np.ones((1, 2), np.float32))
    kernel = weakref.ref(layer.kernel)
    del layer
    gc.collect()
    assert kernel() is None and not f._programs
