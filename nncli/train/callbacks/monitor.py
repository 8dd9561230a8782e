"""The rule Keras's monitoring callbacks share: is a logged value an improvement on the best so far?

Keras (``keras.callbacks.MonitorCallback``): with mode ``min`` a value improves on ``best`` when
``value + min_delta < best``, with ``max`` when ``value - min_delta > best``; with ``auto`` the
direction is the monitored metric's own (``loss`` is minimised). No best yet: any value improves.
"""

from __future__ import annotations

import math

MODES = ("auto", "min", "max")


class Monitor:
    """One monitored value's direction and improvement test.

    Args:
        name: the logged value (``val_loss``, ``accuracy``, ``val_f1``...).
        mode: ``auto``, ``min`` or ``max``.
        min_delta: the smallest change that counts as an improvement (its sign is ignored).

    Example:
        >>> m = Monitor("val_loss", "auto", 0.1); m.resolve(maximize=False)
        >>> m.improves(0.85, 1.0), m.improves(0.95, 1.0)
        (True, False)
    """

    def __init__(self, name: str, mode: str = "auto", min_delta: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.name, self.mode, self.min_delta = name, mode, abs(float(min_delta))
        self.maximize = mode == "max"

    def resolve(self, maximize: bool) -> None:
        """Fix the direction; ``maximize`` is what the metric says (used for mode ``auto``)."""
        self.maximize = self.mode == "max" or (self.mode == "auto" and bool(maximize))

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.maximize:
            return value - self.min_delta > best
        return value + self.min_delta < best


def finite_or_none(value) -> float | None:
    """A state value as JSON can hold it: NaN and infinities (never a best of a real run) become None."""
    return None if value is None or not math.isfinite(value) else float(value)
