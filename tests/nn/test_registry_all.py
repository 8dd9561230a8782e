"""One generic test over every entry of the "layers" registry: build, config round trip, dtypes,
SPEC weight layout, and gradients (inputs and every weight, training and inference) against
float64 central differences.

A layer needs a row in SAMPLES (constructor arguments and an input shape including the batch
axis; "int" inputs are ids in [0, 5)). Dropout is checked in training mode too: the helper
re-seeds nn.random before every evaluation, so each one draws the same mask; its statistics
are tested in test_core_layers.py.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from nncli.nn.registry import REGISTRY

FLOAT, INT = "float", "int"

# name: (constructor arguments, input shape with batch axis -- a list of shapes for several
# inputs, e.g. [(2, 4, 6), (2, 5, 6)] for [query, value] -- and input kind)
SAMPLES: dict[str, tuple[dict, tuple, str]] = {
    "Dense": ({"units": 3, "activation": "tanh"}, (2, 4), FLOAT),
    "Activation": ({"activation": "swish"}, (2, 4), FLOAT),
    "Dropout": ({"rate": 0.3}, (2, 6), FLOAT),
    "Flatten": ({}, (2, 3, 2), FLOAT),
    "Reshape": ({"target_shape": [2, -1]}, (2, 6), FLOAT),
    "BatchNormalization": ({}, (4, 3), FLOAT),
    "LayerNormalization": ({}, (2, 5), FLOAT),
    "Embedding": ({"input_dim": 5, "output_dim": 3}, (2, 4), INT),
    "Conv1D": ({"filters": 2, "kernel_size": 3, "activation": "relu"}, (2, 6, 3), FLOAT),
    "Conv2D": ({"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 5, 5, 3), FLOAT),
    "MaxPooling1D": ({"pool_size": 2}, (2, 6, 3), FLOAT),
    "AveragePooling1D": ({"pool_size": 2}, (2, 6, 3), FLOAT),
    "GlobalMaxPooling1D": ({}, (2, 6, 3), FLOAT),
    "GlobalAveragePooling1D": ({}, (2, 6, 3), FLOAT),
    "MaxPooling2D": ({"pool_size": 2}, (2, 4, 4, 3), FLOAT),
    "AveragePooling2D": ({"pool_size": 2}, (2, 4, 4, 3), FLOAT),
    "GlobalMaxPooling2D": ({}, (2, 4, 4, 3), FLOAT),
    "GlobalAveragePooling2D": ({}, (2, 4, 4, 3), FLOAT),
    "SimpleRNN": ({"units": 4}, (2, 5, 3), FLOAT),
    "LSTM": ({"units": 4}, (2, 5, 3), FLOAT),
    "GRU": ({"units": 4}, (2, 5, 3), FLOAT),
    "MultiHeadAttention": ({"num_heads": 2, "key_dim": 3}, (2, 4, 6), FLOAT),
}

# SPEC.md "Weight layout follows Keras", for the SAMPLES arguments and inputs.
EXPECTED_WEIGHTS = {
    "Dense": [(4, 3), (3,)],
    "Conv1D": [(3, 3, 2), (2,)],
    "Conv2D": [(3, 3, 3, 2), (2,)],
    "SimpleRNN": [(3, 4), (4, 4), (4,)],
    "LSTM": [(3, 16), (4, 16), (16,)],
    "GRU": [(3, 12), (4, 12), (2, 12)],
    "BatchNormalization": [(3,), (3,), (3,), (3,)],
    "LayerNormalization": [(5,), (5,)],
    "Embedding": [(5, 3)],
}

LAYERS = sorted({cls for cls in REGISTRY["layers"].values()}, key=lambda c: c._registry_name)


def sample(cls, dtype=np.float64, seed=0):
    spec = SAMPLES.get(cls._registry_name)
    if spec is None:
        pytest.fail(f"add a sample input for {cls._registry_name} to SAMPLES in {__file__}")
    args, shape, kind = spec
    rng = np.random.default_rng(seed)

    def make(s):
        return rng.integers(0, 5, s) if kind == INT else rng.standard_normal(s).astype(dtype)

    return dict(args), [make(s) for s in shape] if isinstance(shape, list) else make(shape)


def _shape(x):
    """Input shape(s) without the batch axis."""
    return [a.shape[1:] for a in x] if isinstance(x, list) else x.shape[1:]


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c._registry_name)
def test_layer_contract(cls):
    args, x = sample(cls)
    layer = cls(**args, dtype="float64")
    y = layer(x)
    batch = (x[0] if isinstance(x, list) else x).shape[0]
    assert y.shape == (batch, *layer.compute_output_shape(_shape(x)))
    assert y.dtype == np.float64 and all(v.dtype == np.float64 for v in layer.variables)
    if cls._registry_name in EXPECTED_WEIGHTS:
        assert [w.shape for w in layer.get_weights()] == EXPECTED_WEIGHTS[cls._registry_name]

    # Typed constructor, and get_config returns exactly constructor arguments (JSON-safe).
    params = inspect.signature(cls.__init__).parameters
    untyped = [n for n, p in params.items() if n != "self" and p.annotation is inspect.Parameter.empty]
    assert not untyped, f"{cls.__name__}.__init__ parameters without a type annotation: {untyped}"
    config = layer.get_config()
    assert set(config) <= set(params), f"get_config keys not in __init__: {set(config) - set(params)}"
    assert json.loads(json.dumps(config)) == config
    clone = cls(**config)
    assert clone.get_config() == config
    clone(x)
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in layer.get_weights()]
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c._registry_name)
def test_layer_float32_stays_float32(cls):
    args, x = sample(cls, dtype=np.float32)
    layer = cls(**args)
    for training in (False, True):
        y = layer(x, training=training)
        assert y.dtype == np.float32
    assert all(v.dtype == np.float32 for v in layer.variables)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c._registry_name)
def test_layer_gradients(cls, training, gradcheck_layer):
    args, x = sample(cls)
    layer = cls(**args, dtype="float64")
    errors = gradcheck_layer(layer, x, training=training)
    assert len(errors) == len(layer.variables) + sum(a.dtype.kind == "f" for a in (x if isinstance(x, list) else [x]))
