"""Integrity: changed data, tampered or forged checkpoints, junk files, missing checkpoints.

A run folder is the truth about a run: what it trained on (a fingerprint of its data), how far
it got (checkpoint metadata under the digest), and weights that fit its model. Each case here
is refused with one clear message (exit 2) and leaves the run folder as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reliability_tools import TINY, assert_bad_input, cli, cli_process, snapshot, write

import nncli.data.builtin as builtin
from nncli.train.runs import load_checkpoint, save_checkpoint

IRIS_CSV = Path(__file__).resolve().parents[2] / "nncli" / "data" / "files" / "iris.csv"
FILE_TINY = TINY.replace("source: iris", "source: data.csv, target: label")


@pytest.fixture
def file_run(tmp_path):
    """A two-epoch run 'r' on a CSV copy of iris in ``tmp_path``."""
    shutil.copy(IRIS_CSV, tmp_path / "data.csv")
    cfg = write(tmp_path, FILE_TINY)
    assert cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "r", "--quiet").exit_code == 0
    return cfg, tmp_path / "runs"


# -- data changed since the run was trained ----------------------------------------------------
def _relabel(csv_path: Path) -> None:
    lines = csv_path.read_text().splitlines()
    head, rows = lines[0], lines[1:]
    rows = [",".join(r.split(",")[:-1] + [str((int(r.split(",")[-1]) + 1) % 3)]) for r in rows]
    csv_path.write_text("\n".join([head, *rows]) + "\n")


def test_a_changed_data_file_is_refused_on_resume_and_eval(file_run, tmp_path):
    cfg, runs = file_run
    info = json.loads((runs / "r/run.json").read_text())
    assert info["data"]["fingerprint"]  # recorded when the run was made
    _relabel(tmp_path / "data.csv")
    before = snapshot(runs / "r")
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4"),
                     r"data\.csv.* changed")
    assert snapshot(runs / "r") == before
    assert_bad_input(cli("eval", "r", "--runs-dir", runs), r"data\.csv.* changed.*--allow-changed-data")
    allowed = cli("eval", "r", "--runs-dir", runs, "--allow-changed-data", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert "warning:" in allowed.stderr and "data.csv" in allowed.stderr
    assert json.loads(allowed.stdout)["warnings"]


def test_a_changed_built_in_set_is_refused_on_resume_and_eval(tiny, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    assert cli("train", tiny, "--runs-dir", runs, "--run-id", "r", "--quiet").exit_code == 0
    real = builtin._shipped

    def shifted(name):  # the shipped iris file as a newer nncli might ship it: one label differs
        x, y = real(name)
        y = y.copy()
        y[0] = (y[0] + 1) % 3
        return x, y

    monkeypatch.setattr(builtin, "_shipped", shifted)
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4"),
                     r"built-in set 'iris'.* changed")
    assert_bad_input(cli("eval", "r", "--runs-dir", runs), r"built-in set 'iris'.* changed")


# -- checkpoints: metadata under the digest, forged content, junk ------------------------------
def test_one_flipped_metadata_byte_is_refused(file_run):
    cfg, runs = file_run
    last = runs / "r/checkpoints/last.safetensors"
    blob = last.read_bytes()
    assert blob.count(b'"epoch":"2"') == 1
    last.write_bytes(blob.replace(b'"epoch":"2"', b'"epoch":"1"'))
    before = snapshot(runs / "r")
    where = r"last\.safetensors failed its integrity check"
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4"), where)
    assert snapshot(runs / "r") == before  # no metrics row deleted, nothing trained
    assert_bad_input(cli("eval", "r", "--runs-dir", runs, "--checkpoint", "last"), where)


def _slot(t, m):
    t["optimizer/0.m"] = np.zeros(3, np.float32)
    return t, m


def _iterations_shape(t, m):
    t["optimizer/iterations"] = np.array([1, 2, 3], np.int64)
    return t, m


def _iterations_huge(t, m):
    t["optimizer/iterations"] = np.array([1e30])
    return t, m


def _meta(key, value):
    def change(t, m):
        m[key] = value
        return t, m
    return change


def _rng(t, m):
    m["rng"]["state"]["state"] = -1
    return t, m


def _weights(fill):
    def change(t, m):
        t["layers.0.kernel"] = fill(t["layers.0.kernel"])
        return t, m
    return change


FORGERIES = {
    "slot_of_the_wrong_shape": _slot,
    "iterations_of_shape_3": _iterations_shape,
    "iterations_1e30": _iterations_huge,
    "epoch_abc": _meta("epoch", "abc"),
    "epoch_negative": _meta("epoch", -4),
    "epoch_10_to_the_30": _meta("epoch", 10**30),
    "trainer_state_not_a_mapping": _meta("trainer", [1, 2]),
    "rng_state_negative": _rng,
    "nan_weights": _weights(lambda w: np.full_like(w, np.nan)),
    "int32_weights": _weights(lambda w: w.astype(np.int32)),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_checkpoint_with_a_valid_digest_is_refused(file_run, forgery):
    cfg, runs = file_run
    last = runs / "r/checkpoints/last.safetensors"
    tensors, meta = load_checkpoint(last)
    save_checkpoint(last, *FORGERIES[forgery](dict(tensors), json.loads(json.dumps(meta))))
    load_checkpoint(last)  # the digest is valid: only the content is wrong
    before = snapshot(runs / "r")
    out = assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4"),
                           r"last\.safetensors")
    assert snapshot(runs / "r") == before, out
    if forgery.endswith("weights"):
        assert_bad_input(cli("eval", "r", "--runs-dir", runs, "--checkpoint", "last"), r"last\.safetensors")


@pytest.mark.parametrize("header", ["junk", "one_huge_tensor"])
def test_a_3_gb_junk_checkpoint_is_refused_without_reading_it(file_run, header):
    """Under a 1.5 GB address-space cap, so that reading the file whole could only fail."""
    cfg, runs = file_run
    last = runs / "r/checkpoints/last.safetensors"
    if header == "junk":
        start = b"\x93NUMPY junk" * 10
    else:  # a well-formed header for one tensor of 3 GB that is not in the model
        text = json.dumps({"blob": {"dtype": "F32", "shape": [3 * 2**28], "data_offsets": [0, 3 * 2**30]}})
        start = len(text).to_bytes(8, "little") + text.encode()
    with open(last, "wb") as f:
        f.write(start)
        f.truncate(len(start) + 3 * 2**30 if header != "junk" else 3 * 2**30)  # sparse: no disk used
    proc = cli_process("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4", "--quiet",
                       limit_memory=3 * 2**29)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "last.safetensors" in proc.stderr, proc.stderr


# -- missing checkpoints and run ids ----------------------------------------------------------------
def test_a_missing_last_checkpoint_is_refused_not_restarted_from_epoch_0(file_run):
    cfg, runs = file_run
    (runs / "r/checkpoints/last.safetensors").unlink()
    before = snapshot(runs / "r")
    assert_bad_input(cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=4"),
                     r"last\.safetensors is missing.*2 epochs")
    assert snapshot(runs / "r") == before


def test_a_missing_best_checkpoint_is_said_on_resume(file_run):
    cfg, runs = file_run
    (runs / "r/checkpoints/best.safetensors").unlink()
    result = cli("train", cfg, "--runs-dir", runs, "--resume", "r", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    assert "best.safetensors is missing" in result.output
    info = json.loads((runs / "r/run.json").read_text())
    assert any("best.safetensors is missing" in w for w in info["warnings"])


@pytest.mark.parametrize("run_id", ["abc\n", "abc\r", "\nabc", "ab\x00c"])
def test_a_run_id_with_a_control_character_is_refused(tiny, tmp_path, run_id):
    assert_bad_input(cli("train", tiny, "--runs-dir", tmp_path / "runs", "--run-id", run_id), "invalid run id",
                     runs=tmp_path / "runs")
