"""End to end: `nncli train` of the W2 MLP on 60,000 samples against a PyTorch loop and Keras-JAX `fit`.

    python benchmarks/train_e2e.py                      # 3 rounds of 4 epochs each
    python benchmarks/train_e2e.py --rounds 5 --epochs 3
    python benchmarks/train_e2e.py --only nncli         # one framework

The data (made here, once: 60,000 x 784 float32 features, labels from a fixed linear rule so the
model learns something) is written to ``--folder`` as ``x.npy``/``y.npy``, which the nncli config
reads. Every framework trains the same model, 784-256(relu)-256(relu)-10, Adam (learning rate
0.001), sparse cross-entropy from logits, batch 128, the last 10 % held out for validation
(evaluated at the end of each epoch), accuracy as a metric, the training samples reshuffled every
epoch:

- **nncli**: the real CLI, ``nncli train CONFIG --runs-dir ... -q`` (compiled, the default); the
  epoch times are the run's ``metrics.csv`` ``time_s``;
- **torch**: a plain loop (``torch.randperm``, index a batch, forward, ``CrossEntropyLoss``,
  backward, ``torch.optim.Adam``, accuracy from the logits; validation under ``no_grad``);
- **keras**: Keras 3 ``Sequential.fit`` on the JAX backend, ``validation_split=0.1``; epoch times
  from a callback's ``on_epoch_begin``/``on_epoch_end``.

Each run is a fresh process, so the first epoch pays what a user's first epoch pays (imports
excepted: tracing, XLA's compile, allocations); the frameworks take turns run by run, ``--rounds``
times, so load from other processes hits them alike. Reported per framework: the median first
epoch and the median steady epoch (epochs 2.. of every round). torch and Keras are optional:
a framework that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS, FEATURES, CLASSES, BATCH, LR = 60_000, 784, 10, 128, 0.001
FRAMEWORKS = ("nncli", "torch", "keras")

CONFIG = """\
seed: 0
data: {{source: x.npy, labels: y.npy, validation_split: 0.1, normalize: none, batch_size: {batch}}}
model:
  input_shape: [{features}]
  layers:
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: {classes}}}
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: {{type: Adam, learning_rate: {lr}}}
train: {{epochs: {epochs}, metrics: [accuracy]}}
"""


def make_data(folder: Path) -> None:
    """``x.npy`` standard-normal float32 features and ``y.npy`` int64 labels (argmax of a fixed projection)."""
    x_path = folder / "x.npy"
    if x_path.exists() and np.load(x_path, mmap_mode="r").shape == (ROWS, FEATURES):
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, FEATURES), dtype=np.float32)
    w = rng.standard_normal((FEATURES, CLASSES), dtype=np.float32)
    np.save(folder / "y.npy", np.argmax(x @ w, axis=1).astype(np.int64))
    np.save(folder / "x.part.npy", x)
    (folder / "x.part.npy").replace(x_path)


def split(folder: Path):
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    n_val = int(round(len(x) * 0.1))
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


# -- the workers: one framework's run in this process, epoch times printed as JSON --------------
def run_nncli(folder: Path, epochs: int, threads: int) -> list[float]:
    cfg = folder / "e2e.yaml"
    cfg.write_text(CONFIG.format(batch=BATCH, features=FEATURES, classes=CLASSES, lr=LR, epochs=epochs))
    with tempfile.TemporaryDirectory() as runs:
        exe = Path(sys.executable).with_name("nncli")
        subprocess.run([str(exe), "train", str(cfg), "--runs-dir", runs, "--run-id", "e2e", "-q"], check=True,
                       capture_output=True)
        with open(Path(runs) / "e2e" / "metrics.csv", newline="") as f:
            return [float(row["time_s"]) for row in csv.DictReader(f)]


def run_torch(folder: Path, epochs: int, threads: int) -> list[float]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xt, yt, xv, yv = (torch.from_numpy(a) for a in split(folder))
    nn = torch.nn
    model = nn.Sequential(nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(xt))
        correct = total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = xt[idx], yt[idx]
            opt.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            val_loss, val_acc = loss_fn(logits, yv).item(), (logits.argmax(1) == yv).float().mean().item()
        times.append(time.perf_counter() - start)
        assert np.isfinite([total, correct, val_loss, val_acc]).all()
    return times


def run_keras(folder: Path, epochs: int, threads: int) -> list[float]:
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    keras.utils.set_random_seed(0)
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(CLASSES)])
    model.compile(optimizer=keras.optimizers.Adam(LR), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    times, starts = [], []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            starts.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - starts[-1])

    model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_split=0.1, shuffle=True, verbose=0,
              callbacks=[Clock()])
    return times


WORKERS = {"nncli": run_nncli, "torch": run_torch, "keras": run_keras}
NEEDS = {"nncli": ("nncli",), "torch": ("torch",), "keras": ("keras", "jax")}


def available(name: str) -> bool:
    """Whether this interpreter can import what ``name``'s worker needs (checked without importing it)."""
    code = f"import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in {NEEDS[name]!r}))"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def versions(names) -> str:
    out = [f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    for name, module in (("torch", "torch"), ("keras", "keras"), ("keras", "jax")):
        if name in names:
            code = f"import {module}; print({module}.__version__)"
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=dict(os.environ, KERAS_BACKEND="jax"))
            out.append(f"{module} {r.stdout.strip()}")
    return ", ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "nncli-bench" / "e2e")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for BLAS, torch and XLA")
    ap.add_argument("--only", default=",".join(FRAMEWORKS), help="comma-separated frameworks")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.folder, args.epochs, args.threads)))
        return 0
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (a first and a steady epoch)")
    make_data(args.folder)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    names = [n for n in wanted if available(n)]
    for n in set(wanted) - set(names):
        print(f"{n}: not installed, skipped")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    if args.threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{ROWS:,} x {FEATURES} float32, 10 % validation, batch {BATCH}, {args.epochs} epochs x {args.rounds} "
          f"rounds; {os.cpu_count()} cores, {args.threads} threads; {versions(names)}; load average {load}",
          flush=True)
    runs = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:
            cmd = [sys.executable, __file__, "--worker", n, "--folder", str(args.folder), "--epochs",
                   str(args.epochs), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 2
            runs[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  round {r + 1} {n:<6}" + " ".join(f"{t:.3f}" for t in runs[n][-1]), flush=True)
    print(f"\n{'framework':<10}{'first epoch':>13}{'steady epoch':>14}{'first - steady':>16}")
    first = {n: statistics.median(t[0] for t in ts) for n, ts in runs.items()}
    steady = {n: statistics.median(x for t in ts for x in t[1:]) for n, ts in runs.items()}
    for n in names:
        print(f"{n:<10}{first[n]:>12.3f}s{steady[n]:>13.3f}s{first[n] - steady[n]:>15.3f}s")
    if "nncli" in names:
        print("\ntargets:")
        for other, need in (("keras", 1.1), ("torch", 1.5)):
            if other in names:
                ratio = steady[other] / steady["nncli"]
                print(f"  steady epoch nncli vs {other} = {ratio:.2f}x (need >= {need}x): "
                      f"{'met' if ratio >= need else 'MISSED'}")
        gap = first["nncli"] - steady["nncli"]
        print(f"  nncli first epoch {gap:.3f} s slower than a steady one (need <= 0.25 s): "
              f"{'met' if gap <= 0.25 else 'MISSED'}")
    print(f"after: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
