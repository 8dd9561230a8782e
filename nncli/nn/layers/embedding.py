"""Embedding: integer ids to dense vectors, by indexing a trainable table.

The ids are checked by a small op of their own and the rows gathered by the engine's
indexing op (whose gradient is a scatter-add into the table's shape, so repeated ids
accumulate): both read the ids as graph values, so a traced Function looks up each call's ids.

    >>> Embedding(10, 4)(np.array([[1, 2, 2]])).shape
    (1, 3, 4)
"""

from __future__ import annotations

import numpy as np

import nncli.autodiff as ad
from nncli.nn.layers.core import _positive_int, config_name
from nncli.nn.module import Layer
from nncli.nn.registry import register


class EmbeddingIds(ad.Primitive):
    """The ids as integers, checked to lie in ``[0, input_dim)``; attrs ``(input_dim, layer name)``."""

    differentiable = False

    @staticmethod
    def forward(attrs, ids):
        input_dim, name = attrs
        if ids.dtype.kind == "f":
            whole = ids.astype(np.int64)
            if not np.array_equal(whole, ids):
                raise ValueError(f"{name}: Embedding takes integer ids, found non-integer values")
            ids = whole
        elif ids.dtype.kind not in "iu":
            raise ValueError(f"{name}: Embedding takes integer ids, found {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= input_dim):
            raise ValueError(f"{name}: ids must lie in [0, {input_dim}), "
                             f"found values from {ids.min()} to {ids.max()}")
        return ids, None


@register("layers")
class Embedding(Layer):
    """Map integer ids in ``[0, input_dim)`` to rows of an ``(input_dim, output_dim)`` table.

    Inputs are integer arrays of any shape (float arrays holding whole numbers are accepted);
    the output has one more axis of size ``output_dim``.

    Args:
        input_dim: the vocabulary size.
        output_dim: the size of each vector.
        embeddings_initializer: a registered initializer name.

    Example:
        >>> Embedding(1000, 64)(np.zeros((32, 10), np.int64)).shape
        (32, 10, 64)
    """

    cast_inputs = False  # ids stay integers

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: str = "random_uniform", *,
                 name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self.input_dim = _positive_int(input_dim, "Embedding input_dim")
        self.output_dim = _positive_int(output_dim, "Embedding output_dim")
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, inputs, training: bool = False):
        ids = ad.apply(EmbeddingIds, (inputs,), (self.input_dim, self.name))
        return ad.take(self.embeddings, ids)  # (..., output_dim)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": config_name(self.embeddings_initializer), **super().get_config()}
