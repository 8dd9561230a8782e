"""Time and peak memory of reading a 60,000 x 785 CSV (168 MB, the shape of the MNIST CSV).

    python benchmarks/csv_load.py                  # nncli's reader against np.loadtxt, 3 rounds
    python benchmarks/csv_load.py --compare        # also pandas's C reader, and nncli without pyarrow

The file (a label column of 0-9 and 784 pixel columns of 0-255, seeded) is written once to
``--file``. Every reader runs in a fresh process, in turns (so a load spike on a shared machine
hits each of them), and reports the seconds of the call and its peak resident memory above the
process's memory just before it (numpy and nncli imported, the peak reset): what the parser
imports for itself counts. The issue's targets, checked at the end: at most 3 s, at least 2.5x
faster than ``np.loadtxt`` in the same run, a peak of at most 2x the final float32 array.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROWS, PIXELS = 60_000, 784
DEFAULT_FILE = Path(os.environ.get("TMPDIR", "/tmp")) / "nncli-bench" / "mnist_shape.csv"

# what each reader runs in its child process; `path` is the file
READERS = {
    "nncli": "from nncli.data import load_csv\nx, y, _, _ = load_csv(path, target='label')\nout = (x, y)",
    "nncli-python": "from nncli.data import load_csv\nx, y, _, _ = load_csv(path, target='label', engine='python')\n"
                    "out = (x, y)",
    "np.loadtxt": "out = np.loadtxt(path, delimiter=',', skiprows=1, dtype=np.float32)",
    "pandas-c": "import pandas as pd\nout = pd.read_csv(path, dtype=np.float32, engine='c').to_numpy()",
}

CHILD = """
import json, sys, time
import numpy as np
import nncli.data
from nncli.data.memory import PeakMemory
path = sys.argv[1]
with PeakMemory() as m:
{body}
arrays = out if isinstance(out, tuple) else (out,)
print(json.dumps({{"seconds": m.seconds, "peak_above": m.above_start, "exact": m.exact,
                  "final": sum(a.nbytes for a in arrays), "shape": [list(a.shape) for a in arrays]}}))
"""


def make_file(path: Path) -> None:
    """The MNIST-shaped CSV: header, then 60,000 rows of a label and 784 values 0-255 (seed 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part")
    with open(tmp, "w") as f:
        f.write("label," + ",".join(f"pixel{i}" for i in range(PIXELS)) + "\n")
        for _ in range(0, ROWS, 5000):
            block = rng.integers(0, 256, (5000, PIXELS + 1))
            block[:, 0] %= 10
            np.savetxt(f, block, fmt="%d", delimiter=",")
    tmp.replace(path)


def run_reader(name: str, path: Path) -> dict:
    body = "\n".join("    " + line for line in READERS[name].splitlines())
    out = subprocess.run([sys.executable, "-c", CHILD.format(body=body), str(path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}; load average {load}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also pandas's C reader and nncli without pyarrow")
    args = ap.parse_args()
    if not args.file.exists():
        print(f"writing {args.file} ...", flush=True)
        make_file(args.file)
    names = ["nncli", "np.loadtxt"] + (["pandas-c", "nncli-python"] if args.compare else [])
    print(f"{args.file}: {args.file.stat().st_size / 1e6:.1f} MB; {machine()}")
    results: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            results[name].append(run_reader(name, args.file))
    print(f"{'reader':<14}{'median s':>10}{'min s':>8}{'peak MB':>10}{'final MB':>10}{'peak/final':>12}")
    summary = {}
    for name, runs in results.items():
        secs = [r["seconds"] for r in runs]
        peak, final = max(r["peak_above"] for r in runs), runs[0]["final"]
        summary[name] = (statistics.median(secs), peak / final)
        print(f"{name:<14}{statistics.median(secs):>10.2f}{min(secs):>8.2f}{peak / 1e6:>10.0f}{final / 1e6:>10.0f}"
              f"{peak / final:>12.2f}")
    secs, ratio = summary["nncli"]
    speedup = summary["np.loadtxt"][0] / secs
    checks = [(f"nncli {secs:.2f} s <= 3 s", secs <= 3.0),
              (f"{speedup:.1f}x faster than np.loadtxt >= 2.5x", speedup >= 2.5),
              (f"peak {ratio:.2f}x the final array <= 2x", ratio <= 2.0)]
    for text, ok in checks:
        print(f"{'OK  ' if ok else 'MISS'} {text}")
    print(f"after: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
