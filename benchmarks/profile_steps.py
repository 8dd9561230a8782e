"""Where a step's time goes: cProfile and call counts of W1, W2, W6 and the end-to-end first epoch.

    python benchmarks/profile_steps.py                  # all four
    python benchmarks/profile_steps.py -w W1 --top 15

For each workload (compiled, the default of ``nncli train``): how many replay instructions and
buffers its program has, then the functions with the most own time over ``--steps`` steps, with
their calls per step (load-independent) and their share of the profiled time (a profiler adds
~1 us per Python call, so shares of small calls are upper bounds). ``e2e`` profiles the first
epoch of ``benchmarks/train_e2e.py``'s run (``session.train`` in this process, one epoch) and
counts the traces it makes. Times wander with the machine's load; calls per step do not.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path

import chain
import workloads


def report(prof: cProfile.Profile, steps: int, top: int) -> None:
    stats = pstats.Stats(prof)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    print(f"  {'own ms/step':>11} {'share':>6} {'calls/step':>10}  function")
    for (path, line, name), (_, ncalls, tottime, _, _) in rows:
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else "~"
        print(f"  {tottime / steps * 1e3:>11.4f} {tottime / total:>6.1%} {ncalls / steps:>10.2f}  {name} ({where})")
    calls = sum(v[1] for v in stats.stats.values())
    print(f"  total {total / steps * 1e3:.3f} ms/step under the profiler, {calls / steps:.0f} Python-visible calls per step")


def program_of(step_fn):
    """The compiled Program behind a benchmark step (for its instruction and buffer counts)."""
    for cell in step_fn.__closure__ or ():
        fn = cell.cell_contents
        programs = getattr(fn, "_programs", None)
        if programs:
            return next(iter(programs.values()))[0]
    return None


def profile_workload(name: str, steps: int, top: int) -> None:
    if name == "W6":
        step = chain.nncli_step(1000, compiled=False)
        title = "W6 eager chain of 1000 ops"
    else:
        step = workloads.nncli_step(workloads.WORKLOADS[name], compiled=True)
        title = f"{name} compiled {workloads.WORKLOADS[name].title}"
    for _ in range(3):
        step()
    print(f"\n{title}")
    program = program_of(step)
    if program is not None:
        print(f"  program: {program.n_instructions} instructions, {program.n_buffers} buffers")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    report(prof, steps, top)


def profile_e2e(top: int) -> None:
    import train_e2e
    import nncli.train.session as session

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "nncli-bench" / "e2e"
    train_e2e.make_data(folder)
    cfg = folder / "profile.yaml"
    cfg.write_text(train_e2e.CONFIG.format(batch=train_e2e.BATCH, features=train_e2e.FEATURES,
                                           classes=train_e2e.CLASSES, lr=train_e2e.LR, epochs=1))
    with tempfile.TemporaryDirectory() as runs:
        prof = cProfile.Profile()
        prof.enable()
        result = session.train(cfg, runs_dir=runs, run_id="profile", argv=["nncli", "train", str(cfg)])
        prof.disable()
    trainer = result.trainer
    batches = len(trainer.train_data)
    print(f"\ne2e first epoch ({batches} batches, one run of `nncli train` in this process, loading included): "
          f"{trainer.history[0]['time_s']:.2f} s of epoch; traces made: {trainer._step.trace_count}")
    report(prof, batches, top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-w", "--workloads", default="W1,W2,W6,e2e")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    for name in [n.strip() for n in args.workloads.split(",") if n.strip()]:
        if name.lower() == "e2e":
            profile_e2e(args.top)
        else:
            profile_workload(name.upper(), args.steps, args.top)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
