"""Core layers: Dense, Activation, Dropout, Flatten, Reshape.

    >>> layer = Dense(3, activation="relu"); layer(np.ones((2, 4), np.float32)).shape
    (2, 3)
"""

from __future__ import annotations

import math

import numpy as np

import nncli.autodiff as ad
from nncli.nn import activations, initializers
from nncli.nn import random as nn_random
from nncli.nn.module import Layer
from nncli.nn.registry import register


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive integer, found {value!r}")
    return int(value)


def config_name(value):
    """A config-safe form of an activation/initializer argument: its registered name if callable."""
    return getattr(value, "_registry_name", value) if callable(value) else value


@register("layers")
class Dense(Layer):
    """A fully connected layer: ``activation(inputs @ kernel + bias)``.

    Weights: ``kernel (in, units)``, ``bias (units,)``. Inputs of more than two axes are
    multiplied along the last one.

    Args:
        units: the number of outputs.
        activation: a registered activation name (``relu``, ``softmax``, ...); None for linear.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: registered initializer names.

    Example:
        >>> Dense(10, activation="relu")(np.ones((32, 64), np.float32)).shape
        (32, 10)
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros", *,
                 name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self.units = _positive_int(units, "Dense units")
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._activation = activations.get(activation)
        initializers.get(kernel_initializer), initializers.get(bias_initializer)  # fail early on a typo

    def build(self, input_shape) -> None:
        if len(input_shape) < 1:
            raise ValueError(f"{self.name}: Dense needs inputs with a feature axis, found shape {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)

    def call(self, inputs, training: bool = False):
        y = ad.matmul(inputs, self.kernel)  # (..., in) @ (in, units) -> (..., units)
        if self.use_bias:
            y = y + self.bias
        return self._activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {"units": self.units, "activation": config_name(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": config_name(self.kernel_initializer),
                "bias_initializer": config_name(self.bias_initializer), **super().get_config()}


@register("layers")
class Activation(Layer):
    """Apply an activation function.

    Args:
        activation: a registered activation name.

    Example:
        >>> Activation("tanh")(np.zeros((1, 3), np.float32)).numpy()
        array([[0., 0., 0.]], dtype=float32)
    """

    def __init__(self, activation: str, *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self.activation = activation
        self._activation = activations.get(activation)

    def call(self, inputs, training: bool = False):
        return self._activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"activation": config_name(self.activation), **super().get_config()}


class DropoutMask(ad.Primitive):
    """The random part of inverted dropout: a mask of ``x``'s shape holding 0 with probability
    ``rate`` and ``1 / (1 - rate)`` elsewhere; attrs are ``(rate, generator)``.

    Only the mask is a primitive: the layer multiplies it in with an ordinary ``mul``, whose
    backward reads the mask as a graph value. Being ``stateful``, a traced Function draws a
    fresh mask on every call and its replayed backward uses that same fresh mask.
    """

    stateful = True
    differentiable = False  # the mask does not depend on x's values

    @staticmethod
    def forward(attrs, x):
        rate, rng = attrs
        draw = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        mask = (rng.random(x.shape, dtype=draw) >= rate).astype(x.dtype)
        mask *= 1.0 / (1.0 - rate)
        return mask, None


@register("layers")
class Dropout(Layer):
    """Randomly zero inputs while training (inverted dropout); the identity at inference.

    Args:
        rate: the probability of dropping each element, in ``[0, 1)``.
        seed: seed of the layer's own generator; None draws from the global
            ``nncli.nn.random`` generator (whose state checkpoints save and restore).

    Example:
        >>> Dropout(0.5)(np.ones((2, 4), np.float32), training=True).numpy()   # zeros and 2.0s
    """

    def __init__(self, rate: float, seed: int | None = None, *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1), found {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = nn_random.generator() if seed is None else np.random.default_rng(seed)

    def call(self, inputs, training: bool = False):
        if not training or self.rate == 0:
            return inputs
        return inputs * ad.apply(DropoutMask, (inputs,), (self.rate, self._rng))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed, **super().get_config()}


@register("layers")
class Flatten(Layer):
    """Flatten every axis but the batch axis: ``(batch, ...) -> (batch, prod(...))``.

    Example:
        >>> Flatten()(np.zeros((2, 3, 4), np.float32)).shape
        (2, 12)
    """

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)

    def call(self, inputs, training: bool = False):
        return ad.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)


@register("layers")
class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1).

    Args:
        target_shape: the new shape without the batch axis.

    Example:
        >>> Reshape([3, 4])(np.zeros((2, 12), np.float32)).shape
        (2, 3, 4)
    """

    def __init__(self, target_shape: tuple[int, ...], *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        shape = tuple(int(n) for n in target_shape)
        if sum(n == -1 for n in shape) > 1 or any(n < 1 and n != -1 for n in shape):
            raise ValueError(f"Reshape target_shape takes positive sizes and at most one -1, found {list(shape)}")
        self.target_shape = shape

    def call(self, inputs, training: bool = False):
        return ad.reshape(inputs, (inputs.shape[0], *self.compute_output_shape(inputs.shape[1:])))

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(n for n in self.target_shape if n != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self.name}: cannot reshape {tuple(input_shape)} into {list(self.target_shape)}")
            return tuple(size // known if n == -1 else n for n in self.target_shape)
        if size != known:
            raise ValueError(f"{self.name}: cannot reshape {tuple(input_shape)} ({size} values) "
                             f"into {list(self.target_shape)} ({known} values)")
        return self.target_shape

    def get_config(self) -> dict:
        return {"target_shape": list(self.target_shape), **super().get_config()}
