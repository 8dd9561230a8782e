"""Metrics against numpy over whole epochs, the label kinds accuracy reads, and configs."""

import numpy as np
import pytest

from nncli.nn import losses, metrics, registry
from nncli.nn.metrics import Accuracy, MeanAbsoluteError, MeanSquaredError, accuracy_for

RNG = np.random.default_rng(0)
N, C = 23, 4
LOGITS = RNG.standard_normal((N, C)).astype(np.float32)
LABELS = RNG.integers(0, C, size=N)
BIN_LOGITS = RNG.standard_normal((N, 1)).astype(np.float32)
BIN_LABELS = (RNG.random((N, 1)) > 0.5).astype(np.float32)
BATCHES = [slice(0, 8), slice(8, 16), slice(16, N)]  # the last batch is smaller


def epoch(metric, y_true, y_pred):
    metric.reset_state()
    for s in BATCHES:
        metric.update_state(y_true[s], y_pred[s])
    return metric.result()


def test_sparse_accuracy_over_uneven_batches_equals_the_whole_set():
    m = Accuracy(label_kind="sparse")
    assert epoch(m, LABELS, LOGITS) == pytest.approx(np.mean(LOGITS.argmax(-1) == LABELS), rel=1e-12)
    assert epoch(m, LABELS[:, None], LOGITS) == pytest.approx(np.mean(LOGITS.argmax(-1) == LABELS))


def test_categorical_accuracy_compares_argmaxes():
    onehot = np.eye(C)[LABELS]
    want = np.mean(LOGITS.argmax(-1) == LABELS)
    assert epoch(Accuracy(label_kind="categorical"), onehot, LOGITS) == pytest.approx(want)
    assert epoch(Accuracy(), onehot, LOGITS) == pytest.approx(want)  # auto: same shapes
    assert epoch(Accuracy(), LABELS, LOGITS) == pytest.approx(want)  # auto: class ids


def test_binary_accuracy_thresholds_probabilities_and_logits():
    probs = 1 / (1 + np.exp(-BIN_LOGITS))
    want = np.mean((BIN_LOGITS > 0) == (BIN_LABELS > 0.5))
    from_logits = accuracy_for(losses.BinaryCrossentropy(from_logits=True))
    assert epoch(from_logits, BIN_LABELS, BIN_LOGITS) == pytest.approx(want)
    assert epoch(accuracy_for(losses.BinaryCrossentropy()), BIN_LABELS, probs) == pytest.approx(want)
    assert epoch(Accuracy(), BIN_LABELS[:, 0], probs) == pytest.approx(want)  # auto: one column
    # the threshold matters: logits read as probabilities would flip the ones in (0, 0.5]
    between = (BIN_LOGITS > 0) & (BIN_LOGITS <= 0.5)
    assert between.any()
    wrong = epoch(Accuracy(label_kind="binary"), BIN_LABELS, BIN_LOGITS)
    assert wrong == pytest.approx(np.mean((BIN_LOGITS > 0.5) == (BIN_LABELS > 0.5)))


def test_accuracy_for_reads_the_loss():
    assert accuracy_for(losses.SparseCategoricalCrossentropy(from_logits=True)).label_kind == "sparse"
    assert accuracy_for(losses.CategoricalCrossentropy()).label_kind == "categorical"
    assert accuracy_for(losses.BinaryCrossentropy()).threshold == 0.5
    assert accuracy_for(losses.BinaryCrossentropy(from_logits=True)).threshold == 0.0
    assert accuracy_for(losses.MeanSquaredError()).label_kind == "auto"


@pytest.mark.parametrize("cls, per_sample", [
    (MeanSquaredError, lambda t, p: ((p - t) ** 2).mean(-1)),
    (MeanAbsoluteError, lambda t, p: np.abs(p - t).mean(-1)),
])
def test_regression_metrics_over_an_epoch(cls, per_sample):
    t = RNG.standard_normal((N, 3))
    p = RNG.standard_normal((N, 3))
    assert epoch(cls(), t, p) == pytest.approx(per_sample(t, p).mean(), rel=1e-12)
    column = p[:, :1]
    assert epoch(cls(), t[:, 0], column) == pytest.approx(per_sample(t[:, :1], column).mean(), rel=1e-12)


def test_reset_and_empty_result():
    m = MeanSquaredError()
    assert m.result() == 0.0
    m.update_state(np.ones((2, 2)), np.zeros((2, 2)))
    assert m.result() == 1.0
    m.reset_state()
    assert m.result() == 0.0
    with pytest.raises(ValueError, match="shape"):
        m.update_state(np.ones((2, 3)), np.zeros((2, 2)))


def test_registry_names_get_and_config_round_trip():
    for alias, cls in {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredError,
                       "mean_squared_error": MeanSquaredError, "mae": MeanAbsoluteError,
                       "mean_absolute_error": MeanAbsoluteError}.items():
        assert registry.get("metrics", alias) is cls
        m = metrics.get(alias)
        assert m.name == alias
        assert type(m)(**m.get_config()).get_config() == m.get_config()
    acc = metrics.get("acc", loss=losses.BinaryCrossentropy(from_logits=True))
    assert (acc.name, acc.label_kind, acc.threshold) == ("acc", "binary", 0.0)
    explicit = metrics.get({"type": "Accuracy", "threshold": 0.3}, loss=losses.BinaryCrossentropy())
    assert (explicit.label_kind, explicit.threshold) == ("binary", 0.3)
    with pytest.raises(ValueError, match="label_kind"):
        Accuracy(label_kind="multi")
