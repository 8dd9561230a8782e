"""The callback interface: hooks the trainer calls, and a state that goes into the checkpoint.

    class CountBatches(Callback):
        def __init__(self):
            self.batches = 0
        def on_batch_end(self, trainer, epoch, batch, logs):
            self.batches += 1
        def get_state(self):
            return {"batches": self.batches}
        def set_state(self, state):
            self.batches = int(state["batches"])

A callback whose ``state_key`` is set (the run sets it for every callback it builds from the
config) has its ``get_state()`` written into every checkpoint, under the checkpoint's digest, and
given back to ``set_state()`` on resume, so that a resumed run continues as if never stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nncli.train.loop import Trainer

__all__ = ["Callback", "HOOKS"]

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_begin", "on_batch_end", "on_epoch_end", "on_interrupt",
         "on_train_end")


class Callback:
    """Hooks the trainer calls; subclass and override what you need.

    Epochs count from 1 and batches from 1 (the batch just finished). ``logs`` hold the values
    logged so far: ``loss``, metrics, and at an epoch's end ``val_*``, ``lr`` and ``time_s``.
    A callback steers training through the trainer: ``trainer.stop_training = True`` ends the
    run after this epoch (status ``early_stopped``), ``trainer.optimizer.learning_rate = x``
    changes the step size, ``trainer.warn(text)`` reports a problem without printing.

    State: ``get_state()`` returns plain data (numbers, strings, booleans, None, lists and
    mappings of them) and, optionally, snapshots of the model's weights as ``{path: array}``
    mappings (``model.named_variables()`` paths, the arrays shaped as the weights);
    ``set_state(state)`` gets the same back after a resume, before ``on_train_begin``. It should
    check what it is given and raise ``ValueError`` for a state it cannot use, changing nothing.
    A stop asked for by a callback is asked again on resume: set ``stop_training`` in
    ``on_train_begin`` if it still holds.

    Attributes:
        state_key: the name its state is saved under (None: not saved).
    """

    state_key: str | None = None

    def set_run(self, run: Any) -> None:
        """Called once before training with the run being written (``run.path``, ``run.run_id``,
        ``run.changes`` (what a resume changed), ``run.init_from`` (a warm start's source or None),
        ``run.save_checkpoint(name, trainer)``)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_begin(self, trainer: Trainer, epoch: int, batch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...
    def on_train_end(self, trainer: Trainer, status: str) -> None: ...

    def get_state(self) -> dict:
        """What a resume needs to continue exactly (see the class docstring)."""
        return {}

    def set_state(self, state: dict) -> None:
        """Take back what :meth:`get_state` returned in the run that is resumed."""

    def get_config(self) -> dict:
        """The constructor arguments (a registered callback round-trips through its config)."""
        return {}
