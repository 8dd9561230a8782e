"""Bad sweeps are refused before the first trial: one message saying where, exit 2, nothing written."""

from __future__ import annotations

import re

import pytest
from sweep_tools import tiny
from typer.testing import CliRunner

from nncli.cli import app

SECTION = """\
sweep:
  grid:
    optimizer.learning_rate: [0.01, fast]
    model.layers[1].activation: [relu, rellu]
"""


def sweep(folder, *args):
    result = CliRunner().invoke(app, ["sweep", *[str(a) for a in args], "--runs-dir", str(folder / "runs")])
    return result


def refused(result, folder, *patterns: str) -> str:
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in output, output
    assert result.stdout == "" and result.stderr.startswith("error: "), output
    for pattern in patterns:
        assert re.search(pattern, result.stderr), f"{pattern!r} not in:\n{result.stderr}"
    assert not (folder / "runs").exists() or list((folder / "runs").iterdir()) == []
    return result.stderr


def test_every_trial_is_validated_first_and_a_bad_value_is_placed_where_it_was_given(tmp_path):
    cfg = tiny(tmp_path)
    err = refused(sweep(tmp_path, cfg, "--grid", "optimizer.learning_rate=[0.01, fast]", "--grid",
                        "model.layers[0].units=[4, 8]"), tmp_path,
                  r"^error: --grid optimizer.learning_rate=\[0.01, fast\]: optimizer.learning_rate: expected a "
                  r"number .* found 'fast' \(trials 2, 3\)$")
    assert err.count("\n") == 1  # one problem, said once for the two trials it hits


def test_the_sweep_section_is_validated_with_file_line_and_column(tmp_path):
    cfg = tiny(tmp_path, extra=SECTION)
    refused(sweep(tmp_path, cfg), tmp_path,
            r"tiny.yaml:14:40: sweep.grid.model.layers\[1\].activation\[1\]: model.layers\[1\].activation: expected "
            r"an activation name, found 'rellu' \(did you mean 'relu'\?\) \(trials 1, 3\)",
            r"tiny.yaml:13:37: sweep.grid.optimizer.learning_rate\[1\]: .*found 'fast' \(trials 2, 3\)")
    cfg = tiny(tmp_path, extra="sweep:\n  grid: {train.epochs: []}\n  workers: 0\n  spaces: {}\n")
    refused(sweep(tmp_path, cfg), tmp_path, r"tiny.yaml:12:24: sweep.grid.train.epochs: expected at least 1 item",
            r"tiny.yaml:13:12: sweep.workers: expected a value >= 1, found 0",
            r"tiny.yaml:14:3: sweep.spaces: .*unknown key 'spaces' \(did you mean 'space'\?\)")
    cfg = tiny(tmp_path, extra="sweep:\n  random: 3\n  space: {optimizer.learning_rate: 'normal(0, 1)'}\n")
    refused(sweep(tmp_path, cfg), tmp_path, r"tiny.yaml:13:\d+: sweep.space.optimizer.learning_rate: expected "
                                           r"optimizer.learning_rate=loguniform\(a, b\), uniform\(a, b\) or choice")


def test_a_sweep_section_alone_runs_its_trials(tmp_path):
    cfg = tiny(tmp_path, epochs=2, extra="sweep:\n  grid:\n    model.layers[0].units: [4, 8]\n  workers: 2\n")
    result = sweep(tmp_path, cfg, "--sweep-id", "sec")
    assert result.exit_code == 0, result.output
    assert "2 trials (grid), 2 to run, 2 at a time on this machine" in result.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sec", "sec-t00", "sec-t01"]


@pytest.mark.parametrize("args, pattern", [
    (["--space", "x.y=normal(0, 1)", "--random", 3], r"--space x.y=normal\(0, 1\): expected x.y=loguniform"),
    (["--space", "x.y=loguniform(0, 1)", "--random", 3], r"expected 0 < low in loguniform"),
    (["--space", "x.y=uniform(2, 1)", "--random", 3], r"expected low < high in uniform"),
    (["--space", "x.y=choice()", "--random", 3], r"at least one value"),
    (["--random", 3], r"--random 3: expected at least one --space"),
    (["--space", "x.y=choice(1, 2)"], r"expected a number of trials: --random N"),
    (["--random", 0, "--space", "x.y=choice(1, 2)"], r"expected a number of trials from 1 to 10,000, found 0"),
    (["--grid", "train.epochs=[1, 2]", "--random", 2, "--space", "x.y=choice(1, 2)"], r"either --grid .* found both"),
    (["--grid", "sweep.workers=[1, 2]"], r"the sweep section cannot vary within a sweep"),
    (["--grid", "a..b=[1]"], r"expected a dotted config KEY"),
    (["--grid", "train.epochs"], r"expected KEY=VALUES after --grid"),
    (["--grid", "train.epochs=3"], r"expected a non-empty list of values"),
    (["--grid", "train.epochs=[1, 1]"], r"found one twice"),
    (["--grid", "train.epochs=[1, 2]", "--grid", "train.epochs=[3]"], r"expected each key once"),
    (["--grid", "train.epochs=[" + ", ".join(map(str, range(1, 102))) + "]", "--grid",
      "seed=[" + ", ".join(map(str, range(101))) + "]"], r"expected at most 10,000 trials, found a grid of 10,201"),
    (["--grid", "train.epochs=[1]", "--workers", 0], r"--workers: expected a number >= 1, found 0"),
    ([], r"nothing to sweep"),
])
def test_bad_flags_are_refused(tmp_path, args, pattern):
    refused(sweep(tmp_path, tiny(tmp_path), *args), tmp_path, pattern)


def test_a_taken_trial_run_id_and_a_bad_sweep_id_are_refused(tmp_path):
    cfg = tiny(tmp_path, epochs=1)
    (tmp_path / "runs" / "x-t01").mkdir(parents=True)
    result = sweep(tmp_path, cfg, "--grid", "train.epochs=[1, 2]", "--sweep-id", "x")
    assert result.exit_code == 2 and "a trial's run id is taken" in result.stderr, result.output
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x-t01"]
    result = sweep(tmp_path, cfg, "--grid", "train.epochs=[1]", "--sweep-id", "../up")
    assert result.exit_code == 2 and "invalid run id '../up'" in result.stderr, result.output


def test_resume_needs_a_sweep_and_keeps_its_trials(tmp_path):
    cfg = tiny(tmp_path)
    refused(sweep(tmp_path, "--resume", "nope"), tmp_path, r"no sweep \(no sweep.json\)")
    refused(sweep(tmp_path, cfg, "--resume", "nope"), tmp_path, r"expected a CONFIG to sweep, or --resume SWEEP_ID")
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "sweep.json").write_text('{"format": "nncli-sweep-1", "trials": 3}')
    result = sweep(tmp_path, "--resume", "old")
    assert result.exit_code == 2 and "is not a valid sweep record" in result.stderr, result.output
    result = sweep(tmp_path, "--resume", "old", "--grid", "train.epochs=[1]")
    assert result.exit_code == 2 and "a resumed sweep keeps its own trials" in result.stderr, result.output


def test_an_unreachable_cluster_is_bad_input(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused(sweep(tmp_path, tiny(tmp_path), "--grid", "train.epochs=[1]", "--cluster", f"tcp://127.0.0.1:{port}"),
            tmp_path, rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} .*'dask scheduler'")
    refused(sweep(tmp_path, tiny(tmp_path), "--grid", "train.epochs=[1]", "--cluster", "somehost"), tmp_path,
            r"expected --cluster tcp://HOST:PORT")


def test_a_value_no_part_can_be_built_from_is_refused_before_any_trial(tmp_path):
    # the schema allows any number here; only building the optimizer (or the layer) says it cannot work
    cfg = tiny(tmp_path)
    err = refused(sweep(tmp_path, cfg, "--grid", "optimizer.learning_rate=[0.01, -1]", "--grid",
                        "model.layers[0].units=[4, 8]"), tmp_path,
                  r"^error: --grid optimizer.learning_rate=\[0.01, -1\]: optimizer.learning_rate: the optimizer "
                  r"cannot be built: learning_rate must be a number >= 0 .*, not -1 \(trials 2, 3\)$")
    assert err.count("\n") == 1
    cfg = tiny(tmp_path, extra="sweep:\n  grid:\n    optimizer.learning_rate: [0.01, -1]\n")
    refused(sweep(tmp_path, cfg), tmp_path, r"^error: .*tiny.yaml:13:37: sweep.grid.optimizer.learning_rate\[1\]: "
                                            r"optimizer.learning_rate: the optimizer cannot be built: .* \(trial 1\)$")
