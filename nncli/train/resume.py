"""Resuming a run: what may change, the checks before anything is written, putting the run back.

    cfg, changes = resumed_config(run, info, config_path, overrides, trust_plugins)  # refuse what cannot change
    check_data(run, info, cfg)                                                      # refuse changed data
    warnings = prepare_resume(run, trainer, info, cfg, columns, changes)            # then write
    hint = resume_command(run, runs_dir, config_path, bool(cfg.plugins))           # said after a stop

A resumed run trains what it trained before: ``data``, ``model``, ``loss``, ``optimizer``,
``plugins``, ``train.metrics`` and ``train.monitor`` must be the run's. Everything else under
``train`` may change (``epochs``, ``compile``, ``early_stopping``, ``reduce_lr_on_plateau``,
``checkpoint``, ``callbacks``, ``loggers``): each change is said and recorded in run.json.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from nncli.errors import RunError
from nncli.train.config import listed_plugins, load_config
from nncli.train.layout import restore_checkpoint
from nncli.train.recorder import now
from nncli.train.runinfo import check_data_unchanged
from nncli.train.runs import RunFolder, read_metrics_rows

__all__ = ["resumed_config", "check_resumable", "check_data", "prepare_resume", "resume_command", "FROZEN",
           "FROZEN_TRAIN"]

FROZEN = ("data", "model", "loss", "optimizer", "plugins")
FROZEN_TRAIN = ("metrics", "monitor")


def _diff(old, new, path=""):
    """``(path, old, new)`` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _diff(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _diff(a, b, f"{path}[{i}]")
    elif old != new:
        yield path, old, new


def check_resumable(saved, cfg, run_id: str, epochs_done: int) -> list[str]:
    """What ``cfg`` changes in the run's saved config (``train.epochs: 6 -> 10``); a RunError when it
    changes what the run trains, or asks for fewer epochs than are done."""
    old, new = saved.to_dict(absolute_paths=True), cfg.to_dict(absolute_paths=True)
    frozen = [d for key in FROZEN for d in _diff({key: old[key]}, {key: new[key]})]
    frozen += [d for key in FROZEN_TRAIN for d in _diff({"train": {key: old["train"][key]}},
                                                         {"train": {key: new["train"][key]}})]
    if frozen:
        lines = [f"{path}: {a!r} in the run, {b!r} now" for path, a, b in frozen]
        raise RunError("cannot resume: the config differs from the run's in what it trains:\n  " + "\n  ".join(lines)
                       + "\nstart a new run instead (without --resume), or --init-from the run to fine-tune it")
    if cfg.train.epochs < epochs_done:
        raise RunError(f"cannot resume run '{run_id}' with train.epochs={cfg.train.epochs}: it has finished "
                       f"{epochs_done} epochs already. train.epochs is the total; give at least {epochs_done}")
    return [f"{path}: {_shown(a)} -> {_shown(b)}" for path, a, b in _diff({"train": old["train"]},
                                                                         {"train": new["train"]})]


def _shown(value) -> str:
    """A value as the config would hold it: ``null``, ``'x'``, ``{patience: 5, mode: auto}``."""
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def prepare_resume(run: RunFolder, trainer, info: dict, cfg, columns: list[str], changes: list[str]) -> list[str]:
    """Restore the last checkpoint, rebuild metrics.csv from it, record the resume; warnings to show."""
    last, best = run.checkpoints / "last.safetensors", run.checkpoints / "best.safetensors"
    done = info.get("epochs_done") or 0
    warnings = []
    if last.exists():
        restore_checkpoint(last, trainer, columns)
    elif done or best.exists():
        raise RunError(f"cannot resume run '{run.run_id}': {last} is missing, but the run finished {done} "
                       f"epochs; resuming would start again from epoch 0 and throw them away. Restore the file, "
                       "or start a new run")
    else:  # killed before its first checkpoint: starting from epoch 0 is continuing
        rows, _ = read_metrics_rows(run.path / "metrics.csv")
        if rows:
            raise RunError(f"cannot resume run '{run.run_id}': {last} is missing, but metrics.csv has "
                           f"{len(rows)} finished epochs; restore the file, or start a new run")
    if trainer.state.best_epoch is not None and not best.exists():
        warnings.append(f"{best} is missing: the weights of the best epoch ({trainer.state.best_epoch}) are "
                        "lost; it is written again when an epoch beats that one")
    try:
        run.remove_partial_writes()
        run.write_metrics(trainer.history, columns)  # every finished epoch once, from the checkpoint
        run.write_config(cfg.to_dict(absolute_paths=True))
        info.pop("error", None)  # a resumed run starts without the last attempt's failure
        stamp = now()
        info.update(epochs=cfg.train.epochs, resumed=info.get("resumed", []) + [stamp], warnings=warnings)
        if changes:
            info["changes"] = info.get("changes", []) + [{"resumed": stamp, "changed": changes}]
        run.write_json(info)
    except OSError as err:
        raise RunError(f"cannot resume run '{run.run_id}': writing to {run.path} failed "
                       f"({err.strerror or err}); nothing was trained. Continue with --resume {run.run_id} once "
                       "it can be written") from None
    return warnings


def resumed_config(run: RunFolder, info: dict, config_path, overrides, trust_plugins: bool):
    """The config a resume trains with, and what it changes; the run's own config.yaml never runs code."""
    saved_path = run.path / "config.yaml"
    if config_path is None:
        plugins = listed_plugins(saved_path)
        if plugins and not trust_plugins:
            raise RunError(f"run '{run.run_id}' lists plugins in its config.yaml ({', '.join(plugins)}): "
                           "they are Python code that would run with your rights, so they are not imported unless "
                           "you pass --trust-plugins (or give the config you trained it with: nncli train CONFIG "
                           f"--resume {run.run_id})")
        cfg = load_config(saved_path, overrides, import_plugins=trust_plugins)
    else:
        cfg = load_config(config_path, overrides)
    saved = load_config(saved_path, import_plugins=False)  # what it names is registered by now, if anything
    cfg.seed = saved.seed  # the run's seed, whatever the config says now
    return cfg, check_resumable(saved, cfg, run.run_id, info.get("epochs_done") or 0)


def check_data(run: RunFolder, info: dict, cfg) -> None:
    """Refuse to resume on data that differs from what run.json fingerprinted."""
    changes = check_data_unchanged(info, cfg, "resuming")
    if changes:
        raise RunError(f"cannot resume run '{run.run_id}': its data has changed since it was trained: "
                       + "; ".join(changes) + ". Resuming would train on other data; start a new run")


def resume_command(run: RunFolder, runs_dir: Path, config_path=None, plugins: bool = False) -> str:
    """The shell command that resumes ``run``, typed in the current folder."""
    runs_dir = Path(runs_dir)
    if run.path.parent.resolve() == runs_dir.resolve():
        where = [run.run_id] + ([] if runs_dir == Path("runs") else ["--runs-dir", str(runs_dir)])
    else:
        where = [str(run.path)]
    args = ["nncli", "train"] + ([str(config_path)] if plugins and config_path else []) + ["--resume", *where]
    if plugins and not config_path:
        args.append("--trust-plugins")
    return " ".join(shlex.quote(a) for a in args)
