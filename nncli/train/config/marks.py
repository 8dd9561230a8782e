"""Where each config value was written, and problems placed there.

Every step of the config pipeline works on plain data plus a :class:`Locator`: the file, line
and column of each value and key (or the ``--set`` text that replaced it). A :class:`Problem`
is one line of an error, ``file:line:col: dotted.path: expected X, found Y``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from nncli.errors import ConfigError, did_you_mean

Key = tuple  # a path into the data: ("model", "layers", 2, "units")

_KEY = re.compile(r"[A-Za-z_][\w-]*((?:\[\d+\])*)")


def format_path(path: Key) -> str:
    """``("model", "layers", 2, "units")`` -> ``model.layers[2].units``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_key(text: str) -> Key | None:
    """``model.layers[0].units`` -> ``("model", "layers", 0, "units")``; ``None`` if malformed."""
    path: list = []
    for part in text.split("."):
        match = _KEY.fullmatch(part)
        if match is None:
            return None
        path.append(part[: len(part) - len(match.group(1))])
        path += [int(i) for i in re.findall(r"\d+", match.group(1))]
    return tuple(path)


def describe(value: Any) -> str:
    """A short, YAML-like description of a found value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__} ({value})"


def unknown_key(key: str, names: list[str], owner: str) -> str:
    """The message for a key that ``owner`` does not take."""
    hint = did_you_mean(key, names)
    listing = f" ({', '.join(names)})" if names and not hint else ""
    return f"expected a key of {owner}{listing}, found unknown key {key!r}{hint}"


@dataclass(frozen=True)
class Mark:
    """Where a value came from: a file position, or the ``--set`` text that gave it."""

    source: str
    line: int = 0  # 1-based; 0 when only the source is known
    col: int = 0
    override: str | None = None

    def __str__(self) -> str:
        if self.override is not None:
            return f"--set {self.override}"
        return f"{self.source}:{self.line}:{self.col}" if self.line else self.source

    def order(self) -> tuple:
        return (self.override is not None, self.line, self.col)


REQUIRED = "expected a value for this required key, found none"  # the message of a required key left out


@dataclass(frozen=True)
class Problem:
    """One line of a config error: ``<mark>: <dotted.path>: <message>``."""

    mark: Mark
    path: Key
    message: str

    def __str__(self) -> str:
        where = f"{self.mark}: {format_path(self.path)}" if self.path else str(self.mark)
        return f"{where}: {self.message}"


def raise_problems(problems: list[Problem]) -> None:
    """Raise one :class:`ConfigError` listing every problem (by file, then place), if any."""
    if problems:
        files = list(dict.fromkeys(p.mark.source for p in problems))
        lines = sorted(problems, key=lambda p: (files.index(p.mark.source), *p.mark.order()))
        err = ConfigError("\n".join(dict.fromkeys(str(p) for p in lines)))
        err.problems = lines
        raise err


@dataclass
class Locator:
    """Marks of values and keys by path; ``--set`` overrides win over file positions.

    Args:
        source: the config's name in messages; the mark of anything not found elsewhere.
    """

    source: str
    values: dict[Key, Mark] = field(default_factory=dict)
    keys: dict[Key, Mark] = field(default_factory=dict)
    overrides: list[tuple[Key, str, bool]] = field(default_factory=list)  # (path, --set text, exact only)
    interpolated: dict[Key, str] = field(default_factory=dict)  # path -> the ${...} text it was written as
    unresolved: set = field(default_factory=set)  # paths whose ${...} could not be resolved (already reported)

    def override_at(self, path: Key) -> str | None:
        """The ``--set`` text that gave the value at ``path`` (or a parent of it), if any."""
        for prefix, text, exact in reversed(self.overrides):
            if path == prefix or (not exact and path[: len(prefix)] == prefix):
                return text
        return None

    def at(self, path: Key, key: bool = False) -> Mark:
        """The mark of the value at ``path`` (of its key when ``key``), else of its nearest parent."""
        text = self.override_at(path)
        if text is not None:
            return Mark(self.source, override=text)
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Mark(self.source))

    def copy_subtree(self, other: Locator, data: Any, path: Key) -> None:
        """Take ``other``'s marks for ``data`` (the value at ``path``) and everything inside it."""
        if path in other.values:
            self.values[path] = other.values[path]
        if path in other.keys:
            self.keys[path] = other.keys[path]
        if path in other.interpolated:
            self.interpolated[path] = other.interpolated[path]
        children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
        for k, v in children:
            self.copy_subtree(other, v, path + (k,))


@dataclass
class Document:
    """Config data on its way through the pipeline, with the marks and problems found so far.

    Args:
        data: plain data (mappings, lists, scalars), as read and then changed by each step.
        locator: where each value was written.
        problems: what is wrong so far; raised together at the end (or earlier when reading cannot go on).
        path: the config file (None for a config given as data).
        base_dir: the folder that relative paths in ``data`` start from.
        base_failed: a ``base:`` file could not be read, so the data lacks whatever it would have given.
    """

    data: Any
    locator: Locator
    problems: list[Problem]
    path: Any  # pathlib.Path | None
    base_dir: Any  # pathlib.Path
    base_failed: bool = False
