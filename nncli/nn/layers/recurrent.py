"""Recurrent layers: SimpleRNN, LSTM and GRU with Keras's weights, gate orders and equations.

Inputs are (batch, time, features). ``x @ kernel + bias`` is one matmul for all steps; only
the recurrence loops over time, by default inside one fused primitive (a numpy loop forward;
backward, all steps' gates recomputed by one matmul, then back-propagation through time). It is
used when the activations are in ``FUSED_ACTIVATIONS`` and gives first-order gradients (also in
traced Functions); otherwise, or with ``unroll=True``, each step is ordinary ops (any order).
"""

from __future__ import annotations

import numpy as np

import nncli.autodiff as ad
from nncli.nn import activations, initializers
from nncli.nn.layers.core import config_name
from nncli.nn.layers.recurrent_kernels import (
    FUSED_ACTIVATIONS,
    _gru_grads,
    _gru_run,
    _lstm_grads,
    _lstm_run,
    _rnn_grads,
    _rnn_run,
)
from nncli.nn.module import Layer
from nncli.nn.registry import register


# -- the fused primitives ------------------------------------------------------------


class _Recurrence(ad.Primitive):
    """A whole recurrence as one op; ``run``/``grads`` are its numpy kernels, attrs the activations."""

    run = grads = None

    @classmethod
    def forward(cls, attrs, *xs):
        return cls.run(attrs, *xs), None

    @classmethod
    def backward(cls, F, g, xs, y, saved, attrs, needs):
        if not F.graph:
            return cls.grads(attrs, *xs, y, g)
        # Recorded (higher order): one op computing every gradient, packed flat.
        packed = F.apply(_RecurrenceGrads, (*xs, y, g), (cls, attrs))
        grads, start = [], 0
        for x in xs:
            grads.append(F.reshape(F.getitem(packed, slice(start, start + x.size)), x.shape))
            start += x.size
        return grads


class _RecurrenceGrads(ad.Primitive):
    """The gradients of a fused recurrence, flattened and concatenated (first order only)."""

    @staticmethod
    def forward(attrs, *arrays):
        op, acts = attrs
        return np.concatenate([g.ravel() for g in op.grads(acts, *arrays)]), None

    @staticmethod
    def backward(F, g, xs, y, saved, attrs, needs):
        raise NotImplementedError(
            f"second-order gradients through a fused {attrs[0].__name__} are not supported; "
            "build the recurrent layer with unroll=True to differentiate it to any order")


class SimpleRNNOp(_Recurrence):
    """(xw (b, T, u), U (u, u), h0 (b, u)) -> H (b, T, u); attrs (activation,)."""

    run, grads = staticmethod(_rnn_run), staticmethod(_rnn_grads)


class LSTMOp(_Recurrence):
    """(xw (b, T, 4u), U (u, 4u), h0, c0) -> [H | C | gates] (b, T, 6u); attrs (activation, recurrent_activation)."""

    run, grads = staticmethod(_lstm_run), staticmethod(_lstm_grads)


class GRUOp(_Recurrence):
    """(xw (b, T, 3u), U (u, 3u), br (3u,), h0) -> H (b, T, u); attrs (activation, recurrent_activation)."""

    run, grads = staticmethod(_gru_run), staticmethod(_gru_grads)


# -- the same recurrences as ordinary ops (unroll=True, or other activations) ----------


def _unrolled(step, xw, states):
    """Run ``step(xw_t, states) -> states`` over time; the first state is the output."""
    outputs = []
    for t in range(xw.shape[1]):
        states = step(xw[:, t], states)
        outputs.append(states[0])
    return ad.stack(outputs, axis=1), states


def _resolve(activation):
    """``(function on tensors, key into FUSED_ACTIVATIONS or None)`` for a name, callable or None."""
    fn = activations.get(activation)
    key = getattr(fn, "_registry_name", None)
    return fn, key if key in FUSED_ACTIVATIONS else None


def _start(x, kernel, bias, units, states):
    """``x (b, T, in) @ kernel (in, k) + bias`` as one 2-D matmul -> (b, T, k), and the initial
    states (zeros of the input's dtype where None)."""
    x = ad.as_tensor(x)
    b, T, n = x.shape
    xw = ad.reshape(ad.matmul(ad.reshape(x, (b * T, n)), kernel), (b, T, kernel.shape[-1]))
    zeros = np.zeros((b, units), x.dtype)
    return (xw if bias is None else xw + bias), [ad.Tensor(zeros, x.dtype) if s is None else ad.as_tensor(s)
                                                 for s in states]


def simple_rnn(x, kernel, recurrent_kernel, bias=None, h0=None, activation: str = "tanh",
               unroll: bool = False):
    """Keras's SimpleRNN: ``h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Args: x (batch, time, in); kernel (in, u); recurrent_kernel (u, u); bias (u,) or None; h0 the
    initial state (zeros when None); unroll: ordinary ops per step (any order of gradients).
    Returns ``(outputs (batch, time, u), last state (batch, u))``.

    >>> simple_rnn(np.ones((2, 5, 3), "f4"), np.ones((3, 4), "f4"), np.eye(4, dtype="f4"))[0].shape
    (2, 5, 4)
    """
    xw, (h0,) = _start(x, kernel, bias, recurrent_kernel.shape[-1], [h0])
    act, key = _resolve(activation)
    if key and not unroll:
        H = ad.apply(SimpleRNNOp, (xw, ad.as_tensor(recurrent_kernel), h0), (key,))
        return H, H[:, -1]
    H, (h,) = _unrolled(lambda xt, s: (act(xt + ad.matmul(s[0], recurrent_kernel)),), xw, (h0,))
    return H, h


def lstm(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, activation: str = "tanh",
         recurrent_activation: str = "sigmoid", unroll: bool = False):
    """Keras's LSTM, gates i, f, c, o along the 4u axis: ``z = x_t @ kernel + h @ recurrent_kernel
    + bias``, ``i, f, o = ract(z_i, z_f, z_o)``, ``c = f * c + i * act(z_c)``, ``h = o * act(c)``.

    Shapes as in :func:`simple_rnn` with 4u columns; h0, c0 zeros when None.
    Returns ``(outputs (batch, time, u), last h, last c)``.

    >>> lstm(np.ones((2, 5, 3), "f4"), np.ones((3, 8), "f4"), np.zeros((2, 8), "f4"))[2].shape
    (2, 2)
    """
    u = recurrent_kernel.shape[-1] // 4
    xw, (h0, c0) = _start(x, kernel, bias, u, [h0, c0])
    (act, key), (ract, rkey) = _resolve(activation), _resolve(recurrent_activation)
    if key and rkey and not unroll:
        Y = ad.apply(LSTMOp, (xw, ad.as_tensor(recurrent_kernel), h0, c0), (key, rkey))
        return Y[:, :, :u], Y[:, -1, :u], Y[:, -1, u:2 * u]

    def step(xt, states):
        h, c = states
        z = xt + ad.matmul(h, recurrent_kernel)
        gates = ract(z)
        c = gates[:, u:2 * u] * c + gates[:, :u] * act(z[:, 2 * u:3 * u])
        return gates[:, 3 * u:] * act(c), c

    H, (h, c) = _unrolled(step, xw, (h0, c0))
    return H, h, c


def gru(x, kernel, recurrent_kernel, bias=None, h0=None, activation: str = "tanh",
        recurrent_activation: str = "sigmoid", reset_after: bool = True, unroll: bool = False):
    """Keras's GRU, gates z, r, h along the 3u axis; ``h = z * h + (1 - z) * hh`` where
    reset_after=True (bias (2, 3u): input, recurrent): ``hh = act(xw_h + r * (h @ U + b_rec)_h)``;
    reset_after=False (bias (3u,)): ``hh = act(xw_h + (r * h) @ U_h)``.

    Returns ``(outputs (batch, time, u), last state (batch, u))``.

    >>> gru(np.ones((2, 5, 3), "f4"), np.ones((3, 6), "f4"), np.zeros((2, 6), "f4"))[0].shape
    (2, 5, 2)
    """
    U = ad.as_tensor(recurrent_kernel)
    u = U.shape[-1] // 3
    in_bias = rec_bias = None
    if bias is not None:
        in_bias, rec_bias = (bias[0], bias[1]) if reset_after else (bias, None)
    xw, (h0,) = _start(x, kernel, in_bias, u, [h0])
    (act, key), (ract, rkey) = _resolve(activation), _resolve(recurrent_activation)
    if reset_after and key and rkey and not unroll:
        br = ad.Tensor(np.zeros(3 * u, xw.dtype), xw.dtype) if rec_bias is None else rec_bias
        H = ad.apply(GRUOp, (xw, U, br, h0), (key, rkey))
        return H, H[:, -1]
    U_zr, U_h = U[:, :2 * u], U[:, 2 * u:]

    def step(xt, states):
        (h,) = states
        if reset_after:
            rec = ad.matmul(h, U) if rec_bias is None else ad.matmul(h, U) + rec_bias
            zr = ract(xt[:, :2 * u] + rec[:, :2 * u])
            hh = act(xt[:, 2 * u:] + zr[:, u:] * rec[:, 2 * u:])
        else:
            zr = ract(xt[:, :2 * u] + ad.matmul(h, U_zr))
            hh = act(xt[:, 2 * u:] + ad.matmul(zr[:, u:] * h, U_h))
        return (hh + zr[:, :u] * (h - hh),)

    H, (h,) = _unrolled(step, xw, (h0,))
    return H, h


# -- the layers ----------------------------------------------------------------------


class _RNN(Layer):
    """What the recurrent layers share: weights ``kernel (in, gates*u)``, ``recurrent_kernel
    (u, gates*u)``, ``bias``; inputs ``x`` or ``[x, *initial_states]``; outputs by flags."""

    gates = 1  # pre-activations per unit
    states = 1  # state tensors (LSTM: h and c)

    def __init__(self, units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                 return_sequences, return_state, go_backwards, unroll, *, name, trainable, dtype):
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
            raise ValueError(f"{type(self).__name__} units must be a positive integer, found {units!r}")
        self.units, self.activation, self.use_bias = int(units), activation, bool(use_bias)
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer = bias_initializer
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.unroll = bool(go_backwards), bool(unroll)
        activations.get(activation)  # fail early on a typo
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            initializers.get(init)

    def _bias(self) -> tuple[tuple[int, ...], object]:
        return (self.gates * self.units,), self.bias_initializer

    def build(self, input_shape) -> None:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if len(shape) != 2:
            raise ValueError(f"{self.name}: {type(self).__name__} takes inputs (time, features) per sample, "
                             f"found shape {tuple(shape)}")
        n = self.gates * self.units
        self.kernel = self.add_weight("kernel", (shape[-1], n), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, n), self.recurrent_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", *self._bias())

    def call(self, inputs, training: bool = False, initial_state=None):
        x, states = (inputs[0], list(inputs[1:])) if isinstance(inputs, list | tuple) else (inputs, [])
        if initial_state is not None:
            states = [self._convert(s) for s in initial_state]
        if states and len(states) != self.states:
            raise ValueError(f"{self.name}: {type(self).__name__} takes {self.states} initial state tensor(s), "
                             f"found {len(states)}")
        if self.go_backwards:
            x = x[:, ::-1]
        outputs, *final = self._recur(x, states or [None] * self.states)
        y = outputs if self.return_sequences else final[0]
        return [y, *final] if self.return_state else y

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        y = (shape[0], self.units) if self.return_sequences else (self.units,)
        return [y, *[(self.units,)] * self.states] if self.return_state else y

    def get_config(self) -> dict:
        return {"units": self.units, "activation": config_name(self.activation), **self._extra_config(),
                "use_bias": self.use_bias, "kernel_initializer": config_name(self.kernel_initializer),
                "recurrent_initializer": config_name(self.recurrent_initializer),
                "bias_initializer": config_name(self.bias_initializer), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "unroll": self.unroll,
                **super().get_config()}

    def _extra_config(self) -> dict:
        return {}


@register("layers")
class SimpleRNN(_RNN):
    """A fully connected recurrence: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Weights: ``kernel (in, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)``. Inputs (batch, time,
    features), or ``[inputs, h0]`` (also ``layer(x, initial_state=[h0])``) to start from a state.

    Args:
        units: the state size u. activation: a registered name (default tanh).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer: as in Keras.
        return_sequences: output every step (batch, time, u), not only the last (batch, u).
        return_state: also return the final state: ``[output, h]``.
        go_backwards: read the sequence from the end (outputs come in that order too).
        unroll: record each step as ordinary ops (gradients of any order), not one fused op.

    Example:
        >>> SimpleRNN(8, return_sequences=True)(np.ones((2, 5, 3), np.float32)).shape
        (2, 5, 8)
    """

    def __init__(self, units: int, activation: str | None = "tanh", use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", recurrent_initializer: str = "orthogonal",
                 bias_initializer: str = "zeros", return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, unroll: bool = False, *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         return_sequences, return_state, go_backwards, unroll, name=name, trainable=trainable,
                         dtype=dtype)

    def _recur(self, x, states):
        return simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias if self.use_bias else None, states[0],
                          self.activation, self.unroll)


@register("layers")
class LSTM(_RNN):
    """Long short-term memory, Keras's equations and gate order i, f, c, o.

    Weights: ``kernel (in, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``. Inputs
    (batch, time, features), or ``[inputs, h0, c0]``.

    Args:
        units, activation, use_bias, initializers, return_sequences, go_backwards, unroll: as in SimpleRNN.
        recurrent_activation: the gates' activation (default sigmoid).
        unit_forget_bias: start the forget gate's bias at 1.
        return_state: also return the final states: ``[output, h, c]``.

    Example:
        >>> out, h, c = LSTM(64, return_state=True)(np.ones((32, 32, 32), np.float32))
        >>> out.shape, c.shape
        ((32, 64), (32, 64))
    """

    gates, states = 4, 2

    def __init__(self, units: int, activation: str | None = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 recurrent_initializer: str = "orthogonal", bias_initializer: str = "zeros",
                 unit_forget_bias: bool = True, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, unroll: bool = False, *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         return_sequences, return_state, go_backwards, unroll, name=name, trainable=trainable,
                         dtype=dtype)
        self.recurrent_activation, self.unit_forget_bias = recurrent_activation, bool(unit_forget_bias)
        activations.get(recurrent_activation)

    def _bias(self):
        if not self.unit_forget_bias:
            return super()._bias()
        init, u = initializers.get(self.bias_initializer), self.units

        def forget_one(shape, dtype, rng):  # the bias initializer, but ones for the forget gate
            return np.concatenate([init((u,), dtype, rng), np.ones(u, dtype), init((2 * u,), dtype, rng)])

        return (4 * u,), forget_one

    def _recur(self, x, states):
        return lstm(x, self.kernel, self.recurrent_kernel, self.bias if self.use_bias else None, *states,
                    self.activation, self.recurrent_activation, self.unroll)

    def _extra_config(self) -> dict:
        return {"recurrent_activation": config_name(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


@register("layers")
class GRU(_RNN):
    """Gated recurrent unit, Keras's equations and gate order z, r, h.

    Weights: ``kernel (in, 3u)``, ``recurrent_kernel (u, 3u)``, ``bias (2, 3u)`` (input and
    recurrent biases; ``(3u,)`` with reset_after=False). Inputs (batch, time, features), or ``[inputs, h0]``.

    Args:
        units, activation, use_bias, initializers, return_sequences, return_state, go_backwards, unroll:
            as in SimpleRNN.
        recurrent_activation: the gates' activation (default sigmoid).
        reset_after: apply the reset gate after the recurrent matmul (Keras's default, and CuDNN's).

    Example:
        >>> GRU(16, return_sequences=True)(np.ones((4, 10, 3), np.float32)).shape
        (4, 10, 16)
    """

    gates = 3

    def __init__(self, units: int, activation: str | None = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 recurrent_initializer: str = "orthogonal", bias_initializer: str = "zeros",
                 reset_after: bool = True, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, unroll: bool = False, *, name: str | None = None,
                 trainable: bool = True, dtype: str | None = None):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         return_sequences, return_state, go_backwards, unroll, name=name, trainable=trainable,
                         dtype=dtype)
        self.recurrent_activation, self.reset_after = recurrent_activation, bool(reset_after)
        activations.get(recurrent_activation)

    def _bias(self):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return shape, self.bias_initializer

    def _recur(self, x, states):
        return gru(x, self.kernel, self.recurrent_kernel, self.bias if self.use_bias else None, states[0],
                   self.activation, self.recurrent_activation, self.reset_after, self.unroll)

    def _extra_config(self) -> dict:
        return {"recurrent_activation": config_name(self.recurrent_activation), "reset_after": self.reset_after}
