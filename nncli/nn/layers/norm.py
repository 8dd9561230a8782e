"""Normalization layers: BatchNormalization and LayerNormalization.

Both are compositions of autodiff ops (mean, square, sqrt), so their gradients need no code
of their own and work to any order.

    >>> BatchNormalization()(np.random.rand(8, 3).astype(np.float32), training=True).shape
    (8, 3)
"""

from __future__ import annotations

import nncli.autodiff as ad
from nncli.nn.module import Layer
from nncli.nn.registry import register


def _axes(axis, rank: int, layer: str) -> tuple[int, ...]:
    """Feature axes (counted with the batch axis) as sorted non-negative ints."""
    items = [axis] if isinstance(axis, int) else list(axis)
    out = []
    for a in items:
        if not -rank <= a < rank or a % rank == 0:
            raise ValueError(f"{layer}: axis {a} is not a feature axis of inputs with {rank} axes "
                             f"(the batch axis 0 cannot be normalized over)")
        out.append(a % rank)
    return tuple(sorted(set(out)))


def _params_shape(axes: tuple[int, ...], input_shape) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """``(weight shape, broadcast shape or None when the weight already broadcasts)``."""
    rank = len(input_shape) + 1
    shape = tuple(input_shape[a - 1] for a in axes)
    if axes == tuple(range(rank - len(axes), rank)):  # trailing axes: broadcasts as is
        return shape, None
    return shape, tuple(input_shape[a - 1] if a in axes else 1 for a in range(rank))


class _Normalization(Layer):
    """What both normalizations share: the normalized axes, ``gamma``/``beta``, and applying them."""

    def _build_affine(self, input_shape) -> tuple[int, ...]:
        """Resolve the axes and add ``gamma`` and ``beta`` (as scale/center ask); their shape."""
        self._axes = _axes(self.axis, len(input_shape) + 1, self.name)
        shape, self._broadcast = _params_shape(self._axes, input_shape)
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, "ones")
        if self.center:
            self.beta = self.add_weight("beta", shape, "zeros")
        return shape

    def _param(self, var):
        return var if self._broadcast is None else ad.reshape(var, self._broadcast)

    def _affine(self, y):
        """``y * gamma + beta``, each where it exists."""
        if self.scale:
            y = y * self._param(self.gamma)
        if self.center:
            y = y + self._param(self.beta)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@register("layers")
class BatchNormalization(_Normalization):
    """Normalize each feature with batch statistics while training, moving statistics at inference.

    Weights (SPEC order): ``gamma``, ``beta`` (trainable), ``moving_mean``, ``moving_variance``
    (non-trainable, updated as ``moving = moving * momentum + batch_stat * (1 - momentum)`` with
    ``Variable.assign``, so a traced Function replays the update). The batch variance is the
    biased one (divided by n). A layer with ``trainable=False`` always runs in inference mode.

    Args:
        axis: the feature axis (the others are averaged over).
        momentum: the moving averages' decay.
        epsilon: added to the variance before the square root.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.

    Example:
        >>> bn = BatchNormalization(); y = bn(np.random.rand(16, 4).astype(np.float32), training=True)
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        if not 0 <= momentum <= 1 or epsilon <= 0:
            raise ValueError(f"BatchNormalization needs 0 <= momentum <= 1 and epsilon > 0, "
                             f"found momentum={momentum!r}, epsilon={epsilon!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape) -> None:
        shape = self._build_affine(input_shape)
        self.moving_mean = self.add_weight("moving_mean", shape, "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, "ones", trainable=False)

    def call(self, inputs, training: bool = False):
        x = inputs
        if training and self.trainable:
            reduce = tuple(a for a in range(x.ndim) if a not in self._axes)
            mean = ad.mean(x, axis=reduce, keepdims=True)  # (1, ..., C, ..., 1)
            centered = x - mean
            var = ad.mean(ad.square(centered), axis=reduce, keepdims=True)
            self._update(self.moving_mean, mean)
            self._update(self.moving_variance, var)
            y = centered / ad.sqrt(var + self.epsilon)
        else:
            y = (x - self._param(self.moving_mean)) / ad.sqrt(self._param(self.moving_variance) + self.epsilon)
        return self._affine(y)

    def _update(self, moving, batch_stat) -> None:
        stat = ad.reshape(batch_stat, moving.shape)
        moving.assign(moving * self.momentum + stat * (1.0 - self.momentum))

    def get_config(self) -> dict:
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, **super().get_config()}


@register("layers")
class LayerNormalization(_Normalization):
    """Normalize each sample over its feature axes, then scale by ``gamma`` and shift by ``beta``.

    Weights: ``gamma``, ``beta`` of the normalized axes' shape. Same in training and inference.

    Args:
        axis: the axis or axes to normalize over (not the batch axis).
        epsilon: added to the variance before the square root.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.

    Example:
        >>> LayerNormalization()(np.random.rand(2, 5).astype(np.float32)).shape
        (2, 5)
    """

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        if epsilon <= 0:
            raise ValueError(f"LayerNormalization needs epsilon > 0, found {epsilon!r}")
        self.axis = int(axis) if isinstance(axis, int) else [int(a) for a in axis]
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape) -> None:
        self._build_affine(input_shape)

    def call(self, inputs, training: bool = False):
        mean = ad.mean(inputs, axis=self._axes, keepdims=True)
        centered = inputs - mean
        var = ad.mean(ad.square(centered), axis=self._axes, keepdims=True)
        y = centered / ad.sqrt(var + self.epsilon)
        return self._affine(y)

    def get_config(self) -> dict:
        return {"axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                **super().get_config()}
