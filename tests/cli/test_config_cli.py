"""Config composition through the real commands: base: files, ${...} interpolation, `nncli config`."""

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.config import load_config

runner = CliRunner()

COMMON = """\
seed: 4
data:
  source: rows.csv
  batch_size: 16
  normalize: standard
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 8, activation: tanh}
    - {type: Dense, units: 1}
loss: mse
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 2}
"""
EXPERIMENT = """\
base: shared/common.yaml
optimizer: {learning_rate: 0.003}
train:
  epochs: ${env:NNCLI_TEST_EPOCHS,3}
  metrics: [mae, r2]
model:
  layers:
    - {type: Dense, units: "${data.batch_size}", activation: relu}
    - {type: Dense, units: 1}
"""


def cli(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture
def composed(tmp_path, monkeypatch):
    """experiment.yaml on shared/common.yaml, whose data file sits beside common.yaml."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "rows.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{i % 3},{(i % 7) * 0.5 - i % 3}\n"
                                                          for i in range(40)))
    (shared / "common.yaml").write_text(COMMON)
    (tmp_path / "experiment.yaml").write_text(EXPERIMENT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NNCLI_TEST_EPOCHS", raising=False)
    return tmp_path


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_base_merges_under_the_config_and_training_uses_the_result(composed):
    result = cli("train", "experiment.yaml", "--runs-dir", "runs", "--run-id", "exp", "--quiet")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((composed / "runs/exp/config.yaml").read_text())
    assert saved["optimizer"] == {"type": "Adam", "learning_rate": 0.003}  # this file wins, key by key
    assert saved["data"]["normalize"] == "standard" and saved["seed"] == 4  # from the base
    assert saved["data"]["source"] == str(composed / "shared/rows.csv")  # relative to the base file
    assert saved["model"]["layers"][0] == {"type": "Dense", "units": 16, "activation": "relu"}  # lists replace
    assert saved["train"]["epochs"] == 3 and "base" not in saved
    rows = (composed / "runs/exp/metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,val_loss,mae,val_mae,r2,val_r2") and len(rows) == 4


def test_nncli_config_prints_every_value_with_its_source(composed, monkeypatch):
    monkeypatch.setenv("NNCLI_TEST_EPOCHS", "7")
    result = cli("config", "experiment.yaml", "--set", "data.shuffle=false")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert yaml.safe_load(out)["train"]["epochs"] == 7  # the output is the resolved config, as YAML
    common, experiment = COMMON, EXPERIMENT
    expected = {
        "seed: 4": f"shared/common.yaml:{line_of(common, 'seed')}",
        "normalize: standard": f"shared/common.yaml:{line_of(common, 'normalize')}",
        "learning_rate: 0.003": f"experiment.yaml:{line_of(experiment, 'learning_rate')}",
        "epochs: 7": f"experiment.yaml:{line_of(experiment, 'epochs')} (${{env:NNCLI_TEST_EPOCHS,3}})",
        "units: 16": f"experiment.yaml:{line_of(experiment, 'units:')} (${{data.batch_size}})",
        "shuffle: false": "--set data.shuffle=false",
        "validation_split: 0.2": "default",
        "beta_1: 0.9": "default",  # a component's own defaults are filled in too
    }
    for value, source in expected.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(value))
        assert line.rstrip().endswith(f"# {source}"), (value, line)
    as_json = json.loads(cli("config", "experiment.yaml", "--json").stdout)
    assert as_json["optimizer.type"] == {"value": "Adam", "source": f"shared/common.yaml:{line_of(common, 'adam')}"}
    assert as_json["model.layers[1].use_bias"] == {"value": True, "source": "default"}


def test_errors_in_a_base_file_name_that_file_and_line(composed):
    (composed / "shared/common.yaml").write_text(COMMON.replace("batch_size: 16", "batch_size: sixteen"))
    result = cli("train", "experiment.yaml", "--runs-dir", "runs")
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = line_of(COMMON, "batch_size")
    assert f"shared/common.yaml:{line}:15: data.batch_size: expected an integer, found 'sixteen'" in result.stderr
    assert not (composed / "runs").exists()
    (composed / "shared/common.yaml").write_text(COMMON.replace("  batch_size: 16\n", "  batch_size: [16\n"))
    broken = cli("check", "experiment.yaml").stderr
    assert "shared/common.yaml:" in broken and "required key" not in broken  # a syntax error too


@pytest.mark.parametrize("base, fragment", [
    ("nope.yaml", "experiment.yaml:1:7: base: expected a YAML config file, found no such file"),
    ("experiment.yaml", "experiment.yaml:1:7: base: expected a base file that does not include itself, found a "
                        "cycle: experiment.yaml -> experiment.yaml"),
    ("[shared/common.yaml, 3]", "base[1]: expected a config file name, found 3"),
])
def test_bad_base_entries(composed, base, fragment):
    (composed / "experiment.yaml").write_text(EXPERIMENT.replace("base: shared/common.yaml", f"base: {base}"))
    result = cli("config", "experiment.yaml")
    assert result.exit_code == 2 and fragment in result.stderr, result.stderr
    # the sections the base would have given are not reported missing on top of it
    assert "required key" not in result.stderr, result.stderr


def test_a_base_that_cannot_be_read_is_the_one_problem_reported(composed):
    (composed / "experiment.yaml").write_text(EXPERIMENT.replace("base: shared/common.yaml", "base: shared/comon.yaml"))
    result = cli("train", "experiment.yaml")
    assert result.exit_code == 2 and not (composed / "runs").exists()
    assert result.stderr.strip() == ("error: experiment.yaml:1:7: base: expected a YAML config file, found no such "
                                     "file (shared/comon.yaml)")  # not the sections and keys it would have given
    (composed / "alone.yaml").write_text("train: {epochs: 2}\n")  # no base at all: the sections are required
    assert "data: expected a value for this required key" in cli("check", "alone.yaml").stderr


@pytest.mark.parametrize("value, fragment", [
    ("${data.batchsize}", "expected '${data.batchsize}' to name a key of the config, found no key 'data.batchsize' "
                          "(did you mean 'data.batch_size'?)"),
    ("${env:NNCLI_TEST_UNSET}", "expected the environment variable NNCLI_TEST_UNSET to be set, found it unset"),
    ("${envv:HOME}", "expected ${env:VAR} or ${key.path}, found the unknown resolver 'envv' in '${envv:HOME}' "
                     "(did you mean 'env'?)"),
    ("${data.batch_size", "expected an interpolation such as ${data.batch_size} or ${env:VAR}"),
    ("${train.epochs}", "expected an interpolation that does not depend on itself"),
])
def test_interpolation_problems_are_placed_at_their_line(composed, value, fragment):
    (composed / "experiment.yaml").write_text(EXPERIMENT.replace("${env:NNCLI_TEST_EPOCHS,3}", f'"{value}"'))
    result = cli("check", "experiment.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"experiment.yaml:{line_of(EXPERIMENT, 'epochs')}:11: train.epochs: {fragment}" in result.stderr, \
        result.stderr


def test_interpolation_reads_defaults_env_values_as_yaml_and_follows_overrides(composed, monkeypatch):
    monkeypatch.setenv("NNCLI_TEST_EPOCHS", "5")
    cfg = load_config("experiment.yaml", ["data.batch_size=12"])
    assert cfg.train.epochs == 5  # "5" read as YAML: an integer
    assert cfg.model["layers"][0]["units"] == 12  # interpolated after --set
    alone = COMMON.replace("  batch_size: 16\n", "").replace("units: 8", "units: '${data.batch_size}'")
    (composed / "alone.yaml").write_text(alone.replace("source: rows.csv", "source: shared/rows.csv"))
    assert load_config("alone.yaml").model["layers"][0]["units"] == 32  # an unwritten default
    literal = load_config("experiment.yaml", [r"data.target=\${y}"], import_plugins=False)
    assert literal.data.target == "${y}"  # \${ is a literal ${


def test_schema_lists_the_keys_with_defaults_and_a_json_schema(tmp_path):
    result = cli("config", "--schema")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "32" in lines["data.batch_size"] and "val_loss" in lines["train.monitor"]
    assert "train.early_stopping.patience" in lines and "base" in lines
    schema = json.loads(cli("config", "--schema", "--json").stdout)
    assert schema["properties"]["data"]["properties"]["batch_size"]["default"] == 32
    missing = cli("config")
    assert missing.exit_code == 2 and "expected a config file" in missing.stderr


def test_schema_on_a_narrow_terminal_keeps_every_description_whole():
    narrow = runner.invoke(app, ["config", "--schema"], env={"COLUMNS": "80"}).stdout
    assert "…" not in narrow  # a table of 80 columns cut every description to an ellipsis
    text = " ".join(narrow.split())
    assert "data.batch_size integer; default 32 samples per training step" in text
    assert "data.source string; required a built-in set" in text
    wide = runner.invoke(app, ["config", "--schema"], env={"COLUMNS": "200"}).stdout
    assert "…" not in wide and any(line.split()[:3] == ["key", "type", "default"] for line in wide.splitlines()
                                   if line.strip())


def test_a_path_given_with_set_starts_from_the_current_folder(composed):
    os.chdir(composed / "shared")
    result = cli("config", "../experiment.yaml", "--set", "data.source=rows.csv", "--json")
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["data.source"]["value"]) == Path("shared/rows.csv")
    missing = cli("check", "../experiment.yaml", "--set", "data.source=nothere.csv")
    assert missing.exit_code == 2
    assert f"no such file: {composed / 'shared' / 'nothere.csv'}" in missing.stderr
