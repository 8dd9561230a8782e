"""GradientTape semantics: the Rindow examples, watching, persistence, nesting, memory, guards."""

import gc
import weakref

import numpy as np
import pytest

import nncli.autodiff as ad


def test_rindow_first_example():
    a = ad.Variable(2.0)
    b = ad.Variable(3.0)
    with ad.GradientTape() as tape:
        c = a * b
    da, db = tape.gradient(c, [a, b])
    assert float(c) == 6.0 and float(da) == 3.0 and float(db) == 2.0


def test_rindow_second_example_through_function():
    a, b, c = ad.Variable(2.0), ad.Variable(3.0), ad.Variable(4.0)
    f = ad.Function(lambda a, b, c: ad.square(a * b + c))
    with ad.GradientTape() as tape:
        z = f(a, b, c)
    grads = tape.gradient(z, [a, b, c])
    assert float(z) == 100.0
    assert [float(g) for g in grads] == [60.0, 40.0, 20.0]


def test_structure_of_sources_is_kept():
    a, b = ad.Variable(1.0), ad.Variable(2.0)
    with ad.GradientTape(persistent=True) as tape:
        y = a * b
    assert isinstance(tape.gradient(y, a), ad.Tensor)
    assert isinstance(tape.gradient(y, [a, b]), list)
    assert isinstance(tape.gradient(y, (a, b)), tuple)
    assert set(tape.gradient(y, {"x": a, "y": b})) == {"x", "y"}


def test_non_persistent_tape_refuses_a_second_call():
    x = ad.Variable(3.0)
    with ad.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, x)


def test_persistent_tape_allows_many_calls():
    x = ad.Variable(3.0)
    with ad.GradientTape(persistent=True) as tape:
        y = x * x
        z = y * x
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, x)) == 27.0


def test_constants_need_watch_and_variables_do_not():
    x = ad.Tensor(3.0)
    with ad.GradientTape() as tape:
        y = x * x
    assert tape.gradient(y, x) is None
    with ad.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    assert float(tape.gradient(y, x)) == 6.0


def test_watch_accessed_variables_off():
    a, b = ad.Variable(2.0), ad.Variable(5.0)
    with ad.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(a)
        y = a * b
    ga, gb = tape.gradient(y, [a, b])
    assert float(ga) == 5.0 and gb is None
    assert tape.watched_variables() == [a]


def test_untrainable_variables_are_not_watched():
    a = ad.Variable(2.0, trainable=False)
    with ad.GradientTape() as tape:
        y = a * a
    assert tape.gradient(y, a) is None


def test_unconnected_gradients():
    a, b = ad.Variable([1.0, 2.0]), ad.Variable([3.0])
    with ad.GradientTape(persistent=True) as tape:
        y = ad.sum(a * a)
    assert tape.gradient(y, [a, b])[1] is None
    zero = tape.gradient(y, [a, b], unconnected_gradients="zero")[1]
    assert zero.shape == (1,) and zero.dtype == np.float32 and float(zero[0]) == 0.0


def test_ops_before_the_tape_are_not_recorded():
    x = ad.Variable(2.0)
    y = x * 3.0  # outside any tape
    with ad.GradientTape() as tape:
        z = y * x
    assert float(tape.gradient(z, x)) == 6.0  # only the recorded product counts


def test_gradient_of_intermediate_and_non_scalar_target():
    x = ad.Variable([1.0, 2.0, 3.0])
    with ad.GradientTape(persistent=True) as tape:
        y = x * 2.0
        z = ad.sum(y * y)
    np.testing.assert_allclose(tape.gradient(z, y).numpy(), [4.0, 8.0, 12.0])
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [2.0, 2.0, 2.0])  # of sum(y)
    np.testing.assert_allclose(tape.gradient(y, x, output_gradients=[1.0, 0.0, 3.0]).numpy(), [2.0, 0.0, 6.0])


def test_gradient_with_respect_to_some_watched_values_skips_the_others():
    # w's node must not be visited (its Variable changed since), so the tape walks only x's part
    x, w = ad.Variable([1.0, 2.0]), ad.Variable([3.0, 4.0])
    with ad.GradientTape() as tape:
        total = ad.sum(x * 2.0 + w * 3.0)
    w.assign([0.0, 0.0])
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(), [2.0, 2.0])


def test_every_watched_value_and_an_intermediate_as_sources():
    x = ad.Tensor([1.0, 2.0, 3.0])
    with ad.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
        z = ad.sum(y * y)
    gx, gy = tape.gradient(z, [x, y])
    np.testing.assert_array_equal(gy.numpy(), [4.0, 8.0, 12.0])
    np.testing.assert_array_equal(gx.numpy(), [8.0, 16.0, 24.0])  # through y, as TensorFlow


def test_a_value_watched_after_a_recorded_op_read_it():
    x, t = ad.Tensor([2.0]), ad.Tensor([5.0])
    with ad.GradientTape() as tape:
        tape.watch(x)
        z = x * t  # recorded for x; t is watched only now
        tape.watch(t)
    gx, gt = tape.gradient(z, [x, t])
    assert float(gx[0]) == 5.0 and float(gt[0]) == 2.0


def test_nested_tapes_give_higher_order():
    x = ad.Variable(3.0)
    with ad.GradientTape() as outer:
        with ad.GradientTape() as inner:
            y = x ** 3
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert float(dy) == pytest.approx(27.0) and float(d2y) == pytest.approx(18.0)


def test_deep_chain_has_no_recursion_limit():
    x = ad.Variable(np.ones(3, dtype=np.float32))
    with ad.GradientTape() as tape:
        y = x
        for _ in range(100_000):
            y = y * 1.0
        total = ad.sum(y)
    grad = tape.gradient(total, x)
    np.testing.assert_array_equal(grad.numpy(), [1.0, 1.0, 1.0])


def test_graph_is_freed_without_the_cycle_collector():
    gc.disable()
    try:
        x = ad.Variable(np.ones(4, dtype=np.float32))
        with ad.GradientTape() as tape:
            h = ad.tanh(x * 2.0)
            y = ad.sum(h * h)
        grad = tape.gradient(y, x)
        refs = [weakref.ref(t) for t in (h, y)] + [weakref.ref(tape)]
        del tape, h, y, grad
        assert all(r() is None for r in refs), "the tape or its graph survived refcounting"
    finally:
        gc.enable()


def test_assigning_a_saved_variable_is_caught():
    w = ad.Variable([1.0, 2.0])
    with ad.GradientTape() as tape:
        y = ad.sum(w * w)
    w.assign([5.0, 5.0])
    with pytest.raises(RuntimeError, match="modified in place"):
        tape.gradient(y, w)


def test_views_of_a_variable_do_not_change_under_assign():
    w = ad.Variable([[1.0, 2.0], [3.0, 4.0]])
    x = ad.Variable([1.0, 1.0])
    with ad.GradientTape() as tape:
        wt = ad.transpose(w)
        y = ad.sum(ad.matmul(wt, x) * ad.reshape(w, (4,))[:2])
    before = wt.numpy().copy()
    w.assign([[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(wt.numpy(), before)
    tape.gradient(y, x)  # x's gradient only needs the snapshot, not w


def test_tensor_arrays_are_read_only_to_users():
    t = ad.Tensor([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match="read-only"):
        t.numpy()[0] = 7.0
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(t)[0] = 7.0
    v = ad.Variable([1.0])
    with pytest.raises(ValueError, match="read-only"):
        v.numpy()[0] = 2.0


def test_stop_gradient():
    x = ad.Variable(2.0)
    with ad.GradientTape() as tape:
        y = x * ad.stop_gradient(x * 3.0)
    assert float(tape.gradient(y, x)) == 6.0


def test_default_dtype_is_float32():
    assert ad.Variable(1.0).dtype == np.float32
    assert ad.Variable(np.zeros(3)).dtype == np.float32
    assert ad.Tensor([1, 2]).dtype.kind == "i"
    assert ad.Variable(1.0, dtype=np.float64).dtype == np.float64


def test_indexing_differentiates():
    x = ad.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    with ad.GradientTape() as tape:
        y = ad.sum(x[0] * 2.0) + ad.sum(x[:, np.array([2, 2])])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[2, 2, 4], [0, 0, 2]])
