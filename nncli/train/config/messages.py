"""pydantic's validation errors in nncli's words, each placed at its file line.

    problems = validation_problems(err, value, ("data",), locator, DataConfig)

Each becomes one :class:`~nncli.train.config.marks.Problem`: "expected an integer, found 'many'",
"expected a key of data (...), found unknown key 'batchsize' (did you mean 'batch_size'?)".
"""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import BaseModel

from nncli.errors import did_you_mean
from nncli.train.config.marks import REQUIRED, Key, Locator, Problem, describe, format_path, unknown_key

__all__ = ["validation_problems"]

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
                                    REQUIRED))
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


