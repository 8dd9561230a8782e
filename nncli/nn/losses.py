"""Losses: ``loss(trues, predicts)`` -> a scalar tensor, the mean over the batch.

Formulas follow Keras 3: regression losses average over the last axis per sample and
then over the batch; without ``from_logits`` cross-entropies clip probabilities to
``[1e-7, 1 - 1e-7]``; with it they use log-softmax / log-sigmoid forms, never the log
of a softmax. Softmax cross-entropy from logits is one fused primitive: tight numpy
forward and backward, plus a backward written as ops so that higher-order gradients
and traced ``ad.Function`` replays work.

    >>> loss = SparseCategoricalCrossentropy(from_logits=True)
    >>> float(loss(np.array([0]), ad.Tensor([[0.0, 0.0]])))   # log 2
    0.6931471824645996
"""

from __future__ import annotations

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff import Tensor
from nncli.nn.registry import build as _registry_build
from nncli.nn.registry import register

EPSILON = 1e-7  # probability clip, as Keras's backend epsilon


# -- fused primitives -----------------------------------------------------------
def _rows(logits: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Logits as a (N, C) view, N and C."""
    c = logits.shape[-1]
    x = logits.reshape(-1, c)
    return x, x.shape[0], c


def _labels(labels: np.ndarray, n: int, c: int) -> np.ndarray:
    """Integer class ids as a flat (N,) array, checked to lie in ``[0, c)``."""
    flat = labels.reshape(-1)
    if flat.dtype.kind not in "iu":
        ints = flat.astype(np.intp)
        if not np.array_equal(ints, flat):
            bad = flat[np.flatnonzero(ints != flat)[0]]
            raise ValueError(f"sparse labels must be whole class ids, found {bad!r}")
        flat = ints
    if flat.size != n:
        raise ValueError(f"got {flat.size} labels for {n} rows of predictions")
    if n and (np.minimum.reduce(flat) < 0 or np.maximum.reduce(flat) >= c):  # the ufuncs: no method wrappers
        bad = flat[np.flatnonzero((flat < 0) | (flat >= c))[0]]
        raise ValueError(f"label {int(bad)} is out of range for {c} classes (labels must be 0..{c - 1})")
    return flat


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    """Row softmax of a (N, C) array in one new array."""
    e = x - x.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e


class SparseSoftmaxCrossentropy(ad.Primitive):
    """mean over rows of ``-log_softmax(logits)[label]``; inputs (logits (..., C), labels (...))."""

    @staticmethod
    def forward(attrs, logits, labels):
        x, n, c = _rows(logits)
        flat = _labels(labels, n, c)
        e = x - np.maximum.reduce(x, 1, keepdims=True)  # (N, C) shifted logits
        picked = e[np.arange(n), flat]                  # (N,)
        np.exp(e, out=e)
        total = np.add.reduce(e, 1)                     # (N,)
        # the mean as np.mean computes it (sum, then / n), without its Python wrapper
        loss = np.add.reduce(np.log(total) - picked) / n if n else np.zeros((), x.dtype)
        e /= total[:, None]                          # softmax, kept for backward
        return np.asarray(loss, dtype=x.dtype), (e, flat)

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        logits, labels = xs
        if not F.graph:  # (softmax - onehot) * g / N, from the saved softmax
            probs, flat = saved
            n = probs.shape[0]
            scale = g / max(n, 1)
            grad = probs * scale
            grad[np.arange(n), flat] -= scale
            return grad.reshape(logits.shape), None
        # Higher order or traced: a primitive of the live labels (a one-hot captured here
        # would be a constant, wrong when a traced step is replayed on the next batch).
        return F.apply(SparseSoftmaxCrossentropyGrad, (logits, labels, g)), None


class SparseSoftmaxCrossentropyGrad(ad.Primitive):
    """``(softmax(logits) - onehot(labels)) * g / N``: the gradient above, as an op of its own."""

    @staticmethod
    def forward(attrs, logits, labels, g):
        x, n, c = _rows(logits)
        scale = g / max(n, 1)
        flat = _labels(labels, n, c)
        grad = _softmax_rows(x)
        grad *= scale
        grad[np.arange(n), flat] -= scale
        return grad.reshape(logits.shape), None

    @staticmethod
    def backward(F, u, xs, y, saved, attrs, needs):
        logits, labels, g = xs
        c = logits.shape[-1]
        n = max(logits.size // max(c, 1), 1)
        if not F.graph:
            p = _softmax_rows(logits.reshape(-1, c)).reshape(logits.shape)
            gl = p * (u - np.sum(u * p, axis=-1, keepdims=True)) * (g / n) if needs[0] else None
            gg = None
            if needs[2]:
                unit = SparseSoftmaxCrossentropyGrad.forward(None, logits, labels, np.ones((), g.dtype))[0]
                gg = np.sum(u * unit)
            return gl, None, gg
        p = F.softmax(logits, axis=-1)
        gl = p * (u - F.sum(u * p, axis=-1, keepdims=True)) * (g / n) if needs[0] else None
        gg = None
        if needs[2]:
            one = ad.as_tensor(np.ones(()), g.dtype)
            unit = F.apply(SparseSoftmaxCrossentropyGrad, (logits, labels, one))
            gg = F.sum(u * unit)
        return gl, None, gg


class SoftmaxCrossentropy(ad.Primitive):
    """mean over rows of ``-sum(targets * log_softmax(logits))``; inputs (logits, targets), same shape."""

    @staticmethod
    def forward(attrs, logits, targets):
        x, n, c = _rows(logits)
        t = targets.reshape(-1, c)
        e = x - x.max(axis=1, keepdims=True)                      # (N, C) shifted logits
        t_dot_e = np.einsum("ij,ij->i", t, e)                     # (N,)
        t_sum = t.sum(axis=1)                                     # (N,)
        np.exp(e, out=e)
        total = e.sum(axis=1)
        loss = np.mean(t_sum * np.log(total) - t_dot_e) if n else np.zeros((), x.dtype)
        e /= total[:, None]
        return np.asarray(loss, dtype=x.dtype), (e, t_sum)

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        logits, targets = xs
        n = max(logits.size // max(logits.shape[-1], 1), 1)
        scale = g / n
        if not F.graph:
            probs, t_sum = saved
            gl = gt = None
            if needs[0]:  # (softmax * sum(targets) - targets) * g / N
                gl = probs * t_sum[:, None]
                gl -= targets.reshape(gl.shape)
                gl *= scale
                gl = gl.reshape(logits.shape)
            if needs[1]:  # -log_softmax * g / N
                x = logits.reshape(-1, logits.shape[-1])
                shifted = x - x.max(axis=1, keepdims=True)
                gt = np.log(np.exp(shifted).sum(axis=1, keepdims=True)) - shifted
                gt = (gt * scale).reshape(logits.shape)
            return gl, gt
        gl = (F.softmax(logits, axis=-1) * F.sum(targets, axis=-1, keepdims=True) - targets) * scale \
            if needs[0] else None
        gt = -F.log_softmax(logits, axis=-1) * scale if needs[1] else None
        return gl, gt


class SparseLabels(ad.Primitive):
    """Class ids checked against ``classes`` (attrs) and made integers (whole floats accepted):
    an op of the live labels, so traced steps check each batch's labels."""

    differentiable = False

    @staticmethod
    def forward(classes, labels):
        return _labels(labels, labels.size, classes).reshape(labels.shape), None


# -- shapes and labels ------------------------------------------------------------
def _predictions(predicts) -> Tensor:
    p = ad.as_tensor(predicts)
    return p if p.dtype.kind == "f" else ad.cast(p, np.float32)


def _dense_trues(trues, predicts: Tensor) -> Tensor:
    """``trues`` as a tensor of the predictions' dtype and shape ((N,) vs (N, 1) is matched)."""
    if isinstance(trues, Tensor):
        t = trues if trues.dtype == predicts.dtype else ad.cast(trues, predicts.dtype)
    else:
        t = ad.as_tensor(np.asarray(trues), predicts.dtype)
    ts, ps = t.shape, predicts.shape
    if len(ts) == len(ps) - 1 and ps[-1] == 1:
        t = ad.reshape(t, ts + (1,))
    elif len(ts) == len(ps) + 1 and ts[-1] == 1:
        t = ad.reshape(t, ts[:-1])
    if t.shape != ps:
        raise ValueError(f"trues have shape {ts} but the predictions have shape {ps}")
    return t


def _sparse_trues(trues, predicts: Tensor) -> Tensor:
    """Class ids as a tensor of shape ``predicts.shape[:-1]`` (a trailing axis of 1 is dropped)."""
    t = trues if isinstance(trues, Tensor) else ad.as_tensor(np.asarray(trues), np.asarray(trues).dtype)
    if t.dtype.kind not in "iuf":
        raise ValueError(f"sparse labels must be integers, not {t.dtype}")
    expected = predicts.shape[:-1]
    if t.shape == expected + (1,):
        t = ad.reshape(t, expected)
    if t.shape != expected or predicts.ndim < 1:
        raise ValueError(f"sparse labels must have shape {expected} (one class id per row of "
                         f"predictions of shape {predicts.shape}), not {t.shape}")
    return t


def _probability_crossentropy(targets: Tensor, probs: Tensor) -> Tensor:
    """Keras's form: normalise rows, clip to [eps, 1 - eps], ``-sum(targets * log p)`` per row."""
    p = probs / ad.sum(probs, axis=-1, keepdims=True)
    p = ad.clip(p, EPSILON, 1.0 - EPSILON)
    return -ad.mean(ad.sum(targets * ad.log(p), axis=-1))


# -- losses -----------------------------------------------------------------------
class Loss:
    """Base class: ``loss(trues, predicts)`` -> scalar tensor (batch mean).

    ``label_kind`` tells metrics what the trues are: "sparse" (class ids), "categorical"
    (one-hot rows), "binary" (0/1) or None (regression).
    """

    label_kind: str | None = None
    from_logits: bool = False

    def __call__(self, trues, predicts) -> Tensor:
        return self.call(trues, _predictions(predicts))

    def call(self, trues, predicts: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register("losses", aliases=("mse", "mean_squared_error"))
class MeanSquaredError(Loss):
    """Mean of ``(predicts - trues) ** 2``.

    Example:
        >>> float(MeanSquaredError()(np.array([[0.0, 1.0]]), ad.Tensor([[1.0, 1.0]])))
        0.5
    """

    def call(self, trues, predicts):
        return ad.mean(ad.square(predicts - _dense_trues(trues, predicts)))


@register("losses", aliases=("mae", "mean_absolute_error"))
class MeanAbsoluteError(Loss):
    """Mean of ``|predicts - trues|``.

    Example:
        >>> float(MeanAbsoluteError()(np.array([[0.0, 1.0]]), ad.Tensor([[2.0, 1.0]])))
        1.0
    """

    def call(self, trues, predicts):
        return ad.mean(ad.abs(predicts - _dense_trues(trues, predicts)))


@register("losses", aliases=("huber",))
class Huber(Loss):
    """Quadratic for errors up to ``delta``, linear beyond: ``0.5 e**2`` or ``delta (|e| - delta/2)``.

    Args:
        delta: where the loss turns from quadratic to linear.

    Example:
        >>> float(Huber(delta=1.0)(np.array([0.0, 0.0]), ad.Tensor([0.5, 3.0])))
        1.3125
    """

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ValueError(f"delta must be > 0, not {delta!r}")
        self.delta = float(delta)

    def call(self, trues, predicts):
        error = ad.abs(predicts - _dense_trues(trues, predicts))
        quadratic = ad.minimum(error, self.delta)  # |e| up to delta
        linear = error - quadratic                 # the part beyond delta
        return ad.mean(0.5 * ad.square(quadratic) + self.delta * linear)

    def get_config(self) -> dict:
        return {"delta": self.delta}


@register("losses", aliases=("binary_crossentropy",))
class BinaryCrossentropy(Loss):
    """Cross-entropy of 0/1 targets and probabilities (or logits, with ``from_logits``).

    Args:
        from_logits: predictions are logits; uses ``softplus(x) - t x``, stable for any x.

    Example:
        >>> round(float(BinaryCrossentropy(from_logits=True)(np.array([1.0]), ad.Tensor([0.0]))), 4)
        0.6931
    """

    label_kind = "binary"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def call(self, trues, predicts):
        t = _dense_trues(trues, predicts)
        if self.from_logits:
            return ad.mean(ad.softplus(predicts) - t * predicts)
        p = ad.clip(predicts, EPSILON, 1.0 - EPSILON)
        return -ad.mean(t * ad.log(p) + (1.0 - t) * ad.log(1.0 - p))

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}


@register("losses", aliases=("categorical_crossentropy",))
class CategoricalCrossentropy(Loss):
    """Cross-entropy of one-hot (or soft) target rows and class probabilities or logits.

    Args:
        from_logits: predictions are logits; one fused log-softmax op.

    Example:
        >>> round(float(CategoricalCrossentropy()(np.array([[0.0, 1.0]]), ad.Tensor([[0.5, 0.5]]))), 4)
        0.6931
    """

    label_kind = "categorical"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def call(self, trues, predicts):
        t = _dense_trues(trues, predicts)
        if self.from_logits:
            return ad.apply(SoftmaxCrossentropy, (predicts, t))
        return _probability_crossentropy(t, predicts)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}


@register("losses", aliases=("sparse_categorical_crossentropy",))
class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of integer class ids and class probabilities or logits.

    Labels have the predictions' shape without the class axis (or with a trailing 1).
    A label outside ``[0, classes)`` raises ValueError.

    Args:
        from_logits: predictions are logits; one fused log-softmax op (the training hot path).

    Example:
        >>> loss = SparseCategoricalCrossentropy(from_logits=True)
        >>> round(float(loss(np.array([1]), ad.Tensor([[0.0, 0.0]]))), 4)
        0.6931
    """

    label_kind = "sparse"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def call(self, trues, predicts):
        labels = _sparse_trues(trues, predicts)
        if self.from_logits:
            return ad.apply(SparseSoftmaxCrossentropy, (predicts, labels))
        ids = ad.apply(SparseLabels, (labels,), predicts.shape[-1])
        onehot = ad.one_hot(ids, predicts.shape[-1], predicts.dtype)
        return _probability_crossentropy(onehot, predicts)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}


def get(identifier) -> Loss:
    """A loss from a name (``"mse"``, ``"SparseCategoricalCrossentropy"``), a config dict
    ``{'type': name, **arguments}`` or a Loss (returned as is).

    Example:
        >>> get({"type": "sparse_categorical_crossentropy", "from_logits": True}).from_logits
        True
    """
    return _registry_build("losses", identifier, Loss)
