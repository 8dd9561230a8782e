"""Registry-driven checks of config components, for the validate step: parameters come from the class.

A component (a layer, loss, optimizer, schedule, model, ...) is written as a name or as
``{type: Name, **params}``. Its parameters are checked against the ``__init__`` signature of the
registered class: unknown and missing keys, values against the type hints (strict scalars), and
parameters that name other components (``activation``, ``*_initializer``, ``learning_rate``, or
a hint naming a registered base class) against their registry. Problems are collected, not raised.

    check = Checker(Locator("<dict>"), [])
    check.component("optimizers", {"type": "adam", "learning_rate": 0.01}, ("optimizer",))
    check.problems  # [] when everything fits
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Strict, TypeAdapter, ValidationError

from nncli.nn import registry
from nncli.train.config.marks import REQUIRED, Key, Locator, Problem, describe, unknown_key
from nncli.train.config.messages import validation_problems

__all__ = ["Checker", "unknown_name"]

_NOUNS = {"layers": "a layer", "losses": "a loss", "optimizers": "an optimizer", "schedules": "a learning-rate schedule",
          "initializers": "an initializer", "activations": "an activation", "metrics": "a metric", "models": "a model",
          "loggers": "a logger", "callbacks": "a callback"}
_NAMED_PARAMS = {"activation": "activations", "recurrent_activation": "activations", "learning_rate": "schedules"}
_STRICT = {int: Annotated[int, Strict()], float: Annotated[float, Strict()],  # float still takes ints
           bool: Annotated[bool, Strict()], str: Annotated[str, Strict()]}
_PLAIN = (int, float, bool, str, bytes, type(None), object, list, tuple, dict, set)


@dataclass(frozen=True)
class _Param:
    adapter: TypeAdapter | None  # validates a written value from the type hint; None: anything goes
    required: bool  # no default in the signature
    kind: str | None  # registry whose names or {type: ...} specs the parameter also takes
    many: bool  # a list of such components


def _strict(tp):
    """The type hint with scalars made strict (no "3" -> 3, no true -> 1); lists still fill tuples."""
    if isinstance(tp, type) and tp in _STRICT:
        return _STRICT[tp]
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return Annotated[(_strict(args[0]), *tp.__metadata__)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_strict(a) for a in args)]
    if origin in (list, tuple, dict, set) and args:
        return origin[tuple(a if a is ... else _strict(a) for a in args)]
    return tp


def _classes_in(tp, many: bool = False):
    """``(class, in_a_list)`` for the non-builtin classes a type hint names."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        yield from _classes_in(args[0], many)
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _classes_in(arg, many)
    elif origin in (list, tuple, collections.abc.Sequence):
        for arg in args:
            yield from _classes_in(arg, True)
    elif isinstance(tp, type) and tp not in _PLAIN:
        yield tp, many


def _param_kind(name: str, tp) -> tuple[str | None, bool]:
    """The registry a parameter names components of: by its name, else by a class in its hint."""
    if name in _NAMED_PARAMS:
        return _NAMED_PARAMS[name], False
    if name.endswith("_initializer"):
        return "initializers", False
    for cls, many in _classes_in(tp):
        for kind in registry.KINDS:
            if any(inspect.isclass(e) and issubclass(e, cls) for e in registry.REGISTRY[kind].values()):
                return kind, many
    return None, False


def _make_param(p: inspect.Parameter, hint) -> _Param:
    tp = hint if hint is not None else p.annotation
    adapter = None
    if tp is not p.empty and not isinstance(tp, str):
        for config in (ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False), None):
            try:
                adapter = TypeAdapter(_strict(tp), config=config)
                break
            except Exception:  # a hint pydantic cannot check: accept any value
                continue
    return _Param(adapter, p.default is p.empty, *_param_kind(p.name, tp))


def _init_parameters(obj):
    """``(parameter, type hint)`` for each config parameter of a class: its ``__init__``'s keyword
    parameters, then its parents' while each passes ``**kwargs`` on (nearest definition first)."""
    seen: set[str] = set()
    for klass in obj.__mro__ if inspect.isclass(obj) else ():
        init = vars(klass).get("__init__")
        if klass is object or init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]  # drop self
        except (TypeError, ValueError):
            break
        try:
            hints = typing.get_type_hints(init, include_extras=True)
        except Exception:  # a hint that names something not importable here
            hints = {}
        for p in parameters:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in seen:
                seen.add(p.name)
                yield p, hints.get(p.name)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break


@functools.lru_cache(maxsize=None)
def _signature(obj) -> dict[str, _Param]:
    """Config parameters of a registered class, checked from their signature and type hints."""
    return {p.name: _make_param(p, hint) for p, hint in _init_parameters(obj)}


def unknown_name(kind: str, name: str) -> str:
    """The message for a name not in the ``kind`` registry: a close match, else what is registered.

    Args:
        kind: a registry kind, e.g. ``"losses"``.
        name: the name as written.

    Example: ``unknown_name("losses", "mse_")  # "expected a loss name, found 'mse_' (did you mean 'mse'?)"``
    """
    noun, hint = _NOUNS[kind], registry.closest(kind, name)
    if hint:
        return f"expected {noun} name, found {name!r} (did you mean '{hint}'?)"
    known = registry.names(kind)
    listing = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") or "none are registered"
    return f"expected {noun} name ({listing}), found {name!r}"


class Checker:
    """Collects problems while validating sections and components.

    Args:
        locator: where each value of the config was written (for ``file:line:col``).
        problems: the list problems are appended to (kept as ``.problems``).
        plugin_hint: added to every "unknown name" message (say, that the plugins were not imported).

    Example: ``Checker(Locator("<dict>"), []).component("losses", "mse", ("loss",))  # {"type": "MeanSquaredError"}``
    """

    def __init__(self, locator: Locator, problems: list[Problem], plugin_hint: str = ""):
        self.locator, self.problems, self.plugin_hint = locator, problems, plugin_hint

    def written(self, path: Key) -> bool:
        """Whether the value at ``path`` was written (in a file or by ``--set``) rather than a default."""
        return path in self.locator.values or self.locator.override_at(path) is not None

    def add(self, path: Key, message: str, at: Key | None = None, key: bool = False) -> None:
        self.problems.append(Problem(self.locator.at(path if at is None else at, key=key), path, message))

    def section(self, model: type[BaseModel], value: dict, path: Key):
        """``model`` validated from ``value``, or ``None`` after recording its problems."""
        try:
            return model.model_validate(value)
        except ValidationError as err:
            self.problems += validation_problems(err, value, path, self.locator, model)
            return None

    def component(self, kind: str, spec: Any, path: Key, default_type: str | None = None) -> dict | None:
        """``{"type": CanonicalName, **params}`` from a name or a mapping; ``None`` if the type is bad."""
        noun = _NOUNS[kind]
        if isinstance(spec, str):
            name, params, type_path = spec, {}, path
        elif isinstance(spec, dict):
            params = {k: v for k, v in spec.items() if k != "type"}
            name, type_path = spec.get("type", default_type), path + ("type",)
            if name is None:
                self.add(path, f"expected a mapping with a 'type' key naming {noun}, found none")
                return None
        else:
            self.add(path, f"expected {noun} name or a mapping with 'type', found {describe(spec)}")
            return None
        if not isinstance(name, str):
            self.add(type_path, f"expected {noun} name, found {describe(name)}")
            return None
        obj = registry.lookup(kind, name)
        if obj is None:
            self.add(type_path, unknown_name(kind, name) + self.plugin_hint)
            return None
        canonical = getattr(obj, "_registry_name", name)
        signature, out = _signature(obj), {"type": canonical}
        for key, value in params.items():
            if key in signature:
                out[key] = self.param(signature[key], value, path + (key,))
            else:
                self.add(path + (key,), unknown_key(key, list(signature), canonical), key=True)
        for key, param in signature.items():
            if param.required and key not in params:
                self.add(path + (key,), REQUIRED, at=path, key=True)
        return out

    def param(self, param: _Param, value: Any, path: Key) -> Any:
        """One parameter value, checked against its registry or its type hint."""
        kind = param.kind
        if kind and (isinstance(value, dict) or (param.many and isinstance(value, list))
                     or (isinstance(value, str) and registry.REGISTRY[kind])):
            if isinstance(value, list):
                return [self.named(kind, item, path + (i,)) for i, item in enumerate(value)]
            return self.named(kind, value, path)
        if param.adapter is not None:
            try:
                param.adapter.validate_python(value)
            except ValidationError as err:
                self.problems += validation_problems(err, value, path, self.locator)
        return value

    def named(self, kind: str, value: Any, path: Key) -> Any:
        """A name (kept as written) or a nested component spec (normalised)."""
        if isinstance(value, str):
            if kind == "schedules":  # a schedule needs its parameters: a bare name is never enough
                self.add(path, "expected a number or a schedule mapping such as {type: ExponentialDecay, "
                               f"initial_learning_rate: 0.01, decay_steps: 1000, decay_rate: 0.9}}, found {value!r}")
            elif registry.lookup(kind, value) is None:
                self.add(path, unknown_name(kind, value) + self.plugin_hint)
            return value
        return self.component(kind, value, path)


_NOT_SHOWN = {"name", "trainable", "dtype"}  # every layer has them; a config rarely sets them


def param_defaults(kind: str, name: str) -> dict[str, Any]:
    """The parameters of a registered class that have a default, with that default (plain data only).

    Example: ``param_defaults("optimizers", "Adam")["beta_1"]  # 0.9``
    """
    out: dict[str, Any] = {}
    for p, _ in _init_parameters(registry.lookup(kind, name)):
        if (p.default is not p.empty and p.name not in _NOT_SHOWN
                and isinstance(p.default, (int, float, str, bool, type(None), tuple, list))):
            out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out
