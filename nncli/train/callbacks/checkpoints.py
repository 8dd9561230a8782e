"""``train.checkpoint: {every: N, keep: k}``: a checkpoint every N epochs, the k most recent kept.

Each is ``checkpoints/epoch-0007.safetensors``, a whole checkpoint like ``last`` (weights,
optimizer slots, history, trainer and callback state), written atomically through the run's
link-safe writers; after each one, the oldest beyond ``keep`` are deleted. ``best`` and ``last``
are kept besides, whatever ``keep`` says.
"""

from __future__ import annotations

from nncli.train.callbacks.base import Callback

__all__ = ["PeriodicCheckpoint", "epoch_checkpoint_name"]


def epoch_checkpoint_name(epoch: int) -> str:
    """``epoch-0007``: the name (without ``.safetensors``) of the periodic checkpoint of ``epoch``."""
    return f"epoch-{epoch:04d}"


class PeriodicCheckpoint(Callback):
    """Save ``checkpoints/epoch-NNNN.safetensors`` every ``every`` epochs; keep the ``keep`` newest.

    Args:
        every: the period in epochs.
        keep: how many of these files to keep (the most recent epochs); None keeps all.

    Example:
        >>> PeriodicCheckpoint(every=5, keep=2).every
        5
    """

    def __init__(self, every: int = 1, keep: int | None = None):
        if every < 1 or (keep is not None and keep < 1):
            raise ValueError("every and keep must be >= 1 (keep: null keeps all)")
        self.every, self.keep = int(every), keep
        self.run = None

    def get_config(self) -> dict:
        return {"every": self.every, "keep": self.keep}

    def set_run(self, run) -> None:
        self.run = run

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self.run is None or epoch % self.every:
            return
        self.run.save_checkpoint(epoch_checkpoint_name(epoch), trainer)
        if self.keep is not None:
            for epoch_done in self.run.epoch_checkpoints()[:-self.keep]:
                self.run.delete_checkpoint(epoch_checkpoint_name(epoch_done))
