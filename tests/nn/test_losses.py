"""Losses against numpy formulas, gradients against central differences, stability, traced replay."""

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli.autodiff import apply
from nncli.autodiff.gradcheck import check_gradients, check_second_order
from nncli.nn import losses, registry

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((5, 4))
LABELS = np.array([0, 3, 1, 2, 3])
ONEHOT = np.eye(4)[LABELS]
SOFT = RNG.dirichlet(np.ones(4), size=5)  # soft target rows
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
X, Y = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 3)) * 2


def np_log_softmax(x):
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_huber(e, d):
    a = np.abs(e)
    return np.where(a <= d, 0.5 * e ** 2, d * (a - 0.5 * d)).mean()


def np_prob_ce(t, p):
    p = np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    return -(t * np.log(p)).sum(-1).mean()


BIN_T = (RNG.random((6, 1)) > 0.5).astype(float)
BIN_X = RNG.standard_normal((6, 1))
BIN_P = 1 / (1 + np.exp(-BIN_X))

# (loss, trues, predicts, expected by a numpy formula)
VALUE_CASES = [
    (losses.MeanSquaredError(), Y, X, ((X - Y) ** 2).mean()),
    (losses.MeanAbsoluteError(), Y, X, np.abs(X - Y).mean()),
    (losses.Huber(), Y, X, np_huber(X - Y, 1.0)),
    (losses.Huber(delta=0.5), Y, X, np_huber(X - Y, 0.5)),
    (losses.BinaryCrossentropy(), BIN_T, BIN_P,
     -(BIN_T * np.log(BIN_P) + (1 - BIN_T) * np.log(1 - BIN_P)).mean()),
    (losses.BinaryCrossentropy(from_logits=True), BIN_T, BIN_X,
     -(BIN_T * np.log(BIN_P) + (1 - BIN_T) * np.log(1 - BIN_P)).mean()),
    (losses.CategoricalCrossentropy(), SOFT, PROBS, np_prob_ce(SOFT, PROBS)),
    (losses.CategoricalCrossentropy(from_logits=True), SOFT, LOGITS, -(SOFT * np_log_softmax(LOGITS)).sum(-1).mean()),
    (losses.SparseCategoricalCrossentropy(), LABELS, PROBS, np_prob_ce(ONEHOT, PROBS)),
    (losses.SparseCategoricalCrossentropy(from_logits=True), LABELS, LOGITS,
     -np_log_softmax(LOGITS)[np.arange(5), LABELS].mean()),
]


@pytest.mark.parametrize("loss, trues, predicts, expected", VALUE_CASES, ids=lambda v: repr(v)[:40])
def test_value_matches_numpy_formula(loss, trues, predicts, expected):
    out = loss(trues, ad.Tensor(predicts, dtype="float64"))
    assert out.shape == ()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    out32 = loss(trues, ad.Tensor(predicts))  # float32 in, float32 out: no promotion
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("loss, trues, predicts, expected", VALUE_CASES, ids=lambda v: repr(v)[:40])
def test_gradient_matches_central_differences(loss, trues, predicts, expected):
    result = check_gradients(lambda p, t: loss(t, p), [predicts, trues], wrt=[0])
    assert result.ok, str(result)


@pytest.mark.parametrize("loss", [losses.SparseCategoricalCrossentropy(from_logits=True),
                                  losses.CategoricalCrossentropy(from_logits=True)])
def test_fused_crossentropy_second_order(loss):
    trues = LABELS if loss.label_kind == "sparse" else SOFT
    result = check_second_order(lambda p: loss(trues, p), [LOGITS])
    assert result.ok, str(result)


def test_categorical_from_logits_differentiates_soft_targets_too():
    loss = losses.CategoricalCrossentropy(from_logits=True)
    assert check_gradients(lambda p, t: loss(t, p), [LOGITS, SOFT]).ok
    assert check_second_order(lambda p, t: loss(t, p), [LOGITS, SOFT]).ok


def hessian_vector(loss, logits, labels, v):
    """H v of the loss at ``logits``, through two nested tapes."""
    with ad.GradientTape() as outer:
        outer.watch(logits)
        with ad.GradientTape() as inner:
            inner.watch(logits)
            value = loss(labels, logits)
        g = inner.gradient(value, logits)
        directional = ad.sum(g * v)
    return outer.gradient(directional, logits)


def test_hessian_vector_product_eager_and_traced_vs_finite_differences():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    v = RNG.standard_normal(LOGITS.shape)

    def grad_at(x, labels):
        x = ad.Variable(x, dtype="float64")
        with ad.GradientTape() as tape:
            value = loss(labels, x)
        return tape.gradient(value, x).numpy()

    traced = ad.function(hessian_vector)
    for labels in (LABELS, LABELS[::-1].copy()):  # the second call replays with new labels
        eps = 1e-6
        numeric = (grad_at(LOGITS + eps * v, labels) - grad_at(LOGITS - eps * v, labels)) / (2 * eps)
        x = ad.Tensor(LOGITS, dtype="float64")
        eager = hessian_vector(loss, x, labels, v)
        np.testing.assert_allclose(eager.numpy(), numeric, atol=1e-7)
        np.testing.assert_allclose(traced(loss, x, labels, ad.Tensor(v, dtype="float64")).numpy(), numeric, atol=1e-7)
    assert traced.trace_count == 1


def second_directional(x, w, v):
    """d/d(x, w) of sum(grad_(x, w) [w * loss] * v), through two nested tapes."""
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    with ad.GradientTape() as outer:
        outer.watch([x, w])
        with ad.GradientTape() as inner:
            inner.watch([x, w])
            value = w * loss(LABELS, x)
        gx, gw = inner.gradient(value, [x, w])
        directional = ad.sum(gx * v) + gw * 0.5
    return outer.gradient(directional, [x, w])


def test_second_order_through_a_scaled_fused_loss_eager_and_traced():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    result = check_second_order(lambda x, w: w * loss(LABELS, x), [LOGITS, np.array(1.5)])
    assert result.ok, str(result)
    x, w = ad.Tensor(LOGITS, dtype="float64"), ad.Tensor(1.5, dtype="float64")
    v = ad.Tensor(RNG.standard_normal(LOGITS.shape), dtype="float64")
    eager = second_directional(x, w, v)  # the outer backward runs on arrays
    traced = ad.function(second_directional)(x, w, v)  # ... and here as ops
    for a, b in zip(traced, eager):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_gradient_op_with_and_without_the_cached_softmax():
    x, y, g = ad.Tensor(LOGITS), ad.Tensor(LABELS), ad.Tensor(np.float32(2.0))
    want = 2.0 * (PROBS - ONEHOT) / 5
    cold = apply(losses.SparseSoftmaxCrossentropyGrad, (x, y, g))  # computes the softmax itself
    losses.SparseCategoricalCrossentropy(from_logits=True)(y, x)    # leaves its softmax for x, y
    warm = apply(losses.SparseSoftmaxCrossentropyGrad, (x, y, g))
    np.testing.assert_allclose(cold.numpy(), want, rtol=1e-5, atol=1e-7)
    assert np.array_equal(warm.numpy(), cold.numpy())
    with pytest.raises(ValueError, match="label 7 is out of range"):
        apply(losses.SparseSoftmaxCrossentropyGrad, (x, ad.Tensor(np.array([7, 0, 0, 0, 0])), g))


@pytest.mark.parametrize("loss", [losses.SparseCategoricalCrossentropy(from_logits=True),
                                  losses.SparseCategoricalCrossentropy()])
def test_traced_step_reads_each_calls_labels(loss):
    def value_and_grad(x, labels):
        with ad.GradientTape() as tape:
            tape.watch(x)
            value = loss(labels, x)
        return value, tape.gradient(value, x)

    traced = ad.function(value_and_grad)
    preds = PROBS.astype(np.float32) if not loss.from_logits else LOGITS.astype(np.float32)
    for labels in (LABELS, (LABELS + 1) % 4, np.zeros(5, dtype=np.int64)):
        want_value, want_grad = value_and_grad(ad.Tensor(preds), labels)
        got_value, got_grad = traced(ad.Tensor(preds), labels)
        np.testing.assert_allclose(got_value.numpy(), want_value.numpy(), rtol=1e-6)
        np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-5, atol=1e-7)
    assert traced.trace_count == 1


@pytest.mark.parametrize("loss, trues", [
    (losses.SparseCategoricalCrossentropy(from_logits=True), np.array([0, 1])),
    (losses.SparseCategoricalCrossentropy(), np.array([0, 1])),
    (losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[[0, 1]]),
    (losses.CategoricalCrossentropy(), np.eye(3)[[0, 1]]),
    (losses.BinaryCrossentropy(from_logits=True), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    (losses.BinaryCrossentropy(), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
])
def test_stable_at_extreme_logits(loss, trues):
    raw = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=np.float32)
    if not loss.from_logits:  # probabilities of exactly 0 and 1
        raw = (raw > 0).astype(np.float32) if loss.label_kind == "binary" else np.array(
            [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    x = ad.Variable(raw)
    with ad.GradientTape() as tape:
        value = loss(trues, x)
    grad = tape.gradient(value, x)
    assert np.isfinite(value.numpy()) and np.all(np.isfinite(grad.numpy()))
    if loss.from_logits and loss.label_kind == "sparse":  # row 0 certain and right; row 1 split 50/50
        np.testing.assert_allclose(value.numpy(), (0 + np.log(2)) / 2, rtol=1e-6)


def test_sparse_labels_out_of_range_name_the_label():
    for loss in (losses.SparseCategoricalCrossentropy(from_logits=True), losses.SparseCategoricalCrossentropy()):
        with pytest.raises(ValueError, match=r"label 4 is out of range for 4 classes"):
            loss(np.array([0, 4, 1, 2, 3]), ad.Tensor(LOGITS))
        with pytest.raises(ValueError, match=r"label -1 is out of range"):
            loss(np.array([0, -1, 1, 2, 3]), ad.Tensor(LOGITS))
        with pytest.raises(ValueError, match="shape"):
            loss(np.array([0, 1]), ad.Tensor(LOGITS))


def test_sparse_labels_may_have_a_trailing_axis_or_be_whole_floats():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    want = loss(LABELS, ad.Tensor(LOGITS)).numpy()
    assert loss(LABELS[:, None], ad.Tensor(LOGITS)).numpy() == want
    assert loss(LABELS.astype(np.float32), ad.Tensor(LOGITS)).numpy() == want
    with pytest.raises(ValueError, match="whole class ids"):
        loss(LABELS + 0.5, ad.Tensor(LOGITS))


def test_sparse_crossentropy_over_a_sequence_axis():
    logits = RNG.standard_normal((2, 3, 4))
    labels = RNG.integers(0, 4, size=(2, 3))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = -np.take_along_axis(np_log_softmax(logits), labels[..., None], -1).mean()
    np.testing.assert_allclose(loss(labels, ad.Tensor(logits, dtype="float64")).numpy(), expected, rtol=1e-12)
    assert check_gradients(lambda p, t: loss(t, p), [logits, labels], wrt=[0]).ok


def test_regression_trues_of_rank_one_match_a_single_output_column():
    t, p = np.array([1.0, 2.0, 3.0]), np.array([[1.5], [2.0], [2.0]])
    assert losses.MeanSquaredError()(t, ad.Tensor(p)).numpy() == pytest.approx((0.25 + 1.0) / 3)
    with pytest.raises(ValueError, match="shape"):
        losses.MeanSquaredError()(np.ones((3, 2)), ad.Tensor(p))


def test_label_kinds_and_registry_aliases_and_config_round_trip():
    kinds = {"mse": None, "mae": None, "huber": None, "binary_crossentropy": "binary",
             "categorical_crossentropy": "categorical", "sparse_categorical_crossentropy": "sparse"}
    for alias, kind in kinds.items():
        cls = registry.get("losses", alias)
        assert cls.label_kind == kind
        obj = cls()
        clone = cls(**obj.get_config())
        assert clone.get_config() == obj.get_config()
    built = losses.get({"type": "Huber", "delta": 2.5})
    assert isinstance(built, losses.Huber) and built.get_config() == {"delta": 2.5}
    assert losses.get("sparse_categorical_crossentropy").from_logits is False
