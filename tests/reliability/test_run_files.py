"""The files of a run folder when someone else made them: cut rows, symlinks, bad run.json, full disks.

A run folder received from elsewhere (or damaged by a crash or a full disk) never makes nncli
write outside it, crash with a traceback, glue or lose metrics rows, or say something untrue.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_tools import ROOT, TINY, assert_bad_input, cli, snapshot, write

FIVE = TINY.replace("epochs: 2", "epochs: 5")


def _rows(run: Path) -> list[list[str]]:
    return [line.split(",")[:-1] for line in (run / "metrics.csv").read_text().splitlines()]  # less time_s


@pytest.fixture
def three_of_five(tmp_path):
    """Run 'whole' (5 epochs) and run 'r' stopped after 3 of the same 5."""
    cfg = write(tmp_path, FIVE)
    runs = tmp_path / "runs"
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "whole", "--quiet").exit_code == 0
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "r", "--set", "train.epochs=3", "--quiet").exit_code == 0
    return cfg, runs


# -- metrics.csv cut or glued ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["cut_mid_line", "last_row_lost", "rows_glued", "emptied", "deleted"])
def test_metrics_csv_is_rebuilt_on_resume_from_the_checkpoint(three_of_five, damage):
    cfg, runs = three_of_five
    path = runs / "r/metrics.csv"
    text = path.read_text()
    if damage == "cut_mid_line":
        path.write_text(text[:-10])
    elif damage == "last_row_lost":
        path.write_text("".join(text.splitlines(keepends=True)[:-1]))
    elif damage == "rows_glued":
        path.write_text(text.replace("\n2,", ",2,", 1))
    elif damage == "emptied":
        path.write_text("")
    else:
        path.unlink()
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet").exit_code == 0
    assert _rows(runs / "r") == _rows(runs / "whole")  # every epoch once, in order, none glued


def test_every_reader_tolerates_a_bad_metrics_row(three_of_five):
    cfg, runs = three_of_five
    path = runs / "r/metrics.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1] + "," + lines[2], "\x00garbage,,", lines[3]]) + "\n")
    listing = cli("runs", "--runs-dir", runs, "--json")
    assert listing.exit_code == 0, listing.output
    assert {r["run_id"] for r in json.loads(listing.stdout)} == {"r", "whole"}
    assert cli("runs", "--runs-dir", runs).exit_code == 0
    drawn = cli("plot", "r", "--runs-dir", runs)
    assert drawn.exit_code == 0, drawn.output


# -- symlinks inside a run folder -------------------------------------------------------------------
def test_a_symlinked_metrics_csv_is_never_written_through(three_of_five, tmp_path):
    cfg, runs = three_of_five
    outside = tmp_path / "outside.csv"
    outside.write_text("precious\n")
    (runs / "r/metrics.csv").unlink()
    (runs / "r/metrics.csv").symlink_to(outside)
    result = cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet")
    assert_bad_input(result, r"metrics\.csv is a symbolic link")
    assert outside.read_text() == "precious\n"


@pytest.mark.parametrize("link", ["checkpoints", "run_folder"])
def test_a_symlinked_folder_is_never_written_through_or_cleaned(three_of_five, tmp_path, link):
    cfg, runs = three_of_five
    outside = tmp_path / "outside"
    source = runs / "r/checkpoints" if link == "checkpoints" else runs / "r"
    shutil.move(source, outside)
    source.symlink_to(outside, target_is_directory=True)
    (outside / ".keep.tmp").write_text("someone else's temporary file")
    before = snapshot(outside)
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet"), "symbolic link")
    assert snapshot(outside) == before


def test_resume_deletes_only_the_temporary_files_it_made(three_of_five):
    cfg, runs = three_of_five
    run = runs / "r"
    theirs = [run / ".notes.tmp", run / "checkpoints/.other.tmp", run / ".run.json.tmp"]
    for path in theirs:
        path.write_text("not nncli's")
    ours = run / "checkpoints/.last.safetensors.nncli-0123abcd.tmp"  # what a killed checkpoint write leaves
    ours.write_bytes(b"half a checkpoint")
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet").exit_code == 0
    assert all(p.read_text() == "not nncli's" for p in theirs)
    assert not ours.exists()


# -- run.json that is not what nncli wrote ------------------------------------------------------------
BAD_RUN_JSON = {
    "a_list": [],
    "created_a_number": {"created": 1},
    "not_json": "{",
    "status_unknown": {"status": "exploded"},
    "status_a_number": {"status": 3},
    "best_a_string": {"best": "x"},
    "resumed_a_number": {"resumed": 5},
    "final_a_list": {"final": [1, 2]},
    "data_a_string": {"data": "x"},
    "input_shape_a_string": {"data": {"input_shape": "x"}},
    "feature_names_a_number": {"data": {"feature_names": 5}},
    "epochs_done_a_string": {"epochs_done": "3"},
}


@pytest.mark.parametrize("case", sorted(BAD_RUN_JSON))
def test_one_malformed_run_json_breaks_no_command_for_other_runs(three_of_five, case):
    cfg, runs = three_of_five
    shutil.copytree(runs / "r", runs / "bad")
    bad = BAD_RUN_JSON[case]
    if isinstance(bad, dict) and len(bad) == 1 and case not in ("created_a_number",):
        info = json.loads((runs / "bad/run.json").read_text())
        key, value = next(iter(bad.items()))
        if key == "data" and isinstance(value, dict):
            info["data"].update(value)
        else:
            info[key] = value
        text = json.dumps(info)
    else:
        text = bad if isinstance(bad, str) else json.dumps(bad)
    (runs / "bad/run.json").write_text(text)
    listing = cli("runs", "--runs-dir", runs, "--json")
    assert listing.exit_code == 0, listing.output
    status = {r["run_id"]: r["status"] for r in json.loads(listing.stdout)}
    assert status == {"bad": "unreadable", "r": "completed", "whole": "completed"}
    assert cli("runs", "--runs-dir", runs).exit_code == 0
    for args in (("plot", "r"), ("eval", "r"), ("eval", "latest"), ("plot", "latest")):
        result = cli(*args, "--runs-dir", runs)
        assert result.exit_code == 0 or "Traceback" not in result.output, result.output
        assert result.exit_code in (0, 2) and not isinstance(result.exception, (TypeError, AttributeError)), \
            repr(result.exception)
    assert cli("eval", "r", "--runs-dir", runs).exit_code == 0
    assert cli("plot", "r", "--runs-dir", runs).exit_code == 0
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet").exit_code == 0
    assert_bad_input(cli("eval", "bad", "--runs-dir", runs), r"run\.json")
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "bad", "--quiet"), r"run\.json")


# -- a full disk, a read-only folder ----------------------------------------------------------------
def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _limited(limit: int, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nncli.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_file_size_limit(limit))


def test_resume_on_a_full_disk_exits_2_and_keeps_the_run(three_of_five):
    cfg, runs = three_of_five
    before = snapshot(runs / "r")
    proc = _limited(200, "train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert "--resume r" in proc.stderr, proc.stderr
    assert snapshot(runs / "r") == before
    assert cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet").exit_code == 0  # with space again
    assert _rows(runs / "r") == _rows(runs / "whole")


def test_resume_in_a_read_only_runs_folder_exits_2(three_of_five, monkeypatch):
    cfg, runs = three_of_five
    before = snapshot(runs / "r")
    real_open = os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def read_only_open(path, flags, *args, dir_fd=None, **kwargs):
        if flags & writes:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    result = cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--quiet")
    monkeypatch.undo()
    assert_bad_input(result, r"Read-only file system")
    assert snapshot(runs / "r") == before


def test_predict_out_on_a_full_disk_keeps_the_old_file(three_of_five, tmp_path):
    cfg, runs = three_of_five
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("a,b,c,d\n" + "5.1,3.5,1.4,0.2\n" * 200)
    out = tmp_path / "predictions.csv"
    out.write_text("the previous predictions\n")
    proc = _limited(1000, "predict", "r", inputs, "--out", out, "--runs-dir", runs)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "predictions.csv" in proc.stderr, proc.stderr
    assert out.read_text() == "the previous predictions\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- messages that must be true ------------------------------------------------------------------------
def test_a_divergence_in_epoch_1_does_not_claim_a_checkpoint(tmp_path):
    cfg = write(tmp_path, TINY.replace("learning_rate: 0.01", "learning_rate: 1.0e+30"))
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "nan", "--quiet")
    assert result.exit_code == 1, result.output
    assert list((tmp_path / "runs/nan/checkpoints").iterdir()) == []
    assert "kept" not in result.stderr and "no epoch finished" in result.stderr, result.stderr


def test_a_write_failure_before_any_checkpoint_does_not_claim_one(tmp_path, monkeypatch):
    import nncli.train.runs as runs_module

    def full(self, row, columns):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "metrics.csv"))

    monkeypatch.setattr(runs_module.RunFolder, "append_metrics", full)
    cfg = write(tmp_path, TINY)
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "full", "--quiet")
    assert_bad_input(result, "No space left on device")
    assert "intact" not in result.stderr and "no checkpoint" in result.stderr, result.stderr
