"""Optimizers: ``opt.update(params, grads)`` changes the parameters in place.

Update rules, defaults and gradient clipping follow Keras 3 (``keras.optimizers``):
Adam and AdamW use ``lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` and add
``epsilon`` to ``sqrt(v)`` ("epsilon hat"); RMSprop and Adagrad add it inside the square
root; AdamW decays the weights by ``lr * weight_decay`` before the Adam step. Scalar
coefficients (learning rate, bias corrections) are computed in double precision and
applied to the arrays in their own dtype (float32 stays float32).

The whole update of all parameters is one stateful primitive, so a train step traced
by ``ad.function`` replays it, reading the live step count and learning rate each call.
Slots (moments, accumulators) are preallocated on the first update, keyed by the
position of each parameter, and saved by ``get_state`` / restored by ``set_state``.

    >>> w = ad.Variable([1.0, 2.0])
    >>> opt = SGD(learning_rate=0.1)
    >>> opt.update([w], [np.array([1.0, 1.0], dtype=np.float32)]); w.numpy()
    array([0.9, 1.9], dtype=float32)
"""

from __future__ import annotations

import functools
import math

import numpy as np

from nncli.autodiff import parallel
from nncli.nn.optimizer_base import Optimizer, OptimizerStep  # noqa: F401 - part of this module's API
from nncli.nn.registry import build as _registry_build
from nncli.nn.registry import register
from nncli.nn.schedules import LearningRateSchedule


@register("optimizers", aliases=("sgd",))
class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    ``m = momentum * m - lr * g``; ``w += m`` (Nesterov: ``w += momentum * m - lr * g``);
    without momentum ``w -= lr * g``.

    Args:
        learning_rate: float or schedule.
        momentum: in [0, 1]; 0 keeps no state.
        nesterov: use Nesterov momentum.

    Example:
        >>> opt = SGD(learning_rate=0.01, momentum=0.9)
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], not {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum else ()

    def _step(self, p, g, slots, work, lr, t):
        np.multiply(g, lr, out=work)                 # lr * g
        if not self.momentum:
            p -= work
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= work
        if self.nesterov:
            p -= work
            np.multiply(m, self.momentum, out=work)
            p += work
        else:
            p += m

    def _hyper(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


@register("optimizers", aliases=("adam",))
class Adam(Optimizer):
    """Adam, as Keras: ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``.

    Args:
        learning_rate: float or schedule.
        beta_1, beta_2: decay rates of the first and second moment estimates.
        epsilon: added to ``sqrt(v)`` (Keras's "epsilon hat"; torch adds it after bias correction).
        amsgrad: use the running maximum of ``v``.

    Example:
        >>> opt = Adam(learning_rate=0.001)
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        self.slot_names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _apply(self, arrays, indices, grads) -> None:
        """All parameters at once when the slots are flat (``_pack``) and every parameter has a
        gradient: the per-parameter steps' numpy calls, each over the whole flat buffer where it
        needs no gradient or parameter (the same elementwise operations: the same bits). A large
        buffer is cut into spans that run on every core (``_spans``)."""
        flat = self._flat
        if flat is None or len(indices) != len(self._slots) or type(self)._step is not Adam._step:
            return super()._apply(arrays, indices, grads)  # a subclass's own step (AdamW) runs per parameter
        dtype = flat[""].dtype
        grads = self._clip(indices, [g if g.dtype == dtype else g.astype(dtype) for g in grads])
        t = self.iterations + 1
        alpha = self._alpha(self.learning_rate, t)
        spans = self._spans(arrays)
        if spans is None:
            self._update(arrays, grads, self._scratch, [s["m"] for s in self._slots],
                         flat["m"], flat["v"], flat.get("vhat"), flat[""], alpha)
        else:
            flat_grads = [g.reshape(-1) for g in grads]  # a copy only where a gradient is not contiguous
            flat_params = [p.reshape(-1) for p in arrays]  # views: _spans checked they are contiguous
            parallel.run([functools.partial(self._update_span, span, flat_params, flat_grads, alpha)
                          for span in spans])
        self.iterations = t

    def _update_span(self, span, params, grads, alpha) -> None:
        """:meth:`_update` over the flat buffers' ``[start, stop)`` and the pieces of parameters in it."""
        start, stop, pieces = span
        work, m, v = (self._flat[n][start:stop] for n in ("", "m", "v"))
        vhat = self._flat["vhat"][start:stop] if self.amsgrad else None
        self._update([params[i][a:b] for i, a, b, _, _ in pieces], [grads[i][a:b] for i, a, b, _, _ in pieces],
                     [work[lo:hi] for _, _, _, lo, hi in pieces], [m[lo:hi] for _, _, _, lo, hi in pieces],
                     m, v, vhat, work, alpha)

    def _step(self, p, g, slots, work, lr, t):
        m = slots["m"]
        self._update([p], [g], [work], [m], m, slots["v"], slots.get("vhat"), work, self._alpha(lr, t))

    def _update(self, params, grads, works, ms, m, v, vhat, work, alpha) -> None:
        """One Adam step. ``params``, ``grads`` and the matching views ``works`` of ``work`` and ``ms``
        of ``m`` are lists of parts; the passes that need no gradient or parameter run once over
        the whole ``m``, ``v`` and ``work`` (one parameter, a flat buffer or a span of one)."""
        b1, b2 = self.beta_1, self.beta_2
        for g, w, mp in zip(grads, works, ms):
            np.subtract(g, mp, out=w)
        work *= 1.0 - b1
        m += work
        for g, w in zip(grads, works):
            np.square(g, out=w)
        work -= v
        work *= 1.0 - b2
        v += work
        self._direction(m, v, vhat, work, alpha)
        for p, w in zip(params, works):
            p -= w

    def _alpha(self, lr, t) -> float:
        """The step size with both moments' bias corrections folded in."""
        return lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)

    def _direction(self, m, v, vhat, work, alpha) -> None:
        """``work = alpha * m / (sqrt(v or its running max) + epsilon)``, in place: the second half
        of the step that the flat and the per-parameter paths share."""
        if self.amsgrad:
            v = np.maximum(vhat, v, out=vhat)
        np.sqrt(v, out=work)
        work += self.epsilon
        np.divide(m, work, out=work)
        work *= alpha

    def _hyper(self) -> dict:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


@register("optimizers", aliases=("adamw",))
class AdamW(Adam):
    """Adam with decoupled weight decay: ``w -= w * weight_decay * lr`` before each Adam step.

    Args:
        learning_rate: float or schedule.
        weight_decay: the decay rate (multiplied by the learning rate).
        beta_1, beta_2, epsilon, amsgrad: as :class:`Adam`.

    Example:
        >>> opt = AdamW(learning_rate=0.001, weight_decay=0.004)
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, clipnorm, clipvalue, global_clipnorm)
        self.weight_decay = float(weight_decay)

    def _step(self, p, g, slots, work, lr, t):
        np.multiply(p, self.weight_decay * lr, out=work)
        p -= work
        super()._step(p, g, slots, work, lr, t)

    def _hyper(self) -> dict:
        return {"weight_decay": self.weight_decay, **super()._hyper()}


@register("optimizers", aliases=("rmsprop",))
class RMSprop(Optimizer):
    """RMSprop, as Keras: ``v = rho v + (1 - rho) g^2``, ``w -= lr g / sqrt(v + epsilon)``.

    Centered: also ``a = rho a + (1 - rho) g`` and the denominator ``sqrt(v - a^2 + epsilon)``
    (``v - a^2`` clamped at 0, where rounding would otherwise give NaN).
    With momentum: ``mo = momentum * mo + increment``, ``w -= mo``.

    Args:
        learning_rate: float or schedule.
        rho: decay of the squared-gradient average.
        momentum: plain momentum on the increments.
        epsilon: added inside the square root.
        centered: divide by the estimated variance instead of the second moment.

    Example:
        >>> opt = RMSprop(learning_rate=0.001, rho=0.9)
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)
        self.slot_names = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) \
            + (("average_gradient",) if self.centered else ())

    def _step(self, p, g, slots, work, lr, t):
        rho = self.rho
        v = slots["velocity"]
        v *= rho
        np.square(g, out=work)
        work *= 1.0 - rho
        v += work
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            np.multiply(g, 1.0 - rho, out=work)
            a += work
            np.square(a, out=work)
            np.subtract(v, work, out=work)
            np.maximum(work, 0.0, out=work)  # v - a^2 >= 0 in exact arithmetic; rounding can dip below
            work += self.epsilon
        else:
            np.add(v, self.epsilon, out=work)
        np.sqrt(work, out=work)
        np.divide(g, work, out=work)
        work *= lr                                    # the increment lr * g / sqrt(...)
        if self.momentum > 0:
            mo = slots["momentum"]
            mo *= self.momentum
            mo += work
            p -= mo
        else:
            p -= work

    def _hyper(self) -> dict:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


@register("optimizers", aliases=("adagrad",))
class Adagrad(Optimizer):
    """Adagrad, as Keras: ``acc += g^2``, ``w -= lr g / sqrt(acc + epsilon)``.

    Args:
        learning_rate: float or schedule.
        initial_accumulator_value: the starting value of ``acc``.
        epsilon: added inside the square root.

    Example:
        >>> opt = Adagrad(learning_rate=0.01)
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        self.slot_names = ("accumulator",)

    def _init_slot(self, name, shape, dtype):
        return np.full(shape, self.initial_accumulator_value, dtype)

    def _step(self, p, g, slots, work, lr, t):
        acc = slots["accumulator"]
        np.square(g, out=work)
        acc += work
        np.add(acc, self.epsilon, out=work)
        np.sqrt(work, out=work)
        np.divide(g, work, out=work)
        work *= lr
        p -= work

    def _hyper(self) -> dict:
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


def get(identifier) -> Optimizer:
    """An optimizer from a name (``"adam"``), a config dict ``{'type': name, **arguments}``
    or an Optimizer (returned as is).

    Example:
        >>> get({"type": "Adam", "learning_rate": 0.01}).learning_rate
        0.01
    """
    return _registry_build("optimizers", identifier, Optimizer)
