"""Learning-rate schedules at documented steps, validation and config round trips."""

import math

import numpy as np
import pytest

from nncli.nn import registry, schedules
from nncli.nn.schedules import CosineDecay, ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay


@pytest.mark.parametrize("schedule, step, expected", [
    (ExponentialDecay(0.1, 10, 0.5), 0, 0.1),
    (ExponentialDecay(0.1, 10, 0.5), 20, 0.025),
    (ExponentialDecay(0.1, 10, 0.5), 5, 0.1 * 0.5 ** 0.5),
    (ExponentialDecay(0.1, 10, 0.5, staircase=True), 19, 0.05),
    (ExponentialDecay(0.1, 10, 0.5, staircase=True), 20, 0.025),
    (InverseTimeDecay(0.1, 10, 1.0), 10, 0.05),
    (InverseTimeDecay(0.1, 10, 0.5), 15, 0.1 / 1.75),
    (InverseTimeDecay(0.1, 10, 0.5, staircase=True), 15, 0.1 / 1.5),
    (CosineDecay(0.1, 100), 0, 0.1),
    (CosineDecay(0.1, 100), 50, 0.05),
    (CosineDecay(0.1, 100), 25, 0.05 * (1 + math.cos(math.pi / 4))),
    (CosineDecay(0.1, 100), 100, 0.0),
    (CosineDecay(0.1, 100), 500, 0.0),                 # stays at the end value
    (CosineDecay(0.1, 100, alpha=0.1), 100, 0.01),
    (CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 5, 0.1),   # halfway up
    (CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 10, 0.2),  # top
    (CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 60, 0.1),  # halfway down
    (CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 999, 0.0),
    (PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]), 0, 0.1),
    (PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]), 100, 0.1),
    (PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]), 101, 0.01),
    (PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]), 200, 0.01),
    (PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001]), 201, 0.001),
])
def test_value_at_step(schedule, step, expected):
    value = schedule(step)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_exponential_decay_matches_formula_over_many_steps():
    steps = np.arange(0, 1000, 7)
    s = ExponentialDecay(0.3, 40, 0.9)
    np.testing.assert_allclose([s(int(k)) for k in steps], 0.3 * 0.9 ** (steps / 40), rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: ExponentialDecay(0.1, 0, 0.5),
    lambda: InverseTimeDecay(0.1, -1, 0.5),
    lambda: CosineDecay(0.1, 0),
    lambda: CosineDecay(0.1, 10, warmup_steps=-1),
    lambda: PiecewiseConstantDecay([10, 20], [0.1, 0.01]),
    lambda: PiecewiseConstantDecay([20, 10], [0.1, 0.01, 0.001]),
])
def test_bad_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_every_schedule_round_trips_through_its_config():
    examples = [ExponentialDecay(0.1, 10, 0.5, True), InverseTimeDecay(0.2, 5, 0.3),
                CosineDecay(0.1, 50, 0.05, 0.3, 5), PiecewiseConstantDecay([3, 7], [1.0, 0.5, 0.25])]
    assert {type(s).__name__ for s in examples} == set(registry.names("schedules"))
    for s in examples:
        clone = type(s)(**s.get_config())
        assert clone.get_config() == s.get_config()
        assert [clone(k) for k in range(0, 80, 3)] == [s(k) for k in range(0, 80, 3)]
        data = schedules.serialize(s)
        assert data["type"] == type(s).__name__
        rebuilt = schedules.deserialize(data)
        assert rebuilt.get_config() == s.get_config()
    snake = schedules.get({"type": "exponential_decay", "initial_learning_rate": 1.0,
                           "decay_steps": 2, "decay_rate": 0.5})
    assert snake(4) == 0.25
    with pytest.raises(ValueError, match="'type'"):
        schedules.deserialize({"decay_steps": 2})
