"""Step 1 of the config pipeline: read YAML into plain data with a mark for every value.

Reading gives plain Python data plus a :class:`~nncli.train.config.marks.Locator` that knows
the file, line and column of each value and key, so that every later problem can be reported
at its place. Only PyYAML's safe loader is used, with bounds on size, nesting and alias expansion.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from nncli.errors import ConfigError
from nncli.train.config.marks import Document, Key, Locator, Mark, Problem, describe, raise_problems

MAX_DEPTH = 64  # deepest nesting of lists and mappings, after aliases are expanded
MAX_NODES = 100_000  # most YAML nodes visited when expanding aliases ("billion laughs" guard)
MAX_WRITTEN_NODES = 20_000  # most YAML nodes written in one file (PyYAML reads ~50,000 a second)
MAX_BYTES = 2**20  # largest config file read: configs are a few kilobytes

_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

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
        self.locator.values[path] = mark
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
                first = self.locator.keys[path + (key,)].line
                self.problems.append(Problem(self._mark(key_node), path + (key,),
                                             f"expected each key once, found a duplicate (first on line {first})"))
            explicit.update(() if merged else (key,))
            self.locator.keys[path + (key,)] = self._mark(key_node)
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


def read_document(path: Path, source: str | None = None) -> Document:
    """Read a YAML config file; ``source`` is its name in messages (default: ``path``).

    Raises ConfigError when the file cannot be read or parsed; problems with single values
    (a duplicate key, a Python tag) are returned in ``Document.problems``.
    """
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
    return Document(data, locator, problems, path, path.resolve().parent)


