"""Steering a run from the command line: callbacks in a config, resume from the folder alone, warm start.

Every case runs the real ``nncli train`` (Typer's runner, or a subprocess where a signal or the
printed hint is part of it) on the iris data set, and checks the run folder it leaves.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.runs import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

CONFIG = """\
seed: 3
data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 16}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 3}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train:
  epochs: 8
  metrics: [accuracy]
"""

# the three built-in callbacks; early stopping's patience is loose enough for iris to run on
CALLBACKS = """\
  early_stopping: {monitor: val_loss, patience: 3, restore_best_weights: true}
  reduce_lr_on_plateau: {monitor: val_loss, factor: 0.5, patience: 1, min_delta: 0.01}
  checkpoint: {every: 2, keep: 2}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def config(tmp_path: Path, extra: str = "", name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(CONFIG + extra)
    return path


def rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


def info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def weights(path: Path) -> dict:
    tensors, _ = load_checkpoint(path)
    return {k: v for k, v in tensors.items() if "/" not in k}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- the callbacks, configured ---------------------------------------------------------------------
def test_the_three_callbacks_from_a_config(tmp_path):
    cfg = config(tmp_path, CALLBACKS.replace("every: 2, keep: 2", "every: 1"))
    ok(cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "cb", "--set", "train.epochs=30"))
    run = tmp_path / "runs/cb"
    history, meta = rows(run), info(run)
    lrs = [float(r["lr"]) for r in history]
    assert lrs[0] == 0.01 and min(lrs) < 0.01 and lrs == sorted(lrs, reverse=True)  # lowered on plateaus
    assert meta["status"] == "early_stopped" and meta["epochs_done"] < 30
    # Keras's patience: it stopped `patience` epochs after the best val_loss (min_delta 0)
    losses = [float(r["val_loss"]) for r in history]
    best = int(np.argmin(losses)) + 1
    assert meta["epochs_done"] == best + 3 and meta["restored_epoch"] == best
    # restore_best_weights: last holds the best epoch's weights, as its periodic checkpoint has them
    assert_same(weights(run / "checkpoints/last.safetensors"), weights(run / f"checkpoints/epoch-{best:04d}.safetensors"))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == sorted(["best.safetensors", "last.safetensors",
                            *(f"epoch-{e:04d}.safetensors" for e in range(1, meta["epochs_done"] + 1))])


def test_periodic_checkpoints_keep_the_most_recent(tmp_path):
    cfg = config(tmp_path, "  checkpoint: {every: 3, keep: 2}\n")
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "p", "--set", "train.epochs=10"))
    names = sorted(p.name for p in (tmp_path / "p/checkpoints").iterdir())
    assert names == ["best.safetensors", "epoch-0006.safetensors", "epoch-0009.safetensors", "last.safetensors"]
    _, meta = load_checkpoint(tmp_path / "p/checkpoints/epoch-0006.safetensors")
    assert meta["epoch"] == 6  # a whole checkpoint of that epoch, usable as any other


def test_a_plateau_needs_a_fixed_learning_rate(tmp_path):
    cfg = config(tmp_path, "  reduce_lr_on_plateau: {patience: 2}\n")
    result = cli("train", cfg, "--runs-dir", tmp_path, "--set",
                 "optimizer.learning_rate={type: ExponentialDecay, initial_learning_rate: 0.01, decay_steps: 10, "
                 "decay_rate: 0.9}")
    assert result.exit_code == 2 and "train.reduce_lr_on_plateau" in result.output
    assert "schedule" in result.output and not list(tmp_path.glob("*/run.json"))


PLUGIN = '''\
import numpy as np

import nncli.nn
from nncli.nn.metrics.base import MeanMetric
from nncli.train.callbacks import Callback


@nncli.nn.register("metrics")
class Hits(MeanMetric):
    """The share of samples classified right, under a name that says nothing of its direction."""

    maximize = True
    task = "classification"
    _default_name = "hits"

    def _values(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == y_true.reshape(-1)).astype(np.float64)


@nncli.nn.register("callbacks")
class CountEpochs(Callback):
    """Counts the epochs it saw; stops the run at `stop_at` of them."""

    def __init__(self, stop_at: int = 1000):
        self.stop_at, self.seen = stop_at, 0

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen += 1
        if self.seen >= self.stop_at:
            trainer.stop_training = True

    def on_train_begin(self, trainer):
        if self.seen >= self.stop_at:
            trainer.stop_training = True

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        if not isinstance(state.get("seen"), int):
            raise ValueError("seen must be an int")
        self.seen = state["seen"]

    def get_config(self):
        return {"stop_at": self.stop_at}
'''


def test_a_plugin_registers_a_callback_and_a_metric_the_config_lists(tmp_path):
    (tmp_path / "steer.py").write_text(PLUGIN)
    text = CONFIG.replace("seed: 3\n", "seed: 3\nplugins: [steer.py]\n").replace("metrics: [accuracy]", "metrics: [hits]")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text + "  callbacks: [{type: CountEpochs, stop_at: 5}]\n"
                          "  early_stopping: {monitor: val_hits, patience: 100}\n")
    ok(cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "pl", "--set", "train.epochs=3"))
    _, meta = load_checkpoint(tmp_path / "runs/pl/checkpoints/last.safetensors")
    assert meta["callbacks"]["callbacks[0]"]["state"] == {"seen": 3}
    # val_hits is maximised because its class says so (the name has no "acc" in it)
    hits = [float(r["val_hits"]) for r in rows(tmp_path / "runs/pl")]
    assert meta["callbacks"]["early_stopping"]["state"]["best"] == max(hits)
    # resumed from the folder alone (with the opt-in for its plugin): the count goes on, and stops at 5
    ok(cli("train", "--resume", tmp_path / "runs/pl", "--trust-plugins", "--set", "train.epochs=9"))
    assert (info(tmp_path / "runs/pl")["status"], info(tmp_path / "runs/pl")["epochs_done"]) == ("early_stopped", 5)
    _, meta = load_checkpoint(tmp_path / "runs/pl/checkpoints/last.safetensors")
    assert meta["callbacks"]["callbacks[0]"]["state"] == {"seen": 5}


def test_an_unknown_callback_is_named_with_the_known_ones(tmp_path):
    cfg = config(tmp_path, "  callbacks: [EarlyStoping]\n")
    result = cli("train", cfg, "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "train.callbacks[0]" in result.output and "EarlyStopping" in result.output


# -- resume from the folder alone ------------------------------------------------------------------
def test_resume_with_no_config_uses_the_runs_own(tmp_path):
    cfg = config(tmp_path, CALLBACKS)
    runs = tmp_path / "runs"
    ok(cli("train", cfg, "--runs-dir", runs, "--run-id", "whole"))
    ok(cli("train", cfg, "--runs-dir", runs, "--run-id", "part", "--set", "train.epochs=3"))
    cfg.unlink()  # the run folder alone must be enough
    resumed = ok(cli("train", "--resume", "part", "--runs-dir", runs, "--set", "train.epochs=8"))
    assert "changed for this resume: train.epochs: 3 -> 8" in resumed.output
    assert rows(runs / "part") == rows(runs / "whole")
    for name in ("last", "best"):
        assert_same(weights(runs / f"part/checkpoints/{name}.safetensors"),
                    weights(runs / f"whole/checkpoints/{name}.safetensors"))
    assert info(runs / "part")["changes"][0]["changed"] == ["train.epochs: 3 -> 8"]


def test_resume_by_path_finds_the_runs_dir(tmp_path, monkeypatch):
    cfg = config(tmp_path, name="c.yaml")
    ok(cli("train", cfg, "--runs-dir", tmp_path / "elsewhere", "--run-id", "r", "--set", "train.epochs=2"))
    monkeypatch.chdir(tmp_path)
    ok(cli("train", "--resume", "elsewhere/r", "--set", "train.epochs=4", "-q"))
    assert info(tmp_path / "elsewhere/r")["epochs_done"] == 4 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, where", [
    ("optimizer.learning_rate=0.5", "optimizer.learning_rate: 0.01 in the run, 0.5 now"),
    ("data.batch_size=8", "data.batch_size: 16 in the run, 8 now"),
    ("train.metrics=[accuracy,f1]", "train.metrics"),
    ("model.layers[0].units=9", "model.layers[0].units: 8 in the run, 9 now"),
])
def test_resume_set_may_not_change_what_the_run_trains(tmp_path, override, where):
    ok(cli("train", config(tmp_path), "--runs-dir", tmp_path, "--run-id", "r", "--set", "train.epochs=2"))
    before = (tmp_path / "r/run.json").read_bytes(), (tmp_path / "r/checkpoints/last.safetensors").read_bytes()
    result = cli("train", "--resume", "r", "--runs-dir", tmp_path, "--set", override)
    assert result.exit_code == 2 and where in result.output and "--init-from" in result.output
    assert "Traceback" not in result.output
    after = (tmp_path / "r/run.json").read_bytes(), (tmp_path / "r/checkpoints/last.safetensors").read_bytes()
    assert before == after  # nothing was written


def test_resume_set_changes_early_stopping_and_callbacks_and_says_so(tmp_path):
    cfg = config(tmp_path, "  early_stopping: {monitor: loss, patience: 0, min_delta: 0.2}\n")
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "es"))
    stopped = info(tmp_path / "es")
    assert stopped["status"] == "early_stopped" and stopped["epochs_done"] < 8
    again = ok(cli("train", "--resume", "es", "--runs-dir", tmp_path))  # the same policy: still stopped
    assert "nothing to train" in again.output and info(tmp_path / "es")["epochs_done"] == stopped["epochs_done"]
    on = ok(cli("train", "--resume", "es", "--runs-dir", tmp_path, "--set", "train.early_stopping=null",
                "--set", "train.checkpoint={every: 4}"))
    assert "train.early_stopping: {monitor: loss, " in on.output and "-> null" in on.output
    assert "train.checkpoint: null -> {every: 4, keep: null}" in on.output
    assert (info(tmp_path / "es")["status"], info(tmp_path / "es")["epochs_done"]) == ("completed", 8)
    assert (tmp_path / "es/checkpoints/epoch-0008.safetensors").is_file()


@pytest.mark.parametrize("looser", ["train.early_stopping=null", "train.early_stopping.patience=3"])
def test_a_run_that_restored_its_best_weights_trains_on_from_where_it_stopped(tmp_path, looser):
    """restore_best_weights put an earlier epoch's weights into last; training on continues from the
    weights the run stopped with (and their optimizer slots), exactly as the looser policy from the start."""
    cfg = config(tmp_path, "  early_stopping: {monitor: loss, patience: 0, min_delta: 0.2, restore_best_weights: true}\n")
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "es"))
    stopped = info(tmp_path / "es")
    assert stopped["status"] == "early_stopped" and stopped["restored_epoch"] == stopped["epochs_done"] - 1
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "fresh", "--set", looser))
    ok(cli("train", "--resume", "es", "--runs-dir", tmp_path, "--set", looser))
    assert rows(tmp_path / "es") == rows(tmp_path / "fresh")
    assert_same(weights(tmp_path / "es/checkpoints/last.safetensors"), weights(tmp_path / "fresh/checkpoints/last.safetensors"))
    assert info(tmp_path / "es").get("restored_epoch") == info(tmp_path / "fresh").get("restored_epoch")


def test_fewer_epochs_than_done_is_refused_and_a_finished_run_says_so(tmp_path):
    ok(cli("train", config(tmp_path), "--runs-dir", tmp_path, "--run-id", "r", "--set", "train.epochs=4"))
    fewer = cli("train", "--resume", "r", "--runs-dir", tmp_path, "--set", "train.epochs=3")
    assert fewer.exit_code == 2
    assert "it has finished 4 epochs already" in fewer.output and "give at least 4" in fewer.output
    done = ok(cli("train", "--resume", "r", "--runs-dir", tmp_path))
    assert "has trained all its 4 epochs: nothing to train" in done.output
    assert info(tmp_path / "r")["epochs_done"] == 4


def _nncli(cwd: Path, *args, faults: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NNCLI_FAULTS": faults}
    return subprocess.run([sys.executable, "-m", "nncli.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("where", [(), ("--runs-dir", "exp")])
def test_the_hint_after_an_interrupt_works_as_printed(tmp_path, where):
    config(tmp_path, CALLBACKS)
    whole = _nncli(tmp_path, "train", "cfg.yaml", "--run-id", "whole", *where, "-q")
    assert whole.returncode == 0, whole.stderr
    cut = _nncli(tmp_path, "train", "cfg.yaml", "--run-id", "cut", *where, faults="batch:20=SIGTERM")
    assert cut.returncode == 143, cut.stderr
    hint = cut.stderr.strip().splitlines()[-1].split("resume with: ", 1)[1]
    words = shlex.split(hint)
    assert words[:2] == ["nncli", "train"] and "cfg.yaml" not in words  # the run's folder is enough
    (tmp_path / "cfg.yaml").unlink()
    resumed = _nncli(tmp_path, *words[1:])  # the printed command, word for word
    assert resumed.returncode == 0, resumed.stderr
    runs = tmp_path / (where[1] if where else "runs")
    assert rows(runs / "cut") == rows(runs / "whole")
    assert_same(weights(runs / "cut/checkpoints/last.safetensors"), weights(runs / "whole/checkpoints/last.safetensors"))


def test_the_hint_of_a_run_with_plugins_asks_for_the_opt_in(tmp_path):
    (tmp_path / "steer.py").write_text(PLUGIN)
    (tmp_path / "cfg.yaml").write_text(CONFIG.replace("seed: 3\n", "seed: 3\nplugins: [steer.py]\n")
                                       + "  callbacks: [CountEpochs]\n")
    cut = _nncli(tmp_path, "train", "cfg.yaml", "--run-id", "cut", faults="batch:9=SIGINT")
    assert cut.returncode == 130, cut.stderr
    words = shlex.split(cut.stderr.strip().splitlines()[-1].split("resume with: ", 1)[1])
    resumed = _nncli(tmp_path, *words[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert info(tmp_path / "runs/cut")["status"] == "completed"


# -- warm start ------------------------------------------------------------------------------------
def test_init_from_starts_a_new_run_from_the_weights_and_records_it(tmp_path):
    cfg = config(tmp_path)
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "src", "--set", "train.epochs=6"))
    best = weights(tmp_path / "src/checkpoints/best.safetensors")
    # a learning rate of 0 keeps the weights as they came: the new run's checkpoint is src's best
    out = ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "ft", "--init-from", "src",
                 "--set", "train.epochs=1", "--set", "optimizer.type=SGD", "--set", "optimizer.learning_rate=0.0"))
    assert "starting from the weights of run 'src' (best checkpoint, epoch" in out.output
    assert_same(weights(tmp_path / "ft/checkpoints/last.safetensors"), best)
    record = info(tmp_path / "ft")["init_from"]
    assert record == {"run_id": "src", "path": str((tmp_path / "src").resolve()), "checkpoint": "best",
                      "epoch": info(tmp_path / "src")["best"]["epoch"], "optimizer": False}
    assert info(tmp_path / "ft")["epochs_done"] == 1  # a new run: its own epochs from 1
    assert info(tmp_path / "src")["epochs_done"] == 6  # and the source is untouched


def test_init_from_last_with_the_optimizer_state(tmp_path):
    cfg = config(tmp_path)
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "src", "--set", "train.epochs=3"))
    src, _ = load_checkpoint(tmp_path / "src/checkpoints/last.safetensors")
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "ft", "--init-from", "src:last", "--init-optimizer",
           "--set", "train.epochs=1", "--set", "optimizer.learning_rate=0.001"))
    ft, meta = load_checkpoint(tmp_path / "ft/checkpoints/last.safetensors")
    steps = info(tmp_path / "ft")["step"]
    assert int(ft["optimizer/iterations"].reshape(())) == int(src["optimizer/iterations"].reshape(())) + steps
    assert meta["trainer"]["learning_rate"] == pytest.approx(0.001)  # the new config's rate applies
    assert info(tmp_path / "ft")["init_from"]["checkpoint"] == "last" and info(tmp_path / "ft")["init_from"]["optimizer"]
    # without --init-optimizer the slots start at zero: the step count is the new run's own
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "fresh-opt", "--init-from", "src:last",
           "--set", "train.epochs=1"))
    fresh, _ = load_checkpoint(tmp_path / "fresh-opt/checkpoints/last.safetensors")
    assert int(fresh["optimizer/iterations"].reshape(())) == info(tmp_path / "fresh-opt")["step"]


def test_init_from_a_model_that_does_not_fit_names_each_layer(tmp_path):
    cfg = config(tmp_path)
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "src", "--set", "train.epochs=1"))
    result = cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "bad", "--init-from", "src",
                 "--set", "model.layers[0].units=5")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "layers.0: bias [8], kernel [4, 8] in run 'src', bias [5], kernel [4, 5] in this model" in result.output
    assert "layers.1: bias [3], kernel [8, 3] in run 'src', bias [3], kernel [5, 3] in this model" in result.output
    assert not (tmp_path / "bad").exists()
    more = cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "bad", "--init-from", "src",
               "--set", "model.layers=[{type: Dense, units: 8}, {type: Dense, units: 8}, {type: Dense, units: 3}]")
    assert more.exit_code == 2 and "layers.2: in this model (bias [3], kernel [8, 3]), not in run 'src'" in more.output


@pytest.mark.parametrize("args, message", [
    (("--init-from", "src:middle"), "expected RUN, RUN:best or RUN:last"),
    (("--init-from", "nosuch"), "no run 'nosuch'"),
    (("--init-optimizer",), "give --init-from RUN too"),
    (("--init-from", "src", "--resume", "src"), "give one of the two"),
])
def test_init_from_bad_arguments(tmp_path, args, message):
    cfg = config(tmp_path)
    ok(cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "src", "--set", "train.epochs=1"))
    result = cli("train", cfg, "--runs-dir", tmp_path, "--run-id", "new", *args)
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "new").exists()


def test_resume_with_a_run_id_is_refused(tmp_path):
    ok(cli("train", config(tmp_path), "--runs-dir", tmp_path, "--run-id", "src", "--set", "train.epochs=1"))
    result = cli("train", "--resume", "src", "--runs-dir", tmp_path, "--run-id", "other")
    assert result.exit_code == 2 and "--run-id names a new run" in result.output
    assert not (tmp_path / "other").exists() and info(tmp_path / "src")["epochs_done"] == 1


def test_the_run_viewer_does_not_import_the_trainer(tmp_path):
    ok(cli("train", config(tmp_path), "--runs-dir", tmp_path, "--run-id", "r", "--set", "train.epochs=1"))
    code = ("import sys; from nncli.train.inspect import evaluate_run; "
            f"print(evaluate_run({str(tmp_path)!r}, 'r')['samples']); "
            "print(sorted(m for m in sys.modules if m in ('nncli.train.loop', 'nncli.train.session')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["30", "[]"]
