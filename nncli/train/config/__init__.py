"""Config files: read YAML with marks -> compose -> override -> interpolate -> plugins -> validate -> Config.

    cfg = load_config("configs/quickstart.yaml", overrides=["train.epochs=5"])
    cfg.data.batch_size, cfg.train.epochs, cfg.model["layers"][0], cfg.seed

The steps live in one module each and run in :mod:`~nncli.train.config.pipeline`; the fixed
sections and their defaults in :mod:`~nncli.train.config.schema`. ``explain_config`` (what
``nncli config`` prints) tells where each resolved value came from.
"""

from nncli.train.config.explain import Entry, explain_config, schema_rows
from nncli.train.config.pipeline import config_from_dict, listed_plugins, load_config
from nncli.train.config.result import Config
from nncli.train.config.schema import BUILTIN_DATASETS, DataConfig, EarlyStoppingConfig, TrainConfig

__all__ = ["Config", "DataConfig", "TrainConfig", "EarlyStoppingConfig", "load_config", "config_from_dict", "listed_plugins",
           "explain_config", "schema_rows", "Entry", "BUILTIN_DATASETS"]
