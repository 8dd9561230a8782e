"""nncli.nn: layers, models, losses, optimizers and metrics on the autodiff engine.

    from nncli import nn
    model = nn.Sequential([nn.layers.Dense(64, activation="relu"), nn.layers.Dense(10)], input_shape=[64])
"""

from nncli.nn import activations, initializers, random
from nncli.nn.module import Layer, Model, WeightsError, layer_from_config, registry_name
from nncli.nn.registry import REGISTRY, UnknownNameError, get, names, register
from nncli.nn.sequential import Sequential
from nncli.nn import layers, losses, metrics, optimizers, schedules  # noqa: I001 - after module.py

__all__ = [
    "Layer", "Model", "Sequential", "WeightsError", "layer_from_config", "registry_name",
    "REGISTRY", "UnknownNameError", "get", "names", "register",
    "activations", "initializers", "layers", "losses", "metrics", "optimizers", "random", "schedules",
]
