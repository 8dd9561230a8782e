"""A sweep killed or stopped mid-way, then resumed: finished trials are kept, the end equals an unbroken sweep."""

from __future__ import annotations

import signal

import pytest
from sweep_tools import (GRID, comparable, kill, metrics_rows, read_json, row_count, run, start, sweep_record, tiny,
                         trial_pids, wait_for)

pytestmark = pytest.mark.slow


def _mid_sweep(runs, sweep_id, done: int):
    """The record once ``done`` trials are completed and another has finished an epoch (else None)."""
    def moment():
        record = sweep_record(runs, sweep_id)
        if record is None:
            return None
        ended = [t for t in record["trials"] if t["status"] == "completed"]
        running = [t for t in record["trials"] if t["status"] == "running" and row_count(runs / t["run_id"]) >= 1
                   and (runs / t["run_id"] / "checkpoints" / "last.safetensors").is_file()]
        return record if len(ended) >= done and running else None
    return moment


def test_a_sweep_killed_mid_way_resumes_to_the_record_of_an_uninterrupted_sweep(tmp_path):
    tiny(tmp_path, epochs=20)
    runs = tmp_path / "runs"
    reference = start("sweep", "tiny.yaml", *GRID, "--workers", 2, "--sweep-id", "ref", cwd=tmp_path)
    sweep = start("sweep", "tiny.yaml", *GRID, "--workers", 2, "--sweep-id", "k", cwd=tmp_path)
    seen = wait_for(_mid_sweep(runs, "k", done=2), "two trials done and a third under way", proc=sweep)
    kill(sweep.pid)  # SIGKILL: no handler runs, nothing is saved on the way out
    sweep.communicate()
    # its trials die with it: no orphan keeps training into the runs folder
    wait_for(lambda: not any(trial_pids(t["run_id"]) for t in seen["trials"]), "the trials to end with the sweep")
    left = sweep_record(runs, "k")
    assert left["status"] == "running"  # as the kill left it
    kept = {t["run_id"]: (runs / t["run_id"] / "metrics.csv").stat().st_mtime_ns
            for t in left["trials"] if t["status"] == "completed"}
    assert len(kept) >= 2 and len(kept) < 6
    cut = [t["trial"] for t in left["trials"]
           if t["status"] == "running" and (runs / t["run_id"] / "checkpoints" / "last.safetensors").is_file()]
    assert cut  # a trial was cut mid-way (it had saved an epoch when the kill was aimed)

    proc = run("sweep", "--resume", "k", cwd=tmp_path, check_code=0)
    assert f"{6 - len(kept)} to run" in proc.stdout
    assert reference.wait() == 0, reference.communicate()
    final, unbroken = sweep_record(runs, "k"), sweep_record(runs, "ref")
    assert final["status"] == "completed"
    assert comparable(final) == comparable(unbroken)
    for mine, theirs in zip(final["trials"], unbroken["trials"], strict=True):
        assert metrics_rows(runs / mine["run_id"]) == metrics_rows(runs / theirs["run_id"])
    for run_id, mtime in kept.items():  # finished trials were not run again
        assert (runs / run_id / "metrics.csv").stat().st_mtime_ns == mtime
        assert "resumed" not in read_json(runs / run_id / "run.json")
    for number in cut:  # a trial that was running when the sweep died continued its own run folder
        attempts = final["trials"][number]["attempts"]
        assert [a["outcome"] for a in attempts] == ["interrupted", "completed"] and attempts[1]["resumed"] is True


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_what_finished_and_resume_continues(tmp_path, signum, code):
    tiny(tmp_path, epochs=150)  # long enough that a trial under way is still training when the signal lands
    runs = tmp_path / "runs"
    grid = ["--grid", "optimizer.learning_rate=[0.003, 0.03, 0.1]"]
    sweep = start("sweep", "tiny.yaml", *grid, "--workers", 2, "--sweep-id", "i", cwd=tmp_path)
    wait_for(_mid_sweep(runs, "i", done=0), "a trial under way", proc=sweep)
    sweep.send_signal(signum)
    out, err = sweep.communicate()
    assert sweep.returncode == code, out + err
    assert "running trials save and stop" in out and "continue with nncli sweep --resume i" in out
    record = sweep_record(runs, "i")
    assert record["status"] == "interrupted"
    assert all(t["status"] in ("interrupted", "completed", "pending") for t in record["trials"])
    # each trial under way saved at a batch boundary: its run folder says so and can be resumed (one that
    # was still starting stopped before it made a run folder)
    stopped = [t for t in record["trials"] if t["status"] == "interrupted" and (runs / t["run_id"]).is_dir()]
    assert stopped
    for t in stopped:
        assert read_json(runs / t["run_id"] / "run.json")["status"] == "interrupted"
        assert t["attempts"][-1]["outcome"] == "interrupted"
    proc = run("sweep", "--resume", "i", cwd=tmp_path, check_code=0)
    final = sweep_record(runs, "i")
    assert [t["status"] for t in final["trials"]] == ["completed"] * 3 and final["status"] == "completed"
    run("train", "tiny.yaml", *[a for s in stopped[0]["set"] for a in ("--set", s)], "--run-id", "alone", "--quiet",
        cwd=tmp_path, threads=stopped[0]["attempts"][0]["threads"], check_code=0)
    assert metrics_rows(runs / stopped[0]["run_id"]) == metrics_rows(runs / "alone")
    assert "0 failed" in proc.stdout
