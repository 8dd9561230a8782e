"""Registries of named components: one plain dict per kind, filled by a decorator.

    @register("layers")
    class Dense(Layer): ...

    get("layers", "Dense")   # or "dense"; unknown names raise with the closest match
    build("optimizers", {"type": "adam", "learning_rate": 0.01})   # the one way a component is made
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nncli.errors import NncliError, close_matches

KINDS = ("layers", "losses", "optimizers", "schedules", "initializers", "activations", "metrics", "models",
         "loggers", "callbacks")  # loggers: nncli.train.loggers (TensorBoard, MLflow) and plugins' own

REGISTRY: dict[str, dict[str, object]] = {kind: {} for kind in KINDS}


class UnknownNameError(NncliError, KeyError):
    """A name that no registry entry has."""

    def __init__(self, kind: str, name: str, suggestion: str | None, known: list[str]):
        self.kind, self.name, self.suggestion, self.known = kind, name, suggestion, known
        hint = f" Did you mean '{suggestion}'?" if suggestion else ""
        NncliError.__init__(self, f"unknown {kind[:-1]} '{name}'.{hint} Known: {', '.join(known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def snake_case(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, ``SGD`` -> ``sgd``."""
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def register(kind: str, name: str | None = None, aliases: tuple[str, ...] = ()):
    """Class or function decorator adding the object to ``REGISTRY[kind]`` under its name."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown registry kind {kind!r}; kinds: {', '.join(KINDS)}")

    def add(obj):
        table = REGISTRY[kind]
        for entry in (name or obj.__name__, *aliases):
            if entry in table and table[entry] is not obj:
                raise ValueError(f"{kind[:-1]} '{entry}' is already registered by {table[entry]!r}")
            table[entry] = obj
        obj._registry_name = name or obj.__name__
        return obj

    return add


def names(kind: str) -> list[str]:
    """The canonical names in one registry, sorted (aliases left out)."""
    table = REGISTRY[kind]
    return sorted({getattr(obj, "_registry_name", n) for n, obj in table.items()})


def lookup(kind: str, name: str):
    """The entry called ``name`` (class name, snake_case or any alias), or ``None``."""
    table = REGISTRY[kind]
    if name in table:
        return table[name]
    wanted = _key(name)
    for entry, obj in table.items():
        if _key(entry) == wanted:
            return obj
    return None


def closest(kind: str, name: str) -> str | None:
    """The known name nearest to ``name``, for "did you mean" hints."""
    candidates = {n: n for n in REGISTRY[kind]}
    candidates.update({snake_case(n): n for n in REGISTRY[kind]})
    match = close_matches(name, candidates)
    if not match:
        match = close_matches(_key(name), [_key(c) for c in candidates])
        if match:
            return next(v for c, v in candidates.items() if _key(c) == match[0])
        return None
    return candidates[match[0]]


def get(kind: str, name: str):
    """The entry called ``name``; raise :class:`UnknownNameError` listing what exists."""
    obj = lookup(kind, name)
    if obj is None:
        raise UnknownNameError(kind, name, closest(kind, name), names(kind))
    return obj


def build(kind: str, spec, instance_of: type | tuple | None = None, **defaults):
    """The component ``spec`` describes: a registered name (built with no arguments) or a mapping
    ``{"type": name, **arguments}``; an object of ``instance_of`` is returned as it is.

    The one component builder: ``losses.get``, ``optimizers.get``, ``schedules.get``,
    ``layer_from_config`` and the config builder all come here. ``defaults`` are arguments the
    spec may override.

    Example:
        >>> build("optimizers", {"type": "adam", "learning_rate": 0.01}).learning_rate
        0.01
    """
    if instance_of is not None and isinstance(spec, instance_of):
        return spec
    if isinstance(spec, str):
        return get(kind, spec)(**defaults)
    if isinstance(spec, Mapping):
        args = {k: v for k, v in spec.items() if k != "type"}
        name = spec.get("type")
        if not isinstance(name, str):
            raise ValueError(f"a {kind[:-1]} config needs a 'type' name, found keys {sorted(map(str, spec))}")
        return get(kind, name)(**{**defaults, **args})
    what = f", a {kind[:-1]} name or a {{'type': ...}} mapping" if instance_of is None else \
        f" a {kind[:-1]} name, a {{'type': ...}} mapping or a {getattr(instance_of, '__name__', 'component')}"
    raise TypeError(f"expected{what}, not {type(spec).__name__}".replace("expected,", "expected"))
