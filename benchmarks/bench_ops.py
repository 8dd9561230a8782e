"""Per-op overhead: a chain of small ops, forward and backward, in microseconds per op.

    python benchmarks/bench_ops.py [--ops 1000] [--repeat 30]

The chain cycles through mul, add, tanh and sigmoid on a 16-element float32 vector,
so the time is the framework's overhead, not arithmetic. When torch is installed the
same chain runs in torch in the same process (one thread for both), for a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import nncli.autodiff as ad

SIZE = 16


def nncli_chain(n_ops: int) -> float:
    """Seconds for one forward+backward pass of the chain on the tape."""
    x = ad.Variable(np.linspace(-1, 1, SIZE, dtype=np.float32))
    c = ad.Tensor(np.full(SIZE, 0.999, dtype=np.float32))
    start = time.perf_counter()
    with ad.GradientTape() as tape:
        y = x
        for i in range(n_ops - 1):
            k = i % 4
            if k == 0:
                y = y * c
            elif k == 1:
                y = y + c
            elif k == 2:
                y = ad.tanh(y)
            else:
                y = ad.sigmoid(y)
        total = ad.sum(y)
    tape.gradient(total, x)
    return time.perf_counter() - start


def torch_chain(n_ops: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x = torch.linspace(-1, 1, SIZE, dtype=torch.float32, requires_grad=True)
    c = torch.full((SIZE,), 0.999, dtype=torch.float32)

    def run() -> float:
        start = time.perf_counter()
        y = x
        for i in range(n_ops - 1):
            k = i % 4
            if k == 0:
                y = y * c
            elif k == 1:
                y = y + c
            elif k == 2:
                y = torch.tanh(y)
            else:
                y = torch.sigmoid(y)
        total = y.sum()
        total.backward()
        x.grad = None
        return time.perf_counter() - start

    return run, torch.__version__


def measure(run, n_ops: int, repeat: int) -> float:
    """Median microseconds per op over ``repeat`` runs, after two warm-up runs."""
    run(n_ops)
    run(n_ops)
    return statistics.median(run(n_ops) for _ in range(repeat)) / n_ops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"chain of {args.ops} ops on float32[{SIZE}], forward + backward, median of {args.repeat}")
    rows = [("nncli eager", measure(nncli_chain, args.ops, args.repeat))]
    torch_run = torch_chain(args.ops)
    if torch_run is None:
        print("torch not installed: no comparison")
    else:
        run, version = torch_run
        rows.append((f"torch {version}", measure(lambda n: run(), args.ops, args.repeat)))
    print(f"{'framework':<24}{'us/op':>10}{'vs nncli':>10}")
    base = rows[0][1]
    for name, us in rows:
        print(f"{name:<24}{us:>10.2f}{us / base:>9.2f}x")


if __name__ == "__main__":
    main()
