"""Step 3 of the config pipeline: ``--set KEY=VALUE`` overrides, each value read as YAML.

    problems = apply_overrides(data, locator, ["model.layers[0].units=64", "optimizer=sgd"])

An override replaces the value at its dotted key (creating missing mappings on the way) and is
recorded in the locator, so that a problem with the value it gave is reported as ``--set ...``.
"""

from __future__ import annotations

from typing import Any, Iterable

from nncli.errors import ConfigError
from nncli.train.config.marks import Key, Locator, Mark, Problem, describe, parse_key
from nncli.train.config.reader import parse_yaml

__all__ = ["apply_overrides"]


def apply_overrides(data: dict, locator: Locator, overrides: Iterable[str]) -> list[Problem]:
    """Apply each ``KEY=VALUE`` to ``data`` in place, recording it in ``locator``; the problems found."""
    problems = []
    for text in overrides:
        mark = Mark(locator.source, override=text)
        key, eq, value_text = text.partition("=")
        path = parse_key(key.strip()) if eq else None
        if path is None:
            problems.append(Problem(mark, (), f"expected KEY=VALUE with a dotted KEY such as "
                                    f"model.layers[0].units=64, found {text!r}"))
            continue
        try:
            value, _, value_problems, _ = parse_yaml(value_text, f"--set {text}")
        except ConfigError as err:
            problems += [Problem(mark, path, p.message) for p in err.problems]
            continue
        problems += [Problem(mark, path, p.message) for p in value_problems]
        problem = _set(data, path, value, locator, text)
        if problem:
            problems.append(Problem(mark, *problem))
    return problems


def _set(data: dict, path: Key, value: Any, locator: Locator, text: str) -> tuple[Key, str] | None:
    """Put ``value`` at ``path``, creating missing mappings; ``(path, message)`` if impossible."""
    node: Any = data
    for depth, part in enumerate(path):
        here, last = path[: depth + 1], depth == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list):
                return path[:depth], f"expected a list to index with [{part}], found {describe(node)}"
            if part >= len(node):
                span = f"an index from 0 to {len(node) - 1}" if node else "no index (the list is empty)"
                return here, f"expected {span}, found {part}"
        elif not isinstance(node, dict):
            return path[:depth], f"expected a mapping holding '{part}', found {describe(node)}"
        if last:
            node[part] = value
            locator.overrides.append((path, text, False))
            return None
        child = node[part] if isinstance(part, int) else node.get(part)
        if child is None and isinstance(path[depth + 1], str):
            child = node[part] = {}
            locator.overrides.append((here, text, False))
        elif isinstance(child, str) and isinstance(path[depth + 1], str):
            child = node[part] = {"type": child}  # a short name such as `adam` gains parameters
            locator.overrides.append((here, text, True))
        node = child
    return None
