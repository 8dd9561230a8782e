"""Stand-in components for config tests, registered into a fresh, throw-away registry."""

from typing import Literal

import pytest

from nncli.nn import registry


class Layer:
    def __init__(self, name: str | None = None, trainable: bool = True):
        self.name, self.trainable = name, trainable


class Dense(Layer):
    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)


class Dropout(Layer):
    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)


class Conv2D(Layer):
    def __init__(self, filters: int, kernel_size: int | tuple[int, int],
                 padding: Literal["valid", "same"] = "valid", **kwargs):
        super().__init__(**kwargs)


class MaxPooling2D(Layer):
    def __init__(self, pool_size: int | tuple[int, int] = 2, **kwargs):
        super().__init__(**kwargs)


class SimpleRNN(Layer):
    def __init__(self, units: int, recurrent_activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)


class Bidirectional(Layer):
    def __init__(self, layer: Layer, merge_mode: str = "concat", **kwargs):
        super().__init__(**kwargs)


class MeanSquaredError:
    def __init__(self):
        pass


class SparseCategoricalCrossentropy:
    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits


class ExponentialDecay:
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float):
        pass


class Adam:
    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999):
        pass


class SGD:
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0):
        pass


class GlorotUniform:
    def __init__(self, seed: int | None = None):
        pass


class Accuracy:
    def __init__(self):
        pass


class Sequential:
    def __init__(self, layers: list[Layer], input_shape: list[int] | None = None):
        pass


class MLP:
    def __init__(self, hidden: list[int], outputs: int, activation: str = "relu"):
        pass


def relu(x):
    return x


def tanh(x):
    return x


COMPONENTS = [
    ("layers", Dense, ()), ("layers", Dropout, ()), ("layers", Conv2D, ()), ("layers", MaxPooling2D, ()),
    ("layers", SimpleRNN, ()), ("layers", Bidirectional, ()),
    ("losses", MeanSquaredError, ("mse",)), ("losses", SparseCategoricalCrossentropy, ()),
    ("schedules", ExponentialDecay, ()), ("optimizers", Adam, ()), ("optimizers", SGD, ()),
    ("initializers", GlorotUniform, ("glorot_uniform",)), ("metrics", Accuracy, ("accuracy",)),
    ("models", Sequential, ()), ("models", MLP, ()), ("activations", relu, ()), ("activations", tanh, ()),
]


@pytest.fixture
def fake_components(monkeypatch):
    """A fresh registry holding only the stand-ins above; the real one is restored afterwards.

    Use it with ``pytestmark = pytest.mark.usefixtures("fake_components")``.
    """
    monkeypatch.setattr(registry, "REGISTRY", {kind: {} for kind in registry.KINDS})
    for kind, obj, aliases in COMPONENTS:
        registry.register(kind, aliases=aliases)(obj)
    return registry.REGISTRY
