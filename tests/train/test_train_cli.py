"""`nncli train`, `check` and `layers` end to end: run folders, resume, failures, bad input."""

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.runs import load_checkpoint
from nncli.train.session import train

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


TINY = """\
seed: 3
data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 16}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 3}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: 6, metrics: [accuracy]}
"""


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_trains_an_epoch(tmp_path, name):
    result = run_cli("train", CONFIGS / f"{name}.yaml", "--set", "train.epochs=1", "--runs-dir", tmp_path,
                     "--run-id", "one")
    assert result.exit_code == 0, result.output
    run = tmp_path / "one"
    for part in ("config.yaml", "run.json", "metrics.csv", "checkpoints/last.safetensors",
                 "checkpoints/best.safetensors"):
        assert (run / part).is_file(), part
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 1
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["loss"]))


def test_quickstart_reaches_its_accuracy(tmp_path):
    result = train(CONFIGS / "quickstart.yaml", runs_dir=tmp_path)
    best = max(h["val_accuracy"] for h in result.trainer.history)
    assert best >= 0.95, result.trainer.history[-1]
    saved = yaml.safe_load((result.run.path / "config.yaml").read_text())
    assert saved["seed"] == 0 and saved["train"]["epochs"] == 30


def _metrics_without_time(run: Path):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(open(run / "metrics.csv"))]


def _weights(path: Path):
    return {k: v for k, v in load_checkpoint(path)[0].items() if k != "run/history"}  # history has time_s


def test_resume_continues_bit_for_bit(tmp_path):
    cfg = write(tmp_path, TINY)
    whole = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "whole")
    assert whole.exit_code == 0, whole.output
    first = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "parts", "--set", "train.epochs=3")
    assert first.exit_code == 0, first.output
    second = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--resume", "parts")
    assert second.exit_code == 0, second.output
    a, b = tmp_path / "runs/whole", tmp_path / "runs/parts"
    assert _metrics_without_time(a) == _metrics_without_time(b)
    for name in ("last", "best"):
        wa, wb = _weights(a / f"checkpoints/{name}.safetensors"), _weights(b / f"checkpoints/{name}.safetensors")
        assert wa.keys() == wb.keys()
        for key in wa:
            np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


class _StopAfter:
    """Asks the trainer to stop after ``n`` batches, as the first Ctrl-C does."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def on_train_begin(self, trainer): ...
    def on_epoch_begin(self, trainer, epoch): ...
    def on_epoch_end(self, trainer, epoch, logs): ...
    def on_interrupt(self, trainer): ...
    def on_train_end(self, trainer, status): ...

    def on_batch_end(self, trainer, epoch, batch, logs):
        self.seen += 1
        if self.seen == self.n:
            os.kill(os.getpid(), signal.SIGINT)  # handled: stop at this batch boundary


def test_interrupt_mid_epoch_then_resume_is_exact(tmp_path):
    cfg = write(tmp_path, TINY)
    train(cfg, runs_dir=tmp_path, run_id="whole")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, runs_dir=tmp_path, run_id="cut", callbacks=[_StopAfter(13)])  # inside epoch 2
    info = json.loads((tmp_path / "cut/run.json").read_text())
    assert info["status"] == "interrupted"
    _, meta = load_checkpoint(tmp_path / "cut/checkpoints/last.safetensors")
    assert meta["trainer"]["batch"] > 0  # saved mid-epoch
    train(cfg, runs_dir=tmp_path, resume="cut")
    assert _metrics_without_time(tmp_path / "whole") == _metrics_without_time(tmp_path / "cut")
    wa = _weights(tmp_path / "whole/checkpoints/last.safetensors")
    wb = _weights(tmp_path / "cut/checkpoints/last.safetensors")
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def test_ctrl_c_exits_130_and_marks_the_run(tmp_path, monkeypatch):
    import nncli.train.session as session

    cfg = write(tmp_path, TINY)
    real = session.make_trainer

    def with_stop(*args, **kwargs):
        trainer = real(*args, **kwargs)
        trainer.callbacks.append(_StopAfter(2))
        return trainer

    monkeypatch.setattr(session, "make_trainer", with_stop)
    result = run_cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "stopped")
    assert result.exit_code == 130
    assert "--resume stopped" in result.output
    assert json.loads((tmp_path / "stopped/run.json").read_text())["status"] == "interrupted"


def test_resume_with_a_changed_model_is_refused(tmp_path):
    cfg = write(tmp_path, TINY)
    assert run_cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "r", "--set", "train.epochs=1").exit_code == 0
    result = run_cli("train", cfg, "--runs-dir", tmp_path, "--resume", "r", "--set", "model.layers[0].units=9")
    assert result.exit_code == 2
    assert "model.layers[0].units: 8 in the run, 9 now" in result.output


def test_non_finite_loss_fails_the_run_and_keeps_the_last_checkpoint(tmp_path):
    cfg = write(tmp_path, TINY.replace("learning_rate: 0.01", "learning_rate: 1.0e+30"))
    result = run_cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "nan")
    assert result.exit_code == 1, result.output
    assert "epoch" in result.output and "batch" in result.output
    info = json.loads((tmp_path / "nan/run.json").read_text())
    assert info["status"] == "failed" and "batch" in info["error"]
    assert "Traceback" not in result.output


def test_early_stopping(tmp_path):
    cfg = write(tmp_path, TINY.replace("train: {epochs: 6, metrics: [accuracy]}",
                                       "train: {epochs: 50, early_stopping: {monitor: loss, patience: 0, "
                                       "min_delta: 10.0}}"))
    result = train(cfg, runs_dir=tmp_path)
    assert result.status == "early_stopped" and result.trainer.state.epoch == 2


EARLY = "train: {epochs: 8, metrics: [accuracy], early_stopping: {monitor: loss, patience: 0, min_delta: 0.2}}"


@pytest.mark.parametrize("looser", ["train.early_stopping=null", "train.early_stopping.patience=3"])
def test_resuming_an_early_stopped_run_under_a_looser_policy_trains_on(tmp_path, looser):
    """The stop is recomputed under the new policy: the resumed run is a fresh run with that policy."""
    cfg = write(tmp_path, TINY.replace("train: {epochs: 6, metrics: [accuracy]}", EARLY))
    stopped = train(cfg, runs_dir=tmp_path, run_id="stopped")
    assert stopped.status == "early_stopped" and stopped.trainer.state.epoch < 8
    fresh = train(cfg, runs_dir=tmp_path, run_id="fresh", overrides=[looser])
    assert fresh.trainer.state.epoch > stopped.trainer.state.epoch
    resumed = run_cli("train", cfg, "--runs-dir", tmp_path, "--resume", "stopped", "--set", looser, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    info = json.loads((tmp_path / "stopped/run.json").read_text())
    assert (info["status"], info["epochs_done"]) == (fresh.status, fresh.trainer.state.epoch)
    assert _metrics_without_time(tmp_path / "stopped") == _metrics_without_time(tmp_path / "fresh")


def test_resuming_an_early_stopped_run_under_the_same_policy_stays_stopped(tmp_path):
    cfg = write(tmp_path, TINY.replace("train: {epochs: 6, metrics: [accuracy]}", EARLY))
    stopped = train(cfg, runs_dir=tmp_path, run_id="stopped")
    result = run_cli("train", cfg, "--runs-dir", tmp_path, "--resume", "stopped", "--quiet")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "stopped/run.json").read_text())
    assert (info["status"], info["epochs_done"]) == ("early_stopped", stopped.trainer.state.epoch)


def test_check_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", CONFIGS / "digits_cnn.yaml")
    assert result.exit_code == 0, result.output
    assert "Conv2D" in result.output and "OK" in result.output and "FAIL" not in result.output
    assert list(tmp_path.iterdir()) == []  # check writes nothing


def test_layers_command():
    result = run_cli("layers")
    assert result.exit_code == 0
    for name in ("Dense", "Conv2D", "LSTM", "MultiHeadAttention", "BatchNormalization"):
        assert name in result.output
    detail = run_cli("layers", "dense")
    assert detail.exit_code == 0 and "units" in detail.output and "glorot_uniform" in detail.output
    bad = run_cli("layers", "Dense2")
    assert bad.exit_code == 2 and "Did you mean 'Dense'" in bad.output


# -- bad input: one message with the place, exit 2, no traceback, no run folder ---------------------
BROKEN = {
    "yaml_syntax": ("seed: 0\ndata: {source: iris\n", "cfg.yaml:"),
    "unknown_top_key": (TINY + "trian: {}\n", "trian"),
    "unknown_layer": (TINY.replace("type: Dropout", "type: Dropuot"), "Dropout"),
    "unknown_layer_param": (TINY.replace("units: 8,", "unit: 8,"), "units"),
    "wrong_type_units": (TINY.replace("units: 8,", "units: eight,"), "model.layers[0].units"),
    "negative_units": (TINY.replace("units: 8,", "units: -8,"), "model.layers[0]"),
    "bad_activation": (TINY.replace("activation: relu", "activation: rellu"), "relu"),
    "unknown_loss": (TINY.replace("SparseCategoricalCrossentropy", "SparseCrossentropy"), "loss"),
    "unknown_optimizer": (TINY.replace("type: Adam", "type: Adamm"), "optimizer"),
    "bad_learning_rate": (TINY.replace("learning_rate: 0.01", "learning_rate: fast"), "learning_rate"),
    "bad_schedule": (TINY.replace("learning_rate: 0.01", "learning_rate: {type: Nope}"), "learning_rate"),
    "split_too_big": (TINY.replace("validation_split: 0.2", "validation_split: 1.5"), "data.validation_split"),
    "batch_zero": (TINY.replace("batch_size: 16", "batch_size: 0"), "data.batch_size"),
    "epochs_zero": (TINY.replace("epochs: 6", "epochs: 0"), "train.epochs"),
    "bad_normalize": (TINY.replace("normalize: standard", "normalize: zscore"), "data.normalize"),
    "unknown_metric": (TINY.replace("metrics: [accuracy]", "metrics: [acuracy]"), "train.metrics"),
    "missing_data": (TINY.replace("data: {source: iris, ", "data: {"), "data"),
    "missing_model": (TINY.split("model:")[0] + "loss: mse\noptimizer: adam\n", "model"),
    "unknown_builtin": (TINY.replace("source: iris", "source: irsi"), "data.source"),
    "missing_file": (TINY.replace("source: iris", "source: nowhere.csv"), "data.source"),
    "input_shape_mismatch": (TINY.replace("input_shape: [4]", "input_shape: [5]"), "model.input_shape"),
    "labels_outside_classes": (TINY.replace("units: 3}", "units: 2}"), "label"),
    "not_a_mapping": ("- 1\n- 2\n", "cfg.yaml"),
    "empty_file": ("", "cfg.yaml"),
    "duplicate_key": (TINY + "seed: 4\n", "seed"),
    "early_stopping_bad": (TINY.replace("metrics: [accuracy]}", "metrics: [accuracy], early_stopping: "
                                       "{patience: -1}}"), "train.early_stopping.patience"),
    "bad_seed": (TINY.replace("seed: 3", "seed: -3"), "seed"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_configs_exit_2_with_the_place(tmp_path, case):
    text, where = BROKEN[case]
    cfg = write(tmp_path, text)
    runs = tmp_path / "runs"
    result = run_cli("train", cfg, "--runs-dir", runs)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert where in result.output, result.output
    assert "cfg.yaml" in result.output  # the file is named
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("override, where", [
    ("model.layers[7].units=3", "--set model.layers[7].units=3"),
    ("train.epochs=many", "train.epochs"),
    ("nonsense", "--set nonsense"),
])
def test_bad_overrides_exit_2(tmp_path, override, where):
    cfg = write(tmp_path, TINY)
    result = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--set", override)
    assert result.exit_code == 2, result.output
    assert where in result.output
    assert not (tmp_path / "runs").exists()


def test_bad_run_ids_are_refused(tmp_path):
    cfg = write(tmp_path, TINY)
    for bad in ("../../x", "a/b", ".hidden"):
        result = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", bad)
        assert result.exit_code == 2 and "invalid run id" in result.output
    result = run_cli("train", cfg, "--runs-dir", tmp_path / "runs", "--resume", "nope")
    assert result.exit_code == 2 and "no run 'nope'" in result.output
