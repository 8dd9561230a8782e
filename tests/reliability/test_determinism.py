"""Determinism: the same config and seed give the same metrics.csv and weights, in separate processes.

Each run is a real `nncli train` process (fresh interpreter, fresh BLAS), on the digits MLP with
Dropout (so the layer RNG, the shuffling RNG and the split all matter).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reliability_tools import cli_process, write

from nncli.train.runs import load_checkpoint

CONFIG = """\
seed: 11
data: {source: digits, validation_split: 0.2, normalize: standard, batch_size: 64}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 10}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.002}
train: {epochs: 3, metrics: [accuracy]}
"""


def _train(folder: Path, run_id: str, compile: bool, threads: int | None = None, *extra, faults: str = "",
           code: int = 0) -> Path:
    env = {"NNCLI_FAULTS": faults}
    if threads is not None:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    where = ("--resume", run_id) if "--resume" in extra else ("--run-id", run_id)
    proc = cli_process("train", folder / "cfg.yaml", "--runs-dir", folder / "runs", *where,
                       "--set", f"train.compile={str(compile).lower()}", "--quiet", env=env)
    assert proc.returncode == code, proc.stderr
    return folder / "runs" / run_id


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]
    assert len(rows) == 3
    return rows


def _weights(run: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("last", "best"):
        tensors, meta = load_checkpoint(run / f"checkpoints/{name}.safetensors")
        out.update({f"{name}/{k}": v for k, v in tensors.items() if k != "run/history"})  # has time_s
        out[f"{name}/rng"] = np.array(str(meta["rng"]) + str(meta["data_rng"]))  # the RNG states too
    return out


def _assert_identical(a: Path, b: Path) -> None:
    assert _metrics(a) == _metrics(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("determinism")
    write(path, CONFIG)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_two_runs_with_the_same_seed_are_identical(folder, compile):
    tag = "compiled" if compile else "eager"
    _assert_identical(_train(folder, f"{tag}-a", compile), _train(folder, f"{tag}-b", compile))


@pytest.mark.slow
def test_compiled_and_eager_steps_agree(folder):
    """A traced train step gives the eager step's results (observed bit-for-bit; promised to 1e-5)."""
    compiled, eager = _train(folder, "agree-compiled", True), _train(folder, "agree-eager", False)
    for ra, rb in zip(_metrics(compiled), _metrics(eager)):
        for key in ra:
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5), key
    wa, wb = _weights(compiled), _weights(eager)
    for key in wa:
        if wa[key].dtype.kind == "f":
            np.testing.assert_allclose(wa[key], wb[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_the_blas_thread_count_is_recorded_and_used_again_on_resume_and_eval(folder):
    """OpenBLAS may give other bits with another thread count (it does here: 1 and 2 threads differ in
    every row), so a run records its count and a resume or an eval uses it again, whatever the
    environment says now: a run started with 2 threads and resumed with 1 ends as if never stopped."""
    whole = _train(folder, "blas-whole", True, threads=2)
    assert json.loads((whole / "run.json").read_text())["blas"]["threads"] == 2
    _train(folder, "blas-cut", True, threads=2, faults="batch:30=SIGTERM", code=143)  # epoch 2, batch 7
    cut = _train(folder, "blas-cut", True, 1, "--resume")
    _assert_identical(whole, cut)
    proc = cli_process("eval", "blas-whole", "--runs-dir", folder / "runs", "--checkpoint", "last", "--json",
                       env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    last = _metrics(whole)[-1]
    assert repr(json.loads(proc.stdout)["metrics"]["loss"]) == last["val_loss"]
