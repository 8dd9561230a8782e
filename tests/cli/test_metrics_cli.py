"""Precision, recall, F1, AUC and R² through `nncli train`, `eval` and `predict`, against their definitions
on the predictions `nncli predict` writes; and a resume mid-epoch keeps their state exactly."""

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.session import train

runner = CliRunner()

BINARY = """\
seed: 2
data: {source: blobs.csv, validation_split: 0.25, normalize: standard, batch_size: 16}
model: {input_shape: [2], layers: [{type: Dense, units: 8, activation: tanh}, {type: Dense, units: 1}]}
loss: {type: BinaryCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.05}
train: {epochs: 4, metrics: [accuracy, precision, recall, f1, auc], early_stopping: {monitor: val_f1, patience: 1}}
"""
MULTI = BINARY.replace("units: 1}", "units: 3}").replace("BinaryCrossentropy", "SparseCategoricalCrossentropy") \
    .replace("accuracy, precision, recall, f1, auc", "precision, recall, f1").replace("blobs.csv", "three.csv")
REGRESSION = BINARY.replace("{type: BinaryCrossentropy, from_logits: true}", "mse") \
    .replace("accuracy, precision, recall, f1, auc", "r2, mae").replace("val_f1", "val_r2").replace("blobs", "line")


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_csv(path, x, y):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["x1", "x2", "label"])
        out.writerows([[f"{a:.5f}", f"{b:.5f}", f"{c:.5f}" if isinstance(c, float) else int(c)]
                       for (a, b), c in zip(x, y)])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(3)
    for name, classes in (("blobs", 2), ("three", 3)):
        for part, n in ((name, 240), (f"{name}-test", 120)):
            y = rng.integers(0, classes, size=n)
            x = rng.normal(size=(n, 2)) + np.c_[np.cos(2.1 * y), np.sin(2.1 * y)] * 1.2
            write_csv(root / f"{part}.csv", x, y)
    for part, n in (("line", 240), ("line-test", 120)):
        x = rng.normal(size=(n, 2))
        write_csv(root / f"{part}.csv", x, [float(v) for v in x @ [1.5, -2.0] + 0.3 * rng.normal(size=n)])
    for name, text in (("binary", BINARY), ("multi", MULTI), ("regression", REGRESSION)):
        (root / f"{name}.yaml").write_text(text)
        result = cli("train", root / f"{name}.yaml", "--runs-dir", root / "runs", "--run-id", name, "--quiet")
        assert result.exit_code == 0, result.output
    return root


def labels(path):
    with open(path) as f:
        return np.array([float(row["label"]) for row in csv.DictReader(f)])


def predictions(folder, run, data):
    result = cli("predict", folder / "runs" / run, data)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def evaluated(folder, run, data):
    result = cli("eval", run, "--runs-dir", folder / "runs", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]


def prf(true, pred, classes):
    p, r, f = [], [], []
    for c in classes:
        tp, fp, fn = np.sum((pred == c) & (true == c)), np.sum((pred == c) & (true != c)), np.sum((pred != c) & (true == c))
        p.append(tp / (tp + fp) if tp + fp else 0.0)
        r.append(tp / (tp + fn) if tp + fn else 0.0)
        f.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return np.mean(p), np.mean(r), np.mean(f)


def test_binary_precision_recall_f1_auc_match_their_definitions(folder):
    data = folder / "blobs-test.csv"
    got, pred, true = evaluated(folder, "binary", data), predictions(folder, "binary", data), labels(data)
    p, r, f = prf(true, pred["class"], [1])  # the positive class of a one-output model
    assert (got["precision"], got["recall"], got["f1"]) == (pytest.approx(p), pytest.approx(r), pytest.approx(f))
    pos, neg = pred["prob_1"][true == 1], pred["prob_1"][true == 0]
    exact_auc = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (pos.size * neg.size)
    assert got["auc"] == pytest.approx(exact_auc, abs=0.01) and 0.6 < got["auc"] <= 1.0
    header = (folder / "runs/binary/metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,loss,val_loss,accuracy,val_accuracy,precision,val_precision,recall,val_recall,"
                             "f1,val_f1,auc,val_auc")


def test_multiclass_scores_are_macro_averages(folder):
    data = folder / "three-test.csv"
    got, pred, true = evaluated(folder, "multi", data), predictions(folder, "multi", data), labels(data)
    p, r, f = prf(true, pred["class"], sorted(set(true) | set(pred["class"])))
    assert (got["precision"], got["recall"], got["f1"]) == (pytest.approx(p), pytest.approx(r), pytest.approx(f))


def test_r2_of_a_regression(folder):
    data = folder / "line-test.csv"
    got, pred, true = evaluated(folder, "regression", data), predictions(folder, "regression", data), labels(data)
    want = 1 - np.sum((true - pred["value"]) ** 2) / np.sum((true - true.mean()) ** 2)
    assert got["r2"] == pytest.approx(want, abs=1e-4) and got["r2"] > 0.5


def test_early_stopping_and_the_best_epoch_ask_the_metric_which_way_is_better():
    from nncli.nn import metrics
    from nncli.train.callbacks import EarlyStopping
    from nncli.train.loop import Trainer

    names = ["f1", "auc", "r2", "accuracy", "mae"]
    stopping = EarlyStopping("val_r2", patience=1)  # mode auto: the metric's class says which way
    trainer = Trainer(None, None, None, None, metrics={n: metrics.get(n) for n in names}, monitor="val_f1",
                      validation=([], []), callbacks=[stopping])
    assert [trainer.maximize(f"val_{n}") for n in names] == [True, True, True, True, False]
    assert not trainer.maximize("val_loss")
    stopping.on_train_begin(trainer)
    for epoch, (f1, r2) in enumerate([(0.5, 0.1), (0.6, 0.3), (0.7, 0.5), (0.65, 0.4), (0.66, 0.45)], 1):
        trainer._track_best(epoch, {"val_f1": f1, "val_r2": r2})
        if not trainer.stop_training:
            stopping.on_epoch_end(trainer, epoch, {"val_f1": f1, "val_r2": r2})
    # rising values were improvements: the best f1 is epoch 3's, and r2 (best at epoch 3) stopped one
    # epoch later, patience 1 as Keras counts it
    assert (trainer.state.best_epoch, trainer.state.best_value) == (3, 0.7)
    assert trainer.stop_training and (stopping.stopped_epoch, stopping.best, stopping.best_epoch) == (4, 0.5, 3)


class _StopAt:
    """Asks the trainer to stop after batch ``batch`` of epoch ``epoch`` (as Ctrl-C does)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_train_begin(self, trainer): ...
    def on_epoch_begin(self, trainer, epoch): ...
    def on_epoch_end(self, trainer, epoch, logs): ...
    def on_interrupt(self, trainer): ...
    def on_train_end(self, trainer, status): ...

    def on_batch_end(self, trainer, epoch, batch, logs):
        if (epoch, batch) == (self.epoch, self.batch):
            trainer.stop_requested = True


def test_a_resume_mid_epoch_continues_the_metrics_state_exactly(folder, tmp_path):
    config = tmp_path / "binary.yaml"
    config.write_text(BINARY.replace("blobs.csv", str(folder / "blobs.csv")).replace(
        ", early_stopping: {monitor: val_f1, patience: 1}", ""))
    train(config, runs_dir=tmp_path / "runs", run_id="whole", argv=[])
    with pytest.raises(KeyboardInterrupt):
        train(config, runs_dir=tmp_path / "runs", run_id="cut", argv=[], callbacks=[_StopAt(2, 5)])
    train(config, runs_dir=tmp_path / "runs", resume="cut", argv=[])

    def rows(run):
        with open(tmp_path / "runs" / run / "metrics.csv") as f:
            return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]

    assert rows("cut") == rows("whole") and len(rows("whole")) == 4
