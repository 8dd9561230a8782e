"""The optimizer base: ``Optimizer`` (slots, clipping, learning rate, state) and the one
stateful primitive, ``OptimizerStep``, that applies an update to every parameter.

The update rules themselves are in ``nncli.nn.optimizers`` (SGD, Adam, AdamW, RMSprop,
Adagrad). Slots (moments, accumulators) are preallocated on the first update, keyed by the
position of each parameter; when all parameters share a dtype each slot is one flat array
with a view per parameter (``Optimizer._pack``), so an update can run over all of them at once.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff import Tensor, Variable, parallel
from nncli.nn import schedules
from nncli.nn.schedules import LearningRateSchedule


# An update over the flat buffers runs on every core from this many elements (below it, handing
# spans to threads costs more than it saves), in spans of about SPAN elements.
PARALLEL_MIN = 2**19
SPAN = 2**18


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
        self._flat: dict[str, np.ndarray] | None = None  # the slots and work buffers as flat arrays
        self._clipped: list[np.ndarray] = []   # clipped gradients, when clipping is on
        self._bounds: list[int] = []  # where each parameter starts in the flat buffers, and their end
        self._span_plan: tuple[int, list] | None = None  # (threads, spans) of _spans

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
            if self._slots is None:  # made by _pack below, straight into its flat buffers
                self._slots = [{} for _ in params]
                self._scratch = []
            self._shapes = [next(iter(s.values())).shape for s in self._slots] if all(self._slots) else shapes
        if shapes != self._shapes:
            raise ValueError(
                f"this optimizer holds state for {len(self._shapes)} parameters of shapes {self._shapes}, "
                f"but update got {len(shapes)} of shapes {shapes}; use one optimizer per list of parameters")
        if len(self._scratch) != len(params):
            for slots, p in zip(self._slots, params):  # restored slots take the parameters' dtype
                for n, arr in slots.items():
                    if arr.dtype != p.dtype:
                        slots[n] = arr.astype(p.dtype)
            clipping = self.clipnorm or self.clipvalue or self.global_clipnorm
            self._clipped = [np.empty(p.shape, p.dtype) for p in params] if clipping else []
            if not self._pack(params):
                for slots, p in zip(self._slots, params):
                    for n in self.slot_names:
                        if n not in slots:
                            slots[n] = self._init_slot(n, p.shape, p.dtype)
                self._scratch = [np.empty(p.shape, p.dtype) for p in params]

    def _pack(self, params) -> bool:
        """Each slot and the work buffers as views of one flat array (parameters in order), so
        that an update of all parameters can be a few numpy calls over the whole buffer (the
        multi-tensor update of PyTorch's foreach/fused optimizers). Only when every parameter has
        the same dtype; ``self._flat`` maps ``""`` (work) and each slot name to its flat array.
        Returns whether it packed; each slot's per-parameter arrays are let go as they are copied."""
        self._flat = None
        dtypes = {np.dtype(p.dtype) for p in params}
        if len(dtypes) != 1:
            return False
        dtype = dtypes.pop()
        bounds = np.cumsum([0] + [math.prod(p.shape) for p in params]).tolist()
        self._bounds, self._span_plan = bounds, None

        def views(flat):
            return [flat[a:b].reshape(p.shape) for a, b, p in zip(bounds, bounds[1:], params)]

        self._scratch = []
        work = np.empty(bounds[-1], dtype)
        self._scratch = views(work)
        flat = {"": work}
        for name in self.slot_names:
            flat[name] = np.empty(bounds[-1], dtype)
            zeros = type(self)._init_slot is Optimizer._init_slot
            for slots, view, p in zip(self._slots, views(flat[name]), params):
                if name in slots:
                    view[...] = slots[name]
                elif zeros:  # no temporary array of the parameter's size
                    view.fill(0)
                else:
                    view[...] = self._init_slot(name, p.shape, p.dtype)
                slots[name] = view
        self._flat = flat
        return True

    def _spans(self, arrays) -> list | None:
        """The flat buffers cut into spans for ``parallel.run``, or None for one pass on this
        thread (one thread, fewer than ``PARALLEL_MIN`` elements, or a parameter array that is
        not contiguous, whose flat view would be a copy).

        A span is ``(start, stop, pieces)``; a piece ``(i, a, b, lo, hi)`` says that elements
        ``[a, b)`` of parameter ``i`` (flattened) lie at ``[lo, hi)`` of the span. The spans are of
        equal size, about ``SPAN`` elements, and a whole number per thread, so each thread gets
        the same share of the work.
        """
        total = self._bounds[-1]
        if total < PARALLEL_MIN:  # the common case first: a small model asks for nothing more
            return None
        threads = parallel.threads()
        if threads < 2 or not all(p.flags.c_contiguous for p in arrays):
            return None
        if self._span_plan is None or self._span_plan[0] != threads:
            count = threads * max(1, round(total / (threads * SPAN)))
            cuts = [total * k // count for k in range(count + 1)]
            spans = []
            for start, stop in zip(cuts, cuts[1:]):
                pieces = [(i, max(a, start) - a, min(b, stop) - a, max(a, start) - start, min(b, stop) - start)
                          for i, (a, b) in enumerate(zip(self._bounds, self._bounds[1:]))
                          if max(a, start) < min(b, stop)]
                spans.append((start, stop, pieces))
            self._span_plan = (threads, spans)
        return self._span_plan[1]

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
