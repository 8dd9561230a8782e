"""Signals: SIGTERM, SIGHUP and Ctrl-C stop at a batch boundary and save; a closed stdout ends the run cleanly.

What SLURM, Kubernetes and a closed terminal send is handled like Ctrl-C: the run saves at the
next batch boundary, run.json says ``interrupted``, the exit code is 128 + the signal, and a resume
ends exactly where an uninterrupted run ends. Each signal is aimed with the NNCLI_FAULTS hook.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_tools import ROOT, TINY, cli, faults_env, popen_cli, wait_for, write

from nncli.train.runs import load_checkpoint

FIVE = TINY.replace("epochs: 2", "epochs: 5")  # 8 batches an epoch: batch 11 is epoch 2, batch 3


def _rows(run: Path) -> list[list[str]]:
    return [line.split(",")[:-1] for line in (run / "metrics.csv").read_text().splitlines()]  # less time_s


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    cfg = write(folder, FIVE)
    assert cli("train", cfg, "--runs-dir", folder / "runs", "--run-id", "whole", "--quiet").exit_code == 0
    return folder / "runs" / "whole"


def _assert_saved_mid_epoch_and_resumes_exactly(tmp_path, cfg, runs, whole):
    run = runs / "cut"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    _, meta = load_checkpoint(run / "checkpoints/last.safetensors")
    assert (meta["epoch"], meta["trainer"]["batch"]) == (1, 3)  # the batches of epoch 2 are kept
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "cut", "--quiet").exit_code == 0
    assert _rows(run) == _rows(whole)


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_a_signal_from_outside_saves_at_the_next_batch_and_exits_128_plus_its_number(tmp_path, whole, name, code):
    cfg = write(tmp_path, FIVE)
    runs = tmp_path / "runs"
    env, ready = faults_env(tmp_path, "batch:11=pause")
    proc = popen_cli("train", cfg, "--runs-dir", runs, "--run-id", "cut", "--quiet", env=env)
    wait_for(ready.exists, proc, "the run paused at epoch 2, batch 3")
    proc.send_signal(getattr(signal, name))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "--resume cut" in err and name in err, err
    _assert_saved_mid_epoch_and_resumes_exactly(tmp_path, cfg, runs, whole)


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_second_signal_during_the_save_waits_for_it(tmp_path, whole, name, code):
    """The first signal after batch 11; the second half-way through writing the interrupt's checkpoint
    (the second write of last.safetensors: the first was at the end of epoch 1)."""
    cfg = write(tmp_path, FIVE)
    runs = tmp_path / "runs"
    env, _ = faults_env(tmp_path, f"batch:11={name},write:last.safetensors:2:half={name}")
    proc = popen_cli("train", cfg, "--runs-dir", runs, "--run-id", "cut", "--quiet", env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert list((runs / "cut/checkpoints").glob(".*")) == []  # the save finished, no temporary file left
    _assert_saved_mid_epoch_and_resumes_exactly(tmp_path, cfg, runs, whole)


# A run that cannot finish while the test reads two lines: the pipe is certain to close first.
ENDLESS = """\
seed: 1
data: {source: toy, validation_split: 0.0, batch_size: 6}
model: {input_shape: [2], layers: [{type: Dense, units: 4, activation: tanh}, {type: Dense, units: 2}]}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: adam
train: {epochs: 1000000}
"""


def test_a_closed_stdout_ends_the_run_cleanly(tmp_path):
    """``nncli train CONFIG | head -2``: the run stops at a batch boundary, saved and marked interrupted."""
    cfg = write(tmp_path, ENDLESS)
    runs = tmp_path / "runs"
    shell = (f"{sys.executable} -m nncli.cli train {cfg} --runs-dir {runs} --run-id piped 2>{tmp_path / 'err'}"
             " | head -2")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert len(proc.stdout.splitlines()) == 2, proc.stdout
    err = (tmp_path / "err").read_text()
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as a killed pipeline member reports
    assert "Traceback" not in err and "standard output" in err and "--resume piped" in err, err
    info = json.loads((runs / "piped/run.json").read_text())
    assert info["status"] == "interrupted"
    _, meta = load_checkpoint(runs / "piped/checkpoints/last.safetensors")
    assert meta["epoch"] == info["epochs_done"] >= 1
