"""Crashes: SIGKILL at random moments and during checkpoint writes, a full disk, damaged checkpoints.

The promise: a killed run resumes from an intact checkpoint and ends bit-for-bit where an
uninterrupted run ends; a failed write keeps the previous checkpoint and says so; a damaged
checkpoint is refused with a clear message and never loaded in part.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reliability_tools import ROOT, TINY, assert_bad_input, cli, snapshot, write

import nncli.train.checkpoint as checkpoint_module
import nncli.train.runs as runs_module
import nncli.train.session as session
from nncli.train.runs import load_checkpoint

# Short epochs (6 batches) so that checkpoint writes are frequent; xor improves for long enough
# that checkpoints/best.safetensors is rewritten often too. Every built-in callback is active:
# the learning rate is halved at epochs 8 and later, a periodic checkpoint every 3 epochs keeps
# two, and early stopping (its best epoch 76 is not best.safetensors' 78) stops at epoch 80 and
# puts epoch 76's weights back, which its state carries as a snapshot through every kill.
KILL_CONFIG = """\
seed: 5
data: {source: xor, samples: 64, validation_split: 0.25, batch_size: 8}
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 8, activation: tanh}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 1}
loss: {type: BinaryCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train:
  epochs: 100
  metrics: [accuracy]
  early_stopping: {monitor: val_loss, patience: 4, min_delta: 0.001, start_from_epoch: 10, restore_best_weights: true}
  reduce_lr_on_plateau: {monitor: val_loss, factor: 0.5, patience: 3}
  checkpoint: {every: 3, keep: 2}
"""


def _start(tmp_path: Path, *args, faults: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NNCLI_FAULTS": faults}
    return subprocess.Popen([sys.executable, "-m", "nncli.cli", *map(str, args)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _partial_checkpoints(run: Path) -> list[Path]:
    return list((run / "checkpoints").glob(".*.tmp")) if (run / "checkpoints").is_dir() else []


def _partial_writes(run: Path) -> set[Path]:
    return set(_partial_checkpoints(run)) | (set(run.glob(".*.tmp")) if run.is_dir() else set())


def metrics_without_time(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


def assert_same_weights(a: Path, b: Path) -> None:
    (wa, ma), (wb, mb) = load_checkpoint(a), load_checkpoint(b)
    wa.pop("run/history"), wb.pop("run/history")  # its time_s differs; metrics.csv is compared instead
    assert ma.get("callbacks") == mb.get("callbacks")  # every callback's state too
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


# Where a kill is aimed: after a random batch, or at a random stage of a random write (every run
# file nncli writes, the checkpoints most), with a batch kill behind it in case that write never comes.
WRITES = ["last.safetensors", "last.safetensors", "best.safetensors", "best.safetensors", "run.json",
          "metrics.csv", "config.yaml", "epoch", "*"]
STAGES = ["open", "half", "synced", "renamed"]


def _aim(rng: random.Random, kill: int, epochs_done: int) -> str:
    if kill % 2 == 0:
        return f"batch:{rng.randint(1, 12)}=SIGKILL"
    name, count, stage = rng.choice(WRITES), rng.randint(1, 2), rng.choice(STAGES)
    if name == "epoch":  # the next periodic checkpoint (every 3 epochs), written once
        name, count = f"epoch-{(epochs_done // 3 + 1) * 3:04d}.safetensors", 1
    return f"write:{name}:{count}:{stage}=SIGKILL,batch:14=SIGKILL"


@pytest.mark.slow
def test_sigkill_at_aimed_moments_then_resume_is_exact(tmp_path):
    """24 SIGKILLs, each aimed by the NNCLI_FAULTS hook (half of them inside a write), then a resume
    that finishes the run: it ends bit for bit where an uninterrupted run ends."""
    cfg = write(tmp_path, KILL_CONFIG)
    runs = tmp_path / "runs"
    whole = _start(tmp_path, "train", cfg, "--runs-dir", runs, "--run-id", "whole", "--quiet")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    whole.stdout.close(), whole.stderr.close()

    run, rng = runs / "cut", random.Random(20261126)
    mid_write = 0
    for kill in range(24):
        started = (run / "run.json").is_file()
        done = json.loads((run / "run.json").read_text()).get("epochs_done") or 0 if started else 0
        debris = _partial_writes(run)  # left by earlier kills, until a resume removes it
        proc = _start(tmp_path, "train", cfg, "--runs-dir", runs, "--quiet",
                      *(("--resume", "cut") if started else ("--run-id", "cut")), faults=_aim(rng, kill, done))
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, f"kill {kill}: exit {proc.returncode}\n{err}"
        mid_write += bool(_partial_writes(run) - debris)
        for name in ("last", "best"):  # whatever was on disk is a complete, verified checkpoint
            if (run / f"checkpoints/{name}.safetensors").exists():
                load_checkpoint(run / f"checkpoints/{name}.safetensors")
    assert mid_write >= 6, f"only {mid_write} kills left a write half-done"

    final = _start(tmp_path, "train", cfg, "--runs-dir", runs, "--resume", "cut", "--quiet")
    assert final.wait(timeout=300) == 0, final.stderr.read()
    final.stdout.close(), final.stderr.close()
    info, whole_info = (json.loads((r / "run.json").read_text()) for r in (run, runs / "whole"))
    assert (info["status"], info["epochs_done"], info["restored_epoch"]) == ("early_stopped", 80, 76)
    assert (whole_info["status"], whole_info["epochs_done"], whole_info["restored_epoch"]) == ("early_stopped", 80, 76)
    assert _partial_writes(run) == set()  # debris of cut writes removed
    assert metrics_without_time(run) == metrics_without_time(runs / "whole")
    lrs = [float(row["lr"]) for row in metrics_without_time(run)]
    assert lrs[0] == 0.01 and lrs[-1] < 0.01  # the plateau callback lowered it, at the same epochs
    names = sorted(p.name for p in (runs / "whole/checkpoints").iterdir())
    assert names == ["best.safetensors", "epoch-0075.safetensors", "epoch-0078.safetensors", "last.safetensors"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == names
    for name in names:
        assert_same_weights(run / f"checkpoints/{name}", runs / f"whole/checkpoints/{name}")
    _, meta = load_checkpoint(run / "checkpoints/last.safetensors")
    assert meta["callbacks"]["early_stopping"]["state"]["best_epoch"] == 76  # its snapshot went into last


# -- a full disk ---------------------------------------------------------------------------
class _FailFromEpoch:
    """A trainer callback that switches on a simulated full disk when epoch ``n`` begins."""

    def __init__(self, n, switch):
        self.n, self.switch = n, switch

    def on_train_begin(self, trainer): ...
    def on_batch_end(self, trainer, epoch, batch, logs): ...
    def on_epoch_end(self, trainer, epoch, logs): ...
    def on_interrupt(self, trainer): ...
    def on_train_end(self, trainer, status): ...

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.n:
            self.switch()


def _disk_full_from_epoch(monkeypatch, n: int, target: str) -> None:
    """From epoch ``n`` on, writing ``target`` ("checkpoint" or "metrics") fails with ENOSPC."""
    full = []
    real_write, real_append = checkpoint_module.atomic_write, runs_module.RunFolder.append_metrics

    def atomic_write(path, data, **kwargs):
        if full and target == "checkpoint" and path.suffix == ".safetensors":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data, **kwargs)

    def append_metrics(self, row, columns):
        if full and target == "metrics":
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "metrics.csv"))
        return real_append(self, row, columns)

    real_make = session.make_trainer

    def make_trainer(*args, **kwargs):
        trainer = real_make(*args, **kwargs)
        trainer.callbacks.append(_FailFromEpoch(n, lambda: full.append(True)))
        return trainer

    monkeypatch.setattr(checkpoint_module, "atomic_write", atomic_write)
    monkeypatch.setattr(runs_module.RunFolder, "append_metrics", append_metrics)
    monkeypatch.setattr(session, "make_trainer", make_trainer)


@pytest.mark.parametrize("target, message", [
    ("checkpoint", r"could not write checkpoint .*(best|last)\.safetensors \(No space left on device\); "
                   r"the previous checkpoint is intact; continue with --resume full"),
    ("metrics", r"could not write to .*full \(No space left on device\); the last checkpoint is intact"),
])
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch, target, message):
    cfg = write(tmp_path, TINY.replace("epochs: 2", "epochs: 4"))
    runs = tmp_path / "runs"
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "two", "--set", "train.epochs=2", "--quiet").exit_code == 0
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "four", "--quiet").exit_code == 0
    with monkeypatch.context() as patch:
        _disk_full_from_epoch(patch, 3, target)
        result = cli("train", cfg, "--runs-dir", runs, "--run-id", "full", "--quiet")
    assert_bad_input(result, message)
    run = runs / "full"
    tensors, meta = load_checkpoint(run / "checkpoints/last.safetensors")
    assert meta["epoch"] == 2  # the checkpoint before the full disk, intact
    assert_same_weights(run / "checkpoints/last.safetensors", runs / "two/checkpoints/last.safetensors")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "No space left on device" in info["error"]
    assert _partial_checkpoints(run) == []
    # with space again, the run continues and ends as if nothing had happened
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "full", "--quiet").exit_code == 0
    assert metrics_without_time(run) == metrics_without_time(runs / "four")
    assert_same_weights(run / "checkpoints/last.safetensors", runs / "four/checkpoints/last.safetensors")


# -- damaged checkpoints ----------------------------------------------------------------------
def _flip(offset_from_end: int):
    def damage(blob: bytes) -> bytes:
        i = len(blob) - offset_from_end
        return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1:]
    return damage


DAMAGE = {
    "truncated_to_half": lambda b: b[: len(b) // 2],
    "truncated_by_one_byte": lambda b: b[:-1],
    "empty": lambda b: b"",
    "one_bit_in_the_weights": _flip(3),
    "one_bit_in_the_header": lambda b: b[:20] + bytes([b[20] ^ 0x01]) + b[21:],
    "header_length_huge": lambda b: (2**62).to_bytes(8, "little") + b[8:],
    "random_bytes": lambda b: random.Random(0).randbytes(len(b)),
    "text_file": lambda b: b"not a checkpoint\n",
    "appended_garbage": lambda b: b + b"\0" * 64,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    cfg = write(folder, TINY)
    assert cli("train", cfg, "--runs-dir", folder / "runs", "--run-id", "done", "--quiet").exit_code == 0
    return cfg, folder / "runs"


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_refused_on_resume_and_eval(finished_run, tmp_path, damage):
    cfg, source = finished_run
    runs = tmp_path / "runs"
    __import__("shutil").copytree(source, runs)
    run = runs / "done"
    last = run / "checkpoints/last.safetensors"
    last.write_bytes(DAMAGE[damage](last.read_bytes()))
    before = snapshot(run)
    where = r"checkpoint .*last\.safetensors (is damaged or truncated|failed its integrity check|has unreadable)"
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "done", "--set", "train.epochs=4"), where)
    assert snapshot(run) == before  # nothing changed
    assert_bad_input(cli("eval", "done", "--runs-dir", runs, "--checkpoint", "last"), where)
    assert cli("eval", "done", "--runs-dir", runs, "--checkpoint", "best").exit_code == 0  # the other one is fine


# -- a crash between two writes ----------------------------------------------------------------
class _Crash(BaseException):
    """The process dies here: nothing catches it, nothing is cleaned up or recorded."""


def test_a_crash_between_the_best_and_last_checkpoints_loses_nothing(tmp_path, monkeypatch):
    """Whichever of the two checkpoint writes of an epoch a crash falls between, the resumed run's
    best checkpoint is the uninterrupted run's (the last epoch is the best one here)."""
    from nncli.train.session import train

    cfg = write(tmp_path, TINY.replace("epochs: 2", "epochs: 3"))
    whole = train(cfg, runs_dir=tmp_path, run_id="whole")
    assert whole.trainer.state.best_epoch == 3
    import nncli.train.recorder as recorder

    real = recorder.write_checkpoint  # the recorder writes every checkpoint of a run
    written = []

    def crash_after_first_write_of_epoch_3(run, name, trainer, *rest):
        if trainer.state.epoch == 3 and written:
            raise _Crash
        real(run, name, trainer, *rest)
        if trainer.state.epoch == 3:
            written.append(name)

    with monkeypatch.context() as patch:
        patch.setattr(recorder, "write_checkpoint", crash_after_first_write_of_epoch_3)
        with pytest.raises(_Crash):
            train(cfg, runs_dir=tmp_path, run_id="cut")
    assert len(written) == 1
    train(cfg, runs_dir=tmp_path, resume="cut")
    for name in ("best", "last"):
        assert_same_weights(tmp_path / f"cut/checkpoints/{name}.safetensors",
                            tmp_path / f"whole/checkpoints/{name}.safetensors")


def test_a_crash_while_creating_the_run_folder_leaves_no_half_made_run(tmp_path, monkeypatch):
    from nncli.train.runs import list_runs
    from nncli.train.session import train

    cfg = write(tmp_path, TINY)
    runs = tmp_path / "runs"

    def crash(self, info):
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(runs_module.RunFolder, "write_json", crash)
        with pytest.raises(_Crash):
            train(cfg, runs_dir=runs, run_id="r")
    assert not (runs / "r").exists() and list_runs(runs) == []  # only a hidden temporary folder
    train(cfg, runs_dir=runs, run_id="r")  # the id is free: start again
    assert [p.name for p in list_runs(runs)] == ["r"]
