"""Sequential: a plain stack of layers, each feeding the next (registered in "models").

    >>> model = Sequential([nn.layers.Dense(4, activation="relu"), nn.layers.Dense(2)], input_shape=[3])
    >>> model.count_params()
    26
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nncli.nn.module import Layer, Model, _as_shape, layer_from_config, registry_name
from nncli.nn.registry import register


@register("models")
class Sequential(Model):
    """A plain stack of layers, each feeding the next.

    Args:
        layers: Layer objects or configs (``{"type": "Dense", "units": 10}``).
        input_shape: the input shape without batch axis; builds every weight at once.
        name: a label for summaries.

    Example:
        >>> model = Sequential([{"type": "Dense", "units": 8, "activation": "relu"},
        ...                     {"type": "Dense", "units": 2}], input_shape=[4])
        >>> model.count_params()
        58
    """

    def __init__(self, layers: list[Layer | dict[str, Any]] | None = None,
                 input_shape: list[int] | None = None, name: str | None = None):
        super().__init__(name=name)
        self.layers = []
        self.input_shape = None if input_shape is None else _as_shape(input_shape)
        for layer in layers or []:
            self.add(layer)
        if self.input_shape is None and self.layers:  # Keras: the first layer's input_shape= is the model's
            self.input_shape = self.layers[0].__dict__.get("input_shape_given")
        if self.input_shape is not None:
            self.build(self.input_shape)

    def add(self, layer: Layer | Mapping[str, Any]) -> None:
        """Append a layer (or a layer config); built at once when the model already is."""
        if isinstance(layer, Mapping):
            layer = layer_from_config(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes layers or layer configs, found {type(layer).__name__}")
        self.layers.append(layer)
        if self.built:
            self.build(self._build_shape)

    def build(self, input_shape) -> None:
        shape = input_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            layer.__dict__["_output_shape"] = shape

    def compute_output_shape(self, input_shape):
        shape = _as_shape(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def call(self, inputs, training: bool = False):
        x = inputs
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict:
        config = {"layers": [{"type": registry_name(layer), **layer.get_config()} for layer in self.layers],
                  "input_shape": None if self.input_shape is None else list(self.input_shape)}
        config.update(super().get_config())
        return config
