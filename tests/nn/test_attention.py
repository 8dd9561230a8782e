"""MultiHeadAttention: Keras's maths written out with einsum, masks, gradients, configs."""

from __future__ import annotations

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli.autodiff.gradcheck import check_gradients
from nncli.nn.layers import MultiHeadAttention
from nncli.nn.layers.attention import dot_product_attention

RNG = np.random.default_rng(0)


def reference(layer, query, value, key, mask=None):
    """Keras's MultiHeadAttention in numpy: einsum projections, scaled dot products, softmax."""
    w = dict(layer.named_variables())

    def project(x, part):
        return np.einsum("btd,dhk->bthk", x, w[f"{part}_kernel"].numpy()) + w[f"{part}_bias"].numpy()

    q, k, v = project(query, "query"), project(key, "key"), project(value, "value")
    scores = np.einsum("bqhk,bthk->bhqt", q, k) / np.sqrt(layer.key_dim)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhqt,bthv->bqhv", weights, v)
    return np.einsum("bqhv,hvo->bqo", heads, w["output_kernel"].numpy()) + w["output_bias"].numpy()


@pytest.fixture
def cross():
    """A float64 layer with distinct query/value/key sizes and random biases, and its inputs."""
    layer = MultiHeadAttention(3, 4, value_dim=5, output_shape=7, bias_initializer="random_normal", dtype="float64")
    q, v, k = RNG.standard_normal((2, 4, 6)), RNG.standard_normal((2, 5, 8)), RNG.standard_normal((2, 5, 3))
    layer([q, v, k])
    return layer, q, v, k


def test_matches_reference_and_keras_weight_shapes(cross):
    layer, q, v, k = cross
    np.testing.assert_allclose(layer([q, v, k]).numpy(), reference(layer, q, v, k), atol=1e-12)
    assert [w.shape for w in layer.get_weights()] == [(6, 3, 4), (3, 4), (3, 3, 4), (3, 4), (8, 3, 5), (3, 5),
                                                      (3, 5, 7), (7,)]
    self_attention = MultiHeadAttention(2, 3, dtype="float64", bias_initializer="random_normal")
    x = RNG.standard_normal((2, 4, 6))
    np.testing.assert_allclose(self_attention(x).numpy(), reference(self_attention, x, x, x), atol=1e-12)
    np.testing.assert_allclose(self_attention([x, x]).numpy(), self_attention(x).numpy())


def test_attention_mask_and_causal_mask(cross):
    layer, q, v, k = cross
    mask = RNG.random((2, 4, 5)) > 0.4
    mask[:, :, 0] = True  # every query attends at least one key
    np.testing.assert_allclose(layer([q, v, k], attention_mask=mask).numpy(), reference(layer, q, v, k, mask),
                               atol=1e-12)
    causal = np.broadcast_to(np.tril(np.ones((4, 5), bool)), (2, 4, 5))
    np.testing.assert_allclose(layer([q, v, k], use_causal_mask=True).numpy(), reference(layer, q, v, k, causal),
                               atol=1e-12)
    # a masked-out key and value cannot change the output
    changed_v, changed_k = v.copy(), k.copy()
    only_first = np.zeros((2, 4, 5), bool)
    only_first[:, :, :2] = True
    changed_v[:, 3:], changed_k[:, 3:] = 100.0, -100.0
    np.testing.assert_allclose(layer([q, changed_v, changed_k], attention_mask=only_first).numpy(),
                               layer([q, v, k], attention_mask=only_first).numpy(), atol=1e-12)


def test_scores_are_returned_and_rows_sum_to_one(cross):
    layer, q, v, k = cross
    out, scores = layer([q, v, k], return_attention_scores=True)
    assert out.shape == (2, 4, 7) and scores.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0)


def test_gradients_wrt_inputs_and_weights(cross, gradcheck_layer):
    layer, q, v, k = cross
    mask = np.ones((2, 4, 5), bool)
    mask[:, 1:, -1] = False
    result = check_gradients(lambda a, b, c: layer([a, b, c], attention_mask=mask), [q, v, k])
    assert result.ok, str(result)
    gradcheck_layer(layer, [q, v, k], training=False)
    result = check_gradients(lambda a, b, c: dot_product_attention(a, b, c)[0], [q, k[..., :1].repeat(6, -1), v])
    assert result.ok, str(result)


def test_traced_mask_is_read_on_every_call(cross):
    layer, q, v, k = cross
    traced = ad.Function(lambda a, m: layer([a, v, k], attention_mask=m))
    for _ in range(3):
        mask = RNG.random((2, 4, 5)) > 0.5
        mask[:, :, 0] = True
        got = traced(ad.Tensor(q, dtype=np.float64), mask).numpy()
        np.testing.assert_allclose(got, reference(layer, q, v, k, mask), atol=1e-12)
    assert traced.trace_count == 1


def test_dropout_only_while_training():
    layer = MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    x = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    assert not np.allclose(layer(x, training=True).numpy(), layer(x).numpy())


def test_shapes_config_and_errors():
    layer = MultiHeadAttention(2, 8)
    assert layer.compute_output_shape((10, 16)) == (10, 16)
    assert layer(np.ones((4, 10, 16), np.float32)).shape == (4, 10, 16)
    assert MultiHeadAttention(2, 8, output_shape=3).compute_output_shape([(10, 16), (7, 5)]) == (10, 3)
    config = MultiHeadAttention(4, 2, value_dim=3, dropout=0.1, use_bias=False, output_shape=5, seed=3).get_config()
    assert MultiHeadAttention(**config).get_config() == config
    no_bias = MultiHeadAttention(2, 3, use_bias=False)
    no_bias(np.ones((1, 2, 4), np.float32))
    assert len(no_bias.get_weights()) == 4
    with pytest.raises(TypeError, match="one list"):
        layer(np.ones((4, 10, 16), np.float32), np.ones((4, 10, 16), np.float32))
    with pytest.raises(ValueError, match="same length"):
        MultiHeadAttention(2, 3).build([(4, 6), (5, 6), (6, 6)])
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 3)
