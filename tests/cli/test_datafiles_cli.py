"""A user's own CSV files through the real commands: no header row, class names, validation and test
files, held-out parts scored with `nncli eval --split` (issue 13)."""

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.data import load_builtin

runner = CliRunner()
SPECIES = np.array(["setosa", "versicolor", "virginica"])
COLUMNS = "sepal_length,sepal_width,petal_length,petal_width,species"
MODEL = """\
model: {input_shape: [4], layers: [{type: Dense, units: 16, activation: relu}, {type: Dense, units: 3}]}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.02}
train: {epochs: 25, metrics: [accuracy]}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def error(result, *parts):
    """Exit 2 with one paragraph on stderr that names ``parts``; no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output, result.output
    for part in parts:
        assert part in result.stderr, (part, result.stderr)
    return result.stderr


def iris_rows(order=None, label=lambda y: SPECIES[int(y)], first=False):
    """Iris as CSV rows (features then label, or label first), in ``order``."""
    x, y = load_builtin("iris")
    order = np.arange(len(x)) if order is None else order
    rows = []
    for i in order:
        features = ",".join(f"{v:g}" for v in x[i])
        rows.append(f"{label(y[i])},{features}" if first else f"{features},{label(y[i])}")
    return rows


def write(path, rows, header=COLUMNS):
    path.write_text((header + "\n" if header else "") + "\n".join(rows) + "\n")
    return path


def config(folder, data: str, name="c.yaml"):
    path = folder / name
    path.write_text(f"seed: 0\ndata: {{{data}, normalize: standard, batch_size: 16}}\n" + MODEL)
    return path


def run_json(folder, run_id):
    return json.loads((folder / "runs" / run_id / "run.json").read_text())


def eval_json(folder, run_id, *args):
    result = cli("eval", run_id, "--runs-dir", folder / "runs", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def predictions(result):
    assert result.exit_code == 0, result.output
    return list(csv.reader(io.StringIO(result.stdout)))


# ---------------------------------------------------------------------------- 1. a CSV without a header row


def test_a_headerless_csv_is_refused_until_header_false_then_trains_on_every_row(tmp_path):
    write(tmp_path / "iris.csv", iris_rows(label=lambda y: str(int(y)), first=True), header=None)
    cfg = config(tmp_path, "source: iris.csv, target: 0")
    message = error(cli("train", cfg, "--runs-dir", tmp_path / "runs"), str(tmp_path / "iris.csv"),
                    "line 1 looks like data, not a header row", "set data.header: false")
    assert "(0, 5.1, 3.5, 1.4, ...)" in message
    assert not (tmp_path / "runs").exists()  # nothing half-made

    result = cli("train", cfg, "--set", "data.header=false", "--runs-dir", tmp_path / "runs", "--run-id", "nh")
    assert result.exit_code == 0, result.output
    info = run_json(tmp_path, "nh")["data"]
    assert info["train_samples"] + info["validation_samples"] == 150  # the first row is a sample, not names
    assert info["feature_names"] == ["1", "2", "3", "4"] and info["target"] == "0"
    assert eval_json(tmp_path, "nh", "--split", "validation")["metrics"]["accuracy"] > 0.8

    # predict reads columns by position: features alone, or with the label where training had it
    features = write(tmp_path / "new.csv", [",".join(r.split(",")[:-1]) for r in iris_rows()[::50]], header=None)
    labelled = write(tmp_path / "labelled.csv", iris_rows(label=lambda y: str(int(y)), first=True)[::50], header=None)
    alone = predictions(cli("predict", "nh", features, "--runs-dir", tmp_path / "runs"))
    assert alone == predictions(cli("predict", "nh", labelled, "--runs-dir", tmp_path / "runs"))
    assert [row[0] for row in alone] == ["class", "0", "1", "2"]


def test_a_target_position_past_the_columns_is_named_at_its_key(tmp_path):
    write(tmp_path / "iris.csv", iris_rows(label=lambda y: str(int(y))), header=None)
    cfg = config(tmp_path, "source: iris.csv, header: false, target: 5")
    error(cli("train", cfg, "--runs-dir", tmp_path / "runs"), "c.yaml:2:", "data.target",
          "target 5 is not a column position: the file has 5 columns, positions 0 to 4")


# ---------------------------------------------------------------------------- 2. tiny training parts, test parts


def test_a_tiny_training_part_is_a_warning_the_cli_shows(tmp_path):
    write(tmp_path / "iris.csv", iris_rows())
    result = cli("train", config(tmp_path, "source: iris.csv, validation_split: 0.99"), "--runs-dir",
                 tmp_path / "runs", "--run-id", "tiny", "-q")
    assert result.exit_code == 0, result.output
    assert ("warning: validation_split 0.99 and test_split 0.0 hold out 148 of the 150 samples of "
            f"{tmp_path / 'iris.csv'}, leaving 2 (1%) to train on") in " ".join(result.output.split())
    assert any("leaving 2 (1%)" in w for w in run_json(tmp_path, "tiny")["warnings"])
    checked = cli("check", tmp_path / "c.yaml")  # the same warning before anything is trained
    assert checked.exit_code == 0 and "warning: validation_split 0.99" in checked.stderr, checked.output
    assert "warning" not in cli("check", tmp_path / "c.yaml", "--set", "data.validation_split=0.2").stderr


def test_a_test_split_is_warned_about_then_scored_by_eval_split(tmp_path):
    write(tmp_path / "iris.csv", iris_rows())
    cfg = config(tmp_path, "source: iris.csv, validation_split: 0.2, test_split: 0.2")
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "held")
    assert result.exit_code == 0, result.output
    assert (f"warning: the test part of {tmp_path / 'iris.csv'} (30 samples) is not used in training: score it "
            "with: nncli eval held --split test") in " ".join(result.output.split())

    test = eval_json(tmp_path, "held", "--split", "test")
    assert test["split"] == "test" and test["samples"] == 30
    assert test["data"] == f"test part of {tmp_path / 'iris.csv'}"
    # the same 30 rows written to a file of their own score the same: the split is rebuilt exactly
    held_out = np.random.default_rng(0).permutation(150)[:30]  # the seeded split: test first, then validation
    write(tmp_path / "held.csv", iris_rows(order=held_out))
    same = eval_json(tmp_path, "held", "--data", tmp_path / "held.csv")
    assert same["samples"] == 30 and same["metrics"] == pytest.approx(test["metrics"], rel=1e-5)
    assert eval_json(tmp_path, "held", "--split", "train")["samples"] == 90
    assert eval_json(tmp_path, "held")["samples"] == 30 and eval_json(tmp_path, "held")["split"] == "validation"

    plain = tmp_path / "plain.yaml"
    plain.write_text(cfg.read_text().replace(", test_split: 0.2", ""))
    assert cli("train", plain, "--runs-dir", tmp_path / "runs", "--run-id", "plain", "-q").exit_code == 0
    error(cli("eval", "plain", "--split", "test", "--runs-dir", tmp_path / "runs"),
          "run 'plain' has no test part (data.test_split is 0 and there is no data.test file)")
    error(cli("eval", "held", "--split", "test", "--data", tmp_path / "held.csv", "--runs-dir", tmp_path / "runs"),
          "give --data (another file) or --split (a part of the run's own data), not both")


# ---------------------------------------------------------------------------- 3. class names as labels


def test_class_names_train_predict_by_name_and_evaluate(tmp_path):
    write(tmp_path / "iris.csv", iris_rows())
    cfg = config(tmp_path, "source: iris.csv, target: species")
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "names", "-q")
    assert result.exit_code == 0, result.output
    assert run_json(tmp_path, "names")["data"]["classes"] == ["setosa", "versicolor", "virginica"]

    table = predictions(cli("predict", "names", tmp_path / "iris.csv", "--runs-dir", tmp_path / "runs"))
    assert table[0] == ["class", "prob_setosa", "prob_versicolor", "prob_virginica"]
    truth = [row.split(",")[-1] for row in iris_rows()]
    assert np.mean([row[0] == label for row, label in zip(table[1:], truth)]) > 0.9
    assert eval_json(tmp_path, "names")["metrics"]["accuracy"] > 0.85

    # another labelled file: its names are mapped onto the run's classes (here only two of them)
    two = write(tmp_path / "two.csv", [r for r in iris_rows() if not r.endswith("setosa")][:20])
    assert eval_json(tmp_path, "names", "--data", two)["samples"] == 20
    rows = iris_rows()[:10]
    rows[3] = rows[3].replace("setosa", "setosaa")
    write(tmp_path / "typo.csv", rows)
    error(cli("eval", "names", "--data", tmp_path / "typo.csv", "--runs-dir", tmp_path / "runs"),
          "typo.csv: row 5, column 5 ('species'): label 'setosaa' is not one of the 3 classes of the run: "
          "'setosa', 'versicolor', 'virginica' (did you mean 'setosa'?)")


def test_a_class_name_written_once_another_way_is_named_as_a_likely_typo(tmp_path):
    rows = iris_rows()
    rows[40] = rows[40].replace("setosa", "Setosa")  # line 42 of the file
    write(tmp_path / "iris.csv", rows)
    cfg = config(tmp_path, "source: iris.csv, target: species")
    message = error(cli("train", cfg, "--runs-dir", tmp_path / "runs"),
                    "holds 4 classes ('Setosa', 'setosa', 'versicolor', 'virginica'), more than num_classes = 3",
                    "'Setosa' is only at row 42, column 5 ('species'), beside 'setosa' in 49 samples: a typo?",
                    "give model.layers[1] units: 4")
    assert message.count("a typo?") == 1  # the other classes are common and far apart
    rows[40] = rows[40].replace("Setosa", "rose")  # a class of its own, not close to another: no guess
    write(tmp_path / "iris.csv", rows)
    assert "typo" not in error(cli("train", cfg, "--runs-dir", tmp_path / "runs"), "holds 4 classes")


def test_class_names_with_a_regression_loss_say_which_loss_fits(tmp_path):
    write(tmp_path / "iris.csv", iris_rows())
    cfg = config(tmp_path, "source: iris.csv")
    error(cli("train", cfg, "--set", "loss=mse", "--set", "model.layers[1].units=1", "--set", "train.metrics=[]",
              "--runs-dir", tmp_path / "runs"),
          "loss: MeanSquaredError needs numbers as targets", "holds class names ('setosa', 'versicolor', "
          "'virginica')", "SparseCategoricalCrossentropy")
    error(cli("train", cfg, "--set", "model.layers[1].units=2", "--runs-dir", tmp_path / "runs"),
          "model.layers[1]: the model has 2 outputs", "holds 3 classes", "give model.layers[1] units: 3")


# ---------------------------------------------------------------------------- 4. validation and test files


def train_val_test_files(folder):
    """Iris shuffled into train.csv (100 rows), val.csv (30) and test.csv (20), and a config that
    names all three; returns the row order and the config's path."""
    order = np.random.default_rng(7).permutation(150)
    write(folder / "train.csv", iris_rows(order[:100]))
    write(folder / "val.csv", iris_rows(order[100:130]))
    write(folder / "test.csv", iris_rows(order[130:]))
    return order, config(folder, "source: train.csv, validation: val.csv, test: test.csv")


def test_validation_and_test_files_instead_of_splits(tmp_path):
    order, cfg = train_val_test_files(tmp_path)
    cfg.write_text(cfg.read_text().replace("metrics: [accuracy]", "metrics: [accuracy], early_stopping: {patience: 50}"))
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "files")
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output and "nncli eval files --split test" in " ".join(result.output.split())
    header = (tmp_path / "runs" / "files" / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,loss,val_loss,accuracy,val_accuracy")
    info = run_json(tmp_path, "files")["data"]
    assert (info["train_samples"], info["validation_samples"], info["test_samples"]) == (100, 30, 20)
    x, _ = load_builtin("iris")
    np.testing.assert_allclose(info["normalizer"]["shift"], x[order[:100]].mean(axis=0), rtol=1e-5)  # train only
    assert info["sources"]["validation"] == f"validation file {tmp_path / 'val.csv'}"

    val = eval_json(tmp_path, "files", "--split", "validation")
    assert val["samples"] == 30 and val["data"] == f"validation file {tmp_path / 'val.csv'}"
    assert val["metrics"]["loss"] == pytest.approx(run_json(tmp_path, "files")["best"]["value"], rel=1e-5)
    assert eval_json(tmp_path, "files", "--split", "test")["samples"] == 20

    result = cli("config", cfg)
    assert "validation_split: 0.0" in result.stdout and "default: 0, as data.validation is a file" in result.stdout


def test_a_validation_file_that_does_not_fit_is_named(tmp_path):
    shuffled = iris_rows(np.random.default_rng(0).permutation(150))
    write(tmp_path / "train.csv", shuffled[:100])
    write(tmp_path / "val.csv", shuffled[100:], header=COLUMNS.replace("petal_width", "petal_wide"))
    cfg = config(tmp_path, "source: train.csv, validation: val.csv")
    error(cli("train", cfg, "--runs-dir", tmp_path / "runs"), f"error: {tmp_path / 'val.csv'}: its columns differ "
          f"from those of data.source ({tmp_path / 'train.csv'}): missing petal_width; unexpected petal_wide")
    rows = [r.replace("virginica", "virginca") for r in shuffled[100:]]
    first = next(i for i, r in enumerate(rows) if "virginca" in r)
    write(tmp_path / "val.csv", rows)
    error(cli("train", cfg, "--runs-dir", tmp_path / "runs"),
          f"{tmp_path / 'val.csv'}: row {first + 2}, column 5 ('species'): label 'virginca' is not one of the 3 classes of "
          f"the training file {tmp_path / 'train.csv'}")
    error(cli("train", cfg, "--set", "data.validation_split=0.3", "--runs-dir", tmp_path / "runs"),
          "data.validation_split: expected either data.validation (a file) or data.validation_split, found both")
    error(cli("train", cfg, "--set", f"data.validation={tmp_path / 'nope.csv'}", "--runs-dir", tmp_path / "runs"),
          f"data.validation: expected an existing file, found '{tmp_path / 'nope.csv'}'")
    assert not (tmp_path / "runs").exists()


def test_the_data_fingerprint_covers_the_validation_and_test_files(tmp_path):
    order, cfg = train_val_test_files(tmp_path)
    assert cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "fp", "-q").exit_code == 0
    roles = [f["role"] for f in run_json(tmp_path, "fp")["data"]["fingerprint"]["files"]]
    assert roles == ["source", "validation", "test"]
    write(tmp_path / "test.csv", iris_rows(order[131:]))  # one row fewer
    error(cli("eval", "fp", "--split", "test", "--runs-dir", tmp_path / "runs"),
          "the data of run 'fp' has changed since it was trained", f"{tmp_path / 'test.csv'} has changed")
    error(cli("train", cfg, "--resume", "fp", "--set", "train.epochs=30", "--runs-dir", tmp_path / "runs"),
          "cannot resume run 'fp': its data has changed", f"{tmp_path / 'test.csv'} has changed")
    scored = eval_json(tmp_path, "fp", "--split", "validation", "--allow-changed-data")
    assert scored["samples"] == 30 and "test.csv has changed" in scored["warnings"][0]
