"""What a trainer's checkpoint holds, and putting it back: weights, slots, history, RNG and trainer state.

    write_checkpoint(run, "last", trainer, columns)
    restore_checkpoint(run.checkpoints / "last.safetensors", trainer, columns)   # checked, then loaded

Nothing from a checkpoint reaches the trainer before every part of it has been checked
(:mod:`nncli.train.checkpoint`): a refused checkpoint changes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nncli import __version__, nn
from nncli.errors import NncliError, RunError
from nncli.train.checkpoint import (HISTORY, OPTIMIZER, Layout, check_finite, check_iterations, check_metadata,
                                    load_checkpoint, save_checkpoint)
from nncli.train.loop import Trainer, TrainState


def checkpoint_tensors(model, optimizer) -> dict[str, np.ndarray]:
    """Weights by path (``layers.0.kernel``) and optimizer slots (``optimizer/0.m``)."""
    tensors = {path: var.numpy() for path, var in model.named_variables()}
    tensors.update({OPTIMIZER + k: np.asarray(v) for k, v in optimizer.get_state().items()})
    return tensors


def split_checkpoint(tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The inverse of :func:`checkpoint_tensors`: ``(weights by path, optimizer state)``."""
    weights = {k: v for k, v in tensors.items() if "/" not in k}
    opt_state = {k[len(OPTIMIZER):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER)}
    if "iterations" in opt_state:
        opt_state["iterations"] = opt_state["iterations"].reshape(())
    return weights, opt_state


def layout(model, optimizer, columns: list[str] | None = None) -> Layout:
    """The tensors a checkpoint of ``model`` trained by ``optimizer`` must hold, with shapes and dtypes."""
    tensors = {path: (tuple(var.shape), np.dtype(var.dtype)) for path, var in model.named_variables()}
    tensors[OPTIMIZER + "iterations"] = ((), np.dtype(np.int64))
    slots = set()
    for i, var in enumerate(model.trainable_variables):
        for name in getattr(optimizer, "slot_names", ()):
            slots.add(f"{OPTIMIZER}{i}.{name}")
            tensors[f"{OPTIMIZER}{i}.{name}"] = (tuple(var.shape), np.dtype(var.dtype))
    return Layout(tensors, optional=slots, history_columns=None if columns is None else len(columns))


def history_array(history: list[dict], columns: list[str]) -> np.ndarray:
    """The finished epochs' rows as float64 ``(epochs, columns)`` (NaN where a value is missing)."""
    rows = [[math.nan if row.get(c) is None else float(row[c]) for c in columns] for row in history]
    return np.array(rows, dtype=np.float64).reshape(len(history), len(columns))


def history_rows(array: np.ndarray, columns: list[str]) -> list[dict]:
    """The inverse of :func:`history_array`: the epoch column as ints, the others as floats."""
    return [{c: (int(v) if c == "epoch" else float(v)) for c, v in zip(columns, row)} for row in array.tolist()]


def write_checkpoint(run, name: str, trainer: Trainer, columns: list[str]) -> None:
    tensors = checkpoint_tensors(trainer.model, trainer.optimizer)
    tensors[HISTORY] = history_array(trainer.history, columns)
    meta = {"epoch": trainer.state.epoch, "step": trainer.state.step, "trainer": trainer.state.to_dict(),
            "rng": nn.random.get_state(), "data_rng": trainer.train_data.get_state(), "nncli": __version__,
            "columns": columns}
    save_checkpoint(run.checkpoints / f"{name}.safetensors", tensors, meta)


def restore_checkpoint(path: Path, trainer: Trainer, columns: list[str]) -> dict:
    """Check a checkpoint whole, then load weights, slots, RNG, trainer state and history into ``trainer``."""
    tensors, meta = load_checkpoint(path, layout(trainer.model, trainer.optimizer, columns))
    history = tensors.pop(HISTORY, None)
    checked = check_metadata(meta, path, len(trainer.train_data), history)
    if checked.columns != columns:
        raise RunError(f"checkpoint {path} has metrics columns {checked.columns}, this run {columns}; "
                       "it was not loaded")
    if history is None:
        raise RunError(f"checkpoint {path} carries no metrics history; it was not loaded")
    check_finite(tensors, path)
    weights, opt_state = split_checkpoint(tensors)
    if check_iterations(opt_state["iterations"], path) != checked.step:
        raise RunError(f"checkpoint {path}: the optimizer took {int(opt_state['iterations'])} steps, the trainer "
                       f"{checked.step}; it was not loaded")
    unknown = sorted(set(checked.trainer.metric_states) - set(trainer.metrics))
    if unknown:
        raise RunError(f"checkpoint {path} has states of metrics this run does not log ({', '.join(unknown)}); "
                       "it was not loaded")
    try:
        for name, state in checked.trainer.metric_states.items():  # tried now, applied by the trainer
            trainer.metrics[name].set_state(state)
            trainer.metrics[name].reset_state()
        trainer.model.load_named_weights(weights, source=str(path))
        trainer.optimizer.set_state(opt_state)
        trainer.state = TrainState.from_dict(checked.trainer.model_dump())
        nn.random.set_state(checked.rng.model_dump())
        trainer.train_data.set_state(checked.data_rng.model_dump())
    except (KeyError, TypeError, ValueError, NncliError) as err:
        raise RunError(f"checkpoint {path} does not fit this run ({err}); it was not loaded") from None
    trainer.history = history_rows(history, columns)
    return meta
