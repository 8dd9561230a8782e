"""Loggers: trainer callbacks that send a run to another tool (``train.loggers: [tensorboard, mlflow]``).

Importing this package registers them; the tools' own packages are imported only when a logger
opens, so a config naming none costs nothing. A logger whose package is missing is refused when
the config is validated, with the pip command that installs it.
"""

from __future__ import annotations

from nncli.nn import registry
from nncli.train.loggers.base import Logger, LoggerRun, flat_config
from nncli.train.loggers.mlflow import MLflowLogger
from nncli.train.loggers.tensorboard import TensorBoardLogger

__all__ = ["Logger", "LoggerRun", "MLflowLogger", "TensorBoardLogger", "flat_config", "make_loggers",
           "missing_package"]


def make_loggers(specs: list[dict]) -> list[Logger]:
    """The loggers of a validated ``train.loggers``: each ``{"type": name, **params}``."""
    out = []
    for spec in specs:
        params = {key: value for key, value in spec.items() if key != "type"}
        out.append(registry.get("loggers", spec["type"])(**params))
    return out


def missing_package(name: str) -> str | None:
    """Why the logger called ``name`` cannot run here (its package is not installed), else None."""
    cls = registry.lookup("loggers", name)
    gone = cls.missing() if cls is not None and hasattr(cls, "missing") else None
    if gone is None:
        return None
    module, extra = gone
    return (f"expected the {module} package for the {cls._registry_name} logger, found it not installed; "
            f"install it with: pip install 'nncli[{extra}]' (or pip install {module})")
