"""Step 4 of the config pipeline: ``${a.b}`` and ``${env:VAR}`` interpolation, after ``--set``.

    train:
      epochs: ${env:EPOCHS,30}          # the variable read as a YAML value (an int here); 30 if unset
    data:
      batch_size: 64
    model:
      layers:
        - {type: Dense, units: ${data.batch_size}}

The grammar is OmegaConf's (as in Hydra): ``${key.path}``, ``${list[0].key}``, relative
``${.sibling}``, strings such as ``run_${seed}``, nested ``${env:A,${data.x}}``, ``\\${`` for a
literal ``${``; OmegaConf's own resolvers (``${oc.env:VAR}``) work too. OmegaConf knows nothing
of lines, so nncli resolves each interpolated value by its path and places any problem at the
line where that value is written. The fixed sections' defaults can be referred to even when the
file leaves them out (``${data.batch_size}`` is 32 then). OmegaConf is imported only when a
config holds an interpolation.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from nncli.errors import ConfigError, did_you_mean
from nncli.train.config.marks import Document, Key, Problem, format_path
from nncli.train.config.schema import SECTIONS

__all__ = ["interpolate"]

MARKER = "${"


def interpolate(doc: Document) -> None:
    """Replace every value that holds ``${...}`` by what it names, in place; problems go to ``doc``."""
    spots = [(path, value) for path, value in _leaves(doc.data, ()) if isinstance(value, str) and MARKER in value]
    if not spots:
        return
    from omegaconf import OmegaConf, grammar_parser
    from omegaconf.errors import OmegaConfBaseException

    unset: list[str] = []
    _register_env(OmegaConf, unset)
    lookup = _with_defaults(doc.data)
    for path, text in list(spots):  # a value that does not parse would stop OmegaConf.create: take it out
        try:
            grammar_parser.parse(text)
        except OmegaConfBaseException as err:
            _fail(doc, path, _message(err, text, [], doc.data))
            spots.remove((path, text))
            _put(lookup, path, "")
    root = OmegaConf.create(lookup, flags={"allow_objects": True})
    for path, text in spots:
        unset.clear()
        try:
            node = root
            for part in path:
                node = node[part]
            value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except OmegaConfBaseException as err:
            _fail(doc, path, _message(err, text, unset, doc.data))
            continue
        _put(doc.data, path, value)
        doc.locator.interpolated[path] = text


def _fail(doc: Document, path: Key, message: str) -> None:
    """A problem at ``path``; validation then says nothing more of the value left unresolved there."""
    doc.problems.append(Problem(doc.locator.at(path), path, message))
    doc.locator.unresolved.add(path)


def _leaves(data: Any, path: Key):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _leaves(value, path + (i,))
    else:
        yield path, data


def _with_defaults(data: Any) -> Any:
    """``data`` with the fixed sections' unwritten defaults filled in, for lookups only."""
    if not isinstance(data, dict):
        return data
    out = copy.deepcopy(data)
    for where, model in SECTIONS.items():
        if len(where) != 1 or not isinstance(out.get(where[0], {}), dict):
            continue
        section = dict(out.get(where[0]) or {})
        for name, info in model.model_fields.items():
            if name not in section and not info.is_required() and isinstance(info.default, (int, float, str, bool)):
                section[name] = info.default
        out[where[0]] = section
    for name in ("seed",):
        out.setdefault(name, None)
    return out


def _put(data: Any, path: Key, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


class _Unset(Exception):
    """An environment variable without a value and without a default."""


def _register_env(omegaconf, unset: list[str]) -> None:
    """``${env:VAR}`` and ``${env:VAR,default}``: the variable's text read as a YAML value."""
    from nncli.train.config.reader import parse_yaml

    def env(name: str, default: Any = _Unset) -> Any:
        if not isinstance(name, str) or name not in os.environ:
            if default is _Unset:
                unset.append(str(name))
                raise _Unset(name)
            return default
        text = os.environ[name]
        try:
            value, _, problems, empty = parse_yaml(text, f"${{env:{name}}}")
        except ConfigError:  # not YAML: the text as it is
            return text
        if problems or empty or (isinstance(value, (dict, list)) and not text.lstrip().startswith(("[", "{"))):
            return text
        return value

    omegaconf.register_resolver("env", env, replace=True, annotation_validation="off")


def _message(err, text: str, unset: list[str], data: Any) -> str:
    kind, first = type(err).__name__, str(err).splitlines()[0]
    shown = repr(text if len(text) <= 60 else text[:57] + "...")
    if unset:
        return (f"expected the environment variable {unset[0]} to be set, found it unset (give a default: "
                f"${{env:{unset[0]},VALUE}})")
    if kind == "InterpolationKeyError":
        key = (re.findall(r"'([^']*)'", first) or [text])[0]
        hint = did_you_mean(key, [format_path(p) for p in _all_paths(_with_defaults(data), ())])
        return f"expected {shown} to name a key of the config, found no key '{key}'{hint}"
    if kind == "GrammarParseError":
        return (f"expected an interpolation such as ${{data.batch_size}} or ${{env:VAR}}, found {shown} "
                f"({first})")
    if kind == "UnsupportedInterpolationType":
        name = first.rsplit(" ", 1)[-1]
        return f"expected ${{env:VAR}} or ${{key.path}}, found the unknown resolver '{name}' in {shown}" + (
            did_you_mean(name, ["env", "oc.env"]))
    if "Recursive" in first:
        return f"expected an interpolation that does not depend on itself, found a cycle through {shown}"
    if kind in ("MissingMandatoryValue", "InterpolationToMissingValueError"):
        return f"expected {shown} to name a value, found one that is '???' (missing)"
    return f"expected an interpolation that can be resolved, found {shown} ({first})"


def _all_paths(data: Any, path: Key):
    if path:
        yield path
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield from _all_paths(value, path + (key,))
