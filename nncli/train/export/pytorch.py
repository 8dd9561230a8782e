"""A Sequential model's weights named and laid out as a ``torch.nn.Sequential`` state dict.

Each nncli layer becomes one or more torch modules (a Dense with relu is ``Linear`` then
``ReLU``), numbered as a ``torch.nn.Sequential`` numbers them, so the keys are ``0.weight``,
``0.bias``, ``3.weight``, ... in torch's layouts: ``Linear.weight`` is ``(out, in)``, convolution
kernels ``(out, in, k...)``, recurrent weights ``(gates * units, in)`` in torch's gate order, and a
``Linear`` after ``Flatten`` of a channels-first image has its input columns in torch's (C, H, W)
order. The module list (``{"module": "Linear", "args": [64, 128], "kwargs": {...}}``) goes into the
file's metadata, so the matching torch model can be built without guessing.
"""

from __future__ import annotations

import math

import numpy as np

from nncli.train.export.onnx import NoCounterpart, _activation_name, _weights

_TORCH_ACTIVATIONS = {"relu": ("ReLU", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
                      "softmax": ("Softmax", {"dim": -1}), "softplus": ("Softplus", {}), "elu": ("ELU", {}),
                      "leaky_relu": ("LeakyReLU", {"negative_slope": 0.2}), "gelu": ("GELU", {"approximate": "tanh"}),
                      "swish": ("SiLU", {})}


class _State:
    def __init__(self):
        self.modules: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.channels_first = False  # the torch model's tensor is (N, C, ...) where nncli's is (N, ..., C)
        self.flattened: tuple[int, ...] | None = None  # nncli's (..., C) shape that a Flatten of a torch
        # channels-first tensor just flattened: the next Linear's columns are reordered to match

    def add(self, module: str, *args, params: dict | None = None, **kwargs) -> None:
        index = len(self.modules)
        self.modules.append({"module": module, "args": _plain(list(args)), "kwargs": _plain(kwargs)})
        for name, value in (params or {}).items():
            self.tensors[f"{index}.{name}"] = np.ascontiguousarray(value)

    def activation(self, value) -> None:
        kind = _activation_name(value)
        if kind == "linear":
            return
        if kind not in _TORCH_ACTIVATIONS:
            raise NoCounterpart(f"activation '{value}'")
        name, kwargs = _TORCH_ACTIVATIONS[kind]
        self.add(name, **kwargs)


def _plain(value):
    """JSON-ready: numpy integers and floats as Python's, tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _pads(layer, shape, kernel, strides, dilation):
    from nncli.nn.layers.conv import padding_and_size

    return [padding_and_size(n, k, s, d, layer.padding)[0] for n, k, s, d in zip(shape[:-1], kernel, strides, dilation)]


def _dense(st: _State, layer, shape):
    w = _weights(layer)
    kernel = w["kernel"]  # (in, units)
    if st.flattened is not None:  # rows in nncli's (H, W, C) order -> torch's (C, H, W)
        order = np.arange(kernel.shape[0]).reshape(st.flattened)  # nncli's row of each (..., c)
        kernel = kernel[np.moveaxis(order, -1, 0).ravel()]  # torch's row order: (c, ...)
    params = {"weight": kernel.T, **({"bias": w["bias"]} if layer.use_bias else {})}
    st.add("Linear", kernel.shape[0], layer.units, bias=layer.use_bias, params=params)
    st.activation(layer.activation)


def _conv(st: _State, layer, shape):
    rank, w = layer.rank, _weights(layer)
    one = (lambda v: (v,)) if rank == 1 else tuple
    kernel, strides, dilation = one(layer.kernel_size), one(layer.strides), one(layer.dilation_rate)
    pads = _pads(layer, shape, kernel, strides, dilation)
    if any(a != b for a, b in pads):  # torch pads both sides alike: pad first, then convolve unpadded
        st.add(f"ConstantPad{rank}d", [p for a, b in reversed(pads) for p in (a, b)], 0.0)
        padding = [0] * rank
    else:
        padding = [a for a, _ in pads]
    params = {"weight": np.transpose(w["kernel"], (rank + 1, rank, *range(rank))),
              **({"bias": w["bias"]} if layer.use_bias else {})}
    st.add(f"Conv{rank}d", shape[-1], layer.filters, list(kernel), stride=list(strides), padding=padding,
           dilation=list(dilation), bias=layer.use_bias, params=params)
    st.channels_first = True
    st.activation(layer.activation)


def _pool(st: _State, layer, shape):
    rank = layer.rank
    pool = (layer.pool_size,) if rank == 1 else tuple(layer.pool_size)
    step = pool if layer.strides is None else ((layer.strides,) if rank == 1 else tuple(layer.strides))
    pads = _pads(layer, shape, pool, step, [1] * rank)
    if any(a != b for a, b in pads):
        raise NoCounterpart("uneven 'same' padding (torch pools pad both sides alike)")
    kind = "Max" if type(layer).__name__.startswith("Max") else "Avg"
    extra = {} if kind == "Max" else {"count_include_pad": False}
    st.add(f"{kind}Pool{rank}d", list(pool), stride=list(step), padding=[a for a, _ in pads], **extra)
    st.channels_first = True


def _global_pool(st: _State, layer, shape):
    rank = len(shape) - 1
    st.add(f"Adaptive{'Max' if 'Max' in type(layer).__name__ else 'Avg'}Pool{rank}d", 1)
    if not layer.keepdims:
        st.add("Flatten")
        st.channels_first = False


def _batch_norm(st: _State, layer, shape):
    if layer.axis % (len(shape) + 1) != len(shape):
        raise NoCounterpart("a BatchNormalization axis other than the channels")
    w, n = _weights(layer), shape[-1]
    params = {"weight": w.get("gamma", np.ones(n, np.float32)), "bias": w.get("beta", np.zeros(n, np.float32)),
              "running_mean": w["moving_mean"], "running_var": w["moving_variance"],
              "num_batches_tracked": np.array(0, dtype=np.int64)}
    dims = max(len(shape) - 1, 1)
    st.add(f"BatchNorm{dims}d", n, eps=layer.epsilon, momentum=1.0 - layer.momentum, params=params)


def _layer_norm(st: _State, layer, shape):
    rank = len(shape) + 1
    axes = sorted({a % rank for a in ([layer.axis] if isinstance(layer.axis, int) else layer.axis)})
    if axes != list(range(axes[0], rank)):
        raise NoCounterpart("LayerNormalization over axes that are not the last ones")
    w, norm_shape = _weights(layer), [shape[a - 1] for a in axes]
    params = {"weight": w.get("gamma", np.ones(norm_shape, np.float32)),
              "bias": w.get("beta", np.zeros(norm_shape, np.float32))}
    st.add("LayerNorm", norm_shape, eps=layer.epsilon, params=params)


def _recurrent(st: _State, layer, shape):
    kind, u, w = type(layer).__name__, layer.units, _weights(layer)
    if layer.return_state or layer.go_backwards:
        raise NoCounterpart("return_state or go_backwards")
    names = [_activation_name(layer.activation)]
    if kind != "SimpleRNN":
        names.append(_activation_name(layer.recurrent_activation))
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    order = {"GRU": [1, 0, 2]}.get(kind, list(range(gates)))  # Keras z, r, h -> torch r, z, n; LSTM i, f, g, o alike

    def blocks(a):
        return np.concatenate([a[..., i * u:(i + 1) * u] for i in order], axis=-1)

    zeros = np.zeros(gates * u, np.float32)
    if kind == "GRU":
        if not layer.reset_after:
            raise NoCounterpart("reset_after=False (torch's GRU applies the reset gate after the matmul)")
        bias = w.get("bias", np.zeros((2, gates * u), np.float32))
        b_ih, b_hh = blocks(bias[0]), blocks(bias[1])
    else:
        b_ih, b_hh = blocks(w.get("bias", zeros)), zeros
    kwargs = {"batch_first": True}
    if kind == "SimpleRNN":
        if names[0] not in ("tanh", "relu"):
            raise NoCounterpart(f"activation '{layer.activation}' (torch's RNN takes tanh or relu)")
        kwargs["nonlinearity"] = names[0]
    elif names != ["tanh", "sigmoid"]:
        raise NoCounterpart(f"activations {names} (torch's {kind} uses tanh and sigmoid)")
    params = {"weight_ih_l0": blocks(w["kernel"]).T, "weight_hh_l0": blocks(w["recurrent_kernel"]).T,
              "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    st.add({"SimpleRNN": "RNN"}.get(kind, kind), shape[-1], u, params=params, **kwargs,
           returns="output, h_n" if kind != "LSTM" else "output, (h_n, c_n)",
           use="output" if layer.return_sequences else "output[:, -1]")


def _simple(module):
    def convert(st: _State, layer, shape):
        if module == "Flatten":
            st.flattened = tuple(shape) if st.channels_first and len(shape) > 1 else None
            st.add("Flatten")
            st.channels_first = False
            return
        if module == "Dropout":
            st.add("Dropout", layer.rate)
        elif module == "Reshape":
            target = tuple(layer.compute_output_shape(shape))
            if len(target) >= 3 and target[-1] != 1:
                raise NoCounterpart("a Reshape into channels-last images of more than one channel "
                                    "(torch would need a permute)")
            st.add("Unflatten", 1, list(np.roll(target, 1)) if len(target) >= 3 else list(target))
            st.channels_first = len(target) >= 3
        elif module == "Activation":
            st.activation(layer.activation)
        elif module == "Embedding":
            st.add("Embedding", layer.input_dim, layer.output_dim, params={"weight": _weights(layer)["embeddings"]})

    return convert


CONVERTERS = {
    "Dense": _dense, "Conv1D": _conv, "Conv2D": _conv, "MaxPooling1D": _pool, "MaxPooling2D": _pool,
    "AveragePooling1D": _pool, "AveragePooling2D": _pool, "GlobalAveragePooling1D": _global_pool,
    "GlobalAveragePooling2D": _global_pool, "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "SimpleRNN": _recurrent,
    "LSTM": _recurrent, "GRU": _recurrent,
    **{name: _simple(name) for name in ("Flatten", "Dropout", "Reshape", "Activation", "Embedding")},
}


def torch_state(layers, input_shape) -> tuple[dict[str, np.ndarray], list[dict]]:
    """``(tensors by torch name, torch module list)`` for built nncli ``layers``; NoCounterpart names a misfit."""
    st, shape = _State(), tuple(input_shape)
    for index, layer in enumerate(layers):
        converter = CONVERTERS.get(type(layer).__name__)
        if converter is None:
            raise NoCounterpart(f"layer {index} '{layer.name}' ({type(layer).__name__}) has no PyTorch counterpart")
        try:
            converter(st, layer, shape)
        except NoCounterpart as err:
            raise NoCounterpart(f"layer {index} '{layer.name}' ({type(layer).__name__}): {err} has no PyTorch "
                                "counterpart") from None
        if type(layer).__name__ not in ("Flatten", "Dropout"):
            st.flattened = None  # a Flatten's column order matters to the Dense right after it only
        shape = tuple(layer.compute_output_shape(shape))
    return st.tensors, st.modules


def count(tensors: dict) -> int:
    return sum(math.prod(np.shape(v)) for v in tensors.values())
