"""The one step of the config pipeline that runs user code: importing the listed plugins.

A plugin is a Python file (relative to the config) or an importable module whose import
registers components (``@nncli.nn.register("layers")``). Nothing else in nncli imports code
named by a config, and this step runs only when the caller asks for it
(``load_config(..., import_plugins=True)``, the default for ``nncli train``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path

from nncli.train.config.marks import Locator, Problem

__all__ = ["import_plugins", "is_file_plugin"]

_LOADED: dict[Path, object] = {}  # plugin files already imported, by resolved path
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_file_plugin(entry: str, base_dir: Path) -> bool:
    """A path (``x.py``, ``a/b``, or an existing file such as the config) rather than a module name."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry or (base_dir / entry).is_file()


def import_plugins(data: dict, locator: Locator, base_dir: Path, config_path: Path | None) -> list[Problem]:
    """Import each entry of ``data["plugins"]``; one problem per entry that cannot be imported.

    Example: ``import_plugins({"plugins": ["my_layers.py"]}, locator, Path("configs"), None)  # []``
    """
    plugins = data.get("plugins") if isinstance(data, dict) else None
    problems = []
    for i, entry in enumerate(plugins if isinstance(plugins, list) else []):
        if isinstance(entry, str):
            message = _import_one(entry, base_dir, config_path)
            if message:
                problems.append(Problem(locator.at(("plugins", i)), ("plugins", i), message))
    return problems


def _import_one(entry: str, base_dir: Path, config_path: Path | None) -> str | None:
    """Import one plugin file or module; a problem message if that fails."""
    if not is_file_plugin(entry, base_dir):
        if not _MODULE_NAME.fullmatch(entry):
            return f"expected a .py file or a module name, found {entry!r}"
        try:
            importlib.import_module(entry)
        except ModuleNotFoundError as err:
            if err.name and (entry == err.name or entry.startswith(err.name + ".")):
                return f"expected an importable module, found no module named {entry!r}"
            return f"expected a module that imports cleanly, found ModuleNotFoundError: {err}"
        except (Exception, SystemExit) as err:
            return f"expected a module that imports cleanly, found {type(err).__name__}: {err}"
        return None
    file = (base_dir / Path(entry).expanduser()).resolve()
    if config_path is not None and file == config_path.resolve():
        return "expected a Python plugin file, found this config file itself"
    if file.suffix != ".py":
        return f"expected a .py file, found {entry!r}"
    if not file.is_file():
        return f"expected an existing Python file, found no such file ({file})"
    if file in _LOADED:
        return None
    name = "nncli_plugin_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:
        sys.modules.pop(name, None)
        return f"expected a plugin that imports cleanly, found {type(err).__name__}: {err}"
    _LOADED[file] = module
    return None
