"""Recurrent layers: Keras's equations written out in numpy (pins the gate orders), torch when
installed, the fused op against the unrolled ops, gradients (eager, traced, second order)."""

from __future__ import annotations

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff.gradcheck import check_second_order
from nncli.nn.layers import GRU, LSTM, SimpleRNN

RNG = np.random.default_rng(0)
B, STEPS, FEATURES, UNITS = 3, 5, 4, 3


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def keras_simple_rnn(x, W, U, b, h):
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ W + h @ U + b)
        hs.append(h)
    return np.stack(hs, 1), h


def keras_lstm(x, W, U, b, h, c):
    u = U.shape[0]
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, 1), h, c


def keras_gru(x, W, U, b, h, reset_after):
    u = U.shape[0]
    hs = []
    for t in range(x.shape[1]):
        xt = x[:, t] @ W + (b[0] if reset_after else b)
        if reset_after:
            rec = h @ U + b[1]
            z, r = sigmoid(xt[:, :u] + rec[:, :u]), sigmoid(xt[:, u:2 * u] + rec[:, u:2 * u])
            hh = np.tanh(xt[:, 2 * u:] + r * rec[:, 2 * u:])
        else:
            z, r = sigmoid(xt[:, :u] + h @ U[:, :u]), sigmoid(xt[:, u:2 * u] + h @ U[:, u:2 * u])
            hh = np.tanh(xt[:, 2 * u:] + (r * h) @ U[:, 2 * u:])
        h = z * h + (1 - z) * hh
        hs.append(h)
    return np.stack(hs, 1), h


def built(layer, n_states=1):
    """The layer built for float64 inputs, with random (non-zero) weights; plus inputs and states."""
    x = RNG.standard_normal((B, STEPS, FEATURES))
    states = [RNG.standard_normal((B, UNITS)) * 0.5 for _ in range(n_states)]
    layer([x, *states])
    layer.set_weights([RNG.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
    return x, states


@pytest.mark.parametrize("unroll", [False, True])
def test_lstm_matches_keras_equations(unroll):
    layer = LSTM(UNITS, return_sequences=True, return_state=True, unroll=unroll, dtype="float64")
    x, (h0, c0) = built(layer, 2)
    out, h, c = (t.numpy() for t in layer([x, h0, c0]))
    want = keras_lstm(x, *layer.get_weights(), h0, c0)
    for got, ref in zip((out, h, c), want):
        np.testing.assert_allclose(got, ref, atol=1e-12)
    zero_state = LSTM.from_config(layer.get_config())
    zero_state.build((STEPS, FEATURES))
    zero_state.set_weights(layer.get_weights())
    np.testing.assert_allclose(zero_state(x)[0].numpy(), keras_lstm(x, *layer.get_weights(), 0 * h0, 0 * c0)[0],
                               atol=1e-12)


@pytest.mark.parametrize("reset_after, unroll", [(True, False), (True, True), (False, False)])
def test_gru_matches_keras_equations(reset_after, unroll):
    layer = GRU(UNITS, reset_after=reset_after, return_sequences=True, return_state=True, unroll=unroll,
                dtype="float64")
    x, (h0,) = built(layer)
    assert layer.get_weights()[2].shape == ((2, 3 * UNITS) if reset_after else (3 * UNITS,))
    out, h = (t.numpy() for t in layer([x, h0]))
    want_out, want_h = keras_gru(x, *layer.get_weights(), h0, reset_after)
    np.testing.assert_allclose(out, want_out, atol=1e-12)
    np.testing.assert_allclose(h, want_h, atol=1e-12)


def test_simple_rnn_and_go_backwards_match_equations():
    layer = SimpleRNN(UNITS, return_sequences=True, dtype="float64")
    x, (h0,) = built(layer)
    np.testing.assert_allclose(layer([x, h0]).numpy(), keras_simple_rnn(x, *layer.get_weights(), h0)[0], atol=1e-12)
    back = SimpleRNN(UNITS, go_backwards=True, dtype="float64")
    back.build((STEPS, FEATURES))
    back.set_weights(layer.get_weights())
    want = keras_simple_rnn(x[:, ::-1], *layer.get_weights(), 0 * h0)[1]
    np.testing.assert_allclose(back(x, initial_state=[0 * h0]).numpy(), want, atol=1e-12)


def test_lstm_and_gru_match_torch():
    torch = pytest.importorskip("torch")
    u = UNITS
    lstm = LSTM(u, return_sequences=True, dtype="float64")
    x, _ = built(lstm, 2)
    W, U, b = lstm.get_weights()
    ref = torch.nn.LSTM(FEATURES, u, batch_first=True).double()  # gates i, f, g, o like Keras
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor(W.T)); ref.weight_hh_l0.copy_(torch.tensor(U.T))
        ref.bias_ih_l0.copy_(torch.tensor(b)); ref.bias_hh_l0.zero_()
        np.testing.assert_allclose(lstm(x).numpy(), ref(torch.tensor(x))[0].numpy(), atol=1e-10)

    gru = GRU(u, return_sequences=True, dtype="float64")
    built(gru)
    W, U, b = gru.get_weights()
    order = np.r_[u:2 * u, 0:u, 2 * u:3 * u]  # Keras z, r, h -> torch r, z, n
    ref = torch.nn.GRU(FEATURES, u, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor(W[:, order].T)); ref.weight_hh_l0.copy_(torch.tensor(U[:, order].T))
        ref.bias_ih_l0.copy_(torch.tensor(b[0, order])); ref.bias_hh_l0.copy_(torch.tensor(b[1, order]))
        np.testing.assert_allclose(gru(x).numpy(), ref(torch.tensor(x))[0].numpy(), atol=1e-10)


@pytest.mark.parametrize("cls, args", [
    (LSTM, {"return_sequences": True}),
    (LSTM, {"activation": "relu", "recurrent_activation": "tanh"}),
    (LSTM, {"activation": None}),
    (GRU, {"return_sequences": True, "go_backwards": True}),
    (GRU, {"reset_after": False}),
    (SimpleRNN, {"return_sequences": True}),
])
@pytest.mark.parametrize("unroll", [False, True])
def test_recurrent_gradients(cls, args, unroll, gradcheck_layer):
    layer = cls(UNITS, **args, unroll=unroll, dtype="float64")
    gradcheck_layer(layer, RNG.standard_normal((2, 4, 3)), training=True)


def test_gradients_wrt_initial_states(gradcheck_layer):
    layer = LSTM(UNITS, return_sequences=True, dtype="float64")
    gradcheck_layer(layer, [RNG.standard_normal((2, 4, 3)), RNG.standard_normal((2, UNITS)),
                            RNG.standard_normal((2, UNITS))], training=False)


def test_fused_and_unrolled_agree_and_other_activations_unroll():
    x = RNG.standard_normal((B, STEPS, FEATURES)).astype(np.float32)
    for cls in (LSTM, GRU, SimpleRNN):
        fused = cls(UNITS, activation="relu", return_sequences=True)
        fused(x)
        unrolled = cls(UNITS, activation="relu", return_sequences=True, unroll=True)
        unrolled(x)
        unrolled.set_weights(fused.get_weights())
        np.testing.assert_allclose(fused(x).numpy(), unrolled(x).numpy(), rtol=1e-5, atol=1e-6)
    swish = LSTM(UNITS, activation="swish", dtype="float64")  # no fused kernel: runs as ordinary ops
    x64, _ = built(swish, 2)
    W, U, b = swish.get_weights()
    z = x64[:, 0] @ W + b
    i, g = sigmoid(z[:, :UNITS]), z[:, 2 * UNITS:3 * UNITS] * sigmoid(z[:, 2 * UNITS:3 * UNITS])
    c = i * g
    h = sigmoid(z[:, 3 * UNITS:]) * c * sigmoid(c)
    np.testing.assert_allclose(swish(x64[:, :1]).numpy(), h, atol=1e-12)


def test_traced_gradients_equal_eager_on_new_data():
    model = nn.Sequential([GRU(4, return_sequences=True), LSTM(3), nn.layers.Dense(2)], input_shape=[5, 3])

    def grads(x):
        with ad.GradientTape() as tape:
            loss = ad.sum(ad.square(model(x)))
        return tape.gradient(loss, model.trainable_variables)

    traced = ad.Function(grads)
    for _ in range(3):
        x = ad.Tensor(RNG.standard_normal((2, 5, 3)).astype(np.float32))
        for a, b in zip(traced(x), grads(x)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert traced.trace_count == 1


def test_second_order_needs_unroll():
    x = RNG.standard_normal((2, 3, 2))
    for unroll in (False, True):
        layer = LSTM(2, unroll=unroll, dtype="float64")
        layer(x)
        if unroll:
            assert check_second_order(lambda a: ad.square(layer(a)), [x]).ok
        else:
            with pytest.raises(NotImplementedError, match="unroll=True"):
                check_second_order(lambda a: ad.square(layer(a)), [x])


def test_shapes_configs_and_errors():
    for layer, want in [(LSTM(8), (8,)), (GRU(8, return_sequences=True), (5, 8)),
                        (LSTM(8, return_state=True), [(8,), (8,), (8,)]),
                        (SimpleRNN(8, return_sequences=True, return_state=True), [(5, 8), (8,)])]:
        assert layer.compute_output_shape((5, 3)) == want
        out = layer(np.zeros((2, 5, 3), np.float32))
        shapes = [o.shape[1:] for o in out] if isinstance(out, list) else out.shape[1:]
        assert shapes == want
        config = layer.get_config()
        assert type(layer)(**config).get_config() == config
    lstm = LSTM(4)
    lstm.build((5, 3))
    assert lstm.get_weights()[2].tolist() == [0] * 4 + [1] * 4 + [0] * 8  # unit_forget_bias
    with pytest.raises(ValueError, match="initial state"):
        LSTM(4)([np.zeros((2, 5, 3), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match="time, features"):
        GRU(4).build((5,))
    with pytest.raises(ValueError, match="units"):
        SimpleRNN(0)
