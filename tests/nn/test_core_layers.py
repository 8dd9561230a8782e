"""Core layers, activations, initializers and the global RNG: values against numpy formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff import Primitive
from nncli.autodiff import apply
from nncli.nn import activations, initializers
from nncli.nn.layers import BatchNormalization, Dense, Dropout, Embedding, Flatten, LayerNormalization, Reshape
from nncli.nn.registry import UnknownNameError

RNG = np.random.default_rng(0)


# -- activations ---------------------------------------------------------------------
def _erf_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "swish": lambda x: x / (1 + np.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_values(name):
    x = RNG.standard_normal((3, 5)) * 3
    out = activations.get(name)(ad.Tensor(x, dtype=np.float64)).numpy()
    np.testing.assert_allclose(out, REFERENCES[name](x), rtol=1e-12, atol=1e-12)


def test_gelu_is_the_tanh_approximation_within_1e_3_of_erf():
    x = np.linspace(-6, 6, 1001)
    out = activations.gelu(ad.Tensor(x, dtype=np.float64)).numpy()
    assert np.abs(out - _erf_gelu(x)).max() < 1e-3
    assert np.abs(out - _erf_gelu(x)).max() > 1e-5  # really the approximation, as documented


def test_activation_lookup():
    assert activations.get(None) is activations.linear
    assert activations.get("LeakyRelu") is activations.leaky_relu
    assert activations.get("silu") is activations.swish
    with pytest.raises(UnknownNameError, match="Did you mean 'relu'"):
        activations.get("rellu")


@pytest.mark.parametrize("name", ["elu", "leaky_relu", "relu"])
def test_piecewise_activations_stay_right_in_a_traced_function(name):
    f = ad.Function(activations.get(name))
    first, second = np.array([1.0, -1.0], np.float32), np.array([-1.0, 1.0], np.float32)
    f(first)
    np.testing.assert_allclose(f(second).numpy(), REFERENCES[name](second), rtol=1e-6)
    assert f.trace_count == 1


# -- Dense, Flatten, Reshape ----------------------------------------------------------------
def test_dense_matches_numpy_on_2d_and_3d_inputs():
    layer = Dense(4, activation="relu")
    x = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    layer(x)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(layer(x).numpy(), np.maximum(x @ kernel + bias, 0), rtol=1e-6)
    np.testing.assert_allclose(layer(x[0]).numpy(), np.maximum(x[0] @ kernel + bias, 0), rtol=1e-6)
    assert len(Dense(2, use_bias=False)(x).shape) == 3


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_dense_rejects_bad_units(bad):
    with pytest.raises(ValueError, match="units"):
        Dense(bad)


def test_dense_rejects_unknown_initializer_at_construction():
    with pytest.raises(UnknownNameError, match="glorot_uniform"):
        Dense(3, kernel_initializer="glorot_unifrom")


def test_flatten_and_reshape():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(Flatten()(x).numpy(), x.reshape(2, 12))
    np.testing.assert_array_equal(Reshape([4, -1])(x).numpy(), x.reshape(2, 4, 3))
    assert Reshape((6, 2)).compute_output_shape((3, 4)) == (6, 2)
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape([5, -1])(x)
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape([-1, -1])


# -- Dropout ----------------------------------------------------------------------------------
def test_dropout_is_the_identity_at_inference():
    x = ad.Tensor(RNG.standard_normal((4, 5)))
    assert Dropout(0.5)(x) is x


def test_dropout_statistics_in_training():
    x = np.ones((200, 500), np.float32)
    y = Dropout(0.3)(x, training=True).numpy()
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.3) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02


def test_dropout_masks_follow_the_global_seed_and_own_seed():
    x = np.ones((8, 8), np.float32)
    nn.random.seed(3)
    a = Dropout(0.5)(x, training=True).numpy()
    nn.random.seed(3)
    b = Dropout(0.5)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    c, d = Dropout(0.5, seed=1)(x, training=True).numpy(), Dropout(0.5, seed=1)(x, training=True).numpy()
    np.testing.assert_array_equal(c, d)


def test_dropout_in_a_traced_function_draws_a_fresh_mask_and_differentiates_through_it():
    layer = Dropout(0.5)
    x = ad.Variable(np.ones((6, 6), np.float32))

    @ad.function
    def step(x):
        with ad.GradientTape() as tape:
            y = layer(x, training=True)
        return y, tape.gradient(y, x)

    masks = []
    for _ in range(3):
        y, g = step(x)
        np.testing.assert_array_equal(g.numpy(), y.numpy())  # d(x * mask)/dx = mask, x = 1
        masks.append(y.numpy())
    assert step.trace_count == 1
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5"])
def test_dropout_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="rate"):
        Dropout(bad)


# -- normalization ------------------------------------------------------------------------------
def test_batch_norm_training_and_moving_statistics():
    x = (RNG.standard_normal((64, 3)) * [1, 2, 3] + [5, -1, 0]).astype(np.float32)
    bn = BatchNormalization(momentum=0.9)
    y = bn(x, training=True).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(0), x.var(0) / (x.var(0) + 1e-3), rtol=1e-4)
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_allclose(mean, 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, 0.9 + 0.1 * x.var(0), rtol=1e-5)
    inference = bn(x).numpy()
    np.testing.assert_allclose(inference, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    assert [v.trainable for v in bn.variables] == [True, True, False, False]


def test_batch_norm_frozen_layer_runs_in_inference_mode():
    bn = BatchNormalization(trainable=False)
    x = RNG.standard_normal((8, 2)).astype(np.float32)
    np.testing.assert_allclose(bn(x, training=True).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(bn.get_weights()[2], 0)


def test_batch_norm_channel_axis_one():
    x = RNG.standard_normal((4, 3, 5)).astype(np.float32) + np.array([1, 2, 3], np.float32)[:, None]
    bn = BatchNormalization(axis=1)
    y = bn(x, training=True).numpy()
    assert [w.shape for w in bn.get_weights()] == [(3,)] * 4
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-5)


def test_batch_norm_updates_replay_in_a_traced_function():
    data = [RNG.standard_normal((8, 2)).astype(np.float32) for _ in range(3)]
    eager, traced = BatchNormalization(), BatchNormalization()
    step = ad.Function(lambda x: traced(x, training=True))
    for x in data:
        np.testing.assert_allclose(step(x).numpy(), eager(x, training=True).numpy(), rtol=1e-5)
    for a, b in zip(eager.get_weights(), traced.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert step.trace_count == 1


def test_layer_norm_per_sample_and_over_two_axes():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32) * 5 + 2
    y = LayerNormalization()(x).numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    both = LayerNormalization(axis=[1, 2])
    z = both(x).numpy()
    np.testing.assert_allclose(z.mean((1, 2)), 0, atol=1e-5)
    assert [w.shape for w in both.get_weights()] == [(3, 4), (3, 4)]
    with pytest.raises(ValueError, match="batch axis"):
        LayerNormalization(axis=0)(x)


# -- Embedding ----------------------------------------------------------------------------------------
def test_embedding_lookup_and_accumulated_gradient():
    layer = Embedding(6, 3)
    ids = np.array([[1, 2, 2], [5, 1, 2]])
    out = layer(ids)
    table = layer.get_weights()[0]
    np.testing.assert_array_equal(out.numpy(), table[ids])
    with ad.GradientTape() as tape:
        total = ad.sum(layer(ids))
    grad = tape.gradient(total, layer.embeddings).numpy()
    np.testing.assert_array_equal(grad[:, 0], [0, 2, 3, 0, 0, 1])
    np.testing.assert_array_equal(layer(ids.astype(np.float32)).numpy(), out.numpy())


@pytest.mark.parametrize("ids, message", [(np.array([[0, 6]]), r"\[0, 6\)"), (np.array([[-1]]), r"\[0, 6\)"),
                                          (np.array([[0.5]]), "integer ids")])
def test_embedding_rejects_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        Embedding(6, 3)(ids)


# -- initializers ------------------------------------------------------------------------------------------
def test_initializer_fans_and_limits():
    assert initializers.compute_fans((3, 3, 4, 8)) == (36, 72)
    w = initializers.get("glorot_uniform")((300, 200), np.float32, np.random.default_rng(0))
    limit = math.sqrt(6 / 500)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    h = initializers.get("HeNormal")((3, 3, 64, 256), np.float64, np.random.default_rng(0))
    assert abs(h.std() - math.sqrt(2 / 576)) < 0.02 * math.sqrt(2 / 576)
    assert np.abs(h).max() <= 2 * math.sqrt(2 / 576) / 0.8796256610342398 + 1e-12  # truncated


def test_orthogonal_and_constant_initializers():
    q = initializers.orthogonal((6, 4), np.float64, np.random.default_rng(0))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    wide = initializers.orthogonal((3, 5), np.float32, np.random.default_rng(0))
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-6)
    assert initializers.get("ones")((2,), np.float64, None).tolist() == [1.0, 1.0]
    assert initializers.get("uniform") is initializers.random_uniform


def test_initializers_draw_from_the_global_generator():
    nn.random.seed(5)
    first, second = Dense(3, kernel_initializer="lecun_normal"), Dense(3, kernel_initializer="lecun_normal")
    first.build((4,))
    nn.random.seed(5)
    second.build((4,))
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])
    third = Dense(3, kernel_initializer="lecun_normal")
    third.build((4,))  # the stream moved on: different values
    assert not np.array_equal(third.get_weights()[0], second.get_weights()[0])


# -- the global generator ------------------------------------------------------------------------------------
def test_random_state_round_trip_is_json_safe():
    nn.random.seed(11)
    state = json.loads(json.dumps(nn.random.get_state()))
    a = nn.random.generator().random(4)
    nn.random.set_state(state)
    np.testing.assert_array_equal(nn.random.generator().random(4), a)
    with pytest.raises(ValueError, match="PCG64"):
        nn.random.set_state({"bit_generator": "MT19937"})


# -- the gradient checker itself ------------------------------------------------------------------------
class _WrongDouble(Primitive):
    forward = staticmethod(lambda attrs, x: (2 * x, None))
    backward = staticmethod(lambda F, g, xs, y, s, attrs, needs: (3 * g,))  # deliberately wrong


class _Doubler(nn.Layer):
    def call(self, inputs, training=False):
        return apply(_WrongDouble, (inputs,))


def test_layer_gradient_checker_catches_a_wrong_backward(gradcheck_layer):
    with pytest.raises(AssertionError, match="input0"):
        gradcheck_layer(_Doubler(dtype="float64"), RNG.standard_normal((2, 3)), training=False)
