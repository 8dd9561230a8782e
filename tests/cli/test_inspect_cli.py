"""`nncli runs`, `eval`, `predict` and `plot` through the Typer app on tiny trained runs, errors included."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.session import train

IRIS_CSV = Path(__file__).resolve().parents[2] / "nncli" / "data" / "files" / "iris.csv"
CONFIG = f"""\
seed: 5
data: {{source: {IRIS_CSV}, validation_split: 0.2, normalize: standard, batch_size: 16}}
model: {{input_shape: [4], layers: [{{type: Dense, units: 8, activation: relu}}, {{type: Dense, units: 3}}]}}
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: {{type: Adam, learning_rate: {{lr}}}}
train: {{epochs: 3, metrics: [accuracy]}}
"""
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Two iris runs made from a CSV file, 'a-slow' (lr 0.01) then 'b-fast' (lr 0.05)."""
    root = tmp_path_factory.mktemp("cli")
    for run_id, lr in (("a-slow", 0.01), ("b-fast", 0.05)):
        (root / f"{run_id}.yaml").write_text(CONFIG.replace("{lr}", str(lr)))
        train(root / f"{run_id}.yaml", runs_dir=root / "runs", run_id=run_id, argv=[])
    return root / "runs"


def metrics(path):
    with open(path / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def one_line_error(result, *parts):
    """Exit 2, one 'error:' line on stderr naming ``parts``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for part in parts:
        assert part in lines[0], (part, lines[0])


def test_runs_table_and_json(runs_dir):
    result = cli("runs", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    fast, slow = (next(i for i, line in enumerate(lines) if run_id in line) for run_id in ("b-fast", "a-slow"))
    assert fast < slow  # newest first
    assert "completed" in lines[fast] and "3/3" in lines[fast]
    best = min(metrics(runs_dir / "b-fast"), key=lambda r: r["val_loss"])
    assert f"{best['val_loss']:.4g}" in lines[fast]
    listed = json.loads(cli("runs", "--runs-dir", runs_dir, "--json").stdout)
    assert [r["run_id"] for r in listed] == ["b-fast", "a-slow"]
    assert listed[0]["best_val_loss"] == pytest.approx(best["val_loss"])


def test_runs_in_an_empty_folder_says_so(tmp_path):
    result = cli("runs", "--runs-dir", tmp_path)
    assert result.exit_code == 0 and "no runs in" in result.stdout and "nncli train" in result.stdout
    assert json.loads(cli("runs", "--runs-dir", tmp_path, "--json").stdout) == []


def test_eval_json_reproduces_the_best_epoch_row(runs_dir):
    info = json.loads((runs_dir / "b-fast" / "run.json").read_text())
    row = next(r for r in metrics(runs_dir / "b-fast") if r["epoch"] == info["best"]["epoch"])
    result = cli("eval", "b-fast", "--runs-dir", runs_dir, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["epoch"] == info["best"]["epoch"] and out["samples"] == 30
    assert out["metrics"]["loss"] == pytest.approx(row["val_loss"], rel=1e-6)
    assert out["metrics"]["accuracy"] == pytest.approx(row["val_accuracy"], rel=1e-6)


def test_eval_table_last_checkpoint_and_other_data(runs_dir):
    last = metrics(runs_dir / "a-slow")[-1]
    result = cli("eval", "latest", "--runs-dir", runs_dir, "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    assert "b-fast" in result.stdout and "last checkpoint (epoch 3)" in result.stdout
    shown = cli("eval", "a-slow", "--runs-dir", runs_dir, "--checkpoint", "last")
    assert f"{last['val_loss']:.6g}" in shown.stdout
    whole = json.loads(cli("eval", "a-slow", "--runs-dir", runs_dir, "--data", IRIS_CSV, "--json").stdout)
    assert whole["samples"] == 150 and whole["data"] == str(IRIS_CSV)
    assert 0 <= whole["metrics"]["accuracy"] <= 1


def test_predict_to_stdout_and_to_a_file(runs_dir, tmp_path):
    result = cli("predict", "b-fast", IRIS_CSV, "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["class", "prob_0", "prob_1", "prob_2"] and len(rows) == 151
    probs = np.array(rows[1:], dtype=np.float64)[:, 1:]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [int(r[0]) for r in rows[1:]] == probs.argmax(axis=1).tolist()
    out = tmp_path / "pred.csv"
    written = cli("predict", "b-fast", IRIS_CSV, "--runs-dir", runs_dir, "--out", out)
    assert written.exit_code == 0 and "wrote 150 predictions" in written.stdout
    assert out.read_text() == result.stdout


def test_plot_prints_the_file_it_wrote(runs_dir, tmp_path):
    result = cli("plot", "b-fast", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(runs_dir / "b-fast" / "loss.png")
    both = cli("plot", "a-slow", "b-fast", "--runs-dir", runs_dir, "--out", tmp_path / "both.svg", "--log-y",
               "--smooth", "2", "--metric", "accuracy")
    assert both.exit_code == 0, both.output
    assert (tmp_path / "both.svg").read_bytes().startswith(b"<?xml")
    svg = (tmp_path / "both.svg").read_text()
    assert "optimizer.learning_rate" in svg and "0.01" in svg  # the table of what differs


def test_unknown_runs_and_bad_options_exit_2(runs_dir, tmp_path):
    for command in (["eval", "b-fats"], ["predict", "b-fats", IRIS_CSV], ["plot", "b-fats"]):
        one_line_error(cli(*command, "--runs-dir", runs_dir), "no run 'b-fats'", "Closest: b-fast")
    one_line_error(cli("plot", "b-fast", "--runs-dir", runs_dir, "--out", tmp_path / "x.gif"), ".png, .svg, .pdf")
    one_line_error(cli("plot", "b-fast", "--runs-dir", runs_dir, "--metric", "f1"), "no metric 'f1'")
    assert cli("eval", "b-fast", "--runs-dir", runs_dir, "--checkpoint", "first").exit_code == 2


def test_broken_runs_and_wrong_inputs_are_one_line_errors(runs_dir, tmp_path):
    shutil.copytree(runs_dir / "a-slow", tmp_path / "copy")
    (tmp_path / "copy" / "checkpoints" / "best.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "copy" / "checkpoints" / "last.safetensors").unlink()
    one_line_error(cli("eval", "copy", "--runs-dir", tmp_path), "damaged")
    one_line_error(cli("predict", "copy", IRIS_CSV, "--runs-dir", tmp_path, "--checkpoint", "last"),
                   "no last checkpoint")
    (tmp_path / "empty-folder").mkdir()
    one_line_error(cli("eval", "empty-folder", "--runs-dir", tmp_path), "not a run folder")
    np.save(tmp_path / "five.npy", np.ones((2, 5), dtype=np.float32))
    one_line_error(cli("predict", "b-fast", tmp_path / "five.npy", "--runs-dir", runs_dir),
                   "expected 4 features per sample", "found 5")
