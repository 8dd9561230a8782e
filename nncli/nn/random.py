"""The library's global random generator: initializers and Dropout draw from it.

There is exactly one ``np.random.Generator`` object for the whole process; ``seed`` and
``set_state`` change its state in place, so a reference taken earlier (a Dropout op replayed
by a traced Function) keeps drawing from the current stream. Its state is a JSON-safe dict,
which the trainer stores in checkpoints for bit-exact resume.

    >>> from nncli.nn import random
    >>> random.seed(0); a = random.generator().random()
    >>> random.seed(0); a == random.generator().random()
    True
"""

from __future__ import annotations

import copy

import numpy as np

_GENERATOR = np.random.Generator(np.random.PCG64())  # fresh OS entropy until seed() is called


def seed(value: int | None) -> None:
    """Reset the global generator from ``value`` (``None``: fresh entropy from the OS).

    Example:
        >>> nncli.nn.random.seed(42)
    """
    _GENERATOR.bit_generator.state = np.random.PCG64(value).state


def generator() -> np.random.Generator:
    """The global generator (always the same object).

    Example:
        >>> mask = nncli.nn.random.generator().random((2, 3), dtype=np.float32)
    """
    return _GENERATOR


def get_state() -> dict:
    """A deep copy of the generator's state: plain dicts, strings and ints (JSON-serialisable).

    Example:
        >>> state = get_state(); x = generator().random(); set_state(state)   # replays x
    """
    return copy.deepcopy(_GENERATOR.bit_generator.state)


def set_state(state: dict) -> None:
    """Restore a state returned by :func:`get_state`.

    Raises:
        ValueError: the dict is not a PCG64 state.
    """
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        found = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"expected a PCG64 generator state dict, found {found!r}")
    _GENERATOR.bit_generator.state = copy.deepcopy(state)


def resolve(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """The generator to draw from: the global one for ``None``, a new seeded one for an int,
    or ``rng`` itself when it is already a Generator.

    Example:
        >>> resolve(None) is generator(), resolve(3).random() == resolve(3).random()
        (True, True)
    """
    if rng is None:
        return _GENERATOR
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"expected None, an int seed or a numpy Generator, found {type(rng).__name__}")
