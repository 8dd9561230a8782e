"""Benchmark ``nncli sweep --workers 2`` against running the same 8 trials one after another.

    python benchmarks/sweep.py                  # 3 rounds, a few minutes on two cores
    python benchmarks/sweep.py --rounds 5 --epochs 10

The 8 trials are the quickstart MLP on the digits (4 learning rates x 2 widths, ``--epochs``
each, no early stopping, so every trial does the same work). Each round times, with
``time.perf_counter`` around the whole command, in turn:

- one after another: ``nncli train configs/quickstart.yaml --set ...`` for each trial (what a
  user does without sweeps), BLAS with its default threads;
- ``nncli sweep --workers 1`` (the sweep's own overhead, one trial at a time with all cores);
- ``nncli sweep --workers 2`` (two trials at once, one BLAS thread each on two cores).

The modes take turns within a round, each round starting with the next one, so neither a load
spike nor a load that falls or rises over the rounds favours one of them; the table gives each mode's median and minimum over the rounds, the ratio of the medians, and the
load average before and after, since other users of the machine change everything here.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "quickstart.yaml"
RATES, UNITS = [0.0005, 0.001, 0.002, 0.004], [64, 128]
TARGET = 0.6  # the bound: --workers 2 at most 0.6x of one after another


def _nncli(*args, cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nncli.cli", *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nncli {' '.join(map(str, args))} exited with {proc.returncode}:\n{proc.stderr}")
    return seconds


def _common(epochs: int) -> list[str]:
    return ["--set", f"train.epochs={epochs}", "--set", "train.early_stopping=null"]


def one_after_another(folder: Path, epochs: int) -> float:
    start = time.perf_counter()
    for lr in RATES:
        for units in UNITS:
            _nncli("train", CONFIG, *_common(epochs), "--set", f"optimizer.learning_rate={lr}", "--set",
                   f"model.layers[0].units={units}", "--runs-dir", folder / "alone", "--quiet", cwd=folder)
    return time.perf_counter() - start


def swept(folder: Path, epochs: int, workers: int, name: str) -> float:
    grid = ["--grid", f"optimizer.learning_rate=[{', '.join(map(str, RATES))}]",
            "--grid", f"model.layers[0].units=[{', '.join(map(str, UNITS))}]"]
    # the epochs and early stopping go through a base config, so that the sweep has only the grid's keys
    base = folder / "bench.yaml"
    base.write_text(CONFIG.read_text().replace("epochs: 30", f"epochs: {epochs}")
                    .replace("  early_stopping: {monitor: val_loss, patience: 5}\n", ""))
    return _nncli("sweep", base, *grid, "--workers", workers, "--sweep-id", name, "--runs-dir", folder / "runs",
                  "--json", cwd=folder)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, {platform.python_implementation()} "
          f"{platform.python_version()}; load average before: {load()}")
    times: dict[str, list[float]] = {"one after another": [], "sweep --workers 1": [], "sweep --workers 2": []}
    for r in range(args.rounds):
        folder = Path(tempfile.mkdtemp(prefix="nncli-bench-sweep-"))
        modes = [("one after another", lambda: one_after_another(folder, args.epochs)),
                 ("sweep --workers 1", lambda: swept(folder, args.epochs, 1, f"w1-{r}")),
                 ("sweep --workers 2", lambda: swept(folder, args.epochs, 2, f"w2-{r}"))]
        try:
            for mode, timed in modes[r % 3:] + modes[: r % 3]:  # each round starts with the next mode
                times[mode].append(timed())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    base = statistics.median(times["one after another"])
    print(f"\n8 trials of {args.epochs} epochs, {args.rounds} rounds; load average after: {load()}")
    print(f"{'mode':<20} {'median s':>9} {'min s':>7} {'vs one after another':>21}")
    for mode, values in times.items():
        med = statistics.median(values)
        print(f"{mode:<20} {med:>9.1f} {min(values):>7.1f} {med / base:>20.2f}x")
    ratio = statistics.median(times["sweep --workers 2"]) / base
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"\n--workers 2 / one after another = {ratio:.2f} (target <= {TARGET}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
