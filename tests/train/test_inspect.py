"""Looking at runs: the listing, restoring checkpoints, evaluation that reproduces training, predictions."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nncli.data import Normalizer
from nncli.errors import DataError, RunError
from nncli.train.build import prepare_targets
from nncli.train.inspect import evaluate_run, predict_run, restore_model, runs_table
from nncli.train.loop import Trainer
from nncli.train.session import train

IRIS_CSV = Path(__file__).resolve().parents[2] / "nncli" / "data" / "files" / "iris.csv"

IRIS = f"""\
seed: 2
data: {{source: {IRIS_CSV}, target: label, validation_split: 0.2, normalize: standard, batch_size: 16}}
model:
  input_shape: [4]
  layers:
    - {{type: Dense, units: 8, activation: relu}}
    - {{type: Dropout, rate: 0.3}}
    - {{type: Dense, units: 3}}
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: {{type: Adam, learning_rate: 0.05}}
train: {{epochs: 4, metrics: [accuracy]}}
"""

XOR = """\
seed: 0
data: {{source: xor, samples: 80, validation_split: 0.25, normalize: minmax, batch_size: 16}}
model: {{input_shape: [2], layers: [{{type: Dense, units: 6, activation: tanh}}, {{type: Dense, units: 1}}]}}
loss: {loss}
optimizer: {{type: Adam, learning_rate: 0.05}}
train: {{epochs: 2, metrics: [{metric}]}}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An iris run trained from a CSV file (so it has feature names), a binary and a regression xor run."""
    root = tmp_path_factory.mktemp("inspect")
    runs_dir = root / "runs"
    configs = {"binary": XOR.format(loss="{type: BinaryCrossentropy, from_logits: true}", metric="accuracy"),
               "iris": IRIS, "regression": XOR.format(loss="mse", metric="mae")}
    for name, text in configs.items():  # made in name order: runs made in the same second stay newest first
        (root / f"{name}.yaml").write_text(text)
        train(root / f"{name}.yaml", runs_dir=runs_dir, run_id=name, argv=[])
    return runs_dir


def rows_of(path):
    with open(path / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_runs_table_lists_newest_first_with_summaries(runs):
    rows = runs_table(runs)
    assert [r["run_id"] for r in rows] == ["regression", "iris", "binary"]
    iris = rows[1]
    metrics = rows_of(runs / "iris")
    best = min(metrics, key=lambda r: r["val_loss"])
    assert iris["status"] == "completed" and (iris["epochs_done"], iris["epochs"]) == (4, 4)
    assert iris["best_val_loss"] == pytest.approx(best["val_loss"]) and iris["best_val_loss_epoch"] == best["epoch"]
    assert iris["final"]["val_accuracy"] == pytest.approx(metrics[-1]["val_accuracy"])
    assert iris["duration_s"] == pytest.approx(sum(r["time_s"] for r in metrics))
    json.dumps(rows, allow_nan=False)  # plain JSON for scripts
    assert runs_table(runs / "nothing-here") == []


def test_an_unreadable_run_is_listed_not_fatal(runs, tmp_path):
    shutil.copytree(runs / "iris", tmp_path / "broken")
    (tmp_path / "broken" / "run.json").write_text("{not json")
    [row] = runs_table(tmp_path)
    assert row["status"] == "unreadable" and "run.json" in row["error"]


@pytest.mark.parametrize("run_id", ["iris", "binary", "regression"])
def test_eval_of_the_best_checkpoint_reproduces_the_recorded_validation_metrics(runs, run_id):
    info = json.loads((runs / run_id / "run.json").read_text())
    row = next(r for r in rows_of(runs / run_id) if r["epoch"] == info["best"]["epoch"])
    result = evaluate_run(runs, run_id)
    assert (result["checkpoint"], result["epoch"]) == ("best", info["best"]["epoch"])
    assert result["samples"] == info["data"]["validation_samples"]
    for name, value in result["metrics"].items():
        assert value == pytest.approx(row[f"val_{name}"], rel=1e-6), name
    assert set(result["metrics"]) == {k[4:] for k in row if k.startswith("val_")}


def test_eval_of_the_last_checkpoint_matches_the_last_row(runs):
    last = rows_of(runs / "iris")[-1]
    result = evaluate_run(runs, "iris", checkpoint="last")
    assert result["epoch"] == 4
    assert result["metrics"]["loss"] == pytest.approx(last["val_loss"], rel=1e-6)


def test_eval_on_a_file_applies_the_saved_normalizer(runs, tmp_path):
    # the whole iris file, columns reordered: the run's normalization and column order must be used
    with open(IRIS_CSV) as f:
        table = list(csv.reader(f))
    order = [4, 2, 0, 3, 1]
    shuffled = tmp_path / "iris_shuffled.csv"
    shuffled.write_text("\n".join(",".join(row[i] for i in order) for row in table) + "\n")
    result = evaluate_run(runs, "iris", data=shuffled)
    cfg, parts, _, info = restore_model(runs / "iris", with_data=True)
    d = parts.data
    x = np.concatenate([d.x_train, d.x_val])
    y = prepare_targets(parts.loss, np.concatenate([d.y_train, d.y_val]), 3)
    expected = Trainer(parts.model, parts.loss, parts.optimizer, None, metrics=parts.metrics, compile=False).evaluate(x, y)
    assert result["samples"] == 150
    for name in ("loss", "accuracy"):
        assert result["metrics"][name] == pytest.approx(expected[name], rel=1e-5)


def test_eval_refuses_files_that_do_not_fit(runs, tmp_path):
    bad_label = tmp_path / "bad_label.csv"
    bad_label.write_text("sepal_length,sepal_width,petal_length,petal_width,label\n5.1,3.5,1.4,0.2,7\n")
    with pytest.raises(DataError, match=r"label 7 is not a class.*\[0, 3\)"):
        evaluate_run(runs, "iris", data=bad_label)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("a,sepal_width,petal_length,petal_width,label\n5.1,3.5,1.4,0.2,0\n")
    with pytest.raises(DataError, match=r"missing \['sepal_length'\], unexpected \['a'\]"):
        evaluate_run(runs, "iris", data=renamed)
    three = tmp_path / "three.csv"
    three.write_text("a,b,c,label\n1,2,3,0\n")
    with pytest.raises(DataError, match="expected 2 feature columns and a target column.*found 4 columns"):
        evaluate_run(runs, "binary", data=three)


def predict_csv(preds):
    return list(csv.reader(io.StringIO(preds.to_csv())))


def test_predict_classification_gives_classes_and_softmax_probabilities(runs, tmp_path):
    preds = predict_run(runs, "iris", IRIS_CSV, out=tmp_path / "p.csv")  # the label column is ignored
    assert preds.columns == ["class", "prob_0", "prob_1", "prob_2"] and preds.kind == "classification"
    cfg, parts, _, info = restore_model(runs / "iris")
    x = np.loadtxt(IRIS_CSV, delimiter=",", skiprows=1, dtype=np.float32)[:, :4]
    logits = np.asarray(parts.model(Normalizer.from_dict(info["data"]["normalizer"]).transform(x)))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(preds.values[:, 1:], probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(preds.values[:, 0], logits.argmax(1))
    written = list(csv.reader(open(tmp_path / "p.csv")))
    assert written[0] == preds.columns and len(written) == 151
    assert int(written[1][0]) == preds.values[0, 0]
    assert sum(float(c) for c in written[1][1:]) == pytest.approx(1.0, abs=1e-5)


def test_predict_binary_and_regression(runs, tmp_path):
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, -0.7]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    binary = predict_run(runs, "binary", tmp_path / "x.npy")
    cfg, parts, _, info = restore_model(runs / "binary")
    logit = np.asarray(parts.model(Normalizer.from_dict(info["data"]["normalizer"]).transform(x)))[:, 0]
    p1 = 1 / (1 + np.exp(-logit))
    assert binary.columns == ["class", "prob_0", "prob_1"]
    np.testing.assert_allclose(binary.values[:, 2], p1, rtol=1e-5)
    np.testing.assert_allclose(binary.values[:, 1], 1 - p1, rtol=1e-5)
    np.testing.assert_array_equal(binary.values[:, 0], (p1 > 0.5).astype(np.float32))
    regression = predict_run(runs, "regression", tmp_path / "x.npy")
    cfg, parts, _, info = restore_model(runs / "regression")
    values = np.asarray(parts.model(Normalizer.from_dict(info["data"]["normalizer"]).transform(x)))
    assert regression.columns == ["value"] and regression.kind == "regression"
    np.testing.assert_allclose(regression.values, values, rtol=1e-6)
    assert predict_csv(regression)[0] == ["value"] and len(predict_csv(regression)) == 4


def test_predict_refuses_the_wrong_number_of_features(runs, tmp_path):
    np.save(tmp_path / "x3.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"expected 2 features per sample \(run 'binary' has input shape \[2\]\), found 3"):
        predict_run(runs, "binary", tmp_path / "x3.npy")
    missing = tmp_path / "missing.csv"
    missing.write_text("sepal_length,sepal_width\n1,2\n")
    with pytest.raises(DataError, match="no column named 'petal_length'"):
        predict_run(runs, "iris", missing)


def test_checkpoint_problems_are_run_errors(runs, tmp_path):
    shutil.copytree(runs / "iris", tmp_path / "copy")
    (tmp_path / "copy" / "checkpoints" / "best.safetensors").unlink()
    with pytest.raises(RunError, match="no best checkpoint.*try --checkpoint last"):
        evaluate_run(tmp_path, "copy")
    last = tmp_path / "copy" / "checkpoints" / "last.safetensors"
    blob = bytearray(last.read_bytes())
    blob[-5] ^= 0xFF
    last.write_bytes(bytes(blob))
    with pytest.raises(RunError, match="integrity check"):
        evaluate_run(tmp_path, "copy", checkpoint="last")
    with pytest.raises(RunError, match="unknown checkpoint 'first'"):
        restore_model(runs / "iris", "first")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        evaluate_run(tmp_path, "plain")
    with pytest.raises(RunError, match="Closest: iris"):
        evaluate_run(runs, "irsi")


def test_a_run_without_validation_part_needs_data(runs, tmp_path):
    config = tmp_path / "noval.yaml"
    config.write_text(XOR.format(loss="mse", metric="mae").replace("validation_split: 0.25", "validation_split: 0.0"))
    train(config, runs_dir=tmp_path, run_id="noval", argv=[])
    with pytest.raises(RunError, match="no validation part.*--data"):
        evaluate_run(tmp_path, "noval")
