"""Activation functions on ``nncli.autodiff`` tensors, registered under "activations".

Each is a composition of autodiff ops (no derivative code of its own), so gradients of any
order and traced Functions work. Two choices differ between libraries:

- ``gelu`` is the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``
  (the engine has no ``erf``; the two differ by less than 1e-3 everywhere).
- ``leaky_relu`` uses a negative slope of 0.2, like Keras 3 (tf.keras 2 used 0.3).

    >>> get("relu")(ad.Tensor([-1.0, 2.0])).numpy()
    array([0., 2.], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import nncli.autodiff as ad
from nncli.autodiff import Tensor
from nncli.nn.registry import get as _registry_get
from nncli.nn.registry import register

Activation = Callable[[Tensor], Tensor]
_GELU_C = math.sqrt(2.0 / math.pi)


@register("activations", aliases=("identity",))
def linear(x: Tensor) -> Tensor:
    """The identity."""
    return x


@register("activations")
def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``."""
    return ad.relu(x)


@register("activations")
def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    return ad.sigmoid(x)


@register("activations")
def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return ad.tanh(x)


@register("activations")
def softmax(x: Tensor) -> Tensor:
    """Normalised exponentials over the last axis."""
    return ad.softmax(x, axis=-1)


@register("activations")
def softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))``, computed without overflow."""
    return ad.softplus(x)


@register("activations")
def gelu(x: Tensor) -> Tensor:
    """Gaussian error linear unit, tanh approximation."""
    inner = (x + 0.044715 * (x * x * x)) * _GELU_C
    return 0.5 * x * (1.0 + ad.tanh(inner))


@register("activations")
def elu(x: Tensor) -> Tensor:
    """``x`` for ``x > 0``, else ``exp(x) - 1`` (alpha 1)."""
    # relu(x) + exp(min(x, 0)) - 1: no overflow, and no value-dependent condition that a
    # traced Function would freeze at trace time (as it would an ad.where(x > 0, ...)).
    return ad.relu(x) + (ad.exp(ad.minimum(x, 0.0)) - 1.0)


@register("activations")
def leaky_relu(x: Tensor) -> Tensor:
    """``x`` for ``x > 0``, else ``0.2 x``."""
    return ad.relu(x) - 0.2 * ad.relu(-x)  # no ad.where: see elu


@register("activations", aliases=("silu",))
def swish(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (also called SiLU)."""
    return x * ad.sigmoid(x)


def get(identifier: str | Activation | None) -> Activation:
    """The activation called ``identifier``; ``None`` gives ``linear``; a callable is returned as is.

    Example:
        >>> get(None) is linear, get("swish") is swish
        (True, True)
    """
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"an activation is a name, a callable or None, found {type(identifier).__name__}")
    return _registry_get("activations", identifier)
