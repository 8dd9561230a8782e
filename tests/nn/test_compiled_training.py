"""Every registered layer, loss and optimizer: 5 compiled training steps against 5 eager ones.

Two identical set-ups start from the same weights; one runs its train step directly, the
other under ``ad.function``. In float32 every loss and every weight must agree bit for bit
(the compiled step runs the same numpy calls), also through dropout masks, batch statistics
and optimizer slots. Then an Embedding -> LSTM -> Dense config trains with ``nncli train``,
compiled by default.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from test_registry_all import LAYERS, sample
from typer.testing import CliRunner

import nncli.autodiff as ad
from nncli import nn
from nncli.cli import app
from nncli.nn.registry import REGISTRY

STEPS = 5


def twins(make):
    """Two set-ups from ``make()`` with the same weights and random state."""
    pair = []
    for _ in range(2):
        nn.random.seed(0)
        pair.append(make())
    return pair


def run_both(make, step_of, args):
    """Losses and final weights of ``STEPS`` eager and compiled steps; asserts bit-equality."""
    (eager_parts, fast_parts) = twins(make)
    eager, fast = step_of(*eager_parts), ad.function(step_of(*fast_parts))
    for k in range(STEPS):
        a, b = eager(*args(k)), fast(*args(k))
        assert np.array_equal(a.numpy(), b.numpy(), equal_nan=True), f"step {k}: eager {a} vs compiled {b}"
    for v, w in zip(eager_parts[0].variables, fast_parts[0].variables):
        assert np.array_equal(v.numpy(), w.numpy()), v.name
    assert fast.trace_count == 1
    return eager_parts


def layer_step(model, optimizer):
    def step(x, target):
        params = model.trainable_variables
        with ad.GradientTape() as tape:
            y = model(x, training=True)
            y = y[0] if isinstance(y, list | tuple) else y
            loss = ad.mean(ad.square(y - target))
        optimizer.update(params, tape.gradient(loss, params))
        return loss
    return step


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c._registry_name)
def test_every_layer_trains_the_same_compiled(cls):
    args, x = sample(cls, dtype=np.float32)
    shape = x[0].shape if isinstance(x, list) else x.shape
    int_input = cls._registry_name in ("Embedding",)

    def make():
        # a Dense in front (for float inputs) gives every layer something to train, weightless or not
        own_rng = {"seed": 3} if "seed" in inspect.signature(cls).parameters else {}  # the twins' own masks
        inner = cls(**args, **own_rng)
        layers = [inner] if int_input or isinstance(x, list) else [nn.layers.Dense(shape[-1]), inner]
        model = nn.Sequential(layers)
        model(x)  # build
        return model, nn.optimizers.Adam(learning_rate=0.05)

    probe = make()[0](x)
    probe = probe[0] if isinstance(probe, list | tuple) else probe
    rng = np.random.default_rng(1)
    targets = [rng.standard_normal(probe.shape).astype(np.float32) for _ in range(STEPS)]
    inputs = [x] * STEPS if int_input or isinstance(x, list) else [
        rng.standard_normal(shape).astype(np.float32) for _ in range(STEPS)]
    run_both(make, layer_step, lambda k: (inputs[k], targets[k]))


TRUES = {
    "sparse": lambda rng: rng.integers(0, 3, 8),
    "categorical": lambda rng: np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)],
    "binary": lambda rng: rng.integers(0, 2, (8, 3)).astype(np.float32),
    None: lambda rng: rng.standard_normal((8, 3)).astype(np.float32),
}
LOSSES = sorted({cls for cls in REGISTRY["losses"].values()}, key=lambda c: c.__name__)
# every loss, and the from_logits form of those that have one (the classification losses)
LOSS_CASES = [(cls, False) for cls in LOSSES] + [(cls, True) for cls in LOSSES if cls.label_kind is not None]


@pytest.mark.parametrize("cls, from_logits", LOSS_CASES,
                         ids=lambda v: v.__name__ if isinstance(v, type) else ("logits" if v else "probabilities"))
def test_every_loss_trains_the_same_compiled(cls, from_logits):
    loss = cls(from_logits=True) if from_logits else cls()
    probabilities = loss.label_kind in ("categorical", "sparse", "binary") and not from_logits
    activation = ("sigmoid" if loss.label_kind == "binary" else "softmax") if probabilities else None

    def make():
        model = nn.Sequential([nn.layers.Dense(3, activation=activation)], input_shape=[4])
        return model, nn.optimizers.Adam(learning_rate=0.05)

    def step_of(model, optimizer):
        def step(x, trues):
            with ad.GradientTape() as tape:
                value = loss(trues, model(x, training=True))
            optimizer.update(model.trainable_variables, tape.gradient(value, model.trainable_variables))
            return value
        return step

    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((8, 4)).astype(np.float32), TRUES[loss.label_kind](rng)) for _ in range(STEPS)]
    run_both(make, step_of, lambda k: batches[k])


OPTIMIZERS = sorted({cls for cls in REGISTRY["optimizers"].values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_steps_the_same_compiled(cls):
    def make():
        return nn.Sequential([nn.layers.Dense(3)], input_shape=[4]), cls(learning_rate=0.05)

    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32))
               for _ in range(STEPS)]
    run_both(make, layer_step, lambda k: batches[k])


def test_an_embedding_lstm_dense_config_trains_compiled_with_nncli_train(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, (96, 8))
    labels = (ids[:, :4].sum(axis=1) > ids[:, 4:].sum(axis=1)).astype(int)  # which half sums higher
    lines = [",".join(f"t{i}" for i in range(8)) + ",label"]
    lines += [",".join(map(str, row)) + f",{label}" for row, label in zip(ids, labels)]
    (tmp_path / "seq.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "seq.yaml").write_text(
        "seed: 0\n"
        "data: {source: seq.csv, normalize: none, validation_split: 0.25, batch_size: 16}\n"
        "model:\n  input_shape: [8]\n  layers:\n"
        "    - {type: Embedding, input_dim: 12, output_dim: 8}\n"
        "    - {type: LSTM, units: 16}\n"
        "    - {type: Dense, units: 2}\n"
        "loss: {type: SparseCategoricalCrossentropy, from_logits: true}\n"
        "optimizer: {type: Adam, learning_rate: 0.01}\n"
        "train: {epochs: 6, metrics: [accuracy]}\n")  # train.compile defaults to true
    result = CliRunner().invoke(app, ["train", str(tmp_path / "seq.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                      "--run-id", "seq", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "runs" / "seq" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("loss")]) for r in rows[1:]]
    assert len(losses) == 6 and losses[-1] < losses[0]
