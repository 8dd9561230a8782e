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


# ---- precision, recall, F1, AUC, R² against their definitions (scikit-learn's defaults) -------------
def reference_prf(true, pred, binary):
    """Precision, recall, F1: of class 1 when binary, else macro over the classes in true or pred."""
    classes = [1] if binary else sorted(set(true.tolist()) | set(pred.tolist()))
    p, r, f = [], [], []
    for c in classes:
        tp = np.sum((pred == c) & (true == c))
        fp, fn = np.sum((pred == c) & (true != c)), np.sum((pred != c) & (true == c))
        p.append(tp / (tp + fp) if tp + fp else 0.0)
        r.append(tp / (tp + fn) if tp + fn else 0.0)
        f.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return np.mean(p), np.mean(r), np.mean(f)


def reference_auc(positive, scores):
    """The exact ROC AUC: the share of (positive, negative) pairs ordered right, ties counting half."""
    pos, neg = scores[positive], scores[~positive]
    return (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (pos.size * neg.size)


MANY = RNG.standard_normal((301, 5)).astype(np.float32)
MANY_LABELS = RNG.integers(0, 5, size=301)
MANY_BATCHES = [slice(0, 64), slice(64, 200), slice(200, 301)]


def over_batches(metric, y_true, y_pred, batches=MANY_BATCHES):
    metric.reset_state()
    for s in batches:
        metric.update_state(y_true[s], y_pred[s])
    return metric.result()


@pytest.mark.parametrize("cls, index", [(metrics.Precision, 0), (metrics.Recall, 1), (metrics.F1Score, 2)])
def test_precision_recall_f1_macro_over_uneven_batches(cls, index):
    want = reference_prf(MANY_LABELS, MANY.argmax(-1), binary=False)[index]
    assert over_batches(cls(label_kind="sparse"), MANY_LABELS, MANY) == pytest.approx(want, rel=1e-12)
    assert over_batches(cls(), np.eye(5)[MANY_LABELS], MANY) == pytest.approx(want, rel=1e-12)  # one-hot: auto
    # a batch mean would differ: the macro score of a whole epoch is not the mean of batch scores
    per_batch = np.mean([reference_prf(MANY_LABELS[s], MANY[s].argmax(-1), False)[index] for s in MANY_BATCHES])
    assert abs(per_batch - want) > 1e-4


@pytest.mark.parametrize("cls, index", [(metrics.Precision, 0), (metrics.Recall, 1), (metrics.F1Score, 2)])
def test_binary_scores_are_those_of_the_positive_class(cls, index):
    logits = MANY[:, :1]
    positive = (MANY_LABELS % 2).astype(np.float32)
    want = reference_prf(positive.astype(int), (logits[:, 0] > 0).astype(int), binary=True)[index]
    metric = metrics.get(cls._default_name, loss=losses.BinaryCrossentropy(from_logits=True))
    assert metric.threshold == 0.0
    assert over_batches(metric, positive, logits) == pytest.approx(want, rel=1e-12)


def test_classes_never_seen_do_not_count_in_the_macro_average():
    m = metrics.F1Score(label_kind="sparse")
    m.update_state(np.array([0, 0, 2]), np.eye(4)[[0, 2, 2]])  # classes 1 and 3: neither labelled nor predicted
    assert m.result() == pytest.approx(np.mean([2 / 3, 2 / 3]))


def test_auc_matches_the_exact_area_within_its_bins():
    positive = RNG.random(301) > 0.6
    scores = np.clip(RNG.normal(0.4 + 0.25 * positive, 0.2), 0, 1)
    exact = reference_auc(positive, scores)
    got = over_batches(metrics.AUC(), positive.astype(np.float32)[:, None], scores[:, None])
    assert got == pytest.approx(exact, abs=0.01) and 0.6 < exact < 0.95
    fine = over_batches(metrics.AUC(num_thresholds=10_000), positive, scores)
    assert fine == pytest.approx(exact, abs=1e-3)
    # scores on bin centres leave nothing to approximate
    centres = (np.floor(scores * 200) + 0.5) / 200
    assert over_batches(metrics.AUC(), positive, centres) == pytest.approx(reference_auc(positive, centres), rel=1e-12)


def test_auc_of_logits_is_the_auc_of_their_sigmoid():
    positive = RNG.random(301) > 0.5
    logits = RNG.normal(positive * 1.5, 1.0)
    probs = 1 / (1 + np.exp(-logits))
    from_logits = metrics.get("auc", loss=losses.BinaryCrossentropy(from_logits=True))
    assert from_logits.from_logits
    assert over_batches(from_logits, positive, logits) == over_batches(metrics.AUC(), positive, probs)
    one_class = metrics.AUC()
    one_class.update_state(np.ones(4), np.full(4, 0.7))
    assert np.isnan(one_class.result())
    with pytest.raises(ValueError, match="binary classifiers with one output"):
        metrics.AUC().update_state(LABELS, LOGITS)


def test_r2_over_batches_columns_and_a_large_mean():
    t = RNG.standard_normal((301, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, 1e8]
    p = t + RNG.standard_normal((301, 3)) * [0.5, 1.0, 0.05]
    want = np.mean(1 - ((t - p) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0))
    assert over_batches(metrics.R2Score(), t, p) == pytest.approx(want, rel=1e-9)
    column = over_batches(metrics.R2Score(), t[:, 0], p[:, :1])
    assert column == pytest.approx(1 - ((t[:, 0] - p[:, 0]) ** 2).sum() / ((t[:, 0] - t[:, 0].mean()) ** 2).sum())
    constant = metrics.R2Score()
    constant.update_state(np.full(4, 2.0), np.full(4, 2.0))
    assert constant.result() == 1.0
    constant.update_state(np.full(4, 2.0), np.full(4, 3.0))
    assert constant.result() == 0.0


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1", "auc", "mse", "mae", "r2"])
def test_state_survives_json_mid_epoch(name):
    import json

    binary = name == "auc"
    y_true = (MANY_LABELS % 2).astype(np.float32) if binary else MANY_LABELS
    y_pred = MANY[:, :1] if binary else MANY
    if name in ("mse", "mae", "r2"):
        y_true, y_pred = MANY[:, :2] * 0.5, MANY[:, 2:4]
    whole = over_batches(metrics.get(name), y_true, y_pred, [slice(0, 150), slice(150, 301)])
    first = metrics.get(name)
    first.update_state(y_true[:150], y_pred[:150])
    second = metrics.get(name)
    second.set_state(json.loads(json.dumps(first.get_state())))
    second.update_state(y_true[150:], y_pred[150:])
    assert second.result() == whole


def test_each_metric_says_whether_it_is_maximised_and_what_it_fits():
    direction = {name: registry.get("metrics", name).maximize for name in
                 ["accuracy", "precision", "recall", "f1", "auc", "r2", "mse", "mae"]}
    assert direction == {"accuracy": True, "precision": True, "recall": True, "f1": True, "auc": True, "r2": True,
                         "mse": False, "mae": False}
    assert {registry.get("metrics", n).task for n in ["accuracy", "f1", "auc"]} == {"classification"}
    assert {registry.get("metrics", n).task for n in ["mse", "mae", "r2"]} == {"regression"}
    assert registry.get("metrics", "auc").label_kinds == ("binary",)
