"""The README's sections on a user's own data and on composed configs say what the real commands do.

Each test runs the command the README shows, from the repository's root as a reader would, and
checks the README's lines against its output: the configs it prints are the shipped files, the
output it shows (but for "..." and timings) is what the command prints, the data keys it lists
are the config's.
"""

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.config.explain import json_schema

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
runner = CliRunner()
MODEL = """\
model: {input_shape: [4], layers: [{type: Dense, units: 16, activation: relu}, {type: Dense, units: 3}]}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: 20, metrics: [accuracy]}
"""


@pytest.fixture(autouse=True)
def at_the_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("LR", raising=False)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "100"})


def block(starting: str) -> list[str]:
    """The lines of the README's fenced block whose first line starts with ``starting``."""
    for body in re.findall(r"```[a-z]*\n(.*?)```", README, re.S):
        if body.startswith(starting):
            return body.rstrip("\n").splitlines()
    raise AssertionError(f"no block in README.md starts with {starting!r}")


def shown_output(lines: list[str], command: str) -> list[str]:
    """What the README shows under ``$ command``, up to the next command, without the "..." lines."""
    start = next(i for i, line in enumerate(lines) if line.split("  #")[0].rstrip() == f"$ {command}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("$ ")), len(lines))
    return [line for line in lines[start:end] if line.strip() not in ("...", "")]


def normalized(text: str) -> str:
    return " ".join(text.split())


def test_the_composed_config_and_nncli_config_output_are_real():
    shown = yaml.safe_load("\n".join(block("# configs/quickstart_wide.yaml\nbase:")))
    assert shown == yaml.safe_load((ROOT / "configs/quickstart_wide.yaml").read_text())
    lines = block("$ nncli config configs/quickstart_wide.yaml")
    result = cli("config", "configs/quickstart_wide.yaml", "--set", "train.epochs=20")
    assert result.exit_code == 0, result.output
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    for line in shown_output(lines, "nncli config configs/quickstart_wide.yaml --set train.epochs=20"):
        assert line.rstrip() in printed, line  # every line shown, in the output as it is


def test_class_names_and_a_validation_file_as_the_readme_shows_them(tmp_path):
    shipped = (ROOT / "configs/iris_species.yaml").read_text()
    for line in block("data:\n  source: data/iris_species_train.csv"):
        assert line in shipped, line
    lines = block("$ nncli train configs/iris_species.yaml")
    result = cli("data", "configs/iris_species.yaml")
    assert result.exit_code == 0, result.output
    for line in shown_output(lines, "nncli data configs/iris_species.yaml | head -15"):
        assert normalized(line) in normalized(result.stdout), line

    trained = cli("train", "configs/iris_species.yaml", "--run-id", "iris-species", "--runs-dir", tmp_path, "-q")
    assert trained.exit_code == 0, trained.output
    predicted = cli("predict", "iris-species", "configs/data/iris_species_val.csv", "--runs-dir", tmp_path)
    assert predicted.exit_code == 0, predicted.output
    shown = shown_output(lines, "nncli predict iris-species configs/data/iris_species_val.csv | head -4")
    assert predicted.stdout.splitlines()[0] == shown[0] == "class,prob_setosa,prob_versicolor,prob_virginica"
    assert [row.split(",")[0] for row in predicted.stdout.splitlines()[1:4]] == [r.split(",")[0] for r in shown[1:]]

    rows = (ROOT / "configs/data/iris_species_val.csv").read_text().splitlines()[:7]
    rows[4] = rows[4].replace("virginica", "virginia")
    (tmp_path / "new_flowers.csv").write_text("\n".join(rows) + "\n")
    bad = runner.invoke(app, ["eval", "iris-species", "--data", str(tmp_path / "new_flowers.csv"), "--runs-dir",
                              str(tmp_path)])
    assert bad.exit_code == 2
    expected = shown_output(lines, "nncli eval iris-species --data new_flowers.csv")[0]
    assert bad.stderr.strip() == expected.replace("new_flowers.csv", str(tmp_path / "new_flowers.csv"))


def test_a_headerless_file_and_its_test_part_as_the_readme_shows_them(tmp_path, monkeypatch):
    lines = block("$ head -2 flowers.csv")
    rows = (ROOT / "configs/data/iris_species_train.csv").read_text().splitlines()[1:]  # the same 120 flowers
    (tmp_path / "flowers.csv").write_text("\n".join(rows) + "\n")
    assert shown_output(lines, "head -2 flowers.csv") == rows[:2]
    command = next(line for line in lines if line.startswith("$ nncli train flowers.yaml "))
    data = command.split("# data: ")[1]  # the config's data section, as the README gives it
    (tmp_path / "flowers.yaml").write_text(f"seed: 0\ndata: {data}\n" + MODEL)
    monkeypatch.chdir(tmp_path)
    refused = runner.invoke(app, ["train", "flowers.yaml"])
    assert refused.exit_code == 2 and not (tmp_path / "runs").exists()
    assert refused.stderr.strip() == shown_output(lines, "nncli train flowers.yaml")[0]
    trained = runner.invoke(app, ["train", "flowers.yaml", "--set", "data.header=false", "--run-id", "flowers", "-q"])
    assert trained.exit_code == 0, trained.output
    shown = shown_output(lines, "nncli train flowers.yaml --set data.header=false --run-id flowers -q")
    assert trained.stderr.strip() == shown[0] and trained.stdout.strip() == shown[1]
    scored = runner.invoke(app, ["eval", "flowers", "--split", "test"])
    assert scored.exit_code == 0, scored.output
    shown = shown_output(lines, "nncli eval flowers --split test")
    assert shown[0].startswith("run flowers, best checkpoint")
    assert scored.stdout.startswith("run flowers, best checkpoint")
    assert shown[1] == "data: test part of flowers.csv (24 samples)" and shown[1] in scored.stdout


def test_the_data_keys_table_lists_the_file_keys_with_their_defaults():
    table = re.search(r"\| key \| default \| meaning \|\n\|[-|]+\|\n((?:\|.*\|\n)+)", README).group(1)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M)}
    data = json_schema()["properties"]["data"]["properties"]
    assert set(rows) <= set(data)  # every key the README names is a data key
    for key in ("source", "target", "header", "labels", "validation", "test", "validation_split", "test_split",
                "normalize"):
        assert key in rows, key
    for key in ("header", "normalize", "validation_split", "test_split"):
        default = str(data[key]["default"]).lower().rstrip("0").rstrip(".")
        assert f"`{default}`" in rows[key], (key, default, rows[key])
