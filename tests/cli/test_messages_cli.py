"""Bad input through the real commands: each message names the key to change, and silently wrong
configs (accuracy of a regression, early stopping with nothing validated) are refused."""

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app

runner = CliRunner()

CONFIG = """\
seed: 0
data: {source: reg.csv}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dense, units: 1}
loss: mse
optimizer: adam
train: {epochs: 2}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A regression CSV (target last), a classification CSV with its label first, and a config."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = x @ [1.0, 2.0, 3.0, 4.0] * 20 + 50
    np.savetxt(tmp_path / "reg.csv", np.c_[x, y], delimiter=",", header="a,b,c,d,target", comments="", fmt="%.4f")
    labels = rng.integers(0, 3, size=60)
    np.savetxt(tmp_path / "first.csv", np.c_[labels, x], delimiter=",", header="label,a,b,c,d", comments="",
               fmt="%.4f")
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error(result) -> str:
    """The one-paragraph message of a bad-input exit: code 2, no traceback, nothing on stdout."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error: ")
    return result.stderr


def test_accuracy_of_a_regression_is_refused_naming_the_metrics_that_fit(folder):
    message = error(cli("train", "cfg.yaml", "--set", "train.metrics=[accuracy]", "--runs-dir", "runs"))
    assert ("--set train.metrics=[accuracy]: train.metrics[0]: expected a regression metric (mae, mse, r2) with the "
            "regression loss MeanSquaredError, found 'accuracy', a classification metric") in message
    assert not (folder / "runs").exists()
    message = error(cli("check", "cfg.yaml", "--set", "loss={type: SparseCategoricalCrossentropy}",
                        "--set", "train.metrics=[r2, auc]"))
    # the metrics named as fitting are those that fit this loss: auc reads one binary output, not sparse labels
    assert "train.metrics[0]: expected a classification metric (accuracy, f1, precision, recall)" in message
    assert ("train.metrics[1]: expected a metric for sparse labels (accuracy, f1, precision, recall) with the loss "
            "SparseCategoricalCrossentropy, found 'auc', which needs binary labels") in message
    message = error(cli("check", "cfg.yaml", "--set", "loss=binary_crossentropy", "--set", "train.metrics=[r2]"))
    assert "train.metrics[0]: expected a classification metric (auc, accuracy, f1, precision, recall)" in message


def test_early_stopping_on_val_loss_without_validation_is_refused(folder):
    message = error(cli("train", "cfg.yaml", "--set", "data.validation_split=0", "--set", "train.early_stopping=true",
                        "--runs-dir", "runs"))
    assert "train.early_stopping.monitor: expected a value logged without validation (loss), found 'val_loss'" in message
    assert "set data.validation_split above 0 (or data.validation to a file), or monitor: loss" in message
    ok = cli("train", "cfg.yaml", "--set", "data.validation_split=0", "--set", "train.early_stopping={monitor: loss}",
             "--runs-dir", "runs", "--run-id", "noval", "--quiet")
    assert ok.exit_code == 0, ok.output
    saved = (folder / "runs/noval/config.yaml").read_text()
    assert "monitor: loss" in saved and "val_loss" not in saved  # the best checkpoint's monitor, made explicit


def test_binary_crossentropy_with_three_outputs_names_the_loss(folder):
    message = error(cli("check", "cfg.yaml", "--set", "loss=binary_crossentropy", "--set", "model.layers[1].units=3"))
    assert ("--set loss=binary_crossentropy: loss: BinaryCrossentropy takes one output per sample (a probability, or "
            "a logit with from_logits: true), found a model with 3 outputs (model.layers[1])") in message
    assert "use SparseCategoricalCrossentropy" in message


def test_sparse_crossentropy_on_a_regression_target_suggests_mse(folder):
    message = error(cli("check", "cfg.yaml", "--set", "loss=sparse_categorical_crossentropy",
                        "--set", "model.layers[1].units=3"))
    assert "loss: SparseCategoricalCrossentropy needs class ids 0..2 as targets" in message
    assert "looks like a regression target (60 distinct values" in message and "use loss: mse" in message


def test_class_ids_beyond_the_outputs_name_the_fix_at_the_loss_or_the_last_layer(folder):
    three = ["--set", "data.source=first.csv", "--set", "data.target=label"]
    message = error(cli("check", "cfg.yaml", *three, "--set", "loss={type: BinaryCrossentropy, from_logits: true}"))
    assert message.startswith("error: --set loss={type: BinaryCrossentropy, from_logits: true}: loss: "
                              "BinaryCrossentropy takes labels 0 and 1, but ")  # not "the model has 2 outputs"
    assert ("label 2 is not a class" in message and "for 3 classes use loss: {type: SparseCategoricalCrossentropy, "
            "from_logits: true} with 3 output units (model.layers[1])") in message
    message = error(cli("check", "cfg.yaml", *three, "--set", "loss={type: SparseCategoricalCrossentropy, "
                        "from_logits: true}", "--set", "model.layers[1].units=2"))
    assert "model.layers[1]: the model has 2 outputs" in message and message.rstrip().endswith(
        "give model.layers[1] units: 3")


def test_a_label_column_first_blames_the_target_and_names_the_label_column(folder):
    message = error(cli("check", "cfg.yaml", "--set", "data.source=first.csv",
                        "--set", "loss=sparse_categorical_crossentropy", "--set", "model.layers[1].units=3"))
    assert "data.target: expected the target (the last column, as data.target is not set) to hold class ids" in message
    assert "the column 'label' holds class ids: set data.target: label" in message
    fixed = cli("check", "cfg.yaml", "--set", "data.source=first.csv", "--set", "data.target=label",
                "--set", "loss={type: SparseCategoricalCrossentropy, from_logits: true}", "--set", "model.layers[1].units=3")
    assert fixed.exit_code == 0, fixed.output
    missing = error(cli("check", "cfg.yaml", "--set", "data.target=label"))
    assert "--set data.target=label: data.target:" in missing and "no column named 'label'" in missing


@pytest.mark.parametrize("override, where, fragment", [
    ("optimizer.learning_rate=-1", "optimizer.learning_rate", "learning_rate must be a number >= 0"),
    ("optimizer={type: adam, learning_rate: {type: ExponentialDecay, initial_learning_rate: 0.1, decay_steps: -5, "
     "decay_rate: 0.5}}", "optimizer.learning_rate.decay_steps", "decay_steps must be > 0"),
    ("model.layers[0]={type: Reshape, target_shape: [3, 3]}", "model.layers[0]",
     "Reshape cannot be built for inputs of shape [4] per sample (the model's input_shape)"),
    ("model.layers[0]={type: Conv2D, filters: 3, kernel_size: 3}", "model.layers[0]",
     "Conv2D cannot be built for inputs of shape [4] per sample"),
    ("model.layers[1]={type: LSTM, units: 3}", "model.layers[1]",
     "LSTM cannot be built for inputs of shape [16] per sample (the output of model.layers[0], Dense)"),
    ("model.layers[0].units=-3", "model.layers[0].units", "units must be a positive integer"),
])
def test_build_errors_point_at_the_key_and_the_layer(folder, override, where, fragment):
    message = error(cli("check", "cfg.yaml", "--set", override))
    assert message.startswith(f"error: --set {override}: {where}: "), message
    assert fragment in message


def test_build_errors_written_in_the_file_point_at_their_line(folder):
    (folder / "cfg.yaml").write_text(CONFIG.replace("{type: Dense, units: 1}", "{type: LSTM, units: 1}"))
    message = error(cli("train", "cfg.yaml", "--runs-dir", "runs"))
    assert message.startswith("error: cfg.yaml:7:7: model.layers[1]: LSTM cannot be built"), message


def test_a_data_source_given_with_set_says_where_it_looked(folder):
    message = error(cli("check", "cfg.yaml", "--set", "data.source=nothere.csv"))
    assert f"--set data.source=nothere.csv: data.source: expected an existing file, found 'nothere.csv' " \
           f"(no such file: {folder / 'nothere.csv'})" in message
    (folder / "sub").mkdir()
    (folder / "sub/cfg.yaml").write_text(CONFIG.replace("source: reg.csv", "source: missing.csv"))
    in_file = error(cli("check", "sub/cfg.yaml"))
    assert f"sub/cfg.yaml:2:16: data.source: expected an existing file, found 'missing.csv' " \
           f"(no such file: {folder / 'sub' / 'missing.csv'})" in in_file


@pytest.mark.parametrize("expr, at, op", [("log(a)", "a=-1", "log"), ("sqrt(a) + 1", "a=-2", "sqrt"),
                                          ("a / b", "b=0", "/"), ("sum(log(x))", "x=[1, -1, 2]", "log")])
def test_grad_outside_the_domain_is_bad_input_not_a_mismatch(expr, at, op):
    args = ["grad", expr, "--at", at] + (["--at", "a=1"] if expr == "a / b" else [])
    message = error(cli(*args))
    assert f"{op} gives " in message and f"outside the domain of {op}" in message
    assert "^" in message and "Allowed:" not in message
    assert cli("grad", "log(a)", "--at", "a=2").exit_code == 0
    overflow = cli("grad", "exp(a)", "--at", "a=1000")  # a float's limit, not a domain: the check reports it
    assert overflow.exit_code == 1 and "not finite" in overflow.stdout


def test_layers_names_the_kind_a_name_belongs_to():
    message = error(cli("layers", "Adam"))
    assert "'Adam' is not one of the layers: it is under optimizers; see it with: nncli layers Adam --kind optimizers" \
        in message
    assert cli("layers", "Adam", "--kind", "optimizers").exit_code == 0
    assert "Did you mean 'Dense'?" in error(cli("layers", "Dens"))
