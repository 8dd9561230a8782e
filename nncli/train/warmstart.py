"""``--init-from RUN[:best|last]``: a new run that starts from another run's weights (fine-tuning).

    source = read_init_source("runs", "quickstart-20260101-120000:best", model, optimizer, with_optimizer=False)
    source.apply(model, optimizer)                    # after every check passed
    info["init_from"] = source.record()

Only the checkpoint's tensors are read: nothing of the other run's config or plugins is imported
or run, so a run folder from anyone is safe to start from. Its weights must fit the new model
name by name (``layers.0.kernel``), and every layer that does not fit is named with both shapes;
with ``--init-optimizer`` the optimizer's slots and step count come along too (the new config's
learning rate applies). Nothing is written before all of it has been checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.errors import RunError
from nncli.train.checkpoint import (CALLBACKS, HISTORY, MAX_EPOCHS, OPTIMIZER, TRAINED, Layout, check_finite,
                                    load_checkpoint)
from nncli.train.layout import split_checkpoint
from nncli.train.runs import RunFolder, resolve_run

__all__ = ["InitSource", "read_init_source", "parse_init_from"]

CHOICES = ("best", "last")


def parse_init_from(spec: str) -> tuple[str, str]:
    """``"RUN:best"`` -> ``("RUN", "best")``; a bare run is ``best`` (the weights users keep)."""
    run, sep, which = spec.rpartition(":")
    if sep and which in CHOICES and run:
        return run, which
    if sep and run and "/" not in which:
        raise RunError(f"--init-from {spec}: expected RUN, RUN:best or RUN:last, found checkpoint {which!r}")
    return spec, "best"


@dataclass
class InitSource:
    """A checked checkpoint to start from: its weights and, if asked for, its optimizer state."""

    run: RunFolder
    checkpoint: str
    path: Path
    epoch: int | None
    weights: dict[str, np.ndarray]
    optimizer_state: dict | None

    def apply(self, model, optimizer) -> None:
        model.load_named_weights(self.weights, source=str(self.path))
        if self.optimizer_state is not None:
            optimizer.set_state(self.optimizer_state)

    def record(self) -> dict:
        """What run.json keeps of where the run came from."""
        return {"run_id": self.run.run_id, "path": str(self.run.path.resolve()), "checkpoint": self.checkpoint,
                "epoch": self.epoch, "optimizer": self.optimizer_state is not None}


def read_init_source(runs_dir, spec: str, model, optimizer, with_optimizer: bool) -> InitSource:
    """Read and check ``spec``'s checkpoint against ``model`` (and ``optimizer``); a RunError if it does not fit."""
    run_id, which = parse_init_from(spec)
    run = RunFolder(resolve_run(runs_dir, run_id))
    path = run.checkpoints / f"{which}.safetensors"
    if not path.is_file():
        other = next((c for c in CHOICES if c != which and (run.checkpoints / f"{c}.safetensors").is_file()), None)
        hint = f"; try --init-from {run_id}:{other}" if other else "; the run has no checkpoint (no epoch finished)"
        raise RunError(f"--init-from: run '{run.run_id}' has no {which} checkpoint ({path} is missing){hint}")
    header = _tensor_shapes(path)
    problems = _layer_problems(header, model, run.run_id)
    if problems:
        raise RunError(f"--init-from {spec}: the weights of run '{run.run_id}' do not fit this model, layer by "
                       "layer:\n  " + "\n  ".join(problems) + "\nnothing was written; change the model to match, "
                       "or start without --init-from")
    tensors, meta = load_checkpoint(path, _bounded_layout(header, model, path))
    tensors = {n: t for n, t in tensors.items() if n != HISTORY and not n.startswith((CALLBACKS, TRAINED))}
    check_finite(tensors, path)
    weights, opt_state = split_checkpoint(tensors)
    state = None
    if with_optimizer:
        state = _optimizer_state(opt_state, optimizer, model, run.run_id)
    epoch = meta.get("epoch")
    return InitSource(run, which, path, epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
                      weights, state)


def _bounded_layout(header: dict, model, path: Path) -> Layout:
    """The header's tensors, each of a size a checkpoint of ``model`` can have, so that reading
    the data never reads more than such a checkpoint holds."""
    weights = {p: (tuple(v.shape), np.dtype(v.dtype)) for p, v in model.named_variables()}
    shapes = {s for s, _ in weights.values()}
    allowed, history_columns = {}, None
    for name, (shape, dtype) in header.items():
        fits = (name in weights or name.startswith((CALLBACKS, TRAINED))
                or (name == HISTORY and len(shape) == 2 and shape[0] <= MAX_EPOCHS and shape[1] <= 1000)
                or (name.startswith(OPTIMIZER) and (shape in shapes or int(np.prod(shape)) <= 1)))
        if not fits:
            raise RunError(f"checkpoint {path}: tensor {name} ({dtype} {list(shape)}) does not belong to a checkpoint "
                           "of this model; it was not loaded")
        if name == HISTORY:  # the other run's columns, whatever they are: checked as a history, not a weight
            history_columns = shape[1]
        elif not name.startswith((CALLBACKS, TRAINED)):
            allowed[name] = (shape, dtype)
    return Layout(allowed, history_columns=history_columns, snapshots=weights)


def _tensor_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The checkpoint's tensors by name, from its header alone (nothing else is read yet)."""
    from nncli.train.checkpoint import _read_header

    try:
        with open(path, "rb") as f:
            import os

            entries, _, _ = _read_header(f, path, os.fstat(f.fileno()).st_size)
    except OSError as err:
        raise RunError(f"checkpoint {path} cannot be read ({err.strerror or err})") from None
    return {n: (tuple(shape), dtype) for n, (dtype, shape, _, _) in entries.items()}


def _layer_of(path: str) -> str:
    """``layers.2.kernel`` -> ``layers.2``; a subclassed model's ``dense1.kernel`` -> ``dense1``."""
    return path.rsplit(".", 1)[0] if "." in path else path


def _layer_problems(header: dict, model, source: str) -> list[str]:
    have = {n: v for n, v in header.items() if "/" not in n}
    want = {p: (tuple(v.shape), np.dtype(v.dtype)) for p, v in model.named_variables()}
    out = []
    for layer in dict.fromkeys(_layer_of(p) for p in [*want, *have]):
        mine = {p: s for p, s in want.items() if _layer_of(p) == layer}
        theirs = {p: s for p, s in have.items() if _layer_of(p) == layer}
        if not mine:
            out.append(f"{layer}: in run '{source}' ({_shapes(theirs)}), not in this model")
        elif not theirs:
            out.append(f"{layer}: in this model ({_shapes(mine)}), not in run '{source}'")
        elif {p: s[0] for p, s in mine.items()} != {p: s[0] for p, s in theirs.items()}:
            out.append(f"{layer}: {_shapes(theirs)} in run '{source}', {_shapes(mine)} in this model")
    return out


def _shapes(entries: dict) -> str:
    """``bias [10], kernel [64, 10]``: the same order on both sides of a message."""
    return ", ".join(f"{p.rsplit('.', 1)[-1]} {list(shape)}" for p, (shape, _) in sorted(entries.items()))


def _optimizer_state(opt_state: dict, optimizer, model, source: str) -> dict:
    wanted = {f"{i}.{n}" for i in range(len(model.trainable_variables)) for n in getattr(optimizer, "slot_names", ())}
    found = set(opt_state) - {"iterations"}
    if found and found != wanted:
        raise RunError(f"--init-optimizer: the optimizer state of run '{source}' ({', '.join(sorted(found)[:4])}...) "
                       f"does not fit {type(optimizer).__name__} ({', '.join(sorted(wanted)[:4]) or 'no slots'}); "
                       "use the run's optimizer, or start without --init-optimizer")
    if not found and wanted and int(opt_state.get("iterations", 0)):
        raise RunError(f"--init-optimizer: run '{source}' has no optimizer slots for {type(optimizer).__name__}")
    return opt_state
