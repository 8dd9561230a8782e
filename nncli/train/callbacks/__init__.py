"""Callbacks: the hooks a run is steered and watched through, each with a state saved in checkpoints.

Built-ins, configured under ``train:`` (``early_stopping``, ``reduce_lr_on_plateau``,
``checkpoint``); registered ones (``@nncli.nn.register("callbacks")``, from a plugin) are listed
under ``train.callbacks``.
"""

from nncli.train.callbacks.base import HOOKS, Callback
from nncli.train.callbacks.checkpoints import PeriodicCheckpoint, epoch_checkpoint_name
from nncli.train.callbacks.early_stopping import EarlyStopping
from nncli.train.callbacks.monitor import Monitor
from nncli.train.callbacks.reduce_lr import ReduceLROnPlateau

__all__ = ["Callback", "HOOKS", "EarlyStopping", "ReduceLROnPlateau", "PeriodicCheckpoint", "Monitor",
           "epoch_checkpoint_name"]
