"""Resources: memory stays flat over a long training (no tapes, graphs or histories piling up), and
no file handle is left open."""

from __future__ import annotations

import gc
import os
import resource
import tracemalloc
from pathlib import Path

import pytest

from reliability_tools import write

from nncli.train.loop import Callback
from nncli.train.session import train

CONFIG = """\
seed: 2
data: {source: digits, validation_split: 0.2, normalize: standard, batch_size: 64}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 10}
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.002}
train: {epochs: 50, metrics: [accuracy], compile: %s}
"""
PAGE = resource.getpagesize()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def open_fds() -> list[str]:
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return sorted(fds)


class Probe(Callback):
    """Records resident memory, traced Python/numpy memory and open files at each epoch's end."""

    def __init__(self):
        self.rss, self.traced, self.fds = {}, {}, {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.rss[epoch] = rss_bytes()
        if tracemalloc.is_tracing():
            self.traced[epoch] = tracemalloc.get_traced_memory()[0]
        self.fds[epoch] = len(open_fds())


# One step of this model makes ~150 kB of activations and masks (batch 64 x 128 hidden units, the
# tape, the gradients): a run that kept each step's tape or graph would grow by ~3 MB an epoch,
# over 100 MB between epochs 10 and 50. The bounds below leave room for allocator noise only.
@pytest.mark.slow
@pytest.mark.parametrize("compile", ["true", "false"])
def test_resident_memory_is_flat_across_50_epochs(tmp_path, compile):
    cfg = write(tmp_path, CONFIG % compile)
    probe = Probe()
    result = train(cfg, runs_dir=tmp_path / "runs", callbacks=[probe])
    assert result.trainer.state.epoch == 50
    growth = probe.rss[50] - probe.rss[10]
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB from epoch 10 to 50"


@pytest.mark.slow
@pytest.mark.parametrize("compile", ["true", "false"])
def test_traced_allocations_are_flat_across_50_epochs(tmp_path, compile):
    """tracemalloc sees every numpy buffer and Python object: what is alive at epoch 50 that was
    not at epoch 10 is the history rows, ~70 kB, not tapes or graphs (keeping each eager step's
    emptied tape alone would add ~500 kB)."""
    cfg = write(tmp_path, CONFIG % compile)
    probe = Probe()
    gc.collect()
    tracemalloc.start()
    try:
        train(cfg, runs_dir=tmp_path / "runs", callbacks=[probe])
    finally:
        tracemalloc.stop()
    growth = probe.traced[50] - probe.traced[10]
    assert growth < 256 * 1024, f"traced memory grew by {growth / 1024:.0f} kB from epoch 10 to 50"


def test_no_file_handle_leaks(tmp_path):
    """Training (with checkpoints, metrics rows and run.json rewritten every epoch), resuming and
    reading the run back leave exactly the files that were open before."""
    from nncli.train.inspect import evaluate_run, runs_table

    cfg = write(tmp_path, (CONFIG % "true").replace("epochs: 50", "epochs: 20"))
    gc.collect()
    before = open_fds()
    probe = Probe()
    train(cfg, runs_dir=tmp_path / "runs", run_id="long", callbacks=[probe], overrides=["train.epochs=12"])
    train(cfg, runs_dir=tmp_path / "runs", resume="long", callbacks=[probe])
    evaluate_run(tmp_path / "runs", "long")
    runs_table(tmp_path / "runs")
    gc.collect()
    assert open_fds() == before
    assert len(set(probe.fds.values())) == 1, probe.fds  # the same count at every epoch's end
    assert not any(Path(p).is_relative_to(tmp_path) for p in open_fds())
