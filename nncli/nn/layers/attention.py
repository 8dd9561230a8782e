"""Multi-head attention with Keras's MultiHeadAttention weights, scaling and masking.

Inputs are (batch, time, features). The projections are ordinary matmuls over the flattened
batch and time axes; the attention itself is ``softmax(q k^T / sqrt(key_dim)) v`` per head,
with the stable softmax of ``nncli.autodiff``, so gradients of any order work.
"""

from __future__ import annotations

import math

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff import Tensor
from nncli.nn import initializers
from nncli.nn import random as nn_random
from nncli.nn.layers.core import DropoutMask, config_name
from nncli.nn.module import Layer
from nncli.nn.registry import register

MASKED = 1e9  # subtracted from the scores of masked pairs: softmax gives them exactly 0


def dot_product_attention(query, key, value, mask=None, dropout: float = 0.0, rng=None):
    """``softmax(query key^T / sqrt(d) + masking) value`` over the last two axes.

    Args:
        query: (..., tq, d); key: (..., tk, d); value: (..., tk, dv).
        mask: broadcastable to (..., tq, tk); true/1 where a query may attend to a key.
        dropout: a rate applied to the attention weights (needs ``rng``, a numpy Generator).
    Returns:
        ``(outputs (..., tq, dv), attention weights (..., tq, tk))``.

    Example:
        >>> out, w = dot_product_attention(np.ones((2, 3, 4), "f4"), np.ones((2, 5, 4), "f4"), np.ones((2, 5, 6), "f4"))
        >>> out.shape, w.shape
        ((2, 3, 6), (2, 3, 5))
    """
    query, key, value = ad.as_tensor(query), ad.as_tensor(key), ad.as_tensor(value)
    axes = tuple(range(key.ndim - 2)) + (key.ndim - 1, key.ndim - 2)
    scores = ad.matmul(query * (1.0 / math.sqrt(query.shape[-1])), ad.transpose(key, axes))  # (..., tq, tk)
    if mask is not None:  # an op on the mask (not a constant), so traced Functions see each call's mask
        scores = scores + (ad.cast(mask, scores.dtype) - 1.0) * MASKED
    weights = ad.softmax(scores, axis=-1)
    if dropout:
        weights = weights * ad.apply(DropoutMask, (weights,), (float(dropout), rng))
    return ad.matmul(weights, value), weights


def _project(x, kernel, bias):
    """x (b, t, d) with kernel (d, heads, k) [+ bias (heads, k)] -> (b, heads, t, k)."""
    b, t, d = x.shape
    heads, k = kernel.shape[1:]
    y = ad.matmul(ad.reshape(x, (b * t, d)), ad.reshape(kernel, (d, heads * k)))
    y = ad.reshape(y, (b, t, heads, k))
    if bias is not None:
        y = y + bias
    return ad.transpose(y, (0, 2, 1, 3))


@register("layers")
class MultiHeadAttention(Layer):
    """Multi-head attention as in Keras: project, attend per head, project back.

    Call it on ``query`` (self-attention), ``[query, value]`` or ``[query, value, key]``, each
    (batch, time, features); the output is (batch, query time, output_shape or query features).
    Keyword arguments of the call: ``attention_mask`` (batch, tq, tk), true where a query may
    attend a key; ``use_causal_mask`` (query t attends keys <= t); ``return_attention_scores``.

    Weights, in order: ``query_kernel (dq, heads, key_dim)``, ``query_bias (heads, key_dim)``,
    the same for ``key`` and ``value`` (value_dim), ``output_kernel (heads, value_dim, out)``,
    ``output_bias (out,)``.

    Args:
        num_heads: the number of heads.
        key_dim: size of each head for queries and keys.
        value_dim: size of each head for values (default key_dim).
        dropout: dropout rate on the attention weights while training.
        use_bias: add the biases.
        output_shape: output features (default: the query's).
        kernel_initializer, bias_initializer: registered initializer names.
        seed: seed of the dropout's own generator; None uses ``nncli.nn.random``.

    Example:
        >>> MultiHeadAttention(2, 8)(np.ones((4, 10, 16), np.float32)).shape
        (4, 10, 16)
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: int | None = None,
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros",
                 seed: int | None = None, *, name: str | None = None, trainable: bool = True,
                 dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        for what, value in (("num_heads", num_heads), ("key_dim", key_dim), ("value_dim", value_dim),
                            ("output_shape", output_shape)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer)
                                      or value < 1):
                raise ValueError(f"MultiHeadAttention {what} must be a positive integer, found {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention dropout must be a number in [0, 1), found {dropout!r}")
        self.num_heads, self.key_dim, self.value_dim = int(num_heads), int(key_dim), value_dim
        self.dropout, self.use_bias, self.output_shape = float(dropout), bool(use_bias), output_shape
        self.kernel_initializer, self.bias_initializer, self.seed = kernel_initializer, bias_initializer, seed
        initializers.get(kernel_initializer), initializers.get(bias_initializer)  # fail early on a typo
        self._rng = nn_random.generator() if seed is None else np.random.default_rng(seed)

    @staticmethod
    def _shapes(input_shape) -> tuple[tuple, tuple, tuple]:
        """(query, value, key) shapes from one shape or a list of two or three."""
        shapes = list(input_shape) if isinstance(input_shape, list) else [input_shape]
        if not 1 <= len(shapes) <= 3:
            raise ValueError(f"MultiHeadAttention takes query, [query, value] or [query, value, key], "
                             f"found {len(shapes)} inputs")
        query = shapes[0]
        value = shapes[1] if len(shapes) > 1 else query
        return tuple(query), tuple(value), tuple(shapes[2] if len(shapes) > 2 else value)

    def build(self, input_shape) -> None:
        query, value, key = self._shapes(input_shape)
        for label, shape in (("query", query), ("value", value), ("key", key)):
            if len(shape) != 2:
                raise ValueError(f"{self.name}: the {label} must be (time, features) per sample, found {shape}")
        if value[0] != key[0] and None not in (value[0], key[0]):
            raise ValueError(f"{self.name}: value and key need the same length, found {value[0]} and {key[0]}")
        heads, vd = self.num_heads, self.value_dim or self.key_dim
        out = self.output_shape or query[-1]
        for part, dim, size in (("query", query[-1], self.key_dim), ("key", key[-1], self.key_dim),
                                ("value", value[-1], vd)):
            setattr(self, f"{part}_kernel", self.add_weight(f"{part}_kernel", (dim, heads, size),
                                                            self.kernel_initializer))
            if self.use_bias:
                setattr(self, f"{part}_bias", self.add_weight(f"{part}_bias", (heads, size), self.bias_initializer))
        self.output_kernel = self.add_weight("output_kernel", (heads, vd, out), self.kernel_initializer)
        if self.use_bias:
            self.output_bias = self.add_weight("output_bias", (out,), self.bias_initializer)

    def call(self, inputs, training: bool = False, attention_mask=None, use_causal_mask: bool = False,
             return_attention_scores: bool = False):
        if not isinstance(training, bool | np.bool_):
            raise TypeError("MultiHeadAttention takes [query, value] as one list: layer([query, value]), "
                            "not layer(query, value) (the second argument is 'training')")
        parts = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        query = parts[0]
        value = parts[1] if len(parts) > 1 else query
        key = parts[2] if len(parts) > 2 else value
        q = _project(query, self.query_kernel, getattr(self, "query_bias", None))  # (b, heads, tq, key_dim)
        k = _project(key, self.key_kernel, getattr(self, "key_bias", None))  # (b, heads, tk, key_dim)
        v = _project(value, self.value_kernel, getattr(self, "value_bias", None))  # (b, heads, tk, value_dim)
        mask = self._mask(attention_mask, use_causal_mask, query.shape[1], key.shape[1])
        rate = self.dropout if training else 0.0
        out, weights = dot_product_attention(q, k, v, mask, rate, self._rng)  # (b, heads, tq, value_dim)
        b, heads, tq, vd = out.shape
        out = ad.reshape(ad.transpose(out, (0, 2, 1, 3)), (b * tq, heads * vd))
        y = ad.matmul(out, ad.reshape(self.output_kernel, (heads * vd, -1)))
        y = ad.reshape(y, (b, tq, y.shape[-1]))
        if self.use_bias:
            y = y + self.output_bias
        return (y, weights) if return_attention_scores else y

    @staticmethod
    def _mask(attention_mask, causal: bool, tq: int, tk: int):
        """The mask as (batch or 1, 1, tq, tk), broadcast over heads; None for no masking."""
        mask = None
        if attention_mask is not None:  # 0/1 floats, cast by an op so a traced Function sees each call's mask
            given = attention_mask if isinstance(attention_mask, Tensor) else Tensor(np.asarray(attention_mask))
            mask = ad.expand_dims(ad.cast(given, np.float32), -3)
        if causal:
            lower = Tensor(np.tril(np.ones((tq, tk), dtype=np.float32)))
            mask = lower if mask is None else mask * lower
        return mask

    def compute_output_shape(self, input_shape):
        query = self._shapes(input_shape)[0]
        return (query[0], self.output_shape or query[-1])

    def get_config(self) -> dict:
        return {"num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
                "dropout": self.dropout, "use_bias": self.use_bias, "output_shape": self.output_shape,
                "kernel_initializer": config_name(self.kernel_initializer),
                "bias_initializer": config_name(self.bias_initializer), "seed": self.seed, **super().get_config()}
