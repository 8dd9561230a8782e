"""What the config pipeline ends with: a validated :class:`Config`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from nncli.errors import ConfigError
from nncli.train.config.marks import Key, Locator, Problem, parse_key
from nncli.train.config.plugins import is_file_plugin
from nncli.train.config.schema import BUILTIN_DATASETS, PATH_KEYS, DataConfig, SweepConfig, TrainConfig

__all__ = ["Config"]


@dataclass(eq=False)
class Config:
    """A validated config. Components are ``{"type": CanonicalName, **params as written}``.

    Component parameters are kept as written (their defaults are not filled in); fixed
    sections have all their defaults. Two configs are equal when their ``to_dict()`` are.

    Example:
        >>> cfg = load_config("configs/quickstart.yaml")          # doctest: +SKIP
        >>> cfg.data.batch_size, cfg.model["layers"][0]["units"]  # doctest: +SKIP
        (64, 128)
    """

    seed: int
    data: DataConfig
    model: dict
    loss: dict
    optimizer: dict
    train: TrainConfig
    plugins: list[str]
    path: Path | None  # the config file, None for config_from_dict
    base_dir: Path  # folder that relative data and plugin paths start from
    locator: Locator = field(default=None, repr=False)  # where each value was written
    sweep: SweepConfig | None = None  # the ``sweep:`` section; not part of what a run trains (see to_dict)

    def error(self, path: Key | str, message: str) -> ConfigError:
        """A ConfigError about the value at ``path``, placed at its file line or ``--set``.

        Example: ``raise cfg.error("model.layers[2].units", "expected units > 0, found -1")``
        """
        path = parse_key(path) or () if isinstance(path, str) else tuple(path)
        problem = Problem((self.locator or Locator("<config>")).at(path), path, message)
        err = ConfigError(str(problem))
        err.problems = [problem]  # as load_config's errors have: a sweep places it at the trial's own value
        return err

    def resolve_path(self, name: str) -> Path:
        """A path from the config, made absolute against :attr:`base_dir`."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def to_dict(self, absolute_paths: bool = False) -> dict:
        """The resolved config as plain data for ``yaml.safe_dump``.

        Args:
            absolute_paths: write file paths (data files, plugin files) as absolute paths, so
                the dump can be loaded from another folder (such as a run folder).

        Example: ``yaml.safe_dump(cfg.to_dict(absolute_paths=True))``
        """
        data = self.data.model_dump()
        plugins = list(self.plugins)
        if absolute_paths:
            for _, key in PATH_KEYS:
                value = data.get(key)
                if value is not None and not (key == "source" and value in BUILTIN_DATASETS):
                    data[key] = str(self.resolve_path(value))
            plugins = [str(self.resolve_path(p)) if is_file_plugin(p, self.base_dir) else p for p in plugins]
        return {"seed": self.seed, "data": data, "model": copy.deepcopy(self.model),
                "loss": copy.deepcopy(self.loss), "optimizer": copy.deepcopy(self.optimizer),
                "train": self.train.model_dump(), "plugins": plugins}

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()
