"""Loading a config, as one pipeline of named steps.

    read (YAML with marks) -> compose (base: files) -> override (--set) -> interpolate (${...})
        -> import plugins (only when asked) -> validate -> Config

Each step takes the :class:`~nncli.train.config.marks.Document` the one before left: plain data,
a locator with the file, line and column of every value, and the problems found so far. Steps
that find problems keep going, so that one error lists everything wrong; the validate step
raises it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

from nncli.train.config.compose import compose, rebase_paths
from nncli.train.config.interpolate import interpolate
from nncli.train.config.marks import Document, Locator
from nncli.train.config.overrides import apply_overrides
from nncli.train.config.plugins import import_plugins as import_plugin_files
from nncli.train.config.reader import read_document
from nncli.train.config.result import Config
from nncli.train.config.validate import validate

__all__ = ["load_config", "config_from_dict", "resolve", "listed_plugins", "plugin_hint", "NOT_IMPORTED"]

NOT_IMPORTED = " (the config lists plugins, which were not imported here)"


def load_config(path: str | Path, overrides: Iterable[str] = (), import_plugins: bool = True) -> Config:
    """Read, compose, override, interpolate and validate a YAML config file.

    Args:
        path: the config file; relative data and plugin paths start from its folder.
        overrides: ``KEY=VALUE`` strings as given to ``--set``, applied in order.
        import_plugins: import the Python files and modules the config lists under ``plugins:``
            (the only step that runs code). Without it, components those plugins register are unknown.

    Raises:
        ConfigError: listing every problem, one per line, each with ``file:line:col``.

    Example: ``load_config("configs/iris.yaml", ["train.epochs=3"]).train.epochs  # 3``
    """
    doc = resolve(read_document(Path(path)), overrides, import_plugins=import_plugins)
    return validate(doc, plugin_hint(doc, import_plugins))


def config_from_dict(data: dict, source: str = "<dict>", overrides: Iterable[str] = (),
                     base_dir: str | Path | None = None, *, import_plugins: bool = True) -> Config:
    """Validate a config given as Python data (not modified); ``source`` names it in errors.

    Example: ``config_from_dict({"data": {"source": "xor"}, "model": {...}, "loss": "mse",
    "optimizer": "adam"}).data.batch_size  # 32``
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    doc = Document(copy.deepcopy(data), Locator(source), [], None, base.resolve())
    doc = resolve(doc, overrides, import_plugins=import_plugins)
    return validate(doc, plugin_hint(doc, import_plugins))


def resolve(doc: Document, overrides: Iterable[str] = (), *, import_plugins: bool = True) -> Document:
    """Every step before validation, in order; ``doc`` as read, the document ready to validate."""
    doc = compose(doc)
    if isinstance(doc.data, dict):
        doc.problems += apply_overrides(doc.data, doc.locator, overrides)
        # a path typed on the command line starts from the current folder, like any command-line path
        rebase_paths(doc.data, Path.cwd().resolve(), doc.base_dir, only=lambda p: doc.locator.override_at(p) is not None)
        interpolate(doc)
        if import_plugins:
            doc.problems += import_plugin_files(doc.data, doc.locator, doc.base_dir, doc.path)
    return doc


def listed_plugins(path: str | Path) -> list[str]:
    """The ``plugins:`` entries of a config (its ``base:`` files included), read, never imported or validated.

    What a caller asks before it decides whether to import them (a run folder's config.yaml may
    come from anyone).
    """
    doc = resolve(read_document(Path(path)), import_plugins=False)
    plugins = doc.data.get("plugins") if isinstance(doc.data, dict) else None
    return [str(p) for p in plugins] if isinstance(plugins, list) else []


def plugin_hint(doc: Document, imported: bool) -> str:
    """What "unknown name" messages add when the config lists plugins that were not imported."""
    plugins: Any = doc.data.get("plugins") if isinstance(doc.data, dict) else None
    return NOT_IMPORTED if not imported and plugins else ""
