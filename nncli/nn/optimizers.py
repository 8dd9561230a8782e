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

import math
import numbers

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff import Tensor, Variable
from nncli.nn import schedules
from nncli.nn.registry import build as _registry_build
from nncli.nn.registry import register
from nncli.nn.schedules import LearningRateSchedule


class OptimizerStep(ad.Primitive):
    """Apply one update to every parameter in place; inputs are the k gradients, then the k
    parameters they belong to (whose arrays it updates).

    attrs: ``(optimizer, indices)``: gradient ``j`` belongs to parameter position ``indices[j]``.
    Stateful, so a traced Function replays it on every call; it writes its Variable inputs.
    """

    stateful = True
    differentiable = False
    writes_inputs = True

    @staticmethod
    def forward(attrs, *arrays):
        optimizer, indices = attrs
        k = len(indices)
        optimizer._apply(arrays[k:], indices, arrays[:k])
        return np.asarray(optimizer.iterations, dtype=np.int64), None


def _positive_or_none(name: str, value) -> float | None:
    if value is None:
        return None
    if not value > 0:
        raise ValueError(f"{name} must be > 0 (or None), not {value!r}")
    return float(value)


class Optimizer:
    """Base class. Subclasses list their ``slot_names`` and define ``_step`` on arrays.

    Args:
        learning_rate: a float or a LearningRateSchedule of the step count (a
            ``{'type': ..., ...}`` dict is also accepted and built into a schedule).
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scale all gradients together so their joint L2 norm is at most this.
    """

    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = learning_rate
        self.clipnorm = _positive_or_none("clipnorm", clipnorm)
        self.clipvalue = _positive_or_none("clipvalue", clipvalue)
        self.global_clipnorm = _positive_or_none("global_clipnorm", global_clipnorm)
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set")
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] | None = None  # per parameter position
        self._shapes: list[tuple] | None = None  # the parameter shapes the slots were made for
        self._scratch: list[np.ndarray] = []   # one work buffer per parameter
        self._clipped: list[np.ndarray] = []   # clipped gradients, when clipping is on

    # -- learning rate ------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate for the next update (a schedule evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, dict):
            value = schedules.deserialize(value)
        if not isinstance(value, LearningRateSchedule):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"learning_rate must be a number >= 0 or a schedule, not {value!r}")
            value = float(value)
        self._learning_rate = value

    def current_learning_rate(self) -> float:
        """The learning rate the next update will use (what the trainer logs as ``lr``)."""
        return self.learning_rate

    # -- updates ------------------------------------------------------------------
    def update(self, params, grads) -> None:
        """Apply one step: ``params[i]`` moves along ``-grads[i]``; None gradients are skipped.

        Args:
            params: the Variables, in the same order every call.
            grads: ad Tensors, numpy arrays or None, one per param.

        Example:
            >>> w = ad.Variable([1.0]); SGD(0.5).update([w], [np.ones(1, np.float32)]); w.numpy()
            array([0.5], dtype=float32)
        """
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"update got {len(params)} params but {len(grads)} gradients")
        for i, p in enumerate(params):
            if not isinstance(p, Variable):
                raise TypeError(f"params[{i}] must be an ad.Variable, not {type(p).__name__}")
        self.build(params)
        indices, tensors, updated = [], [], []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            if not isinstance(g, Tensor):
                g = ad.as_tensor(np.asarray(g), p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"gradient {i} has shape {g.shape}, its parameter {p.shape}")
            indices.append(i)
            tensors.append(g)
            updated.append(p)
        if tensors:
            ad.apply(OptimizerStep, (*tensors, *updated), (self, tuple(indices)))

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras's form of :meth:`update`: an iterable of ``(gradient, variable)`` pairs."""
        pairs = list(grads_and_vars)
        self.update([v for _, v in pairs], [g for g, _ in pairs])

    def build(self, params) -> None:
        """Create the slots for ``params`` (done by the first update), or check they still fit."""
        shapes = [tuple(p.shape) for p in params]
        if self._shapes is None:
            if self._slots is None:
                self._slots = [{n: self._init_slot(n, p.shape, p.dtype) for n in self.slot_names}
                               for p in params]
            self._shapes = [next(iter(s.values())).shape for s in self._slots] if self.slot_names else shapes
        if shapes != self._shapes:
            raise ValueError(
                f"this optimizer holds state for {len(self._shapes)} parameters of shapes {self._shapes}, "
                f"but update got {len(shapes)} of shapes {shapes}; use one optimizer per list of parameters")
        if len(self._scratch) != len(params):
            for slots, p in zip(self._slots, params):  # restored slots take the parameters' dtype
                for n, arr in slots.items():
                    if arr.dtype != p.dtype:
                        slots[n] = arr.astype(p.dtype)
            self._scratch = [np.empty(p.shape, p.dtype) for p in params]
            clipping = self.clipnorm or self.clipvalue or self.global_clipnorm
            self._clipped = [np.empty(p.shape, p.dtype) for p in params] if clipping else []

    def _init_slot(self, name: str, shape, dtype) -> np.ndarray:
        return np.zeros(shape, dtype)

    def _apply(self, arrays, indices, grads) -> None:
        """The update on raw arrays (run by OptimizerStep.forward, eagerly or on replay):
        ``arrays[j]`` is the parameter at position ``indices[j]``, updated in place."""
        grads = self._clip(indices, [g if g.dtype == p.dtype else g.astype(p.dtype) for p, g in zip(arrays, grads)])
        lr = self.learning_rate
        t = self.iterations + 1
        for i, p, g in zip(indices, arrays, grads):
            self._step(p, g, self._slots[i], self._scratch[i], lr, t)
        self.iterations = t

    def _step(self, p: np.ndarray, g: np.ndarray, slots: dict, scratch: np.ndarray, lr: float, t: int):
        raise NotImplementedError

    def _clip(self, indices, grads):
        """Gradients clipped like Keras (into preallocated buffers; the inputs are not changed)."""
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue, out=self._clipped[i])
                    for i, g in zip(indices, grads)]
        if self.clipnorm is not None:
            out = []
            for i, g in zip(indices, grads):
                norm = math.sqrt(float(np.vdot(g, g)))
                out.append(np.multiply(g, self.clipnorm / norm, out=self._clipped[i])
                           if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                return [np.multiply(g, scale, out=self._clipped[i]) for i, g in zip(indices, grads)]
        return grads

    # -- state and config ---------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of the slots (``"{index}.{slot}"``, e.g. ``"0.m"``) and ``"iterations"``."""
        state = {"iterations": np.asarray(self.iterations, dtype=np.int64)}
        for i, slots in enumerate(self._slots or []):
            for name, arr in slots.items():
                state[f"{i}.{name}"] = arr.copy()
        return state

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned; the next update continues bit for bit.

        Works on a fresh optimizer too: its slots are taken from ``state`` and checked
        against the parameters at the first update.
        """
        if "iterations" not in state:
            raise ValueError("optimizer state has no 'iterations' entry")
        count = len({k.split(".", 1)[0] for k in state if k != "iterations"})
        wanted = {f"{i}.{n}" for i in range(count) for n in self.slot_names} | {"iterations"}
        if set(state) != wanted:
            missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
            raise ValueError(f"optimizer state does not fit {type(self).__name__}: "
                             f"missing {missing}, unexpected {extra}")
        if not self.slot_names:  # nothing to size the slots from: build at the first update
            count = 0
        slots = [{n: np.array(state[f"{i}.{n}"]) for n in self.slot_names} for i in range(count)]
        if self._slots is not None and len(self._slots) == count and self.slot_names:
            for i, (old, new) in enumerate(zip(self._slots, slots)):
                for n, arr in new.items():
                    if old[n].shape != arr.shape:
                        raise ValueError(f"optimizer slot {i}.{n} has shape {arr.shape}, expected {old[n].shape}")
                    old[n][...] = arr
        elif self.slot_names:
            self._slots, self._scratch = slots or None, []
            self._shapes = None  # taken from the slots, checked at the next update
        self.iterations = int(np.asarray(state["iterations"]))

    def get_config(self) -> dict:
        """The constructor arguments (a schedule as ``{'type': name, **config}``)."""
        lr = self._learning_rate
        config = {"learning_rate": schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else lr}
        config.update(self._hyper())
        config.update(clipnorm=self.clipnorm, clipvalue=self.clipvalue, global_clipnorm=self.global_clipnorm)
        return config

    def _hyper(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


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

    def _step(self, p, g, slots, work, lr, t):
        b1, b2 = self.beta_1, self.beta_2
        alpha = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m, v = slots["m"], slots["v"]
        np.subtract(g, m, out=work)
        work *= 1.0 - b1
        m += work
        np.square(g, out=work)
        work -= v
        work *= 1.0 - b2
        v += work
        if self.amsgrad:
            v = np.maximum(slots["vhat"], v, out=slots["vhat"])
        np.sqrt(v, out=work)
        work += self.epsilon
        np.divide(m, work, out=work)
        work *= alpha
        p -= work

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
