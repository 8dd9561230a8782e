"""Shared helpers of the nn tests: a seeded RNG per test and a layer gradient check."""

from __future__ import annotations

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff.gradcheck import numeric_gradient

MAX_CHECKS = 40  # central differences per array (random elements): keeps the generic test fast


@pytest.fixture(autouse=True)
def _seeded():
    nn.random.seed(0)


def check_layer_gradients(layer, x, *, training: bool, seed: int = 0,
                          atol: float = 1e-5, rtol: float = 1e-4, eps: float = 1e-6) -> dict[str, float]:
    """Compare the tape's gradients of ``sum(layer(x) * upstream)`` (random upstream) with
    float64 central differences, w.r.t. the floating inputs and every weight of ``layer``.

    ``x`` is an array or a list of arrays (several inputs). The weights are the layer's own
    Variables: the numeric side writes perturbed values into them in place. ``nn.random`` is
    re-seeded before every evaluation, so a Dropout layer draws the same mask each time.
    Returns ``{name: max abs error}``; asserts every checked element passes.
    """
    several = isinstance(x, list)
    inputs = x if several else [x]
    floats = [i for i, a in enumerate(inputs) if a.dtype.kind == "f"]
    layer(x, training=training)  # build
    names = [p for p, _ in layer.named_variables()]
    variables = [v for _, v in layer.named_variables()]
    originals = [np.array(v._data) for v in variables]

    def run(values):
        nn.random.seed(seed)
        return layer(values if several else values[0], training=training)

    tensors = [ad.Variable(a, dtype=np.float64) if i in floats else a for i, a in enumerate(inputs)]
    sources = [tensors[i] for i in floats] + variables
    with ad.GradientTape() as tape:
        tape.watch(sources)  # non-trainable weights too (BatchNormalization's moving statistics)
        out = run(tensors)
    rng = np.random.default_rng(seed)
    up = rng.standard_normal(out.shape)
    tape_grads = tape.gradient(out, sources, unconnected_gradients="zero", output_gradients=up)

    def f(*arrays):
        values = list(inputs)
        for i, a in zip(floats, arrays):
            values[i] = ad.Tensor(a, dtype=np.float64)
        for v, w in zip(variables, arrays[len(floats):]):
            v._data[...] = w
            v._bump()
        return run(values).numpy()

    points = [inputs[i] for i in floats] + originals
    chosen = [None if p.size <= MAX_CHECKS else np.sort(rng.choice(p.size, MAX_CHECKS, replace=False))
              for p in points]
    try:
        numeric = numeric_gradient(f, points, up, eps, indices=chosen)
    finally:
        for v, w in zip(variables, originals):
            v._data[...] = w
            v._bump()
    errors = {}
    labels = [f"input{i}" for i in floats] + names
    for name, g, n, c in zip(labels, tape_grads, numeric, chosen):
        t = np.asarray(g, dtype=np.float64).reshape(-1)
        n = n.reshape(-1)
        if c is not None:
            t, n = t[c], n[c]
        assert np.all(np.abs(t - n) <= atol + rtol * np.abs(n)), (
            f"{type(layer).__name__} {name} (training={training}): tape {t[:6]} vs numeric {n[:6]}")
        errors[name] = float(np.abs(t - n).max()) if t.size else 0.0
    return errors


@pytest.fixture
def gradcheck_layer():
    """:func:`check_layer_gradients` as a fixture (test modules need not import conftest)."""
    return check_layer_gradients
