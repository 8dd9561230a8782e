"""ad.Function: one trace per signature, replays equal eager, differentiable, side effects replayed."""

import numpy as np
import pytest

import nncli.autodiff as ad


def test_traces_once_per_signature():
    calls = []

    @ad.function
    def f(x, y):
        calls.append(1)  # Python side effects happen while tracing only
        return ad.sum(ad.tanh(x @ y))

    x, y = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    first = f(x, y)
    for _ in range(3):
        again = f(x * 0.5, y)
    assert f.trace_count == 1 and len(calls) == 1
    assert float(again) == pytest.approx(float(ad.sum(ad.tanh(ad.Tensor(x * 0.5) @ ad.Tensor(y)))), rel=1e-6)
    assert float(first) != float(again)
    f(np.ones((5, 3), np.float32), y)  # a new shape traces again
    assert f.trace_count == 2
    f(np.ones((5, 3), np.float64), y.astype(np.float64))  # float64 stays float64: a new dtype
    assert f.trace_count == 3
    f(ad.Tensor(np.ones((5, 3)), dtype=np.float64), ad.Tensor(y, dtype=np.float64))  # tensors: another
    assert f.trace_count == 4


def test_non_tensor_arguments_are_part_of_the_signature():
    f = ad.Function(lambda x, axis: ad.sum(x, axis=axis))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(f(x, 0).numpy(), [3, 5, 7])
    np.testing.assert_array_equal(f(x, 1).numpy(), [3, 12])
    np.testing.assert_array_equal(f(x, 0).numpy(), [3, 5, 7])
    assert f.trace_count == 2


def test_replay_equals_eager_and_reads_variables_live():
    w = ad.Variable(np.random.default_rng(0).standard_normal((3, 2)))
    f = ad.Function(lambda x: ad.log_softmax(ad.relu(x @ w) * 2.0))
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    f(x)
    w.assign(w.numpy() * -1.5)
    eager = ad.log_softmax(ad.relu(ad.Tensor(x) @ w) * 2.0)
    np.testing.assert_array_equal(f(x).numpy(), eager.numpy())


def test_differentiable_inside_an_outer_tape():
    w = ad.Variable([[0.5, -1.0], [2.0, 0.25]])
    f = ad.Function(lambda x: ad.sum(ad.sigmoid(x @ w)))
    x = ad.Variable([[1.0, 2.0]])
    f(x)  # trace
    with ad.GradientTape() as tape:
        y = f(x)
    gx, gw = tape.gradient(y, [x, w])
    with ad.GradientTape() as tape:
        y2 = ad.sum(ad.sigmoid(x @ w))
    ex, ew = tape.gradient(y2, [x, w])
    np.testing.assert_allclose(gx.numpy(), ex.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gw.numpy(), ew.numpy(), rtol=1e-6)


def test_a_traced_train_step_replays_tape_and_assignments():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)

    def make():
        return ad.Variable(np.full((3, 1), 0.1, np.float32))

    def step(w, x, y):
        with ad.GradientTape() as tape:
            loss = ad.mean(ad.square(x @ w - y))
        grad = tape.gradient(loss, w)
        w.assign_sub(grad * 0.1)
        return loss

    w_eager, w_traced = make(), make()
    traced = ad.Function(step)
    for _ in range(5):
        eager_loss = step(w_eager, x, y)
        traced_loss = traced(w_traced, x, y)
        np.testing.assert_allclose(float(traced_loss), float(eager_loss), rtol=1e-6)
    np.testing.assert_allclose(w_traced.numpy(), w_eager.numpy(), rtol=1e-6)
    assert traced.trace_count == 1


def test_higher_order_through_a_function():
    f = ad.Function(lambda x: x * x * x)
    x = ad.Variable(2.0)
    with ad.GradientTape() as outer:
        with ad.GradientTape() as inner:
            y = f(x)
        dy = inner.gradient(y, x)
    assert float(dy) == pytest.approx(12.0)
    assert float(outer.gradient(dy, x)) == pytest.approx(12.0)


def test_method_decorator_binds_self():
    class Scaler:
        def __init__(self, k):
            self.k = ad.Variable(k)

        @ad.function
        def __call__(self, x):
            return x * self.k

    a, b = Scaler(2.0), Scaler(3.0)
    assert float(a(np.float32(1.0))) == 2.0
    assert float(b(np.float32(1.0))) == 3.0  # another instance: its own trace
    assert float(a(np.float32(2.0))) == 4.0
    assert a.__call__.trace_count == 2


def test_an_error_while_tracing_leaves_no_graph():
    def bad(x):
        raise ValueError("boom")

    f = ad.Function(bad)
    with pytest.raises(ValueError):
        f(np.ones(2, np.float32))
    assert f.trace_count == 0
    assert float(ad.sum(ad.Tensor([1.0, 2.0]))) == 3.0  # tracing state was restored


@pytest.mark.parametrize("op", [ad.relu, ad.abs, lambda x: ad.maximum(x, 0.1), lambda x: ad.clip(x, -0.5, 0.5),
                                lambda x: ad.max(x, axis=0), lambda x: ad.where(x > 0, x, x * 0.5),
                                lambda x: x[x > 0], lambda x: ad.pow(ad.abs(x) + 0.1, x)])
def test_traced_gradients_follow_the_live_values(op):
    """Masks in backward rules are recomputed on replay, not frozen at trace time."""
    def grad_of(x):
        x = ad.as_tensor(x)
        with ad.GradientTape() as tape:
            tape.watch(x)
            y = ad.sum(op(x) * 3.0)
        return tape.gradient(y, x)

    traced = ad.Function(grad_of)
    first = np.array([1.0, -2.0, 0.3, -0.7], np.float32)
    second = -first
    traced(first)
    np.testing.assert_allclose(traced(second).numpy(), grad_of(second).numpy(), rtol=1e-6)
    assert traced.trace_count == 1


def test_stop_gradient_is_replayed():
    f = ad.Function(lambda x: ad.stop_gradient(x * 2.0) + 0.0)
    assert float(f(np.float32(1.0))) == 2.0
    assert float(f(np.float32(5.0))) == 10.0
