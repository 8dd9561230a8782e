"""Convolution and pooling: forward against loop references (and torch when installed), output
shapes, hand-made pooling cases, and gradients (first and second order, traced) against
float64 central differences."""

from __future__ import annotations

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff.gradcheck import check_gradients, check_second_order
from nncli.nn.layers import conv as C
from nncli.nn.layers import pooling as P

RNG = np.random.default_rng(0)


def T(a):
    return ad.Tensor(a, dtype=np.float64)


def tf_pads(size, k, stride, dilation, padding):
    """TensorFlow's padding, written out independently of the library."""
    span = dilation * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def naive_conv2d(x, w, strides, padding, dilation, bias=None):
    """Cross-correlation with explicit loops over output pixels (a test-only reference)."""
    (sh, sw), (dh, dw) = strides, dilation
    kh, kw, _, f = w.shape
    (t, b), (l, r) = (tf_pads(x.shape[1], kh, sh, dh, padding), tf_pads(x.shape[2], kw, sw, dw, padding))
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out if bias is None else out + bias


CASES_2D = [  # strides, padding, dilation, channels
    ((1, 1), "valid", (1, 1), 3), ((1, 1), "same", (1, 1), 1), ((2, 2), "valid", (1, 1), 3),
    ((2, 2), "same", (1, 1), 2), ((1, 1), "valid", (2, 2), 1), ((1, 1), "same", (2, 2), 3),
    ((2, 1), "same", (1, 2), 2),
]


@pytest.mark.parametrize("strides, padding, dilation, c", CASES_2D)
def test_conv2d_matches_loop_reference(strides, padding, dilation, c):
    x, w, b = RNG.standard_normal((2, 7, 8, c)), RNG.standard_normal((3, 2, c, 4)), RNG.standard_normal(4)
    want = naive_conv2d(x, w, strides, padding, dilation, b)
    got = C.conv2d(T(x), T(w), strides, padding, dilation, bias=T(b)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12)
    fused = C.conv2d(T(x), T(w), strides, padding, dilation, bias=T(b), relu=True).numpy()
    np.testing.assert_allclose(fused, np.maximum(want, 0), atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("strides, dilation", [(1, 1), (2, 1), (1, 2)])
def test_conv1d_matches_loop_reference(padding, strides, dilation):
    x, w = RNG.standard_normal((2, 9, 3)), RNG.standard_normal((3, 3, 2))
    before, after = tf_pads(9, 3, strides, dilation, padding)  # pad the steps by hand, then "valid"
    xp = np.pad(x, ((0, 0), (before, after), (0, 0)))
    want = naive_conv2d(xp[:, None], w[None], (1, strides), "valid", (1, dilation))[:, 0]
    np.testing.assert_allclose(C.conv1d(T(x), T(w), strides, padding, dilation).numpy(), want, atol=1e-12)


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")
    x, w = RNG.standard_normal((2, 9, 9, 3)), RNG.standard_normal((3, 3, 3, 5))
    for strides, dilation in [(1, 1), (2, 1), (1, 2)]:
        ref = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(w).permute(3, 2, 0, 1),
                                         stride=strides, dilation=dilation)
        got = C.conv2d(T(x), T(w), strides, "valid", dilation).numpy()
        np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), atol=1e-10)


@pytest.mark.parametrize("strides, padding, dilation, c", CASES_2D[:6])
def test_conv2d_gradients(strides, padding, dilation, c):
    x, w, b = RNG.standard_normal((2, 6, 5, c)), RNG.standard_normal((3, 3, c, 2)), RNG.standard_normal(2)
    for relu in (False, True):
        result = check_gradients(lambda a, k, bb: C.conv2d(a, k, strides, padding, dilation, bb, relu), [x, w, b])
        assert result.ok, str(result)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_gradients(padding):
    x, w, b = RNG.standard_normal((2, 8, 3)), RNG.standard_normal((3, 3, 2)), RNG.standard_normal(2)
    for strides, dilation in [(1, 1), (2, 1), (1, 2)]:
        result = check_gradients(lambda a, k, bb: C.conv1d(a, k, strides, padding, dilation, bb), [x, w, b])
        assert result.ok, str(result)


def test_conv2d_second_order():
    x, w, b = RNG.standard_normal((1, 5, 5, 2)), RNG.standard_normal((3, 3, 2, 2)), RNG.standard_normal(2)
    result = check_second_order(lambda a, k, bb: ad.square(C.conv2d(a, k, 2, "same", 1, bb, relu=True)), [x, w, b])
    assert result.ok, str(result)


def test_traced_cnn_gradients_equal_eager_on_new_data():
    model = nn.Sequential([nn.layers.Conv2D(3, 3, activation="relu", padding="same"), nn.layers.MaxPooling2D(2),
                           nn.layers.Conv2D(2, 2), nn.layers.AveragePooling2D(2, padding="same"),
                           nn.layers.Flatten()], input_shape=[6, 6, 2])

    def grads(x):
        with ad.GradientTape() as tape:
            loss = ad.sum(ad.square(model(x)))
        return tape.gradient(loss, model.trainable_variables)

    traced = ad.Function(grads)
    for _ in range(3):  # replays must use each call's data, not the traced one's
        x = ad.Tensor(RNG.standard_normal((2, 6, 6, 2)).astype(np.float32))
        for a, b in zip(traced(x), grads(x)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert traced.trace_count == 1


@pytest.mark.parametrize("args, shape, want", [
    ({"filters": 4, "kernel_size": 3}, (28, 28, 1), (26, 26, 4)),
    ({"filters": 4, "kernel_size": 3, "padding": "same"}, (28, 28, 1), (28, 28, 4)),
    ({"filters": 4, "kernel_size": 3, "strides": 2}, (28, 28, 1), (13, 13, 4)),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (7, 8, 1), (4, 4, 4)),
    ({"filters": 4, "kernel_size": [3, 1], "dilation_rate": 2}, (9, 9, 2), (5, 9, 4)),
])
def test_conv2d_output_shapes(args, shape, want):
    layer = nn.layers.Conv2D(**args)
    assert layer.compute_output_shape(shape) == want
    assert layer(np.zeros((2, *shape), np.float32)).shape == (2, *want)
    assert [w.shape for w in layer.get_weights()] == [(*layer.kernel_size, shape[-1], 4), (4,)]


def test_conv1d_shapes_config_and_errors():
    layer = nn.layers.Conv1D(5, 3, strides=2, padding="causal")
    assert layer(np.zeros((2, 10, 3), np.float32)).shape == (2, 5, 5)
    assert layer.get_config()["kernel_size"] == 3
    conv2 = nn.layers.Conv2D(8, [3, 2], strides=2, activation="relu", use_bias=False)
    config = conv2.get_config()
    assert config["kernel_size"] == [3, 2] and config["strides"] == [2, 2]
    assert nn.layers.Conv2D(**config).get_config() == config
    with pytest.raises(ValueError, match="receptive field"):
        nn.layers.Conv2D(2, 5).build((3, 3, 1))
    with pytest.raises(ValueError, match="padding"):
        nn.layers.Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="filters"):
        nn.layers.Conv1D(0, 3)


# -- pooling ---------------------------------------------------------------------------


def test_max_pool_picks_window_maxima():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    assert P.max_pool2d(x).numpy()[0, :, :, 0].tolist() == [[5, 7], [13, 15]]
    assert P.max_pool2d(x, 3, 1).numpy()[0, :, :, 0].tolist() == [[10, 11], [14, 15]]
    # "same" on 5x5 with pool 2: 3x3 outputs, the last row/column sees only real inputs
    y = P.max_pool2d(np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1), 2, padding="same").numpy()
    assert y[0, :, :, 0].tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]


def test_max_pool_gradient_goes_to_one_winner():
    x = ad.Variable(np.array([[1, 3, 3, 0], [3, 2, 0, 0], [5, 5, 1, 1], [5, 5, 1, 1]],
                             dtype=np.float32).reshape(1, 4, 4, 1))
    with ad.GradientTape() as tape:
        y = P.max_pool2d(x)
    g = tape.gradient(y, x).numpy()[0, :, :, 0]
    # ties go to the first maximum in row-major order, and each window's gradient sums to 1
    assert g.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_average_pool_same_excludes_padding():
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    y = P.avg_pool2d(x, 2, padding="same").numpy()[0, :, :, 0]
    want = [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8]]
    np.testing.assert_allclose(y, want)
    assert P.avg_pool1d(np.array([[[1.0], [3.0], [2.0]]], np.float32), 2, padding="same").numpy().ravel().tolist() \
        == [2.0, 2.0]


@pytest.mark.parametrize("pool, strides, padding", [(2, None, "valid"), (2, None, "same"), (3, 2, "valid"),
                                                    (3, 2, "same"), ((2, 3), 1, "valid")])
def test_pool2d_gradients(pool, strides, padding):
    x = RNG.standard_normal((2, 5, 6, 2))
    for fn in (P.max_pool2d, P.avg_pool2d):
        result = check_gradients(lambda a: fn(a, pool, strides, padding), [x])
        assert result.ok, (fn.__name__, str(result))
    result = check_second_order(lambda a: ad.square(P.max_pool2d(a, pool, strides, padding)), [x[:1, :4, :4, :1]])
    assert result.ok, str(result)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pool1d_gradients(padding):
    x = RNG.standard_normal((2, 7, 3))
    for fn in (P.max_pool1d, P.avg_pool1d):
        assert check_gradients(lambda a: fn(a, 3, 2, padding), [x]).ok


def test_pools_match_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 7, 8, 3))
    xt = torch.tensor(x).permute(0, 3, 1, 2)
    for pool, stride in [(2, 2), (3, 2), (3, 1)]:
        for fn, ref in ((P.max_pool2d, torch.nn.functional.max_pool2d), (P.avg_pool2d, torch.nn.functional.avg_pool2d)):
            want = ref(xt, pool, stride).permute(0, 2, 3, 1).numpy()
            np.testing.assert_allclose(fn(T(x), pool, stride).numpy(), want, atol=1e-12)


def test_pool_layers_shapes_and_configs():
    cases = [(nn.layers.MaxPooling2D(2), (26, 26, 32), (13, 13, 32)),
             (nn.layers.AveragePooling2D([2, 3], strides=1), (5, 6, 2), (4, 4, 2)),
             (nn.layers.MaxPooling2D(2, padding="same"), (5, 5, 1), (3, 3, 1)),
             (nn.layers.MaxPooling1D(3), (12, 5), (4, 5)),
             (nn.layers.AveragePooling1D(2, strides=1, padding="same"), (7, 2), (7, 2)),
             (nn.layers.GlobalAveragePooling2D(), (4, 4, 3), (3,)),
             (nn.layers.GlobalMaxPooling2D(keepdims=True), (4, 4, 3), (1, 1, 3)),
             (nn.layers.GlobalMaxPooling1D(), (6, 3), (3,))]
    for layer, shape, want in cases:
        assert layer.compute_output_shape(shape) == want
        assert layer(np.ones((2, *shape), np.float32)).shape == (2, *want)
        config = layer.get_config()
        assert type(layer)(**config).get_config() == config
    x = RNG.standard_normal((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(nn.layers.GlobalAveragePooling2D()(x).numpy(), x.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(nn.layers.GlobalMaxPooling2D()(x).numpy(), x.max(axis=(1, 2)))
