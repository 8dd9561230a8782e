"""Built-in data sets: two shipped real ones (digits, iris) and seeded 2-D toy problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nncli.data.loaders import is_number, is_positive_int, load_csv
from nncli.errors import DataError, did_you_mean

_FILES = Path(__file__).resolve().parent / "files"

# name -> (default samples, default noise: std of Gaussian noise added to each coordinate)
_GENERATED_DEFAULTS = {
    "xor": (400, 0.15),
    "moons": (400, 0.1),
    "spirals": (450, 0.05),
    "circles": (400, 0.05),
}

MAX_SAMPLES = 10_000_000  # most points of a generated set: more would only exhaust memory

BUILTIN_SETS = ("digits", "iris", "xor", "moons", "spirals", "circles", "toy")
"""Names accepted by :func:`load_builtin` (and by ``data.source`` in a config)."""

# The six points of the Rindow Neural Networks automatic-differentiation chapter.
_TOY_X = [[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]]
_TOY_Y = [0, 0, 0, 1, 1, 1]


def _shipped(name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y, _, _ = load_csv(_FILES / f"{name}.csv", target="label")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _per_class(samples: int, classes: int) -> np.ndarray:
    """Class labels for ``samples`` points, as equal as can be: 0,0,..,1,1,.. (int64)."""
    return np.arange(samples, dtype=np.int64) * classes // samples


def _xor(rng, samples, noise):
    # Points around the four corners of the unit square; label = x0 XOR x1 of the corner.
    corner = np.arange(samples) % 4
    bits = np.stack([corner // 2, corner % 2], axis=1)
    return bits + rng.normal(0.0, noise, (samples, 2)), (bits[:, 0] ^ bits[:, 1]).astype(np.int64)


def _moons(rng, samples, noise):
    # Two interleaving half circles of radius 1: the upper one (class 0), the lower one shifted.
    y = _per_class(samples, 2)
    t = rng.uniform(0.0, np.pi, samples)
    x = np.stack([np.cos(t), np.sin(t)], axis=1)
    x[y == 1] = np.array([1.0, 0.5]) - x[y == 1]
    return x + rng.normal(0.0, noise, (samples, 2)), y


def _spirals(rng, samples, noise):
    # Three arms (one class each) winding out from the centre over three quarters of a turn.
    y = _per_class(samples, 3)
    r = rng.uniform(0.05, 1.0, samples)
    angle = y * (2 * np.pi / 3) + r * 1.5 * np.pi
    x = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x + rng.normal(0.0, noise, (samples, 2)), y


def _circles(rng, samples, noise):
    # Two concentric circles: radius 1 (class 0) around radius 0.5 (class 1).
    y = _per_class(samples, 2)
    t = rng.uniform(0.0, 2 * np.pi, samples)
    radius = np.where(y == 0, 1.0, 0.5)[:, None]
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1) + rng.normal(0.0, noise, (samples, 2)), y


_GENERATORS = {"xor": _xor, "moons": _moons, "spirals": _spirals, "circles": _circles}


def load_builtin(name: str, *, seed: int = 0, samples: int | None = None, noise: float | None = None):
    """Load a built-in data set as ``(x float32 (n, features), y int64 (n,))``.

    ``digits`` (1797 8x8 images, 64 features of 0-16, 10 classes) and ``iris`` (150 x 4, 3 classes)
    are the shipped files; ``samples`` and ``noise`` do not apply to them, nor to ``toy`` (the six
    points of the Rindow chapter, 2 classes). The generated sets have 2 features and are the same
    for the same seed: ``xor`` (2 classes, 400 points), ``moons`` (2, 400), ``spirals`` (three
    arms, 3 classes, 450), ``circles`` (2, 400); ``noise`` is the standard deviation of Gaussian
    noise added to each coordinate (defaults 0.15, 0.1, 0.05, 0.05), ``samples`` the point count.

    Example:
        >>> x, y = load_builtin("moons", seed=1, samples=100)
        >>> x.shape, x.dtype, y.dtype
        ((100, 2), dtype('float32'), dtype('int64'))
    """
    if name not in BUILTIN_SETS:
        raise DataError(f"unknown built-in data set '{name}'.{did_you_mean(name, BUILTIN_SETS, sentence=True)} "
                        f"Built-in sets: {', '.join(BUILTIN_SETS)}")
    if name in ("digits", "iris"):
        return _shipped(name)
    if name == "toy":
        return np.array(_TOY_X, dtype=np.float32), np.array(_TOY_Y, dtype=np.int64)
    default_samples, default_noise = _GENERATED_DEFAULTS[name]
    samples = default_samples if samples is None else samples
    noise = default_noise if noise is None else noise
    if not is_positive_int(samples) or samples > MAX_SAMPLES:
        raise DataError(f"data.samples for '{name}' must be an integer from 1 to {MAX_SAMPLES:,}, found {samples!r}")
    if not is_number(noise) or not 0 <= noise < np.inf:
        raise DataError(f"data.noise for '{name}' must be a number >= 0, found {noise!r}")
    rng = np.random.default_rng(seed)
    x, y = _GENERATORS[name](rng, int(samples), float(noise))
    order = rng.permutation(int(samples))  # mix the classes, as a real file would be
    return x[order].astype(np.float32), y[order]
