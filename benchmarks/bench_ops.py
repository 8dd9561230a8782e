"""Per-op overhead: a chain of small ops, forward and backward, in microseconds per op.

    python benchmarks/bench_ops.py [--ops 1000] [--repeat 30]

The chain cycles through mul, add, tanh and sigmoid on a 16-element float32 vector,
so the time is the framework's overhead, not arithmetic (the chain is benchmarks/chain.py,
also W6 of benchmarks/run.py). When torch is installed the same chain runs in torch in the
same process (one thread), for a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import chain  # benchmarks/chain.py: the same chain W6 of benchmarks/run.py times


def measure(step, n_ops: int, repeat: int) -> float:
    """Median microseconds per op over ``repeat`` runs of ``step``, after two warm-up runs."""
    step()
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / n_ops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"chain of {args.ops} ops on float32[{chain.SIZE}], forward + backward, median of {args.repeat}")
    rows = [("nncli eager", measure(chain.nncli_step(args.ops, compiled=False), args.ops, args.repeat))]
    try:
        import torch
    except ImportError:
        print("torch not installed: no comparison")
    else:
        torch.set_num_threads(1)
        rows.append((f"torch {torch.__version__}", measure(chain.torch_step(args.ops, torch), args.ops, args.repeat)))
    print(f"{'framework':<24}{'us/op':>10}{'vs nncli':>10}")
    base = rows[0][1]
    for name, us in rows:
        print(f"{name:<24}{us:>10.2f}{us / base:>9.2f}x")


if __name__ == "__main__":
    main()
