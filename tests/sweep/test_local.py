"""A sweep on this machine: 6 trials, 2 at a time, each an ordinary run equal to training it alone."""

from __future__ import annotations

import json
import re

import pytest
from sweep_tools import GRID, metrics_rows, run, start, sweep_record, tiny

from nncli.sweep.trial import cpu_count

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    tiny(folder)
    proc = run("sweep", "tiny.yaml", *GRID, "--workers", 2, "--sweep-id", "s", "--json", cwd=folder)
    return folder, proc


def test_six_trials_two_at_a_time_each_equal_to_the_trial_trained_alone(swept):
    folder, proc = swept
    assert proc.returncode == 0, proc.stderr
    record = sweep_record(folder / "runs", "s")
    trials = record["trials"]
    assert [t["status"] for t in trials] == ["completed"] * 6
    assert [t["overrides"] for t in trials] == [
        {"optimizer.learning_rate": lr, "model.layers[0].units": u} for lr in (0.003, 0.03, 0.1) for u in (4, 8)]
    threads = max(1, cpu_count() // 2)
    assert record["executor"] == {"kind": "local", "workers": 2, "threads": threads}
    assert all(len(t["attempts"]) == 1 and t["attempts"][0]["threads"] == threads for t in trials)
    # the same trials trained one by one with `nncli train CONFIG --set ...` and the same BLAS thread count
    alone = [start("train", "tiny.yaml", *[a for s in t["set"] for a in ("--set", s)], "--run-id", t["run_id"],
                   "--runs-dir", "alone", "--quiet", cwd=folder, threads=threads) for t in trials]
    for p in alone:
        assert p.wait() == 0, p.communicate()
    for t in trials:
        swept_rows = metrics_rows(folder / "runs" / t["run_id"])
        alone_rows = metrics_rows(folder / "alone" / t["run_id"])
        assert len(swept_rows) == 12
        assert swept_rows == alone_rows, t["run_id"]  # bit for bit: the CSV holds every float's repr
    assert len({json.dumps(metrics_rows(folder / "runs" / t["run_id"])) for t in trials}) == 6  # six trainings
    # the run folder records what was run: the command of a plain nncli train
    info = json.loads((folder / "runs" / trials[1]["run_id"] / "run.json").read_text())
    assert info["argv"][:3] == ["nncli", "train", "tiny.yaml"] and "model.layers[0].units=8" in info["argv"]
    assert info["blas"]["threads"] == threads  # each trial's run.json says what it was pinned to


def test_json_output_and_the_record_agree(swept):
    folder, proc = swept
    out = json.loads(proc.stdout)  # --json: stdout holds the JSON object only, progress went to stderr
    record = sweep_record(folder / "runs", "s")
    assert set(out) == {"sweep_id", "trials"} and out["sweep_id"] == "s"
    for shown, kept in zip(out["trials"], record["trials"], strict=True):
        assert set(shown) == {"trial", "run_id", "overrides", "status", "best"}
        assert shown["best"] == {"monitor": "val_loss", "value": kept["best"]["value"]}
        assert (shown["trial"], shown["run_id"], shown["overrides"], shown["status"]) == (
            kept["trial"], kept["run_id"], kept["overrides"], kept["status"])
    assert "trial 5 completed" in proc.stderr and "6/6 done, 0 running, 0 failed, best val_loss" in proc.stderr


def test_resuming_a_finished_sweep_runs_nothing_and_prints_the_table_best_first(swept):
    folder, _ = swept
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "runs").glob("s-t*/metrics.csv")}
    proc = run("sweep", "--resume", "s", cwd=folder, check_code=0)
    assert "0 to run" in proc.stdout
    record = sweep_record(folder / "runs", "s")
    by_value = sorted(record["trials"], key=lambda t: t["best"]["value"])
    rows = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+\S+\s+\d+\s+completed", proc.stdout, re.M)]
    assert rows == [t["trial"] for t in by_value]
    best = by_value[0]
    assert f"best: trial {best['trial']}" in proc.stdout and best["run_id"] in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "runs").glob("s-t*/metrics.csv")} == before


def test_a_trial_works_with_runs_eval_predict_plot_and_resume(swept):
    folder, _ = swept
    record = sweep_record(folder / "runs", "s")
    trial = record["trials"][3]
    listed = json.loads(run("runs", "--json", cwd=folder, check_code=0).stdout)
    assert sorted(r["run_id"] for r in listed) == sorted(t["run_id"] for t in record["trials"])  # not the sweep
    evaluated = json.loads(run("eval", trial["run_id"], "--json", cwd=folder, check_code=0).stdout)
    assert evaluated["metrics"]["loss"] == pytest.approx(trial["best"]["value"], rel=1e-5)
    (folder / "x.csv").write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    predicted = run("predict", trial["run_id"], "x.csv", cwd=folder, check_code=0).stdout.splitlines()
    assert predicted[0].startswith("class,prob_0") and len(predicted) == 3
    assert run("plot", trial["run_id"], cwd=folder, check_code=0).stdout.strip().endswith("loss.png")
    resumed = run("train", "tiny.yaml", *[a for s in trial["set"] for a in ("--set", s)], "--set", "train.epochs=14",
                  "--resume", trial["run_id"], "--quiet", cwd=folder, check_code=0)
    assert trial["run_id"] in resumed.stdout
    assert len(metrics_rows(folder / "runs" / trial["run_id"])) == 14


def test_plot_of_the_sweep_overlays_its_trials_with_the_best_highlighted(swept):
    folder, _ = swept
    proc = run("plot", "s", "--best", 2, cwd=folder, check_code=0)
    out = folder / proc.stdout.strip()
    assert out == folder / "runs" / "s" / "sweep.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from nncli.sweep.plot import make_sweep_figure
    from nncli.sweep.record import SweepFolder

    record = SweepFolder(folder / "runs" / "s").read()
    fig = make_sweep_figure(record, folder / "runs", best=2)
    curves = fig.axes[0]
    best = [line for line in curves.get_lines() if line.get_gid() == "best"]
    others = [line for line in curves.get_lines() if line.get_gid() == "trial"]
    assert len(best) == 2 and len(others) == 4
    ranked = sorted(record.trials, key=lambda t: t.best.value)
    assert [line.get_label().split(":")[0] for line in best] == [f"trial {t.trial}" for t in ranked[:2]]
    assert run("plot", "s", "--out", "sweep.txt", cwd=folder).returncode == 2
