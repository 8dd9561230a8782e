"""YAML with line numbers, and ``--set KEY=VALUE`` overrides, for config files.

Reading gives plain Python data plus a :class:`Locator` that knows where each value came
from (``file:line:col``, or the ``--set`` text that replaced it), so that every problem can
be reported at its place. Only PyYAML's safe loader is used, with bounds on nesting and on
alias expansion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, get_args

import yaml
from pydantic import BaseModel
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from nncli.errors import ConfigError

MAX_DEPTH = 64  # deepest nesting of lists and mappings, after aliases are expanded
MAX_NODES = 100_000  # most YAML nodes visited when expanding aliases ("billion laughs" guard)
MAX_WRITTEN_NODES = 20_000  # most YAML nodes written in one file (PyYAML reads ~50,000 a second)
MAX_BYTES = 2**20  # largest config file read: configs are a few kilobytes

_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

Key = tuple  # a path into the data: ("model", "layers", 2, "units")


def format_path(path: Key) -> str:
    """``("model", "layers", 2, "units")`` -> ``model.layers[2].units``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
    """Raise one :class:`ConfigError` listing every problem (sorted by place), if any."""
    if problems:
        lines = sorted(problems, key=lambda p: p.mark.order())
        err = ConfigError("\n".join(dict.fromkeys(str(p) for p in lines)))
        err.problems = lines
        raise err


class Locator:
    """Positions of values and keys by path; overrides win over file positions."""

    def __init__(self, source: str):
        self.source = source
        self.values: dict[Key, tuple[int, int]] = {}
        self.keys: dict[Key, tuple[int, int]] = {}
        self.overrides: list[tuple[Key, str, bool]] = []  # (path, --set text, exact path only)

    def at(self, path: Key, key: bool = False) -> Mark:
        """The mark of the value at ``path`` (of its key when ``key``), else of its nearest parent."""
        for prefix, text, exact in reversed(self.overrides):
            if path == prefix or (not exact and path[: len(prefix)] == prefix):
                return Mark(self.source, override=text)
        if key and path in self.keys:
            return Mark(self.source, *self.keys[path])
        while path not in self.values and path:
            path = path[:-1]
        return Mark(self.source, *self.values.get(path, (0, 0)))


class _Abort(Exception):
    """Stop building: the document is too big or too deep to read safely."""


class LineLoader(yaml.SafeLoader):
    """A SafeLoader that bounds nesting and builds plain data plus a :class:`Locator`."""

    def __init__(self, text: str, locator: Locator):
        super().__init__(text)
        self.locator, self.problems, self._depth, self._visits, self._written = locator, [], 0, 0, 0
        self._active: set[int] = set()  # ids of nodes being built, to catch recursive aliases

    def compose_node(self, parent, index):
        self._depth += 1
        self._written += 1
        try:
            if self._written > MAX_WRITTEN_NODES:  # bound the parse time of a huge (generated?) file
                mark = self.peek_event().start_mark
                raise _Abort(Problem(Mark(self.locator.source, mark.line + 1, mark.column + 1), (),
                                     f"expected at most {MAX_WRITTEN_NODES} values in a config, found more"))
            if self._depth > MAX_DEPTH:  # checked while composing: PyYAML's composer recurses
                mark = self.peek_event().start_mark
                raise _Abort(Problem(Mark(self.locator.source, mark.line + 1, mark.column + 1), (),
                                     f"expected nesting of at most {MAX_DEPTH} levels, found deeper nesting"))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def build(self):
        """Parse the single document; ``(data, empty)``; raises ``yaml.YAMLError`` or ``_Abort``."""
        node = self.get_single_node()
        return (None, True) if node is None else (self._build(node, (), 0), False)

    def _mark(self, node) -> Mark:
        return Mark(self.locator.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def _visit(self, node, path: Key, depth: int, count: int = 1) -> None:
        self._visits += count
        if self._visits > MAX_NODES:
            raise _Abort(Problem(self._mark(node), path[:1], f"expected at most {MAX_NODES} values after "
                                 "expanding aliases, found more (an alias bomb?)"))
        if depth > MAX_DEPTH:
            raise _Abort(Problem(self._mark(node), path[:1], f"expected nesting of at most {MAX_DEPTH} "
                                 "levels, found deeper nesting through aliases"))

    def _build(self, node, path: Key, depth: int):
        self._visit(node, path, depth)
        mark = self._mark(node)
        self.locator.values[path] = (mark.line, mark.col)
        if id(node) in self._active:
            self.problems.append(Problem(mark, path, "expected a value, found an alias to itself"))
            return None
        if isinstance(node, ScalarNode):
            try:
                return self.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError, AttributeError):
                self.problems.append(Problem(mark, path, f"expected a plain YAML value, found {describe(node.value)} "
                                             f"tagged {node.tag.replace('tag:yaml.org,2002:', '!!')}"))
                return None
        self._active.add(id(node))
        try:
            if node.tag not in (_MAP_TAG, _SEQ_TAG):
                self.problems.append(Problem(mark, path, f"expected a plain YAML list or mapping, found one "
                                             f"tagged {node.tag.replace('tag:yaml.org,2002:', '!!')}"))
                return None
            if isinstance(node, SequenceNode):
                return [self._build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
            return self._build_mapping(node, path, depth)
        finally:
            self._active.discard(id(node))

    def _build_mapping(self, node: MappingNode, path: Key, depth: int) -> dict:
        out: dict[str, Any] = {}
        explicit: set[str] = set()
        for key_node, value_node, merged in self._pairs(node, path, depth):
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self._mark(key_node), path, "expected a plain key, found a "
                                             + ("list" if isinstance(key_node, SequenceNode) else "mapping")))
                continue
            key = key_node.value
            if merged and key in out:
                continue  # explicit keys, and earlier merge sources, take precedence
            if not merged and key in explicit:
                first = self.locator.keys[path + (key,)][0]
                self.problems.append(Problem(self._mark(key_node), path + (key,),
                                             f"expected each key once, found a duplicate (first on line {first})"))
            explicit.update(() if merged else (key,))
            mark = self._mark(key_node)
            self.locator.keys[path + (key,)] = (mark.line, mark.col)
            out[key] = self._build(value_node, path + (key,), depth + 1)
        return out

    def _pairs(self, node: MappingNode, path: Key, depth: int) -> list:
        """``(key, value, merged)`` node pairs, YAML merge keys (``<<: *base``) expanded first."""
        merged, explicit = [], []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                explicit.append((key_node, value_node, False))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in self._active:
                    self.problems.append(Problem(self._mark(source), path, "expected a mapping to merge, found "
                                                 + ("an alias to itself" if id(source) in self._active
                                                    else "something else")))
                    continue
                self._visit(source, path, depth + 1, len(source.value))
                self._active.add(id(source))
                merged += [(k, v, True) for k, v, _ in self._pairs(source, path, depth + 1)]
                self._active.discard(id(source))
        return merged + explicit


# PyYAML follows YAML 1.1, where "1e-3" and "2.5e4" are strings; configs mean numbers.
LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _syntax_problem(err: yaml.YAMLError, text: str, source: str) -> Problem:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = Mark(source, err.problem_mark.line + 1, err.problem_mark.column + 1)
        context = f" ({err.context}" if err.context else ""
        if context and err.context_mark is not None and err.context_mark.line != err.problem_mark.line:
            context += f" on line {err.context_mark.line + 1}"
        context += ")" if context else ""
        return Problem(mark, (), f"expected valid YAML, found a syntax error: {err.problem}{context}")
    position = getattr(err, "position", 0) or 0
    line = text.count("\n", 0, position) + 1
    mark = Mark(source, line, position - (text.rfind("\n", 0, position) + 1) + 1)
    char = getattr(err, "character", None)
    found = f"character U+{char:04X} ({err.reason})" if isinstance(char, int) and hasattr(err, "reason") else str(err)
    return Problem(mark, (), f"expected valid YAML, found {found}")


def parse_yaml(text: str, source: str) -> tuple[Any, Locator, list[Problem], bool]:
    """Parse YAML ``text``; ``(data, locator, problems, empty)``; syntax errors raise ConfigError."""
    locator, loader = Locator(source), None
    try:
        loader = LineLoader(text, locator)  # the reader already rejects unprintable characters
        data, empty = loader.build()
    except yaml.YAMLError as err:
        raise_problems([_syntax_problem(err, text, source)])
    except _Abort as stop:
        raise_problems([stop.args[0]])
    finally:
        if loader is not None:
            loader.dispose()
    return data, locator, loader.problems, empty


def read_yaml(path: Path, source: str | None = None) -> tuple[Any, Locator, list[Problem]]:
    """Read a YAML config file; ``source`` is the name used in messages (default: ``path``)."""
    source = source or str(path)
    if path.is_dir():
        raise ConfigError(f"{source}: expected a YAML config file, found a directory")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never more: a config is small, whatever the path points at
    except FileNotFoundError:
        raise ConfigError(f"{source}: expected a YAML config file, found no such file") from None
    except OSError as err:
        raise ConfigError(f"{source}: expected a readable YAML config file, found: {err.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: expected a config file of at most {MAX_BYTES:,} bytes, found a larger file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigError(f"{source}:{line}:{col}: expected UTF-8 text, found byte "
                          f"0x{raw[err.start]:02x} (save the file as UTF-8)") from None
    data, locator, problems, empty = parse_yaml(text, source)
    if empty:
        raise ConfigError(f"{source}: expected a mapping with the sections data, model, loss, optimizer, "
                          "found an empty file")
    return data, locator, problems


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``name``, or ``""``."""
    match = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_key(key: str, names: list[str], owner: str) -> str:
    """The message for a key that ``owner`` does not take."""
    hint = did_you_mean(key, names)
    listing = f" ({', '.join(names)})" if names and not hint else ""
    return f"expected a key of {owner}{listing}, found unknown key {key!r}{hint}"


_EXPECTED = {  # pydantic error type -> what was expected, in plain words
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null",
    "callable_type": "a Python callable (not possible in a config)",
}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<="), "multiple_of": ("multiple_of", "a multiple of")}


def _expected(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in _BOUNDS:
        name, word = _BOUNDS[kind]
        return f"{'a value ' if word[0] in '<>' else ''}{word} {ctx.get(name)}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"{'at least' if kind == 'too_short' else 'at most'} {n} item{'s' if n != 1 else ''}"
    if kind in ("literal_error", "enum"):
        return f"one of {ctx.get('expected')}"
    if kind == "is_instance_of":
        return f"a {ctx.get('class')} (not possible in a config)"
    return error["msg"].removeprefix("Value error, ").removeprefix("Input should be ")


def _real_path(value: Any, loc: tuple, keep_last: bool) -> Key:
    """The part of a pydantic ``loc`` that indexes ``value`` (drops union member tags)."""
    node, out = value, []
    for i, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (keep_last and i == len(loc) - 1):
            continue
        out.append(part)
    return tuple(out)


def _field_names(model, loc: Key) -> list[str]:
    """Field names of the pydantic model reached from ``model`` through the keys in ``loc``."""
    for part in loc:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        inner = [t for t in (info.annotation, *get_args(info.annotation))
                 if isinstance(t, type) and issubclass(t, BaseModel)] if info else []
        if not inner:
            return []
        model = inner[0]
    return list(model.model_fields)


def validation_problems(err, value: Any, path: Key, locator: Locator, model=None) -> list[Problem]:
    """pydantic ``ValidationError`` -> problems in plain words, at the right places.

    Args:
        value: the data that was validated; ``path``: where it sits in the config.
        model: the pydantic model validated, whose field names feed "did you mean".
    """
    groups: dict[Key, list[dict]] = {}
    for error in err.errors(include_url=False):
        keep_last = error["type"] in ("missing", "extra_forbidden")
        groups.setdefault(_real_path(value, error["loc"], keep_last), []).append(error)
    problems = []
    for rel, errors in groups.items():
        here, kinds = path + rel, {e["type"] for e in errors}
        if "missing" in kinds:
            problems.append(Problem(locator.at(here[:-1], key=True), here,
                                    "expected a value for this required key, found none"))
        elif "extra_forbidden" in kinds:
            names = _field_names(model, rel[:-1]) if model else []
            problems.append(Problem(locator.at(here, key=True), here,
                                    unknown_key(rel[-1], names, format_path(here[:-1]) or "the config")))
        else:  # a union reports each member; keep the ones that got past the type check
            specific = [e for e in errors if not e["type"].endswith("_type")] or errors
            expected = " or ".join(dict.fromkeys(_expected(e) for e in specific))
            found = errors[0]["input"]
            hint = ""
            if isinstance(found, str) and "literal_error" in kinds:
                hint = did_you_mean(found, re.findall(r"'([^']*)'", str(errors[0]["ctx"]["expected"])))
            problems.append(Problem(locator.at(here), here, f"expected {expected}, found {describe(found)}{hint}"))
    return problems


_KEY = re.compile(r"[A-Za-z_][\w-]*((?:\[\d+\])*)")


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
