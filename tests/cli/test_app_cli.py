"""The command line behaves like a Typer app: --version, -h, completion, plain metavars, readable docs,
and runs named by their folder's path from anywhere."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli import __version__
from nncli.cli import app

runner = CliRunner()

TINY = """\
seed: 3
data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 32}
model: {input_shape: [4], layers: [{type: Dense, units: 8, activation: relu}, {type: Dense, units: 3}]}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: 2, metrics: [accuracy, f1]}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_alone_and_short_help():
    for flag in ("--version", "-V"):
        result = cli(flag)
        assert result.exit_code == 0 and result.stdout.strip() == f"nncli {__version__}", result.output
    process = subprocess.run([sys.executable, "-m", "nncli.cli", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert process.returncode == 0 and process.stdout.strip() == f"nncli {__version__}", process.stderr
    for args in (["-h"], ["train", "-h"], ["config", "-h"]):
        result = cli(*args)
        assert result.exit_code == 0 and "Usage: nncli" in result.stdout, (args, result.output)


def test_completion_options_exist():
    top = cli("--help").stdout
    assert "--install-completion" in top and "--show-completion" in top
    process = subprocess.run([sys.executable, "-m", "nncli.cli", "--show-completion", "bash"], capture_output=True,
                             text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/bash"})
    assert process.returncode == 0 and "complete" in process.stdout, process.stderr


@pytest.mark.parametrize("command", ["train", "check", "config", "data", "grad", "plot", "runs", "eval", "predict",
                                     "export", "layers"])
def test_help_shows_metavars_not_python_types(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert not re.search(r"<(str|bool|int|list\[str\]|float)>", result.stdout), result.stdout
    assert not re.search(r"\{[a-z_]+\}", result.stdout.splitlines()[1]), result.stdout  # {CONFIG}, not {config}
    if "--runs-dir" in result.stdout:  # a value, not what looks like a flag
        assert re.search(r"--runs-dir\s+DIR", result.stdout), result.stdout
    if command == "train":
        assert re.search(r"--runs-dir\s+DIR", result.stdout) and re.search(r"--quiet\s+-q\s+Print", result.stdout)


def test_command_help_wraps_to_the_terminal_not_to_the_docstring():
    narrow = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).stdout
    lines = [line.strip() for line in narrow.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Exit code 0"))
    paragraph = lines[start:lines.index("", start)]
    assert all(len(line) > 60 for line in paragraph[:-1]), paragraph  # full lines, no break left mid-line
    assert " ".join(paragraph).startswith("Exit code 0 when training ends (completed or stopped early), 1 when the "
                                          "loss became NaN or infinite, 2 on bad input")


def test_layers_docs_are_plain_text_and_whole_sentences():
    listing = runner.invoke(app, ["layers", "--kind", "optimizers"], env={"COLUMNS": "200"}).stdout
    assert "``" not in listing and ":class:" not in listing
    adam = runner.invoke(app, ["layers", "Adam", "--kind", "optimizers"], env={"COLUMNS": "200"}).stdout
    first = adam.splitlines()[0]  # the whole first paragraph, not its first line cut mid-sentence
    assert first.startswith("Adam (optimizer): Adam, as Keras: m += (g - m)(1 - b1)") and first.endswith(
        "* m / (sqrt(v) + epsilon).")
    detail = cli("layers", "Huber", "--kind", "losses")
    assert detail.exit_code == 0 and "Huber (loss):" in detail.stdout and "``" not in detail.stdout
    assert "MeanSquaredError (mse)" in runner.invoke(app, ["layers", "--kind", "losses"], env={"COLUMNS": "200"}).stdout


def test_a_run_can_be_named_by_its_folders_path_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert cli("train", tmp_path / "tiny.yaml", "--runs-dir", tmp_path / "elsewhere/runs", "--run-id", "r1",
               "--quiet").exit_code == 0
    run = tmp_path / "elsewhere/runs/r1"
    monkeypatch.chdir(tmp_path / "elsewhere")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for path in (run, "../elsewhere/runs/r1"):
        evaluated = cli("eval", path, "--json")
        assert evaluated.exit_code == 0, evaluated.output
        assert set(json.loads(evaluated.stdout)["metrics"]) == {"loss", "accuracy", "f1"}
    plotted = cli("plot", "../elsewhere/runs/r1", "--out", "curves.png")
    assert plotted.exit_code == 0 and (tmp_path / "work/curves.png").is_file(), plotted.output
    np.save(tmp_path / "work/rows.npy", np.ones((3, 4), dtype=np.float32))
    predicted = cli("predict", "../elsewhere/runs/r1", "rows.npy")
    assert predicted.exit_code == 0 and len(predicted.stdout.splitlines()) == 4, predicted.output
    monkeypatch.chdir(tmp_path / "elsewhere/runs")
    assert cli("eval", "r1").exit_code == 0  # a run folder in the current folder, by its name
    missing = cli("eval", "../nowhere/r9")
    assert missing.exit_code == 2 and "no run at ../nowhere/r9: no such folder" in missing.stderr
