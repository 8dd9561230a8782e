"""A trained Sequential model as an ONNX graph, built with ``onnx.helper`` (the ``onnx`` extra).

The graph takes raw inputs ``inputs`` (batch, *input_shape) float32, applies the run's input
normalization, then the layers, and gives ``outputs`` (the model's outputs) and, for a classifier,
``probabilities`` and ``class``: the same table as ``nncli predict``. nncli is channels-last
(NHWC); ONNX's Conv and pooling are channels-first, so the graph transposes where a layer needs the
other layout and only there (a run of convolutions and pools stays channels-first).
"""

from __future__ import annotations

import math

import numpy as np

from nncli.nn import activations

OPSET = 21  # Gelu needs 20; onnxruntime 1.17+ runs 21
IR_VERSION = 10  # the IR version opset 21 needs


class NoCounterpart(Exception):
    """A layer (or one of its settings) that has no ONNX counterpart."""


def _activation_name(value) -> str | None:
    fn = activations.get(value)
    return getattr(fn, "_registry_name", None)


class Graph:
    """Nodes and weights being added; ``first`` says whether the current tensor is channels-first."""

    def __init__(self):
        import onnx.helper
        import onnx.numpy_helper

        self.h, self.nph = onnx.helper, onnx.numpy_helper
        self.nodes, self.weights, self._names = [], [], set()
        self.first = False  # True: the tensor is stored channels-first (N, C, ...), nncli's shape transposed

    def name(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def const(self, base: str, value, dtype=np.float32) -> str:
        name = self.name(base)
        self.weights.append(self.nph.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op: str, inputs: list[str], base: str, outputs: int = 1, **attrs) -> str | list[str]:
        names = [self.name(f"{base}/{op}" + (f":{i}" if outputs > 1 else "")) for i in range(outputs)]
        self.nodes.append(self.h.make_node(op, inputs, names, name=self.name(f"{base}/{op}_node"), **attrs))
        return names if outputs > 1 else names[0]

    def last(self, x: str, rank: int, base: str) -> str:
        """``x`` channels-last again (``rank`` axes with the batch)."""
        if not self.first or rank < 3:
            self.first = False
            return x
        self.first = False
        return self.op("Transpose", [x], base, perm=[0, *range(2, rank), 1])

    def channels_first(self, x: str, rank: int, base: str) -> str:
        if self.first:
            return x
        self.first = True
        return self.op("Transpose", [x], base, perm=[0, rank - 1, *range(1, rank - 1)])

    def activation(self, x: str, value, base: str, rank: int) -> str:
        kind = _activation_name(value)
        simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
        if kind == "linear":
            return x
        if kind in simple:
            return self.op(simple[kind], [x], base)
        if kind == "elu":
            return self.op("Elu", [x], base, alpha=1.0)
        if kind == "leaky_relu":
            return self.op("LeakyRelu", [x], base, alpha=0.2)
        if kind == "gelu":
            return self.op("Gelu", [x], base, approximate="tanh")
        if kind == "swish":
            return self.op("Mul", [x, self.op("Sigmoid", [x], base)], base)
        if kind == "softmax":
            return self.op("Softmax", [self.last(x, rank, base)], base, axis=-1)
        raise NoCounterpart(f"activation '{value}'")


# -- the layers: each converter takes (graph, layer, x, shape) and returns the output's name ----------
# ``shape`` is one sample's shape as nncli has it (channels-last), without the batch axis.


def _weights(layer) -> dict[str, np.ndarray]:
    return {path.split(".")[-1]: var.numpy() for path, var in layer.named_variables()}


def _dense(g: Graph, layer, x, shape):
    base, w = layer.name, _weights(layer)
    x = g.last(x, len(shape) + 1, base)
    y = g.op("MatMul", [x, g.const(f"{base}/kernel", w["kernel"])], base)  # (..., in) @ (in, units)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(f"{base}/bias", w["bias"])], base)
    return g.activation(y, layer.activation, base, len(shape) + 1)


def _conv(g: Graph, layer, x, shape):
    from nncli.nn.layers.conv import padding_and_size

    base, w, rank = layer.name, _weights(layer), layer.rank
    x = g.channels_first(x, rank + 2, base)
    per_axis = (lambda v: (v,)) if rank == 1 else tuple
    kernel, strides, dilation = per_axis(layer.kernel_size), per_axis(layer.strides), per_axis(layer.dilation_rate)
    pads = [padding_and_size(n, k, s, d, layer.padding)[0] for n, k, s, d in zip(shape[:-1], kernel, strides, dilation)]
    weight = np.transpose(w["kernel"], (rank + 1, rank, *range(rank)))  # (k..., in, f) -> (f, in, k...)
    x, pads = _even_pads(g, x, pads, 0.0, base)
    inputs = [x, g.const(f"{base}/kernel", weight)] + ([g.const(f"{base}/bias", w["bias"])] if layer.use_bias else [])
    y = g.op("Conv", inputs, base, kernel_shape=list(kernel), strides=list(strides), dilations=list(dilation),
             pads=[p[0] for p in pads] + [p[1] for p in pads])
    return g.activation(y, layer.activation, base, rank + 2)


def _pool(g: Graph, layer, x, shape):
    from nncli.nn.layers.conv import padding_and_size

    base, rank = layer.name, layer.rank
    x = g.channels_first(x, rank + 2, base)
    pool = (layer.pool_size,) if rank == 1 else tuple(layer.pool_size)
    step = pool if layer.strides is None else ((layer.strides,) if rank == 1 else tuple(layer.strides))
    pads = [padding_and_size(n, k, s, 1, layer.padding)[0] for n, k, s in zip(shape[:-1], pool, step)]
    if type(layer).__name__.startswith("Max"):
        x, pads = _even_pads(g, x, pads, -np.inf, base)
        return g.op("MaxPool", [x], base, kernel_shape=list(pool), strides=list(step),
                    pads=[p[0] for p in pads] + [p[1] for p in pads])
    if any(a != b for a, b in pads):  # mean of the real inputs = mean over zero padding / share of real ones
        ones = np.pad(np.ones(shape[:-1]), pads)
        windows = np.lib.stride_tricks.sliding_window_view(ones, pool)[tuple(slice(None, None, s) for s in step)]
        share = windows.mean(axis=tuple(range(rank, 2 * rank)))[None, None]  # (1, 1, out...)
        x, _ = _even_pads(g, x, pads, 0.0, base)
        y = g.op("AveragePool", [x], base, kernel_shape=list(pool), strides=list(step))
        return g.op("Div", [y, g.const(f"{base}/share", share)], base)
    return g.op("AveragePool", [x], base, count_include_pad=0, kernel_shape=list(pool), strides=list(step),
                pads=[p[0] for p in pads] + [p[1] for p in pads])  # padding left out of each mean


def _even_pads(g: Graph, x: str, pads, value: float, base: str):
    """Uneven (TensorFlow "same") padding as an explicit Pad node, which every runtime reads alike;
    ``(x, pads left for the op)``. ``x`` is channels-first."""
    if all(a == b for a, b in pads):
        return x, pads
    widths = [0, 0, *(a for a, _ in pads), 0, 0, *(b for _, b in pads)]
    x = g.op("Pad", [x, g.const(f"{base}/pads", widths, np.int64), g.const(f"{base}/pad_value", value)], base)
    return x, [(0, 0)] * len(pads)


def _global_pool(g: Graph, layer, x, shape):
    base, rank = layer.name, len(shape) + 1
    x = g.last(x, rank, base)
    op = "ReduceMax" if "Max" in type(layer).__name__ else "ReduceMean"
    axes = g.const(f"{base}/axes", list(range(1, rank - 1)), np.int64)
    return g.op(op, [x, axes], base, keepdims=int(layer.keepdims))


def _batch_norm(g: Graph, layer, x, shape):
    base, w, rank = layer.name, _weights(layer), len(shape) + 1
    axis = layer.axis % rank
    n = shape[axis - 1]
    gamma = w.get("gamma", np.ones(n, np.float32))
    beta = w.get("beta", np.zeros(n, np.float32))
    if axis == rank - 1 and np.ndim(gamma) == 1:  # the channel axis: ONNX's op, channels-first
        x = g.channels_first(x, rank, base) if rank > 2 else g.last(x, rank, base)
        ins = [g.const(f"{base}/{k}", v) for k, v in (("gamma", gamma), ("beta", beta),
                                                   ("moving_mean", w["moving_mean"]), ("moving_variance", w["moving_variance"]))]
        return g.op("BatchNormalization", [x, *ins], base, epsilon=layer.epsilon)
    x = g.last(x, rank, base)  # another axis: the same maths as nncli's inference, op by op
    cast = [1] * rank
    cast[axis] = n
    mean, var = (g.const(f"{base}/{k}", w[k].reshape(cast)) for k in ("moving_mean", "moving_variance"))
    std = g.op("Sqrt", [g.op("Add", [var, g.const(f"{base}/epsilon", layer.epsilon)], base)], base)
    y = g.op("Div", [g.op("Sub", [x, mean], base), std], base)
    y = g.op("Mul", [y, g.const(f"{base}/gamma", gamma.reshape(cast))], base)
    return g.op("Add", [y, g.const(f"{base}/beta", beta.reshape(cast))], base)


def _layer_norm(g: Graph, layer, x, shape):
    base, w, rank = layer.name, _weights(layer), len(shape) + 1
    axes = sorted({a % rank for a in ([layer.axis] if isinstance(layer.axis, int) else layer.axis)})
    x = g.last(x, rank, base)
    norm_shape = [shape[a - 1] for a in axes]
    gamma = w.get("gamma", np.ones(norm_shape, np.float32))
    beta = w.get("beta", np.zeros(norm_shape, np.float32))
    if axes == list(range(axes[0], rank)):  # trailing axes: ONNX's op
        return g.op("LayerNormalization", [x, g.const(f"{base}/gamma", gamma), g.const(f"{base}/beta", beta)], base,
                    axis=axes[0], epsilon=layer.epsilon)
    cast = [shape[a - 1] if a in axes else 1 for a in range(1, rank)]
    ax = g.const(f"{base}/axes", axes, np.int64)
    centered = g.op("Sub", [x, g.op("ReduceMean", [x, ax], base, keepdims=1)], base)
    var = g.op("ReduceMean", [g.op("Mul", [centered, centered], base), ax], base, keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(f"{base}/epsilon", layer.epsilon)], base)], base)
    y = g.op("Mul", [g.op("Div", [centered, std], base), g.const(f"{base}/gamma", gamma.reshape(cast))], base)
    return g.op("Add", [y, g.const(f"{base}/beta", beta.reshape(cast))], base)


def _dropout(g: Graph, layer, x, shape):
    return g.op("Identity", [x], layer.name)  # inference: dropout does nothing


def _flatten(g: Graph, layer, x, shape):
    return g.op("Flatten", [g.last(x, len(shape) + 1, layer.name)], layer.name, axis=1)


def _reshape(g: Graph, layer, x, shape):
    target = [-1, *layer.compute_output_shape(shape)]
    return g.op("Reshape", [g.last(x, len(shape) + 1, layer.name), g.const(f"{layer.name}/shape", target, np.int64)],
                layer.name)


def _activation_layer(g: Graph, layer, x, shape):
    return g.activation(x, layer.activation, layer.name, len(shape) + 1)


def _embedding(g: Graph, layer, x, shape):
    ids = g.op("Cast", [g.last(x, len(shape) + 1, layer.name)], layer.name, to=7)  # int64 ids
    return g.op("Gather", [g.const(f"{layer.name}/embeddings", _weights(layer)["embeddings"]), ids], layer.name, axis=0)


_RNN_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}


def _recurrent(g: Graph, layer, x, shape):
    kind, base, u = type(layer).__name__, layer.name, layer.units
    if layer.return_state:
        raise NoCounterpart("return_state=True (a Sequential passes one tensor on)")
    acts = [layer.activation] + ([layer.recurrent_activation] if kind != "SimpleRNN" else [])
    for a in acts:
        if _activation_name(a) not in _RNN_ACTIVATIONS:
            raise NoCounterpart(f"activation '{a}' (ONNX recurrences take tanh, sigmoid or relu)")
    w = _weights(layer)
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    order = {"LSTM": [0, 3, 1, 2]}.get(kind, list(range(gates)))  # Keras i, f, c, o -> ONNX i, o, f, c

    def blocks(a):  # columns in ONNX's gate order
        return np.concatenate([a[..., i * u:(i + 1) * u] for i in order], axis=-1)

    bias = w.get("bias", np.zeros((2, gates * u) if kind == "GRU" and layer.reset_after else gates * u, np.float32))
    if kind == "GRU" and layer.reset_after:
        b = np.concatenate([blocks(bias[0]), blocks(bias[1])])
    else:
        b = np.concatenate([blocks(bias), np.zeros(gates * u, np.float32)])
    x = g.last(x, 3, base)
    if layer.go_backwards:
        x = g.op("Slice", [x, g.const(f"{base}/start", [-1], np.int64), g.const(f"{base}/end", [-(2 ** 62)], np.int64),
                           g.const(f"{base}/axis", [1], np.int64), g.const(f"{base}/step", [-1], np.int64)], base)
    x = g.op("Transpose", [x], base, perm=[1, 0, 2])  # (time, batch, features): ONNX's default layout
    names = [_RNN_ACTIVATIONS[_activation_name(a)] for a in acts]
    if kind == "LSTM":
        names = [names[1], names[0], names[0]]  # f (the gates), g (the cell input), h (the cell output)
    elif kind == "GRU":
        names = [names[1], names[0]]
    attrs = {"hidden_size": u, "activations": names}
    if kind == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    ins = [x, g.const(f"{base}/W", blocks(w["kernel"]).T[None]), g.const(f"{base}/R", blocks(w["recurrent_kernel"]).T[None]),
           g.const(f"{base}/B", b[None])]
    op = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[kind]
    y_all, y_last = g.op(op, ins, base, outputs=2, **attrs)[:2]
    if layer.return_sequences:  # Y (time, 1, batch, u) -> (batch, time, u)
        y = g.op("Squeeze", [y_all, g.const(f"{base}/dir", [1], np.int64)], base)
        return g.op("Transpose", [y], base, perm=[1, 0, 2])
    return g.op("Squeeze", [y_last, g.const(f"{base}/dir", [0], np.int64)], base)  # Y_h (1, batch, u)


CONVERTERS = {
    "Dense": _dense, "Activation": _activation_layer, "Dropout": _dropout, "Flatten": _flatten, "Reshape": _reshape,
    "Conv1D": _conv, "Conv2D": _conv, "MaxPooling1D": _pool, "MaxPooling2D": _pool, "AveragePooling1D": _pool,
    "AveragePooling2D": _pool, "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool, "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm, "Embedding": _embedding, "SimpleRNN": _recurrent, "LSTM": _recurrent,
    "GRU": _recurrent,
}
"""Layer class name -> converter: the layers that export (matched by the class's exact name)."""


def build_model_proto(layers, input_shape, normalizer, head: str, from_logits: bool, metadata: dict, doc: str):
    """The ONNX ModelProto of ``layers`` (built nncli layers) on inputs of ``input_shape``.

    ``head`` is ``"softmax"`` (classes), ``"sigmoid"`` (binary), or ``"none"`` (regression); it
    decides the extra outputs. Raises NoCounterpart naming the first layer that cannot be exported.
    """
    from nncli.nn.layers.conv import SpatialLayer  # noqa: F401 - the layers' module is loaded with nn

    g = Graph()
    h = g.h
    inputs = h.make_tensor_value_info("inputs", 1, ["batch", *input_shape])
    x, shape = "inputs", tuple(input_shape)
    if normalizer is not None and normalizer.kind != "none" and normalizer.shift is not None:
        x = g.op("Sub", [x, g.const("normalize/shift", normalizer.shift)], "normalize")  # as Normalizer.transform
        x = g.op("Div", [x, g.const("normalize/scale", normalizer.scale)], "normalize")
    for index, layer in enumerate(layers):
        converter = CONVERTERS.get(type(layer).__name__)
        if converter is None:
            raise NoCounterpart(f"layer {index} '{layer.name}' ({type(layer).__name__}) has no ONNX counterpart")
        try:
            x = converter(g, layer, x, shape)
        except NoCounterpart as err:
            raise NoCounterpart(f"layer {index} '{layer.name}' ({type(layer).__name__}): {err} has no ONNX "
                                "counterpart") from None
        shape = tuple(layer.compute_output_shape(shape))
    x = g.last(x, len(shape) + 1, "outputs")
    outputs = [("outputs", g.op("Identity", [x], "outputs"), ["batch", *shape])]
    units = shape[-1] if shape else 1
    if head == "softmax":
        probs = g.op("Softmax", [x], "probabilities", axis=-1) if from_logits else g.op("Identity", [x], "probabilities")
        outputs += [("probabilities", probs, ["batch", units]),
                    ("class", g.op("ArgMax", [probs], "class", axis=-1, keepdims=0), ["batch"])]
    elif head == "sigmoid":
        p = g.op("Sigmoid", [x], "probabilities") if from_logits else x
        if units == 1:
            probs = g.op("Concat", [g.op("Sub", [g.const("one", [1.0]), p], "probabilities"), p], "probabilities", axis=-1)
            cls = g.op("Cast", [g.op("Greater", [p, g.const("half", [0.5])], "class")], "class", to=7)
            outputs += [("probabilities", probs, ["batch", 2]),
                        ("class", g.op("Squeeze", [cls, g.const("class/axis", [1], np.int64)], "class"), ["batch"])]
        else:
            outputs.append(("probabilities", g.op("Identity", [p], "probabilities"), ["batch", units]))
    infos = []
    for name, value, dims in outputs:
        g.nodes.append(h.make_node("Identity", [value], [name], name=g.name(f"{name}/out")))
        infos.append(h.make_tensor_value_info(name, 7 if name == "class" else 1, dims))
    graph = h.make_graph(g.nodes, "nncli", [inputs], infos, initializer=g.weights, doc_string=doc)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                         producer_name="nncli", doc_string=doc)
    h.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    return model


def weight_count(model) -> int:
    """The number of values in the graph's initializers."""
    return sum(math.prod(t.dims) for t in model.graph.initializer)
