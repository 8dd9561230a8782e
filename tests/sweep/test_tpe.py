"""--sampler tpe: Optuna proposes each trial from the finished ones; nncli runs them and keeps the record."""

from __future__ import annotations

import pytest
from sweep_tools import run, sweep_record, tiny

pytestmark = pytest.mark.slow
optuna = pytest.importorskip("optuna")

SPACE = ["--space", "optimizer.learning_rate=loguniform(1e-3, 0.3)",
         "--space", "model.layers[0].units=choice(4, 8, 16)"]


def test_a_tpe_sweep_runs_its_trials_within_the_space(tmp_path):
    tiny(tmp_path, epochs=3)
    proc = run("sweep", "tiny.yaml", "--sampler", "tpe", "--trials", 4, *SPACE, "--workers", 2, "--seed", 1,
               "--sweep-id", "t", cwd=tmp_path, check_code=0)
    record = sweep_record(tmp_path / "runs", "t")
    assert record["method"] == "tpe" and record["count"] == 4 and len(record["trials"]) == 4
    assert [t["run_id"] for t in record["trials"]] == [f"t-t0{i}" for i in range(4)]
    for t in record["trials"]:
        assert t["status"] == "completed" and t["best"]["value"] is not None
        assert 1e-3 <= t["overrides"]["optimizer.learning_rate"] <= 0.3
        assert t["overrides"]["model.layers[0].units"] in (4, 8, 16)
    assert len({t["overrides"]["optimizer.learning_rate"] for t in record["trials"]}) == 4
    assert "best: trial" in proc.stdout


def test_the_proposer_is_seeded_and_a_resumed_study_is_rebuilt_from_the_record():
    from nncli.sweep.record import Best, TrialRecord
    from nncli.sweep.space import parse_space
    from nncli.sweep.tpe import TPEProposer

    dims = [parse_space(SPACE[1]), parse_space(SPACE[3])]
    first, second = TPEProposer(dims, "min", seed=7), TPEProposer(dims, "min", seed=7)
    told = []
    for number in range(12):  # beyond Optuna's 10 random start-up trials, so TPE itself proposes
        values = first.ask(number)
        assert values == second.ask(number)
        trial = TrialRecord(trial=number, run_id=f"r{number}", overrides=values, set=[], config_sha256="",
                            status="completed", best=Best(monitor="val_loss", value=values["optimizer.learning_rate"]))
        first.tell(trial)
        second.tell(trial)
        told.append(trial)
    rebuilt = TPEProposer(dims, "min", seed=7)
    for trial in told:  # as resume_sweep replays sweep.json
        rebuilt.tell(trial)
    assert len(rebuilt.study.trials) == 12 and rebuilt.study.best_value == first.study.best_value
    assert first.ask(12)["optimizer.learning_rate"] < 0.05  # TPE leans towards the small values that scored best
    assert rebuilt.probes()[0] == {"optimizer.learning_rate": 1e-3, "model.layers[0].units": 4}
