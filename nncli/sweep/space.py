"""Search spaces: a grid of values per config key, or distributions to draw trials from.

    dims = [parse_grid("optimizer.learning_rate=[0.001, 0.01]"), parse_grid("model.layers[0].units=[32, 64]")]
    grid_trials(dims)     # [{"optimizer.learning_rate": 0.001, "model.layers[0].units": 32}, ... 4 trials]
    dims = [parse_space("optimizer.learning_rate=loguniform(1e-4, 1e-1)"),
            parse_space("data.batch_size=choice(32, 64)")]
    random_trials(dims, 20, seed=0)

Values are YAML, read like ``--set`` values (``1e-3`` is a number, ``relu`` a string); a trial's
overrides become ``--set KEY=VALUE`` strings that read back to the same values.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from nncli.errors import ConfigError
from nncli.train.config.marks import parse_key
from nncli.train.config.reader import parse_yaml

__all__ = ["Dimension", "DISTRIBUTIONS", "parse_grid", "parse_space", "grid_dimension", "space_dimension",
           "grid_trials", "random_trials", "override_text", "check_key", "check_distinct", "yaml_flow"]

DISTRIBUTIONS = ("loguniform", "uniform", "choice")
_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.DOTALL)


@dataclass(frozen=True)
class Dimension:
    """One key of a space: ``kind`` is ``grid`` (try each value) or a distribution to draw from."""

    key: str  # a config key as --set writes it: model.layers[0].units
    kind: str  # grid | loguniform | uniform | choice
    values: tuple  # the grid's or choice's values, or (low, high)
    where: str = ""  # where it was given, for messages: "--grid ..." or "cfg.yaml:14:7: sweep.grid.KEY"
    wheres: tuple = ()  # where each grid value was written, when the config gave them

    def origin(self, value: Any) -> str:
        """Where ``value`` of this dimension was given (its own line in a config, else the dimension's)."""
        if self.wheres:
            flows = [yaml_flow(v) for v in self.values]
            return self.wheres[flows.index(yaml_flow(value))]
        return self.where

    def sample(self, rng) -> Any:
        """One value drawn with the numpy Generator ``rng``."""
        if self.kind == "loguniform":
            low, high = self.values
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.kind == "uniform":
            return float(rng.uniform(*self.values))
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> str:
        """As it is written: ``[0.001, 0.01]`` or ``loguniform(0.0001, 0.1)``."""
        if self.kind == "grid":
            return yaml_flow(list(self.values))
        return f"{self.kind}({', '.join(yaml_flow(v) for v in self.values)})"

    def to_json(self) -> dict:
        return {"key": self.key, "kind": self.kind, "values": list(self.values)}

    @classmethod
    def from_json(cls, data: dict, where: str = "") -> Dimension:
        return cls(data["key"], data["kind"], tuple(data["values"]), where)


def yaml_flow(value: Any) -> str:
    """``value`` as one line of YAML flow style (what ``--set`` reads back to the same value)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def override_text(key: str, value: Any) -> str:
    """The ``--set`` string of one override: ``optimizer.learning_rate=0.001``."""
    return f"{key}={yaml_flow(value)}"


def check_key(key: str, where: str) -> str:
    """A config key as ``--set`` takes it; keys under ``sweep`` are refused (a trial is not a sweep)."""
    path = parse_key(key.strip())
    if not key.strip() or path is None:
        raise ConfigError(f"expected a dotted config KEY such as model.layers[0].units, found {key!r}", where)
    if path[0] == "sweep":
        raise ConfigError(f"expected a key of what a trial trains, found {key!r}: the sweep section "
                          "cannot vary within a sweep", where)
    return key.strip()


def _yaml(text: str, where: str) -> Any:
    try:
        value, _, problems, _ = parse_yaml(text, where)
    except ConfigError as err:
        raise ConfigError(f"expected YAML values, found {text!r} ({err})", where) from None
    if problems:
        raise ConfigError(f"expected YAML values, found {text!r} ({problems[0].message})", where)
    return value


def _split(text: str, flag: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq:
        raise ConfigError(f"expected KEY=VALUES after {flag}, found {text!r}", f"{flag} {text}")
    return key, value


def grid_dimension(key: str, values: Any, where: str) -> Dimension:
    """A grid dimension from a key and its list of values."""
    key = check_key(key, where)
    if not isinstance(values, list) or not values:
        raise ConfigError(f"expected a non-empty list of values such as [0.001, 0.01], found {yaml_flow(values)}",
                          where)
    if len({yaml_flow(v) for v in values}) != len(values):
        raise ConfigError(f"expected different values for {key}, found one twice in {yaml_flow(values)}", where)
    return Dimension(key, "grid", tuple(values), where)


def parse_grid(text: str) -> Dimension:
    """``--grid 'KEY=[v1, v2]'``: every value is tried (with every value of the other grid keys)."""
    where = f"--grid {text}"
    key, value = _split(text, "--grid")
    return grid_dimension(key, _yaml(value, where), where)


def space_dimension(key: str, text: Any, where: str) -> Dimension:
    """A distribution: ``loguniform(a, b)``, ``uniform(a, b)`` or ``choice(x, y, ...)``."""
    key = check_key(key, where)
    match = _CALL.fullmatch(text) if isinstance(text, str) else None
    if match is None or match.group(1) not in DISTRIBUTIONS:
        found = repr(text) if isinstance(text, str) else yaml_flow(text)
        raise ConfigError(f"expected {key}=loguniform(a, b), uniform(a, b) or choice(x, y, ...), found {found}",
                          where)
    kind, args = match.group(1), _yaml(f"[{match.group(2)}]", where)
    if kind == "choice":
        if not args:
            raise ConfigError("expected choice(x, y, ...) with at least one value, found choice()", where)
        return Dimension(key, kind, tuple(args), where)
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                                 for a in args):
        raise ConfigError(f"expected {kind}(low, high) with two finite numbers, found {text!r}", where)
    low, high = float(args[0]), float(args[1])
    if not low < high:
        raise ConfigError(f"expected low < high in {kind}(low, high), found {text!r}", where)
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"expected 0 < low in loguniform(low, high), found {text!r}", where)
    return Dimension(key, kind, (low, high), where)


def parse_space(text: str) -> Dimension:
    """``--space 'KEY=loguniform(1e-4, 1e-1)'`` (or ``uniform``, ``choice``)."""
    key, value = _split(text, "--space")
    return space_dimension(key, value, f"--space {text}")


def check_distinct(dims: list[Dimension]) -> None:
    """Each key at most once in a space."""
    seen: dict[str, Dimension] = {}
    for dim in dims:
        if dim.key in seen:
            raise ConfigError(f"expected each key once, found {dim.key} again (first in {seen[dim.key].where})",
                              dim.where)
        seen[dim.key] = dim


def grid_trials(dims: list[Dimension]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (as nested loops in the order given)."""
    keys = [d.key for d in dims]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(d.values for d in dims))]


def random_trials(dims: list[Dimension], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` trials, each key drawn in turn from one numpy Generator seeded with ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [{d.key: d.sample(rng) for d in dims} for _ in range(count)]
