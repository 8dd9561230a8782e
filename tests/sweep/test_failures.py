"""Trials that fail, and trials whose process is lost: the others complete, retries only where they help."""

from __future__ import annotations

import json

import pytest
from sweep_tools import kill, metrics_rows, row_count, run, start, sweep_record, tiny, trial_pids, wait_for

pytestmark = pytest.mark.slow


def test_a_diverging_trial_and_a_bad_override_are_reported_and_the_rest_completes(tmp_path):
    tiny(tmp_path, epochs=4)
    # lr 1e30 makes the loss NaN in epoch 1; input_shape [5] is a valid config that builds no model for iris
    proc = run("sweep", "tiny.yaml", "--grid", "model.input_shape=[[4], [5]]", "--grid",
               "optimizer.learning_rate=[0.01, 1e30]", "--workers", 2, "--sweep-id", "f", "--retries", 3, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    record = sweep_record(tmp_path / "runs", "f")
    status = {(t["overrides"]["model.input_shape"][0], t["overrides"]["optimizer.learning_rate"]): t
              for t in record["trials"]}
    assert status[(4, 0.01)]["status"] == "completed"
    diverged = status[(4, 1e30)]
    assert diverged["status"] == "failed" and "the loss became nan" in diverged["error"]
    for lr in (0.01, 1e30):
        bad = status[(5, lr)]
        assert bad["status"] == "failed" and "expected the data's sample shape [4]" in bad["error"]
    assert all(len(t["attempts"]) == 1 for t in record["trials"])  # none retried: a retry cannot help them
    assert record["status"] == "failed"
    # the table says which failed and why; the failed runs are still run folders to look at
    assert "trial 1 failed: the loss became nan" in proc.stdout
    assert json.loads((tmp_path / "runs" / diverged["run_id"] / "run.json").read_text())["status"] == "failed"


def test_a_trial_whose_process_is_killed_runs_again_from_its_checkpoint(tmp_path):
    tiny(tmp_path, epochs=30)
    sweep = start("sweep", "tiny.yaml", "--grid", "optimizer.learning_rate=[0.01, 0.02]", "--workers", 2,
                  "--sweep-id", "k", cwd=tmp_path)
    victim = tmp_path / "runs" / "k-t00"
    wait_for(lambda: row_count(victim) >= 3 and (victim / "checkpoints" / "last.safetensors").is_file(),
             "trial 0 to finish 3 epochs", proc=sweep)
    pids = wait_for(lambda: trial_pids("k-t00"), "the process of trial 0", proc=sweep)
    for pid in pids:
        kill(pid)  # as the kernel's OOM killer would
    out, err = sweep.communicate()
    assert sweep.returncode == 0, out + err
    record = sweep_record(tmp_path / "runs", "k")
    attempts = record["trials"][0]["attempts"]
    if len(attempts) == 1:  # the kill landed after the last epoch was saved: nothing was lost
        assert attempts[0]["outcome"] == "completed"
        return
    assert [a["outcome"] for a in attempts] == ["lost", "completed"]
    assert "killed by SIGKILL" in attempts[0]["error"] and attempts[1]["resumed"] is True
    assert "runs again" in out
    # resumed from its checkpoint, it is the run it would have been
    run("train", "tiny.yaml", "--set", "seed=3", "--set", "optimizer.learning_rate=0.01", "--run-id", "alone",
        "--quiet", cwd=tmp_path, threads=record["trials"][0]["attempts"][1]["threads"], check_code=0)
    assert metrics_rows(victim) == metrics_rows(tmp_path / "runs" / "alone")
    assert len(metrics_rows(victim)) == 30


def test_lost_attempts_beyond_retries_fail_the_trial(tmp_path):
    tiny(tmp_path, epochs=30)
    sweep = start("sweep", "tiny.yaml", "--grid", "optimizer.learning_rate=[0.01]", "--retries", 0,
                  "--sweep-id", "r", cwd=tmp_path)
    victim = tmp_path / "runs" / "r-t00"
    wait_for(lambda: row_count(victim) >= 1 and (victim / "checkpoints" / "last.safetensors").is_file(),
             "trial 0 to finish an epoch", proc=sweep)
    for pid in wait_for(lambda: trial_pids("r-t00"), "the process of trial 0", proc=sweep):
        kill(pid)
    out, err = sweep.communicate()
    record = sweep_record(tmp_path / "runs", "r")
    trial = record["trials"][0]
    if trial["status"] == "completed":  # the kill came after the end
        return
    assert sweep.returncode == 1, out + err
    assert trial["status"] == "failed" and "--retries 0" in trial["error"]
    # a resumed sweep gives it its attempts again, and it continues where it stopped
    proc = run("sweep", "--resume", "r", cwd=tmp_path, check_code=0)
    assert "1 to run" in proc.stdout
    record = sweep_record(tmp_path / "runs", "r")
    assert record["trials"][0]["status"] == "completed" and record["trials"][0]["attempts"][-1]["resumed"]


def test_a_trial_cut_before_its_first_whole_checkpoint_starts_again_with_its_folder_kept(tmp_path):
    tiny(tmp_path, epochs=3)
    runs = tmp_path / "runs"
    # every attempt kills itself in its first write of last.safetensors (best.safetensors is already written):
    # a run folder that nncli train --resume refuses to continue
    proc = run("sweep", "tiny.yaml", "--grid", "optimizer.learning_rate=[0.01]", "--retries", 1, "--sweep-id", "c",
               cwd=tmp_path, NNCLI_FAULTS="write:last.safetensors:1:open=SIGKILL")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    trial = sweep_record(runs, "c")["trials"][0]
    assert [a["outcome"] for a in trial["attempts"]] == ["lost", "lost"] and not trial["attempts"][1]["resumed"]
    assert ("cannot be resumed (it has finished epochs but no last checkpoint); it starts again, "
            "the folder kept as .c-t00.attempt-1") in proc.stdout
    assert (runs / ".c-t00.attempt-1" / "checkpoints" / "best.safetensors").is_file()  # nothing was deleted
    # without the fault, the resumed sweep starts it once more and it completes
    proc = run("sweep", "--resume", "c", cwd=tmp_path, check_code=0)
    trial = sweep_record(runs, "c")["trials"][0]
    assert trial["status"] == "completed" and (runs / ".c-t00.attempt-2").is_dir()
    assert len(metrics_rows(runs / "c-t00")) == 3
    assert [r["run_id"] for r in json.loads(run("runs", "--json", cwd=tmp_path, check_code=0).stdout)] == ["c-t00"]


def test_which_run_folders_a_trial_can_continue(tmp_path):
    from nncli.sweep.trial import why_not_resumable

    run_dir = tmp_path / "t"
    (run_dir / "checkpoints").mkdir(parents=True)
    assert why_not_resumable(run_dir) == "it has no readable run.json"  # cut while its folder was being made
    (run_dir / "run.json").write_text(json.dumps({"status": "running", "epochs_done": 0}))
    assert why_not_resumable(run_dir) is None  # cut before its first epoch: a resume starts at epoch 0
    (run_dir / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    assert why_not_resumable(run_dir) == "it has finished epochs but no last checkpoint"
    (run_dir / "checkpoints" / "last.safetensors").write_bytes(b"")
    assert why_not_resumable(run_dir) is None
