"""Peak memory of a training run, measured with tracemalloc in a fresh process.

    python benchmarks/memory.py W2 compiled 200     # prints one JSON line

tracemalloc sees every numpy data buffer (numpy reports its allocations to it), so
the peak counts weights, optimizer slots, activations, gradients and the engine's
own buffers; imports happen before tracing starts and are not counted. The
``current`` samples (after each tenth of the steps) show whether memory stays flat.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import workloads

MODES = ("numpy", "eager", "compiled")


def probe(name: str, mode: str, steps: int) -> dict:
    importlib.import_module("nncli.nn")  # imported before tracing starts: not counted

    w = workloads.WORKLOADS[name]
    tracemalloc.start()
    step = workloads.numpy_step(w) if mode == "numpy" else workloads.nncli_step(w, mode == "compiled")
    samples = []
    every = max(steps // 10, 1)
    for i in range(1, steps + 1):
        step()
        if i % every == 0:
            samples.append(tracemalloc.get_traced_memory()[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"workload": name, "mode": mode, "steps": steps, "peak": peak, "current": samples}


def measure(name: str, mode: str, steps: int) -> dict:
    """Run :func:`probe` in a subprocess (a clean heap) and return its result."""
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, str(here / "memory.py"), name, mode, str(steps)],
                         capture_output=True, text=True, check=True, cwd=here)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
