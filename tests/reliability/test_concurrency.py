"""Two processes and one run folder: a live run is locked, a dead one is told apart, run ids never collide.

Every process here is a real ``nncli``; where a test needs one to be in the middle of training it
pauses it with the NNCLI_FAULTS hook and waits for the file that says so, never for a sleep.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from reliability_tools import TINY, cli, cli_process, faults_env, popen_cli, snapshot, wait_for, write

import nncli.train.runs as runs_module
from nncli.train.session import train

FIVE = TINY.replace("epochs: 2", "epochs: 5")  # 8 batches an epoch: batch 10 is inside epoch 2


def _rows(run: Path) -> list[list[str]]:
    lines = (run / "metrics.csv").read_text().splitlines()
    return [line.split(",")[:-1] for line in lines]  # less time_s


def _status(runs: Path, run_id: str) -> str:
    result = cli("runs", "--runs-dir", runs, "--json")
    assert result.exit_code == 0, result.output
    return {r["run_id"]: r["status"] for r in json.loads(result.stdout)}[run_id]


def test_a_run_being_trained_is_locked_against_a_second_writer(tmp_path):
    cfg = write(tmp_path, FIVE)
    runs = tmp_path / "runs"
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "whole", "--quiet").exit_code == 0
    env, ready = faults_env(tmp_path, "batch:10=pause")
    first = popen_cli("train", cfg, "--runs-dir", runs, "--run-id", "dup", "--quiet", env=env)
    wait_for(ready.exists, first, "the first process paused in epoch 2")
    before = snapshot(runs / "dup")
    second = cli_process("train", cfg, "--runs-dir", runs, "--resume", "dup", "--quiet")
    assert second.returncode == 2, second.stderr
    assert f"process {first.pid}" in second.stderr and "Traceback" not in second.stderr, second.stderr
    assert snapshot(runs / "dup") == before  # refused before it read, cleaned or wrote anything
    assert _status(runs, "dup") == "running"
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 143, first.stderr.read()
    first.stdout.close(), first.stderr.close()
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "dup", "--quiet").exit_code == 0
    assert _rows(runs / "dup") == _rows(runs / "whole")  # each epoch once, in order


def test_a_killed_run_shows_as_crashed_and_resumes(tmp_path):
    cfg = write(tmp_path, FIVE)
    runs = tmp_path / "runs"
    env, ready = faults_env(tmp_path, "batch:10=pause")
    proc = popen_cli("train", cfg, "--runs-dir", runs, "--run-id", "gone", "--quiet", env=env)
    wait_for(ready.exists, proc, "the process paused in epoch 2")
    assert _status(runs, "gone") == "running"  # alive: it holds the run's lock
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    proc.stdout.close(), proc.stderr.close()
    assert _status(runs, "gone") == "crashed"  # run.json still says running; nobody holds the lock
    table = cli("runs", "--runs-dir", runs)
    assert "crashed" in table.stdout, table.stdout
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "gone", "--quiet").exit_code == 0
    assert _status(runs, "gone") == "completed"


class _FixedClock:
    """``datetime`` whose ``now()`` is always the same second: every run id would be the same."""

    @staticmethod
    def now():
        from datetime import datetime

        return datetime(2026, 1, 2, 3, 4, 5)


def test_a_run_id_taken_between_the_check_and_the_rename_goes_to_the_next_suffix(tmp_path, monkeypatch):
    """The race of two launches in the same second, made certain: the other run takes the id first."""
    cfg = write(tmp_path, TINY)
    runs = tmp_path / "runs"
    monkeypatch.setattr(runs_module, "datetime", _FixedClock)
    real_rename, raced = os.rename, []

    def rename(src, dst, *args, **kwargs):
        if not raced and Path(dst).name.startswith("cfg-"):
            raced.append(True)
            train(cfg, runs_dir=runs, argv=[])  # another launch wins the id
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    result = cli("train", cfg, "--runs-dir", runs, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == \
        ["cfg-20260102-030405", "cfg-20260102-030405-2"]
    for name in ("cfg-20260102-030405", "cfg-20260102-030405-2"):
        assert json.loads((runs / name / "run.json").read_text())["run_id"] == name


def test_many_launches_into_one_runs_folder_all_get_a_run(tmp_path):
    cfg = write(tmp_path, TINY.replace("epochs: 2", "epochs: 1"))
    runs = tmp_path / "runs"
    procs = [popen_cli("train", cfg, "--runs-dir", runs, "--quiet") for _ in range(8)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    folders = [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 8
    assert all(json.loads((p / "run.json").read_text())["status"] == "completed" for p in folders)


def test_an_explicit_run_id_taken_meanwhile_is_refused_not_merged(tmp_path, monkeypatch):
    cfg = write(tmp_path, TINY)
    runs = tmp_path / "runs"
    real_rename, raced = os.rename, []

    def rename(src, dst, *args, **kwargs):
        if not raced and Path(dst).name == "same":
            raced.append(True)
            train(cfg, runs_dir=runs, run_id="same", argv=[])
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    result = cli("train", cfg, "--runs-dir", runs, "--run-id", "same", "--quiet")
    assert result.exit_code == 2 and "already exists" in result.output, result.output
    assert json.loads((runs / "same/run.json").read_text())["status"] == "completed"
    assert [p.name for p in runs.iterdir()] == ["same"]  # no hidden folder left behind
