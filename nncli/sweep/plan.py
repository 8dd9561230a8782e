"""What a sweep runs: its space from the command line or the config's ``sweep:`` section, its trials.

    plan = make_plan(cfg, SweepOptions(grid=["optimizer.learning_rate=[0.001, 0.01]"]))
    trials = expand(plan)                    # [{"optimizer.learning_rate": 0.001}, {...: 0.01}]
    configs = validate_trials(cfg, trials)   # every trial's config, before the first one starts

Options given on the command line win over the section; the space comes whole from one place
(flags, or the section), never half from each.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nncli.errors import ConfigError
from nncli.sweep.space import (Dimension, check_distinct, grid_dimension, grid_trials, override_text, parse_grid,
                               parse_space, random_trials, space_dimension)
from nncli.train.config import Config, load_config
from nncli.train.config.marks import format_path
from nncli.train.config.schema import MAX_TRIALS, SweepConfig

__all__ = ["SweepOptions", "SweepPlan", "make_plan", "expand", "validate_trials", "trial_overrides"]

_DEFAULTS = SweepConfig()  # the section's defaults: workers, retries, ...
_MAX_LISTED = 12  # problem lines shown when many trials are invalid


@dataclass
class SweepOptions:
    """The ``nncli sweep`` flags; ``None`` means "from the config's sweep: section, else the default"."""

    grid: list[str] = field(default_factory=list)
    space: list[str] = field(default_factory=list)
    random: int | None = None
    sampler: str | None = None  # random | tpe
    trials: int | None = None
    seed: int | None = None
    workers: int | None = None
    cluster: str | None = None
    retries: int | None = None
    threads: int | None = None


@dataclass
class SweepPlan:
    """A checked sweep: how its trials are chosen and where they run."""

    method: str  # grid | random | tpe
    dims: list[Dimension]
    count: int  # trials in all
    seed: int  # of the random draws (and of TPE)
    workers: int
    cluster: str | None
    retries: int
    threads: int | None


def _count(value: int, flag: str) -> int:
    if not 1 <= value <= MAX_TRIALS:
        raise ConfigError(f"expected a number of trials from 1 to {MAX_TRIALS:,}, found {value}", flag)
    return value


def _cli_space(opts: SweepOptions) -> tuple[str, list[Dimension], int] | None:
    if not (opts.grid or opts.space or opts.random is not None or opts.sampler or opts.trials is not None):
        return None
    if opts.grid and (opts.space or opts.random is not None or opts.sampler or opts.trials is not None):
        raise ConfigError("expected either --grid (every combination) or --random N / --sampler tpe --trials N "
                          "with --space, found both", "nncli sweep")
    if opts.grid:
        dims = [parse_grid(text) for text in opts.grid]
        return "grid", dims, _grid_size(dims, "--grid")
    method = opts.sampler or "random"
    count = opts.random if opts.random is not None else opts.trials
    if opts.random is not None and opts.trials is not None and opts.random != opts.trials:
        raise ConfigError(f"expected one number of trials, found --random {opts.random} and --trials {opts.trials}",
                          "nncli sweep")
    if opts.random is not None and method != "random":
        raise ConfigError(f"expected --trials N with --sampler {method}, found --random", "nncli sweep")
    if count is None:
        raise ConfigError(f"expected a number of trials: --random N (or --sampler {method} --trials N)", "--space")
    if not opts.space:
        raise ConfigError("expected at least one --space KEY=loguniform(a, b)|uniform(a, b)|choice(x, y) to "
                          "draw the trials from, found none", f"--random {count}")
    return method, [parse_space(text) for text in opts.space], _count(count, "--random")


def _section_space(cfg: Config) -> tuple[str, list[Dimension], int] | None:
    sec = cfg.sweep
    if sec is None or (sec.grid is None and sec.space is None and sec.random is None and sec.trials is None):
        return None
    where = lambda *path: f"{cfg.locator.at(('sweep', *path))}: sweep" + "".join(  # noqa: E731
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    if sec.grid is not None:
        if sec.space is not None or sec.random is not None or sec.trials is not None:
            raise ConfigError("expected either grid (every combination) or random/trials with space, found both",
                              where("grid"))
        dims = []
        for key, values in sec.grid.items():
            dim = grid_dimension(key, values, where("grid", key))
            wheres = tuple(where("grid", key, i) for i in range(len(values)))
            dims.append(Dimension(dim.key, dim.kind, dim.values, dim.where, wheres))
        return "grid", dims, _grid_size(dims, where("grid"))
    method = sec.sampler or "random"
    count = sec.random if sec.random is not None else sec.trials
    if count is None:
        raise ConfigError(f"expected the number of trials: random: N (or sampler: {method} with trials: N)",
                          where("space"))
    if sec.random is not None and method != "random":
        raise ConfigError(f"expected trials: N with sampler: {method}, found random:", where("random"))
    if not sec.space:
        raise ConfigError("expected a space: mapping of config keys to loguniform(a, b), uniform(a, b) or "
                          "choice(x, y), found none", where("random" if sec.random is not None else "trials"))
    return method, [space_dimension(k, v, where("space", k)) for k, v in sec.space.items()], count


def _grid_size(dims: list[Dimension], where: str) -> int:
    size = math.prod(len(d.values) for d in dims)
    if size > MAX_TRIALS:
        raise ConfigError(f"expected at most {MAX_TRIALS:,} trials, found a grid of {size:,} "
                          f"({' x '.join(str(len(d.values)) for d in dims)})", where)
    return size


def make_plan(cfg: Config, opts: SweepOptions) -> SweepPlan:
    """The sweep that ``opts`` and ``cfg.sweep`` describe, checked; a ConfigError says what is wrong where."""
    space = _cli_space(opts) or _section_space(cfg)
    if space is None:
        raise ConfigError("nothing to sweep: give --grid 'KEY=[v1, v2]' or --random N --space "
                          "'KEY=loguniform(a, b)', or a sweep: section in the config", str(cfg.path or "the config"))
    method, dims, count = space
    check_distinct(dims)
    sec = cfg.sweep or _DEFAULTS

    def pick(name: str):
        value = getattr(opts, name)
        return value if value is not None else getattr(sec, name)

    seed = pick("seed")
    for name, low in (("workers", 1), ("retries", 0), ("threads", 1)):
        value = getattr(opts, name)
        if value is not None and value < low:
            raise ConfigError(f"expected a number >= {low}, found {value}", f"--{name}")
    return SweepPlan(method, dims, count, seed if seed is not None else secrets.randbelow(2**31),
                     pick("workers"), pick("cluster"), pick("retries"), pick("threads"))


def expand(plan: SweepPlan) -> list[dict[str, Any]]:
    """The trials' overrides (key -> value); TPE proposes its trials as the sweep goes, so none here."""
    if plan.method == "grid":
        return grid_trials(plan.dims)
    if plan.method == "random":
        return random_trials(plan.dims, plan.count, plan.seed)
    return []


def trial_overrides(seed: int, values: dict[str, Any]) -> list[str]:
    """The ``--set`` strings of a trial: the sweep's seed first (a key of the space may set it again)."""
    return [f"seed={seed}", *(override_text(k, v) for k, v in values.items())]


def validate_trials(config_path: str | Path, seed: int, trials: list[dict[str, Any]], dims: list[Dimension],
                    first: int = 0) -> list[Config]:
    """Every trial's config, or one ConfigError listing each problem once with the trials it hits.

    A problem at a trial's own override is placed where the value was given (the ``--grid`` text, or
    the line of the sweep: section); others keep their place in the config, naming the trial.
    """
    by_key = {d.key: d for d in dims}
    lines: dict[tuple[str, bool], list[int]] = {}  # (problem, at the trial's own value) -> the trials it hits
    configs = []
    built: dict[str, ConfigError | None] = {}
    for number, values in enumerate(trials, start=first):
        overrides = trial_overrides(seed, values)
        try:
            cfg = load_config(config_path, overrides)
            _check_parts(cfg, built)
            configs.append(cfg)
        except ConfigError as err:
            own = dict(zip(overrides[1:], values))
            for problem in getattr(err, "problems", None) or []:
                key = own.get(problem.mark.override)
                if key is None:
                    line = (str(problem), False)
                else:
                    line = (f"{by_key[key].origin(values[key])}: {format_path(problem.path)}: {problem.message}", True)
                lines.setdefault(line, []).append(number)
            if not getattr(err, "problems", None):
                lines.setdefault((str(err), False), []).append(number)
    if lines:
        shown = [f"{line} ({_numbers(ns)}" + ("" if own else f": {_values(trials[ns[0] - first])}") + ")"
                 for (line, own), ns in list(lines.items())[:_MAX_LISTED]]
        more = len(lines) - len(shown)
        raise ConfigError("\n".join(shown + ([f"... and {more} more problems"] if more else [])))
    return configs


def _check_parts(cfg: Config, built: dict[str, ConfigError | None]) -> None:
    """Build the trial's model, loss, optimizer and metrics (not its data), as its training would first.

    A value the schema allows but no part can be built from (a negative learning rate, a layer
    argument its class refuses) is caught here, before any trial starts. Trials whose parts are
    the same (a grid over the batch size) are built once.
    """
    from nncli.train.build import build

    key = json.dumps([cfg.model, cfg.loss, cfg.optimizer, cfg.train.metrics], sort_keys=True, default=str)
    if key not in built:
        try:
            build(cfg, with_data=False)
            built[key] = None
        except ConfigError as err:
            built[key] = err
    if built[key] is not None:
        raise built[key]


def _numbers(ns: list[int]) -> str:
    listed = ", ".join(map(str, ns[:8])) + (f" and {len(ns) - 8} more" if len(ns) > 8 else "")
    return f"trial{'s' if len(ns) > 1 else ''} {listed}"


def _values(values: dict[str, Any]) -> str:
    return " ".join(override_text(k, v) for k, v in values.items())
