"""Weight initializers: ``(shape, dtype, rng) -> np.ndarray``, registered under "initializers".

Formulas follow Keras. Fans come from the kernel shape: ``(in, out)`` for a matrix and, for a
convolution kernel ``(*receptive, in, out)``, both multiplied by the receptive field size.
The ``*_normal`` variance-scaling initializers draw from a normal truncated at two standard
deviations, rescaled (divided by 0.8796) so that the variance is still the intended one.
Every array is drawn directly in the requested dtype (no float64 temporaries) from ``rng``,
by default the global generator of :mod:`nncli.nn.random`.

    >>> w = get("he_normal")((64, 32), np.float32, np.random.default_rng(0)); w.dtype
    dtype('float32')
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nncli.nn import random
from nncli.nn.registry import get as _registry_get
from nncli.nn.registry import register

Initializer = Callable[[tuple, np.dtype, np.random.Generator], np.ndarray]
_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, counting the receptive field of conv kernels."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _draw_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)  # Generator's float dtypes


def _uniform(shape, dtype, rng, limit: float) -> np.ndarray:
    out = rng.random(shape, dtype=_draw_dtype(dtype))
    out *= 2 * limit
    out -= limit
    return out.astype(dtype, copy=False)


def _normal(shape, dtype, rng, stddev: float) -> np.ndarray:
    out = rng.standard_normal(shape, dtype=_draw_dtype(dtype))
    out *= stddev
    return out.astype(dtype, copy=False)


def _truncated_normal(shape, dtype, rng, stddev: float) -> np.ndarray:
    """Normal draws outside two standard deviations are redrawn (about 4.6% per round)."""
    out = rng.standard_normal(shape, dtype=_draw_dtype(dtype))
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()), dtype=out.dtype)
        bad = np.abs(out) > 2
    out *= stddev / _TRUNCATED_STD
    return out.astype(dtype, copy=False)


def _rng(rng) -> np.random.Generator:
    return random.resolve(rng)


@register("initializers")
def glorot_uniform(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Uniform in ``±sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""
    fan_in, fan_out = compute_fans(shape)
    return _uniform(shape, dtype, _rng(rng), math.sqrt(6.0 / (fan_in + fan_out)))


@register("initializers")
def glorot_normal(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Truncated normal with std ``sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = compute_fans(shape)
    return _truncated_normal(shape, dtype, _rng(rng), math.sqrt(2.0 / (fan_in + fan_out)))


@register("initializers")
def he_uniform(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Uniform in ``±sqrt(6 / fan_in)`` (He et al., for ReLU)."""
    fan_in, _ = compute_fans(shape)
    return _uniform(shape, dtype, _rng(rng), math.sqrt(6.0 / fan_in))


@register("initializers")
def he_normal(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Truncated normal with std ``sqrt(2 / fan_in)``."""
    fan_in, _ = compute_fans(shape)
    return _truncated_normal(shape, dtype, _rng(rng), math.sqrt(2.0 / fan_in))


@register("initializers")
def lecun_normal(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Truncated normal with std ``sqrt(1 / fan_in)`` (for selu-style nets)."""
    fan_in, _ = compute_fans(shape)
    return _truncated_normal(shape, dtype, _rng(rng), math.sqrt(1.0 / fan_in))


@register("initializers")
def orthogonal(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """A (semi-)orthogonal matrix: rows or columns orthonormal, over ``(prod(shape[:-1]), shape[-1])``."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs a shape of at least 2 dimensions, found {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = _rng(rng).standard_normal((max(rows, cols), min(rows, cols)))  # QR needs float64 accuracy
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # a uniform distribution over orthogonal matrices
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


@register("initializers", aliases=("normal",))
def random_normal(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Normal with mean 0 and std 0.05."""
    return _normal(shape, dtype, _rng(rng), 0.05)


@register("initializers", aliases=("uniform",))
def random_uniform(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """Uniform in ``[-0.05, 0.05)``."""
    return _uniform(shape, dtype, _rng(rng), 0.05)


@register("initializers")
def zeros(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """All zeros."""
    return np.zeros(shape, dtype=dtype)


@register("initializers")
def ones(shape, dtype=np.float32, rng=None) -> np.ndarray:
    """All ones."""
    return np.ones(shape, dtype=dtype)


def get(identifier: str | Initializer) -> Initializer:
    """The initializer called ``identifier`` (``"he_normal"``, ``"HeNormal"``), or the callable itself.

    Example:
        >>> get("zeros")((2,), np.float32, None)
        array([0., 0.], dtype=float32)
    """
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"an initializer is a name or a callable, found {type(identifier).__name__}")
    return _registry_get("initializers", identifier)
