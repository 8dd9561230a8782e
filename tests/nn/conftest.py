"""Shared helpers of the nn tests: a seeded RNG per test and a layer gradient check."""

from __future__ import annotations

import numpy as np
import pytest

from nncli import nn
from nncli.autodiff.gradcheck import check_gradients

MAX_CHECKS = 40  # central differences per array (random elements): keeps the generic test fast


@pytest.fixture(autouse=True)
def _seeded():
    nn.random.seed(0)


def check_layer_gradients(layer, x, *, training: bool, seed: int = 0,
                          atol: float = 1e-5, rtol: float = 1e-4, eps: float = 1e-6) -> dict[str, float]:
    """Compare the tape's gradients of ``sum(layer(x) * upstream)`` (random upstream) with
    float64 central differences, w.r.t. the floating inputs and every weight of ``layer``.

    ``x`` is an array or a list of arrays (several inputs). It is autodiff's ``check_gradients``
    (the one gradient check), with the layer's weights as its ``variables``. ``nn.random`` is
    re-seeded before every evaluation, so a Dropout layer draws the same mask each time.
    Returns ``{name: max abs error}``; asserts every checked element passes.
    """
    several = isinstance(x, list)
    inputs = x if several else [x]
    floats = [i for i, a in enumerate(inputs) if a.dtype.kind == "f"]
    layer(x, training=training)  # build

    def run(*values):
        nn.random.seed(seed)
        return layer(list(values) if several else values[0], training=training)

    result = check_gradients(run, inputs, wrt=floats, names=[f"input{i}" for i in floats],
                             variables=dict(layer.named_variables()), seed=seed, atol=atol, rtol=rtol, eps=eps,
                             max_checks=MAX_CHECKS)
    assert result.ok, f"{type(layer).__name__} (training={training}):\n{result}"
    return {c.name: c.error for c in result.inputs}


@pytest.fixture
def gradcheck_layer():
    """:func:`check_layer_gradients` as a fixture (test modules need not import conftest)."""
    return check_layer_gradients
