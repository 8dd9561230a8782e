"""Train on a 4 GB .npy file that is memory-mapped: the peak resident memory and the time it takes.

    python benchmarks/mmap_train.py                        # 1,000,000 x 1024 float32 (4.1 GB), 1 epoch
    python benchmarks/mmap_train.py --rows 200000 --epochs 2

The file (seeded uniform features, labels from a fixed linear rule so the model has something to
learn) is written once to ``--folder``. The run is ``nncli train`` through its library call in a
fresh process, ``data.memory_map: true``, standard normalization, a validation split; its peak
resident memory is measured above the process's memory just before it (nncli and matplotlib
imported, the peak reset). The issue's target: under a quarter of the file's size (a 4 GB file
trains in under 1 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

CONFIG = """\
seed: 0
data: {{source: x.npy, labels: y.npy, memory_map: true, normalize: standard, batch_size: 512,
        validation_split: 0.1}}
model:
  input_shape: [{features}]
  layers: [{{type: Dense, units: 32, activation: relu}}, {{type: Dense, units: 4}}]
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: {{type: Adam, learning_rate: 0.001}}
train: {{epochs: {epochs}, metrics: [accuracy]}}
"""

CHILD = """
import json, sys, time
import matplotlib.pyplot  # the run draws loss.png: a library it loads, counted with the interpreter
import nncli.train.session as session
from nncli.data.memory import PeakMemory
with PeakMemory() as m:
    result = session.train(sys.argv[1], runs_dir=sys.argv[2], run_id=sys.argv[3])
rows = [dict(r) for r in result.trainer.history]
data = result.trainer.train_data.inputs
print(json.dumps({"seconds": m.seconds, "peak_above": m.above_start, "exact": m.exact, "status": result.status,
                  "epochs": rows, "releases": data.source.releases, "budget": data.source.budget,
                  "train_samples": len(data)}))
"""


def make_files(folder: Path, rows: int, features: int) -> None:
    """``x.npy`` (rows, features) float32 in [0, 1) and ``y.npy``: which quarter of a fixed projection."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w = rng.normal(size=features).astype(np.float32)
    x = np.lib.format.open_memmap(folder / "x.part.npy", mode="w+", dtype=np.float32, shape=(rows, features))
    y = np.empty(rows, dtype=np.int64)
    step = 1 << 16
    for start in range(0, rows, step):
        block = rng.random((min(step, rows - start), features), dtype=np.float32)
        x[start:start + len(block)] = block
        y[start:start + len(block)] = np.digitize(block @ w, np.quantile(block @ w, [0.25, 0.5, 0.75]))
    x.flush()
    del x
    np.save(folder / "y.npy", y)
    (folder / "x.part.npy").replace(folder / "x.npy")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "nncli-bench" / "mmap")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    x_path = args.folder / "x.npy"
    if not x_path.exists() or np.load(x_path, mmap_mode="r").shape != (args.rows, args.features):
        print(f"writing {x_path} ...", flush=True)
        make_files(args.folder, args.rows, args.features)
    cfg = args.folder / "bench.yaml"
    cfg.write_text(CONFIG.format(features=args.features, epochs=args.epochs))
    run_id = f"mmap-{os.getpid()}"
    size = x_path.stat().st_size
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{x_path}: {size / 1e9:.2f} GB ({args.rows:,} x {args.features} float32); {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; load average {load}", flush=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(cfg), str(args.folder / "runs"), run_id],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 2
    r = json.loads(out.stdout.strip().splitlines()[-1])
    train_s = sum(e["time_s"] for e in r["epochs"])
    print(f"status {r['status']} after {len(r['epochs'])} epoch(s); whole run {r['seconds']:.1f} s "
          f"(loading, checks and statistics {r['seconds'] - train_s:.1f} s, epochs {train_s:.1f} s: "
          f"{r['train_samples'] * len(r['epochs']) / train_s:,.0f} samples/s)")
    for e in r["epochs"]:
        print(f"  epoch {e['epoch']}: loss {e['loss']:.4f} accuracy {e['accuracy']:.4f} "
              f"val_loss {e['val_loss']:.4f} val_accuracy {e['val_accuracy']:.4f}")
    ratio = r["peak_above"] / size
    print(f"peak resident memory {r['peak_above'] / 1e6:,.0f} MB above the interpreter's = {ratio:.3f} of the file "
          f"(release budget {r['budget'] / 1e6:.0f} MB, {r['releases']:,} releases; peak reset: {r['exact']})")
    ok = ratio < 0.25
    print(f"{'OK  ' if ok else 'MISS'} peak {ratio:.3f} of the file < 0.25")
    print(f"after: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
