"""A subclassed model trained with an explicit GradientTape loop (the Rindow chapter's example).

Two features, two classes: points above the diagonal are class 0, below it class 1. The model
is ``Dense(128, sigmoid) -> Dense(2)``, the loss softmax cross-entropy on logits, the optimizer
Adam; every step records the forward pass on a tape, takes the gradients of the loss with
respect to the trainable variables and hands them to the optimizer.

    python examples/custom_model.py              # writes custom_model_loss.png next to this file
    python examples/custom_model.py out/loss.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nncli.autodiff as ad
from nncli import nn
from nncli.data import NDArrayDataset


class TestModel(nn.Model):
    """Dense(128, sigmoid) followed by Dense(2) logits."""

    def __init__(self):
        super().__init__()
        self.dense1 = nn.layers.Dense(128, input_shape=(2,), activation="sigmoid")  # built at once, as in the chapter
        self.dense2 = nn.layers.Dense(2)

    def call(self, inputs, training=False):
        x = self.dense1(inputs)
        return self.dense2(x)


def train(epochs: int = 100, seed: int = 0, log=print) -> tuple[TestModel, list[float]]:
    """Train a TestModel on the six points; return it and the mean loss of every epoch."""
    nn.random.seed(seed)  # the weights' initial values
    x = np.array([[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 1])
    model = TestModel()
    loss_fn = nn.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = nn.optimizers.Adam()
    dataset = NDArrayDataset(x, y, batch_size=64, shuffle=False)

    history = []
    for epoch in range(epochs):
        total = 0.0
        for inputs, trues in dataset:
            with ad.GradientTape() as tape:
                predicts = model(inputs, training=True)
                loss = loss_fn(trues, predicts)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.update(model.trainable_variables, grads)
            total += float(loss)
        history.append(total / len(dataset))
        if epoch % 10 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1:3d}/{epochs}  loss {history[-1]:.4f}")
    return model, history


def plot(history: list[float], path: Path) -> None:
    """Save the loss curve as a PNG (matplotlib's Agg canvas: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(range(1, len(history) + 1), history, label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("TestModel: SparseCategoricalCrossentropy, Adam")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(out: str | Path | None = None, epochs: int = 100, log=print) -> dict:
    """Train, report the predictions, save the curve; return losses, predictions and PNG path."""
    model, history = train(epochs, log=log)
    x = np.array([[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]], dtype=np.float32)
    predictions = np.argmax(model(x).numpy(), axis=-1)
    log(f"predicted classes: {predictions.tolist()} (expected [0, 0, 0, 1, 1, 1])")
    path = Path(out) if out is not None else Path(__file__).with_name("custom_model_loss.png")
    plot(history, path)
    log(f"loss curve saved to {path}")
    return {"losses": history, "predictions": predictions, "png": path}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
