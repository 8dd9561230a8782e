"""What ``nncli layers`` shows: registry entries with their parameters and defaults."""

from __future__ import annotations

import inspect
import re

import nncli.train.callbacks  # noqa: F401 - registers the built-in callbacks
from nncli import nn  # noqa: F401 - importing nn fills the registries
from nncli.train import loggers  # noqa: F401 - and the loggers
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


_ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc):`~?([^`]+)`")
_SECTIONS = ("Args:", "Arguments:", "Returns:", "Raises:", "Example:", "Examples:", ">>>")


def plain_text(text: str) -> str:
    """Docstring text without reStructuredText markup: ``x`` -> x, :class:`~a.B` -> B, *x* -> x.

    Example: ``plain_text("Uses ``delta``, see :class:`~nncli.nn.losses.Huber`.")  # "Uses delta, see Huber."``
    """
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"(?<![\w*])\*\*([^*\n]+)\*\*(?![\w*])", r"\1", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*\n]*)\*(?![\w*])", r"\1", text)


def _paragraphs(obj) -> list[str]:
    """The description paragraphs of a docstring (before Args/Example), each joined into one line."""
    out = []
    for block in (inspect.getdoc(obj) or "").strip().split("\n\n"):
        if not block.strip() or block.lstrip().startswith(_SECTIONS):
            break
        out.append(plain_text(" ".join(line.strip() for line in block.splitlines())))
    return out


def _summary(obj) -> str:
    """The first paragraph, whole (a summary that wraps onto a second line is not cut mid-sentence)."""
    paragraphs = _paragraphs(obj)
    return paragraphs[0] if paragraphs else ""


def describe_entries(kind: str, name: str | None = None) -> list[dict]:
    """Entries of one registry as ``{name, aliases, summary, description, params: [{name, type, default}]}``.

    ``summary`` is the docstring's first paragraph and ``description`` the paragraphs after it (up
    to Args/Example), as plain text without reStructuredText markup.

    Args:
        kind: layers, losses, optimizers, schedules, activations, initializers, metrics or models.
        name: one entry (any accepted spelling), or None for all of them.
    """
    if kind not in registry.REGISTRY:
        raise NncliError(f"unknown kind '{kind}': expected one of {', '.join(registry.KINDS)}")
    table = registry.REGISTRY[kind]
    if name is not None:
        if registry.lookup(kind, name) is None:
            elsewhere = [k for k in registry.KINDS if k != kind and registry.lookup(k, name) is not None]
            if elsewhere:
                raise NncliError(f"'{name}' is not one of the {kind}: it is under {elsewhere[0]}; "
                                 f"see it with: nncli layers {name} --kind {elsewhere[0]}")
        objs = [registry.get(kind, name)]
    else:
        objs = [registry.get(kind, n) for n in registry.names(kind)]
    entries = []
    for obj in objs:
        canonical = getattr(obj, "_registry_name", obj.__name__)
        aliases = sorted((n for n, o in table.items() if o is obj and n != canonical),
                         key=lambda n: (n == registry.snake_case(canonical), len(n), n))  # short names first
        entries.append({"name": canonical, "aliases": aliases, "summary": _summary(obj),
                        "description": _paragraphs(obj)[1:], "params": _params(obj)})
    return entries
