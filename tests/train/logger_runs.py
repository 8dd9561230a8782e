"""The tiny run the logger tests train, and a stop at a chosen batch (as Ctrl-C asks for one)."""

from nncli.train.loop import Callback

TINY = """\
seed: 3
data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 16}
model:
  input_shape: [4]
  layers: [{type: Dense, units: 8, activation: relu}, {type: Dense, units: 3}]
loss: {type: SparseCategoricalCrossentropy, from_logits: true}
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: EPOCHS, metrics: [accuracy], loggers: LOGGERS}
"""


def config(tmp_path, epochs=3, loggers="[tensorboard]"):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("EPOCHS", str(epochs)).replace("LOGGERS", loggers))
    return path


class StopAt(Callback):
    """Asks the trainer to stop after ``batch`` batches of ``epoch`` (as Ctrl-C does)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, trainer, epoch, batch, logs):
        if (epoch, batch) == (self.epoch, self.batch):
            trainer.request_stop()
