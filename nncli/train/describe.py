"""What ``nncli layers`` shows: registry entries with their parameters and defaults."""

from __future__ import annotations

import inspect

from nncli import nn  # noqa: F401 - importing nn fills the registries
from nncli.errors import NncliError
from nncli.nn import registry

HIDDEN = {"self", "name", "trainable", "dtype"}  # common to every layer; not worth a column


def _type_name(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _params(obj) -> list[dict]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        if p.name in HIDDEN or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = "required" if p.default is inspect.Parameter.empty else repr(p.default)
        out.append({"name": p.name, "type": _type_name(p.annotation), "default": default})
    return out


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def describe_entries(kind: str, name: str | None = None) -> list[dict]:
    """Entries of one registry as ``{name, aliases, summary, params: [{name, type, default}]}``.

    Args:
        kind: layers, losses, optimizers, schedules, activations, initializers, metrics or models.
        name: one entry (any accepted spelling), or None for all of them.
    """
    if kind not in registry.REGISTRY:
        raise NncliError(f"unknown kind '{kind}': expected one of {', '.join(registry.KINDS)}")
    table = registry.REGISTRY[kind]
    if name is not None:
        objs = [registry.get(kind, name)]
    else:
        objs = [registry.get(kind, n) for n in registry.names(kind)]
    entries = []
    for obj in objs:
        canonical = getattr(obj, "_registry_name", obj.__name__)
        aliases = sorted(n for n, o in table.items() if o is obj and n != canonical)
        entries.append({"name": canonical, "aliases": aliases, "summary": _summary(obj), "params": _params(obj)})
    return entries
