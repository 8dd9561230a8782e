"""Determinism: the same config and seed give the same metrics.csv and weights, in separate processes.

Each run is a real `nncli train` process (fresh interpreter, fresh BLAS), on the digits MLP with
Dropout (so the layer RNG, the shuffling RNG and the split all matter).
"""

from __future__ import annotations

import csv
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


def _train(folder: Path, run_id: str, compile: bool, threads: int | None = None) -> Path:
    env = {} if threads is None else {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    proc = cli_process("train", folder / "cfg.yaml", "--runs-dir", folder / "runs", "--run-id", run_id,
                       "--set", f"train.compile={str(compile).lower()}", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
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
        out.update({f"{name}/{k}": v for k, v in tensors.items()})
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
def test_the_blas_thread_count_does_not_change_the_results(folder):
    """OpenBLAS splits a matmul's output, not its sums, across threads: 1 or 2 threads, same bits.

    If a BLAS build ever makes this fail, pin OPENBLAS_NUM_THREADS (see docs/reliability.md).
    """
    _assert_identical(_train(folder, "threads-1", True, threads=1), _train(folder, "threads-2", True, threads=2))
