"""Benchmark nncli's train steps against hand-written numpy, PyTorch and JAX: one table.

    python benchmarks/run.py                         # everything, a few minutes
    python benchmarks/run.py -w W1,W2 --rounds 5     # some workloads
    python benchmarks/run.py --no-torch --no-jax --no-memory --no-startup

Each workload (workloads.py) is timed for nncli eager, nncli compiled (the same step
under ``ad.function``), hand-written numpy (the MLPs), PyTorch eager and ``jax.jit`` of
the whole step when they are installed (each optional: a missing one leaves its column empty).
Timing: ``time.perf_counter`` around blocks of steps sized to ~0.2 s after a warm-up;
the frameworks take turns block by block (so a load spike on a shared machine hits
all of them), and each gets the median of ``--rounds`` blocks. Everyone uses the same
number of threads: numpy's BLAS pool size (threadpoolctl when installed, else the
thread environment variables, else ``os.cpu_count()``), given to ``torch.set_num_threads``;
XLA's CPU pool has one thread per core (on a 2-core machine the default 2), and with one
thread its multi-threading is switched off (``XLA_FLAGS``); ``--threads N`` restarts the script
with OPENBLAS/OMP/MKL_NUM_THREADS=N. Ratios are throughputs (samples/s) from the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import chain
import memory
import workloads

# (workload, what, threshold): the targets, checked at the end of a run
TARGETS = [
    ("W1", "compiled/torch", 5.0), ("W1", "compiled/numpy", 1 / 1.5),
    ("W2", "compiled/torch", 1.1), ("W2", "compiled/numpy", 1 / 1.15),
    ("W3", "compiled/torch", 0.9), ("W4", "compiled/torch", 0.7), ("W5", "compiled/torch", 0.7),
    ("W1", "compiled/jax", 1.0), ("W2", "compiled/jax", 1.0), ("W3", "compiled/jax", 1.0),
    ("W4", "compiled/jax", 1.0), ("W5", "compiled/jax", 1.0),
]
W6_EAGER_VS_TORCH = 0.6  # eager's cost per op at most this fraction of torch eager's


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_threads() -> int:
    """The size of numpy's BLAS thread pool: threadpoolctl's answer when it is installed, else
    the environment's OPENBLAS/OMP/MKL_NUM_THREADS, else ``os.cpu_count()`` (OpenBLAS's default)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        for var in THREAD_VARS:
            if os.environ.get(var, "").isdigit():
                return int(os.environ[var])
        return os.cpu_count() or 1
    pools = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(pools) if pools else os.cpu_count() or 1


def restart_with_threads(n: int) -> None:
    """numpy sizes its BLAS pool at import: run this script again with the thread variables set."""
    if os.environ.get("NNCLI_BENCH_THREADS") == str(n):
        return
    env = dict(os.environ, NNCLI_BENCH_THREADS=str(n), **{var: str(n) for var in THREAD_VARS})
    if n == 1:  # XLA's CPU pool takes no thread count; one thread means its multi-threading off
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def load_torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def load_jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_platforms", "cpu")
    return jax


def measure(steps: dict, rounds: int, budget: float = 0.2) -> dict:
    """Median seconds per step of each ``step()``, frameworks interleaved block by block."""
    blocks = {}
    for name, step in steps.items():
        for _ in range(3):  # the first call builds, traces or compiles: warm-up, not timed
            step()
        start = time.perf_counter()
        for _ in range(3):
            step()
        per = max((time.perf_counter() - start) / 3, 1e-7)  # block sizes from steady steps only
        blocks[name] = max(1, int(budget / per))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            n = blocks[name]
            start = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fmt_rate(seconds: float | None, batch: int) -> str:
    if seconds is None:
        return "-"
    return f"{batch / seconds:,.0f}/s {seconds * 1e3:.3g}ms"


def ratio(a: float | None, b: float | None) -> float | None:
    """Throughput of ``a`` over ``b`` (both seconds per step)."""
    return None if a is None or b is None else b / a


RATIOS = ("compiled/torch", "compiled/jax", "compiled/numpy")


def run_workloads(names, torch, jax, rounds) -> dict:
    cols = ("eager", "compiled", "numpy", "torch", "jax")
    print(f"\n{'workload':<58}" + "".join(f"{c:>21}" for c in cols) + "".join(f"{r:>16}" for r in RATIOS))
    results = {}
    for name in names:
        w = workloads.WORKLOADS[name]
        steps = {"eager": workloads.nncli_step(w, False), "compiled": workloads.nncli_step(w, True)}
        hand = workloads.numpy_step(w)
        if hand is not None:
            steps["numpy"] = hand
        if torch is not None:
            steps["torch"] = workloads.torch_step(w, torch)
        if jax is not None:
            steps["jax"] = workloads.jax_step(w, jax)
        t = measure(steps, rounds)
        r = {what: ratio(t["compiled"], t.get(what.split("/")[1])) for what in RATIOS}
        results[name] = {**t, **r}
        cells = "".join(f"{fmt_rate(t.get(c), w.batch):>21}" for c in cols)
        rs = "".join(f"{'-' if v is None else f'{v:.2f}x':>16}" for v in r.values())
        print(f"{name + ' ' + w.title:<58}{cells}{rs}", flush=True)
    return results


def run_chain(n_ops, torch, rounds) -> dict:
    steps = {"eager": chain.nncli_step(n_ops, False), "compiled": chain.nncli_step(n_ops, True)}
    if torch is not None:
        steps["torch"] = chain.torch_step(n_ops, torch)
    t = measure(steps, rounds)
    us = {k: v / n_ops * 1e6 for k, v in t.items()}
    print(f"\nW6 chain of {n_ops} small ops (float32[{chain.SIZE}]), forward + backward, us per op: "
          + ", ".join(f"{k} {v:.2f}" for k, v in us.items()))
    return us


def run_memory(steps: int) -> dict:
    out = {m: memory.measure("W2", m, steps) for m in memory.MODES}
    print(f"\nW2 peak memory over {steps} steps (tracemalloc, fresh process each):")
    base = out["numpy"]["peak"]
    for m, r in out.items():
        cur = r["current"]
        drift = cur[-1] - cur[0]
        print(f"  {m:<9} peak {r['peak'] / 2**20:7.2f} MiB ({r['peak'] / base:.2f}x numpy), "
              f"held from step {steps // 10} to {steps}: {cur[0] / 2**20:.2f} -> {cur[-1] / 2**20:.2f} MiB "
              f"(drift {drift / 1024:+.0f} KiB)")
    return out


def run_startup(repeat: int) -> float:
    exe = shutil.which("nncli") or str(Path(sys.executable).with_name("nncli"))
    cmd = [exe, "--help"] if Path(exe).exists() else [
        sys.executable, "-c", "import sys; sys.argv = ['nncli', '--help']; from nncli.cli import main; main()"]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"\nstart-up: `nncli --help` median {median:.3f} s over {repeat} runs")
    return median


def check_targets(results, us, mem, startup) -> None:
    print("\ntargets:")
    for name, what, need in TARGETS:
        value = results.get(name, {}).get(what)
        if value is not None:
            print(f"  {name} {what} = {value:.2f}x (need >= {need:.2f}x): {'met' if value >= need else 'MISSED'}")
    for kind, need in (("eager", 4.0), ("compiled", 1.5)):
        if kind in us:
            print(f"  W6 {kind} {us[kind]:.2f} us/op (need <= {need}): {'met' if us[kind] <= need else 'MISSED'}")
    if "eager" in us and "torch" in us:
        r = us["eager"] / us["torch"]
        print(f"  W6 eager/torch cost per op = {r:.2f} (need <= {W6_EAGER_VS_TORCH}): "
              f"{'met' if r <= W6_EAGER_VS_TORCH else 'MISSED'}")
    if mem:
        r = mem["compiled"]["peak"] / mem["numpy"]["peak"]
        cur = mem["compiled"]["current"]
        flat = cur[-1] - cur[0] <= 0.01 * mem["compiled"]["peak"]
        print(f"  W2 compiled peak memory {r:.2f}x numpy (need <= 1.3x): {'met' if r <= 1.3 else 'MISSED'}; "
              f"flat: {'yes' if flat else 'NO'}")
    if startup is not None:
        print(f"  nncli --help {startup:.3f} s (need < 0.5 s): {'met' if startup < 0.5 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workloads", default="W1,W2,W3,W4,W5,W6",
                        help="comma-separated workloads (W1..W6)")
    parser.add_argument("--rounds", type=int, default=7, help="timed blocks per framework (median taken)")
    parser.add_argument("--ops", type=int, default=1000, help="W6 chain length")
    parser.add_argument("--memory-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for BLAS and torch (default: numpy's BLAS pool size)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-startup", action="store_true")
    args = parser.parse_args()

    if args.threads is not None:
        restart_with_threads(args.threads)
    threads = blas_threads()
    torch = None if args.no_torch else load_torch(threads)
    jax = None if args.no_jax else load_jax()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    torch_version = torch.__version__ if torch else ("not used" if args.no_torch else "not installed")
    jax_version = jax.__version__ if jax else ("not used" if args.no_jax else "not installed")
    print(f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch_version}, jax {jax_version}; {threads} thread{'' if threads == 1 else 's'} for BLAS, "
          f"torch and XLA")
    if hasattr(os, "getloadavg"):
        print("load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min) at start")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.2f} before starting: other processes are "
              "running, and multi-threaded BLAS and torch slow down a lot when a core is busy")
    names = [n.strip().upper() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in workloads.WORKLOADS and n != "W6"]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from W1..W6")
    results = run_workloads([n for n in names if n != "W6"], torch, jax, args.rounds)
    us = run_chain(args.ops, torch, args.rounds) if "W6" in names else {}
    mem = None if args.no_memory else run_memory(args.memory_steps)
    startup = None if args.no_startup else run_startup(5)
    check_targets(results, us, mem, startup)
    if hasattr(os, "getloadavg"):
        print("load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
