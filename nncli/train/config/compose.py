"""Step 2 of the config pipeline: ``base: other.yaml`` files merged under the config.

    # experiment.yaml
    base: common.yaml            # or a list: [common.yaml, digits.yaml], later ones winning
    optimizer: {type: Adam, learning_rate: 0.01}

Mappings merge key by key, this file winning; any other value (a list, a scalar) replaces
the base's, as in OmegaConf and Hydra. Base files may have bases of their own. Every value
keeps the mark of the file that wrote it, so a problem in a base file names that file and line.
Relative paths written in a base file (``data.source``, plugin files) start from that file's
folder, as they do in the config itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nncli.errors import ConfigError
from nncli.train.config.marks import Document, Key, Locator, Problem, describe
from nncli.train.config.plugins import is_file_plugin
from nncli.train.config.reader import read_document
from nncli.train.config.schema import BUILTIN_DATASETS, PATH_KEYS

__all__ = ["compose", "merge", "rebase_paths"]

MAX_FILES = 32  # config files in one composition: bases of bases included
BASE = "base"


def compose(doc: Document) -> Document:
    """The document with its ``base:`` files read and merged under it (``base`` itself removed)."""
    return _compose(doc, [doc.path.resolve()] if doc.path is not None else [], [1])


def _compose(doc: Document, chain: list[Path], count: list[int]) -> Document:
    data = doc.data
    if not isinstance(data, dict) or BASE not in data:
        return doc
    entry = data.pop(BASE)
    names = [(entry, (BASE,))] if isinstance(entry, str) else [
        (name, (BASE, i)) for i, name in enumerate(entry)] if isinstance(entry, list) else []
    problems = list(doc.problems)
    if not names and entry is not None:
        problems.append(Problem(doc.locator.at((BASE,)), (BASE,),
                                f"expected a config file name or a list of them, found {describe(entry)}"))
    merged: Document | None = None
    failed = doc.base_failed
    for name, where in names:
        base = _read_base(doc, name, where, chain, count, problems)
        failed = failed or base is None or base.base_failed
        if base is not None:
            merged = base if merged is None else merge(merged, base)
    doc = Document(data, doc.locator, problems, doc.path, doc.base_dir, failed)
    if merged is None:
        return doc
    out = merge(merged, doc)
    out.problems, out.base_failed = problems, failed
    return out


def _read_base(doc: Document, name: Any, where: Key, chain: list[Path], count: list[int],
               problems: list[Problem]) -> Document | None:
    mark = doc.locator.at(where)
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(mark, where, f"expected a config file name, found {describe(name)}"))
        return None
    folder = doc.path.parent if doc.path is not None else doc.base_dir
    path = Path(os.path.normpath(folder / Path(name).expanduser()))
    if path.resolve() in chain:
        cycle = " -> ".join(p.name for p in [*chain[chain.index(path.resolve()):], path.resolve()])
        problems.append(Problem(mark, where, f"expected a base file that does not include itself, found a cycle: "
                                             f"{cycle}"))
        return None
    count[0] += 1
    if count[0] > MAX_FILES:
        problems.append(Problem(mark, where, f"expected at most {MAX_FILES} config files in one config "
                                             "(bases of bases included), found more"))
        return None
    try:
        base = read_document(path)
    except ConfigError as err:
        if getattr(err, "problems", None):  # a syntax error inside the base file: it names that file
            problems.extend(err.problems)
        else:  # the file itself is missing or unreadable: say so where it is named
            problems.append(Problem(mark, where, str(err).removeprefix(f"{path}: ") + f" ({path})"))
        return None
    if not isinstance(base.data, dict):
        problems.append(Problem(mark, where, f"expected a base file holding a mapping, found {describe(base.data)} "
                                             f"in {path}"))
        return None
    base = _compose(base, [*chain, path.resolve()], count)
    problems.extend(base.problems)
    rebase_paths(base.data, path.resolve().parent, doc.base_dir)
    return base


def rebase_paths(data: Any, written_in: Path, used_from: Path, only=None) -> None:
    """Relative file paths (``PATH_KEYS``, plugin files) written from ``written_in``, made to start
    from ``used_from`` instead; ``only(path)`` picks which values to move (default: all)."""
    if written_in == used_from or not isinstance(data, dict):
        return

    def move(path: Key, value: Any, is_path) -> Any:
        if not (isinstance(value, str) and value.strip() and is_path(value)) or (only and not only(path)):
            return value
        file = Path(value).expanduser()
        return value if file.is_absolute() else os.path.relpath(written_in / file, used_from)

    for section, key in PATH_KEYS:
        part = data.get(section)
        if isinstance(part, dict) and key in part:
            part[key] = move((section, key), part[key], lambda v: not (key == "source" and v in BUILTIN_DATASETS))
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        data["plugins"] = [move(("plugins", i), p, lambda v: is_file_plugin(v, written_in))
                           for i, p in enumerate(plugins)]


def merge(base: Document, over: Document) -> Document:
    """``over`` merged onto ``base``: mappings key by key, anything else replaced; marks follow the values.

    Example: ``merge(common, experiment).data  # common's keys, experiment's where both have one``
    """
    locator = Locator(over.locator.source, overrides=list(over.locator.overrides))
    data = _merge(base.data, base.locator, over.data, over.locator, (), locator)
    return Document(data, locator, [], over.path, over.base_dir)


def _merge(base: Any, bloc: Locator, over: Any, oloc: Locator, path: Key, out: Locator) -> Any:
    if not (isinstance(base, dict) and isinstance(over, dict)):
        out.copy_subtree(oloc, over, path)
        return over
    merged = {}
    for key, value in base.items():
        if key in over:
            merged[key] = _merge(value, bloc, over[key], oloc, path + (key,), out)
        else:
            merged[key] = value
            out.copy_subtree(bloc, value, path + (key,))
    for key, value in over.items():
        if key not in base:
            merged[key] = value
            out.copy_subtree(oloc, value, path + (key,))
    for marks, theirs, ours in ((out.values, bloc.values, oloc.values), (out.keys, bloc.keys, oloc.keys)):
        if path in ours or path in theirs:
            marks[path] = ours.get(path, theirs.get(path))
    return merged
