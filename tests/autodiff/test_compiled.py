"""Compiled ad.Function replays: same numbers as eager, right retracing, no buffer leaks."""

import weakref

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff.compile.program import Program

RNG = np.random.default_rng(0)


def train_step(model, loss, optimizer):
    def step(x, y):
        params = model.trainable_variables
        with ad.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        optimizer.update(params, tape.gradient(value, params))
        return value
    return step


def pair(build, seed=0):
    """Two identical models with their train steps, the second compiled."""
    steps = []
    for _ in range(2):
        nn.random.seed(seed)
        model = build()
        steps.append((model, train_step(model, nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                                         nn.optimizers.Adam(learning_rate=0.01))))
    return steps[0], (steps[1][0], ad.function(steps[1][1]))


L = nn.layers
MODELS = {
    "rindow": (lambda: nn.Sequential([L.Dense(16, activation="sigmoid"), L.Dense(2)], input_shape=[2]), (2,), 2),
    "mlp": (lambda: nn.Sequential([L.Dense(12, activation="relu"), L.Dense(12, activation="relu"), L.Dense(4)],
                                  input_shape=[10]), (10,), 4),
    "cnn": (lambda: nn.Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2),
                                   L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dense(3)],
                                  input_shape=[10, 10, 1]), (10, 10, 1), 3),
    "lstm": (lambda: nn.Sequential([L.LSTM(5), L.Dense(3)], input_shape=[4, 3]), (4, 3), 3),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_training_matches_eager_for_100_steps(name):
    build, shape, classes = MODELS[name]
    (m1, eager), (m2, fast) = pair(build)
    x = RNG.standard_normal((6, *shape)).astype(np.float32)
    y = RNG.integers(0, classes, 6)
    losses = []
    for _ in range(100):
        a, b = float(eager(x, y)), float(fast(x, y))
        assert b == pytest.approx(a, rel=1e-6)
        losses.append(a)
    assert fast.trace_count == 1
    assert losses[-1] < losses[0]  # it did train
    for w1, w2 in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(w2, w1, rtol=1e-5, atol=1e-6)


def test_retraces_on_a_new_signature_only_and_the_last_partial_batch_once():
    (_, _), (_, fast) = pair(MODELS["mlp"][0])
    x = RNG.standard_normal((20, 10)).astype(np.float32)
    y = RNG.integers(0, 4, 20)
    for _ in range(3):  # three epochs of batches 8, 8, 4
        for start in range(0, 20, 8):
            fast(x[start:start + 8], y[start:start + 8])
    assert fast.trace_count == 2
    fast(x[:8].astype(np.float64), y[:8])  # float64 stays float64: another graph (the layer casts it)
    assert fast.trace_count == 3
    fast(x[:8], y[:8].astype(np.int32))  # another label dtype: a new graph
    assert fast.trace_count == 4


def test_a_compiled_gradient_inside_an_outer_tape_gives_second_derivatives():
    w = ad.Variable([[0.5, -1.0], [2.0, 0.25]])

    def grad_norm(x):
        with ad.GradientTape() as tape:
            value = ad.sum(ad.tanh(x @ w))
        return ad.sum(ad.square(tape.gradient(value, w)))

    f = ad.function(grad_norm)
    x = ad.Variable([[1.0, -2.0]])
    f(x)  # traced without a tape
    results = []
    for fn in (f, grad_norm):
        with ad.GradientTape() as outer:
            value = fn(x)
        results.append((float(value), *[g.numpy() for g in outer.gradient(value, [x, w])]))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_returned_values_are_not_overwritten_by_the_next_call():
    w = ad.Variable(RNG.standard_normal((4, 3)).astype(np.float32))
    b = ad.Variable(np.zeros(3, np.float32))

    def f(x):
        with ad.GradientTape() as tape:
            hidden = ad.relu(x @ w + b)  # a buffered intermediate, returned
            loss = ad.sum(ad.square(hidden))
        return hidden, hidden * 2.0, tape.gradient(loss, w)

    fast = ad.function(f)
    x1, x2 = (RNG.standard_normal((5, 4)).astype(np.float32) for _ in range(2))
    fast(x1)
    first = fast(x1)
    kept = [t.numpy().copy() for t in first]
    fast(x2)
    for t, k in zip(first, kept):
        np.testing.assert_array_equal(t.numpy(), k)
    for t, e in zip(fast(x2), f(ad.Tensor(x2))):
        np.testing.assert_allclose(t.numpy(), e.numpy(), rtol=1e-6)


def test_assignments_and_optimizer_updates_replay_in_place():
    w = ad.Variable(np.ones((3, 2), np.float32))
    count = ad.Variable(0.0)
    opt = nn.optimizers.SGD(learning_rate=0.1)
    array = w._data

    @ad.function
    def step(x):
        with ad.GradientTape() as tape:
            loss = ad.sum(x @ w)
        opt.update([w], [tape.gradient(loss, w)])
        count.assign_add(1.0)
        return loss

    x = np.ones((1, 3), np.float32)
    for _ in range(5):
        step(x)
    assert w._data is array  # updated in place, never replaced
    np.testing.assert_allclose(w.numpy(), np.full((3, 2), 1 - 5 * 0.1), rtol=1e-6)
    assert float(count) == 5.0 and opt.iterations == 5 and step.trace_count == 1


def test_a_variable_view_is_a_copy_when_an_assignment_follows_its_use():
    w = ad.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))

    def f(x):
        early = x @ ad.transpose(w)  # may read a view: nothing changes w before this matmul
        late = ad.transpose(w)  # read after the assignment: must keep the old values
        w.assign(w * 2.0)
        return early, late * 1.0

    fast = ad.function(f)
    x = np.ones((1, 3), np.float32)
    for _ in range(3):
        before = w.numpy().copy()
        early, late = fast(x)
        np.testing.assert_array_equal(early.numpy(), x @ before.T)
        np.testing.assert_array_equal(late.numpy(), before.T)


UNARY = [ad.exp, ad.log, ad.sqrt, ad.square, ad.tanh, ad.sigmoid, ad.relu, ad.neg, ad.abs, ad.sin, ad.cos,
         lambda t: ad.sum(t, axis=0), lambda t: ad.reshape(t, (-1,)), lambda t: ad.transpose(t),
         lambda t: ad.softmax(t), lambda t: ad.max(t, axis=1)]
BINARY = [ad.add, ad.sub, ad.mul, ad.div, ad.maximum, ad.matmul, lambda a, b: a + b[0], lambda a, b: a * b[:, :1]]


@pytest.mark.parametrize("op", UNARY + BINARY)
def test_every_kernel_gives_eager_forward_and_gradients(op):
    two = op in BINARY

    def f(a, b):
        with ad.GradientTape() as tape:
            tape.watch([a, b])
            y = op(a, b) if two else op(a)
            total = ad.sum(y * y)
        return y, tape.gradient(total, [a, b] if two else [a])

    fast = ad.function(f)
    for _ in range(3):  # the first call traces, the next ones replay
        a = (RNG.random((3, 3)) + 0.5).astype(np.float32)
        b = (RNG.random((3, 3)) + 0.5).astype(np.float32)
        (y1, g1), (y2, g2) = fast(a, b), f(ad.Tensor(a), ad.Tensor(b))
        np.testing.assert_allclose(y1.numpy(), y2.numpy(), rtol=1e-6)
        for u, v in zip(g1, g2):
            np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-6)


def test_random_masks_are_fresh_each_call_and_their_gradient_follows():
    layer = L.Dropout(0.5, seed=1)

    @ad.function
    def f(x):
        with ad.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            total = ad.sum(y)
        return y, tape.gradient(total, x)

    x = np.ones((4, 50), np.float32)
    f(x)
    (y1, g1), (y2, g2) = f(x), f(x)
    assert not np.array_equal(y1.numpy(), y2.numpy())
    np.testing.assert_array_equal(g1.numpy(), y1.numpy())  # d(x * mask)/dx = mask = y for x = 1
    np.testing.assert_array_equal(g2.numpy(), y2.numpy())


def test_buffers_are_reused_and_shared_values_survive():
    w = ad.Variable(RNG.standard_normal((6, 6)).astype(np.float32))

    def f(x):
        h = ad.tanh(x @ w)
        a = ad.relu(h * 3.0)  # h is read again below: it must not be overwritten in place
        b = ad.sigmoid(a + 1.0)
        return ad.sum(b * h + a)

    fast = ad.function(f)
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    fast(x)
    program = next(iter(fast._programs.values()))[0]
    assert program.n_buffers < program.n_instructions  # some buffers serve several steps
    for _ in range(2):
        x = RNG.standard_normal((4, 6)).astype(np.float32)
        assert float(fast(x)) == pytest.approx(float(f(ad.Tensor(x))), rel=1e-6)


def test_outputs_keep_their_structure_and_pass_inputs_variables_and_constants_through():
    v = ad.Variable([1.0, 2.0])
    f = ad.function(lambda x, scale: {"x": x, "y": [x * scale + v, ad.Tensor(3.0)], "n": 7, "v": v})
    x = np.ones(2, np.float32)
    f(x, 2.0)
    out = f(x * 2, 2.0)
    assert out["n"] == 7 and float(out["y"][1]) == 3.0 and out["v"] is v
    np.testing.assert_array_equal(out["x"].numpy(), x * 2)
    np.testing.assert_array_equal(out["y"][0].numpy(), x * 4 + [1, 2])


def test_the_compiled_graph_keeps_no_traced_tensor_alive():
    refs = []

    def f(x):
        with ad.GradientTape() as tape:
            tape.watch(x)
            hidden = ad.exp(x)
            total = ad.sum(hidden * hidden)
        refs.append(weakref.ref(hidden))  # a Python side effect: runs while tracing only
        return tape.gradient(total, x)

    fast = ad.function(f)
    fast(np.ones(3, np.float32))
    assert isinstance(next(iter(fast._programs.values()))[0], Program)
    assert len(refs) == 1 and refs[0]() is None
    np.testing.assert_allclose(fast(np.zeros(3, np.float32)).numpy(), np.full(3, 2.0), rtol=1e-6)


@pytest.mark.parametrize("act", [ad.tanh, ad.relu, ad.sigmoid])
def test_second_derivatives_inside_a_compiled_function(act):
    def hessian_diagonal(x):
        with ad.GradientTape() as outer:
            outer.watch(x)
            with ad.GradientTape() as inner:
                inner.watch(x)
                y = ad.sum(act(x) * x * x)
            total = ad.sum(inner.gradient(y, x))
        return outer.gradient(total, x)

    fast = ad.function(hessian_diagonal)
    for _ in range(3):
        x = RNG.standard_normal(5).astype(np.float32)
        np.testing.assert_allclose(fast(x).numpy(), hessian_diagonal(ad.Tensor(x)).numpy(), rtol=1e-5)
    assert fast.trace_count == 1
