"""Learning-rate schedules: the learning rate as a function of the optimizer's step count.

Formulas follow Keras 3 (``keras.optimizers.schedules``); ``step`` is the optimizer's
``iterations`` before the update it is used for (0 for the first update). Values are
computed in double precision and returned as Python floats.

    >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
    0.025
"""

from __future__ import annotations

import math

from nncli.nn.registry import build as _registry_build
from nncli.nn.registry import register


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; ``get_config()`` gives the constructor arguments."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _positive(name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, not {value!r}")


class _Decay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: arguments, config and progress."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        _positive("decay_steps", decay_steps)
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)

    def _progress(self, step: int) -> float:
        """``step / decay_steps``, floored with ``staircase``."""
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


@register("schedules")
class ExponentialDecay(_Decay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps over which the rate is multiplied by ``decay_rate`` once.
        decay_rate: the factor per ``decay_steps``.
        staircase: decay in whole steps (``floor(step / decay_steps)``).

    Example:
        >>> ExponentialDecay(0.1, 10, 0.5, staircase=True)(19)
        0.05
    """

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


@register("schedules")
class InverseTimeDecay(_Decay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: the time unit of the decay.
        decay_rate: how fast the rate falls.
        staircase: use ``floor(step / decay_steps)``.

    Example:
        >>> InverseTimeDecay(0.1, 10, 1.0)(10)
        0.05
    """

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


@register("schedules")
class CosineDecay(LearningRateSchedule):
    """Cosine decay from the rate to ``alpha`` times it over ``decay_steps``, after an optional warmup.

    Without ``warmup_target`` the rate decays from ``initial_learning_rate``. With it, the rate
    rises linearly from ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``,
    then decays from ``warmup_target``. It stays at the final value after the decay.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: length of the cosine decay.
        alpha: the final rate as a fraction of the rate decayed from.
        warmup_target: the rate reached at the end of the warmup (None: no warmup).
        warmup_steps: length of the warmup.

    Example:
        >>> CosineDecay(0.1, 100)(50)
        0.05
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        _positive("decay_steps", decay_steps)
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, not {warmup_steps!r}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.alpha = float(alpha)
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = warmup_steps

    def _decay(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * fraction + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


@register("schedules")
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` up to and including ``boundaries[0]``, ``values[1]`` up to ``boundaries[1]``, ...

    Args:
        boundaries: increasing step numbers.
        values: one more value than boundaries.

    Example:
        >>> s = PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]); s(100), s(101), s(500)
        (0.1, 0.01, 0.001)
    """

    def __init__(self, boundaries: list[int], values: list[float]):
        boundaries, values = list(boundaries), [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values needs one more entry than boundaries: got {len(boundaries)} "
                             f"boundaries and {len(values)} values")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, not {boundaries}")
        self.boundaries = boundaries
        self.values = values

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{'type': name, **config}``: the form configs and optimizer configs use."""
    return {"type": type(schedule)._registry_name, **schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    """Build a schedule from ``{'type': name, **arguments}``.

    Example:
        >>> deserialize({"type": "ExponentialDecay", "initial_learning_rate": 0.1,
        ...              "decay_steps": 10, "decay_rate": 0.5})(10)
        0.05
    """
    if not isinstance(config, dict) or "type" not in config:
        found = f"keys {sorted(config)}" if isinstance(config, dict) else repr(config)
        raise ValueError(f"a schedule config needs a 'type' key, got {found}")
    return _registry_build("schedules", config)


def get(identifier) -> LearningRateSchedule:
    """A schedule from a schedule object or a ``{'type': ...}`` dict."""
    if isinstance(identifier, str):  # a schedule needs its parameters: a name alone is never one
        raise TypeError(f"expected a LearningRateSchedule or a config dict, not the name {identifier!r}")
    return _registry_build("schedules", identifier, LearningRateSchedule)
