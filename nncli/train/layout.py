"""What a trainer's checkpoint holds, and putting it back: weights, slots, history, RNG, trainer and
callback state.

    write_checkpoint(run, "last", trainer, columns)
    restore_checkpoint(run.checkpoints / "last.safetensors", trainer, columns)   # checked, then loaded

Nothing from a checkpoint reaches the trainer before every part of it has been checked
(:mod:`nncli.train.checkpoint`): a refused checkpoint changes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nncli import __version__, nn
from nncli.errors import NncliError, RunError
from nncli.nn.schedules import LearningRateSchedule
from nncli.train.checkpoint import (CALLBACKS, HISTORY, OPTIMIZER, TRAINED, Layout, check_finite,
                                    check_iterations, check_metadata, load_checkpoint, save_checkpoint)

if TYPE_CHECKING:  # the layout is read without the trainer (nncli eval, export, --init-from)
    from nncli.train.loop import Trainer


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
    weights = {path: (tuple(var.shape), np.dtype(var.dtype)) for path, var in model.named_variables()}
    return Layout(tensors, optional=slots, history_columns=None if columns is None else len(columns),
                  snapshots=weights)


def history_array(history: list[dict], columns: list[str]) -> np.ndarray:
    """The finished epochs' rows as float64 ``(epochs, columns)`` (NaN where a value is missing)."""
    rows = [[math.nan if row.get(c) is None else float(row[c]) for c in columns] for row in history]
    return np.array(rows, dtype=np.float64).reshape(len(history), len(columns))


def history_rows(array: np.ndarray, columns: list[str]) -> list[dict]:
    """The inverse of :func:`history_array`: the epoch column as ints, the others as floats."""
    return [{c: (int(v) if c == "epoch" else float(v)) for c, v in zip(columns, row)} for row in array.tolist()]


def _stateful(trainer: Trainer) -> dict:
    """The callbacks whose state is saved, by their state key."""
    return {cb.state_key: cb for cb in trainer.callbacks if getattr(cb, "state_key", None)}


def _is_snapshot(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, np.ndarray) for v in value.values())


def callback_states(trainer: Trainer) -> tuple[dict, dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of the callbacks' states: plain data, and weight snapshots as tensors."""
    meta, tensors = {}, {}
    for key, cb in _stateful(trainer).items():
        state, snapshots = {}, []
        for name, value in cb.get_state().items():
            if _is_snapshot(value):
                snapshots.append(name)
                tensors.update({f"{CALLBACKS}{key}/{name}/{path}": np.asarray(arr) for path, arr in value.items()})
            else:
                state[name] = value
        meta[key] = {"type": type(cb).__name__, "state": state, "weights": snapshots}
    return meta, tensors


def write_checkpoint(run, name: str, trainer: Trainer, columns: list[str]) -> None:
    tensors = checkpoint_tensors(trainer.model, trainer.optimizer)
    tensors[HISTORY] = history_array(trainer.history, columns)
    lr = getattr(trainer.optimizer, "_learning_rate", None)
    trainer.state.learning_rate = None if isinstance(lr, LearningRateSchedule) or lr is None else float(lr)
    states, snapshots = callback_states(trainer)
    tensors.update(snapshots)
    if trainer.trained_weights is not None:  # the run ended on restored weights: keep where training got to
        tensors.update({TRAINED + p: np.asarray(a) for p, a in trainer.trained_weights.items()})
    meta = {"epoch": trainer.state.epoch, "step": trainer.state.step, "trainer": trainer.state.to_dict(),
            "rng": nn.random.get_state(), "data_rng": trainer.train_data.get_state(), "nncli": __version__,
            "columns": columns, "callbacks": states}
    save_checkpoint(run.checkpoints / f"{name}.safetensors", tensors, meta)


def restore_checkpoint(path: Path, trainer: Trainer, columns: list[str]) -> dict:
    """Check a checkpoint whole, then load weights, slots, RNG, trainer state, callbacks' states and
    history into ``trainer``.

    A callback of the trainer whose key the checkpoint lacks (or holds for another class) starts
    fresh; states of callbacks the trainer no longer has are left out.
    """
    tensors, meta = load_checkpoint(path, layout(trainer.model, trainer.optimizer, columns))
    history = tensors.pop(HISTORY, None)
    checked = check_metadata(meta, path, len(trainer.train_data), history)
    if checked.columns != columns:
        raise RunError(f"checkpoint {path} has metrics columns {checked.columns}, this run {columns}; "
                       "it was not loaded")
    if history is None:
        raise RunError(f"checkpoint {path} carries no metrics history; it was not loaded")
    snapshots = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith(CALLBACKS)]}
    trained = {k[len(TRAINED):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(TRAINED)]}
    check_finite(tensors, path)
    check_finite(snapshots, path)
    check_finite(trained, path)
    weights, opt_state = split_checkpoint(tensors)
    if check_iterations(opt_state["iterations"], path) != checked.step:
        raise RunError(f"checkpoint {path}: the optimizer took {int(opt_state['iterations'])} steps, the trainer "
                       f"{checked.step}; it was not loaded")
    unknown = sorted(set(checked.trainer.metric_states) - set(trainer.metrics))
    if unknown:
        raise RunError(f"checkpoint {path} has states of metrics this run does not log ({', '.join(unknown)}); "
                       "it was not loaded")
    paths = {p for p, _ in trainer.model.named_variables()}
    states = _callback_states(checked.callbacks, snapshots, _stateful(trainer), paths, path)
    try:
        for name, state in checked.trainer.metric_states.items():  # tried now, applied by the trainer
            trainer.metrics[name].set_state(state)
            trainer.metrics[name].reset_state()
        trainer.model.load_named_weights(weights, source=str(path))
        trainer.optimizer.set_state(opt_state)
        if checked.trainer.learning_rate is not None and not isinstance(
                getattr(trainer.optimizer, "_learning_rate", None), LearningRateSchedule):
            trainer.optimizer.learning_rate = checked.trainer.learning_rate
        trainer.state = type(trainer.state).from_dict(checked.trainer.model_dump())
        nn.random.set_state(checked.rng.model_dump())
        trainer.train_data.set_state(checked.data_rng.model_dump())
    except (KeyError, TypeError, ValueError, NncliError) as err:
        raise RunError(f"checkpoint {path} does not fit this run ({err}); it was not loaded") from None
    for cb, state in states:
        cb.set_state(state)  # each was tried on a fresh copy above
    trainer.history = history_rows(history, columns)
    trainer.trained_weights = trained or None
    return meta


def _callback_states(saved: dict, snapshots: dict, callbacks: dict, paths: set, path: Path) -> list:
    """``(callback, state)`` for each of ``callbacks`` the checkpoint has a state of, each state tried
    first (so that a refused one changes nothing)."""
    out = []
    for key, cb in callbacks.items():
        entry = saved.get(key)
        if entry is None or entry.type != type(cb).__name__:
            continue
        state = dict(entry.state)
        for name in entry.weights:
            prefix = f"{CALLBACKS}{key}/{name}/"
            state[name] = {k[len(prefix):]: np.array(v) for k, v in snapshots.items() if k.startswith(prefix)}
            if set(state[name]) != paths:
                raise RunError(f"checkpoint {path}: the weights callback {key} keeps as {name} are not the model's "
                               f"({len(state[name])} of {len(paths)} weights); it was not loaded")
        try:
            _trial(cb).set_state(state)
        except (KeyError, TypeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunError(f"checkpoint {path} has a state of callback {key} ({entry.type}) it cannot take "
                           f"({first}); it was not loaded") from None
        out.append((cb, state))
    return out


def _trial(cb):
    """A shallow copy to try ``set_state`` on without touching ``cb``."""
    import copy

    return copy.copy(cb)
