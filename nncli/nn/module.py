"""Layer and Model: parameter tracking, building, weights I/O, summaries.

A layer holds state (Variables, sub-layers); its ``call`` does the maths with ``nncli.autodiff``
ops. Variables and layers assigned as attributes (also inside lists, tuples and dicts) are
tracked in assignment order, which fixes ``variables`` / ``get_weights()`` order and the
weight paths (``layers.0.kernel``, ``dense1.kernel``) used in weight files. ``Sequential``
lives in ``nncli.nn.sequential``.

    >>> model = nn.Sequential([nn.layers.Dense(4, activation="relu"), nn.layers.Dense(2)], input_shape=[3])
    >>> [p for p, _ in model.named_variables()]
    ['layers.0.kernel', 'layers.0.bias', 'layers.1.kernel', 'layers.1.bias']
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

import nncli.autodiff as ad
from nncli.autodiff import Tensor, Variable
from nncli.errors import NncliError
from nncli.nn import initializers, random
from nncli.nn.registry import build, get, lookup, snake_case

DEFAULT_DTYPE = np.dtype(np.float32)
MAX_WEIGHT_VALUES = 2**28  # 1 GiB of float32 in one weight: refused before allocating, not after
_NAME_COUNTS: dict[str, int] = {}
_TAKES_TRAINING: dict[type, bool] = {}


class WeightsError(NncliError, ValueError):
    """Weights that do not fit a model: wrong count, missing/extra names, wrong shapes, bad file."""


def _as_shape(shape) -> tuple[int, ...] | list[tuple[int, ...]]:
    """``[3, 4]`` -> ``(3, 4)``; a list of shapes (several inputs) -> a list of tuples."""
    if isinstance(shape, list | tuple) and shape and all(isinstance(s, list | tuple) for s in shape):
        return [_as_shape(s) for s in shape]
    return tuple(None if n is None else int(n) for n in shape)


def _batchless(value):
    """The shape(s) of a layer output without the batch axis."""
    if isinstance(value, Tensor):
        return tuple(value.shape[1:])
    if isinstance(value, list | tuple):
        return [_batchless(v) for v in value]
    return None


def _building(build):
    """Wrap a subclass's ``build`` so that it normalises the shape and marks the layer built."""

    @functools.wraps(build)
    def wrapper(self, input_shape):
        shape = _as_shape(input_shape)
        build(self, shape)
        self.__dict__["built"] = True
        self.__dict__["_build_shape"] = shape

    wrapper._wrapped_build = True
    return wrapper


def _constructing(init):
    """Wrap a subclass's ``__init__`` so that every layer takes ``input_shape=`` (as Keras and
    Rindow layers do) and is built with it once the outermost ``__init__`` has run."""
    if "input_shape" in inspect.signature(init).parameters:  # the class handles it itself
        return init

    @functools.wraps(init)
    def wrapper(self, *args, input_shape=None, **kwargs):
        depth = self.__dict__.get("_init_depth", 0)
        self.__dict__["_init_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_init_depth"] = depth
        if input_shape is not None:
            self.__dict__["input_shape_given"] = _as_shape(input_shape)
        if depth == 0 and self.__dict__.get("input_shape_given") is not None and not self.built:
            self.build(self.input_shape_given)

    wrapper._wrapped_init = True
    return wrapper


def _items(value):
    """``(key, item)`` pairs of a list, tuple or dict; nothing for anything else."""
    if isinstance(value, list | tuple):
        return enumerate(value)
    return value.items() if isinstance(value, dict) else ()


def _holds_state(value) -> bool:
    """Worth tracking: a layer, a variable, or a container that holds one (or is still empty)."""
    if isinstance(value, Layer | Variable):
        return True
    items = list(_items(value))
    return isinstance(value, list | tuple | dict) and (not items or any(_holds_state(v) for _, v in items))


def _visit(path: str, value, trainable: bool, seen: set, out: list) -> None:
    """Depth-first, in tracking order: append ``(path, variable, effectively trainable)``."""
    if isinstance(value, Layer | Variable):
        if id(value) in seen:
            return
        seen.add(id(value))
        trainable = trainable and value.trainable
        if isinstance(value, Variable):
            out.append((path, value, trainable))
            return
    children = value.__dict__.get("_tracked", {}).items() if isinstance(value, Layer) else _items(value)
    for key, item in children:
        _visit(f"{path}.{key}" if path else str(key), item, trainable, seen, out)


def _direct_layers(value, out: list) -> list:
    """The layers in ``value`` (a layer or nested containers), not looking inside layers."""
    if isinstance(value, Layer):
        if all(v is not value for v in out):
            out.append(value)
    for _, item in _items(value):
        _direct_layers(item, out)
    return out


def _run_on_zeros(layer, input_shape):
    """Call ``layer`` on a zero batch of one, unrecorded: shape inference and eager building."""
    shapes = input_shape if isinstance(input_shape, list) else [input_shape]
    zeros = [np.zeros((1, *s), dtype=layer.dtype) for s in shapes]
    with ad.no_record():
        return layer(zeros if isinstance(input_shape, list) else zeros[0])


class Layer:
    """Base of every layer: weights, building from the input shape, config.

    Subclasses define ``build(input_shape)`` (creating weights with :meth:`add_weight`),
    ``call(inputs, training=False)`` and ``compute_output_shape(input_shape)``; shapes
    never include the batch axis. Their ``__init__`` takes typed constructor arguments plus
    ``name``, ``trainable``, ``dtype`` (passed on to ``super().__init__``), and ``get_config``
    returns exactly those arguments: ``{**super().get_config(), "units": self.units, ...}``.

    Args:
        name: a label for summaries (default: snake_case class name with a counter).
        trainable: False freezes every weight of the layer and its sub-layers.
        dtype: float dtype of the weights and of float inputs (default float32).
        input_shape: accepted by every layer's constructor (as in Keras and Rindow): the input
            shape without the batch axis; the layer is built at once. On a Sequential's first
            layer it is the model's input shape.

    Example:
        >>> layer = nn.layers.Dense(3); y = layer(np.ones((2, 4), np.float32)); y.shape
        (2, 3)
    """

    built = False
    trainable = True
    cast_inputs = True  # False: numpy inputs become tensors unchanged (models, integer-input layers)
    _build_shape = None
    _output_shape = None

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype: str | None = None):
        dt = np.dtype(dtype) if dtype is not None else DEFAULT_DTYPE
        if dt.kind != "f":
            raise ValueError(f"{type(self).__name__}: dtype must be a float dtype, found {dtype!r}")
        self._dtype = dt
        self._given_name = name
        if name is None:
            base = snake_case(type(self).__name__)
            count = _NAME_COUNTS.get(base, 0)
            _NAME_COUNTS[base] = count + 1
            name = base if count == 0 else f"{base}_{count}"
        self.name = name
        self.trainable = bool(trainable)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_wrapped_init", False):
            cls.__init__ = _constructing(init)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_wrapped_build", False):
            cls.build = _building(build)

    # -- tracking ---------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        tracked = self.__dict__.get("_tracked")
        if tracked is None:
            tracked = self.__dict__["_tracked"] = {}
        if _holds_state(value):
            tracked[name] = value
        else:
            tracked.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.get("_tracked", {}).pop(name, None)
        object.__delattr__(self, name)

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of the weights."""
        return self.__dict__.get("_dtype", DEFAULT_DTYPE)

    def add_weight(self, name: str, shape, initializer="glorot_uniform", trainable: bool = True) -> Variable:
        """Create, track and return a weight Variable of ``self.dtype``.

        Args:
            name: its path component (``kernel``); unique within the layer.
            shape: the weight's shape.
            initializer: a registered initializer name or a callable ``(shape, dtype, rng) -> array``.
            trainable: False for state such as moving statistics.

        Example:
            >>> self.kernel = self.add_weight("kernel", (in_dim, self.units), "glorot_uniform")
        """
        tracked = self.__dict__.setdefault("_tracked", {})
        if name in tracked:
            raise ValueError(f"{self.name}: a weight or attribute called {name!r} already exists")
        shape = tuple(int(n) for n in shape)
        size = int(np.prod(shape, dtype=object))  # exact: no overflow for absurd shapes
        if size > MAX_WEIGHT_VALUES:
            raise ValueError(f"{self.name}: weight {name!r} of shape {shape} would hold {size:,} values; "
                             f"at most {MAX_WEIGHT_VALUES:,} per weight (check the layer sizes)")
        value = initializers.get(initializer)(shape, self.dtype, random.generator())
        var = Variable(value, dtype=self.dtype, trainable=trainable, name=f"{self.name}/{name}")
        tracked[name] = var
        return var

    def _entries(self) -> list[tuple[str, Variable, bool]]:
        out: list = []
        _visit("", self, True, set(), out)
        return out

    def named_variables(self) -> list[tuple[str, Variable]]:
        """``(path, variable)`` pairs in weight order, e.g. ``("layers.0.kernel", var)``."""
        return [(p, v) for p, v, _ in self._entries()]

    @property
    def variables(self) -> list[Variable]:
        """Every weight of the layer and its sub-layers, in weight order."""
        return [v for _, v, _ in self._entries()]

    weights = variables

    @property
    def trainable_variables(self) -> list[Variable]:
        """The weights an optimizer updates (trainable weights of trainable layers)."""
        return [v for _, v, t in self._entries() if t]

    @property
    def non_trainable_variables(self) -> list[Variable]:
        """Frozen weights and state such as BatchNormalization's moving statistics."""
        return [v for _, v, t in self._entries() if not t]

    def count_params(self) -> int:
        """The number of scalars in all weights."""
        return sum(v.size for v in self.variables)

    # -- building and calling -----------------------------------------------------
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (without the batch axis)."""

    def call(self, inputs, training: bool = False):
        """The layer's maths on tensors; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define call()")

    def compute_output_shape(self, input_shape):
        """The output shape (without batch) for ``input_shape``; by default found by a zero batch."""
        return _batchless(_run_on_zeros(self, _as_shape(input_shape)))

    def _convert(self, x):
        if isinstance(x, list | tuple) and x and all(isinstance(v, Tensor | np.ndarray) for v in x):
            return type(x)(self._convert(v) for v in x)
        if not isinstance(x, Tensor):
            x = np.asarray(x)
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{self.name}: expected numeric inputs, found {x.dtype}")
        # an array is shared, not copied (read-only); cast_inputs layers take their own dtype
        return ad.as_tensor(x, self.dtype if self.cast_inputs else x.dtype)

    def _build_for(self, inputs) -> None:
        self.build(_batchless(inputs))

    def __call__(self, inputs, training: bool = False, **kwargs):
        """Convert ``inputs`` (an array, a tensor, or a list of them) to tensors of the layer's
        dtype, build on first use from their shape, run ``call``; extra keyword arguments go to it."""
        x = self._convert(inputs)
        if not self.built:
            self._build_for(x)
        cls = type(self)
        takes = _TAKES_TRAINING.get(cls)
        if takes is None:
            params = inspect.signature(cls.call).parameters.values()
            takes = _TAKES_TRAINING[cls] = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)
        out = self.call(x, training=training, **kwargs) if takes else self.call(x, **kwargs)
        self.__dict__["_output_shape"] = _batchless(out)
        return out

    # -- weights --------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, in weight order (SPEC: Dense ``[kernel, bias]``, ...)."""
        return [np.array(v) for v in self.variables]

    def set_weights(self, weights) -> None:
        """Assign arrays in ``get_weights()`` order; count and shapes must match exactly.

        Raises:
            WeightsError: wrong number of arrays, or wrong shapes (all of them listed).
        """
        named = self._named_or_fail()
        weights = list(weights)
        if len(weights) != len(named):
            raise WeightsError(f"{self.name} has {len(named)} weights "
                               f"({', '.join(p for p, _ in named)}), got {len(weights)} arrays")
        arrays = [np.asarray(w) for w in weights]
        bad = [f"{p}: expected {v.shape}, found {a.shape}" for (p, v), a in zip(named, arrays) if a.shape != v.shape]
        if bad:
            raise WeightsError(f"{self.name}: weight shapes do not match: " + "; ".join(bad))
        for (_, v), a in zip(named, arrays):
            v.assign(a)

    def load_named_weights(self, tensors: Mapping[str, np.ndarray], source: str | None = None) -> None:
        """Assign weights by path (``layers.0.kernel``); every path must be present with its shape.

        Raises:
            WeightsError: missing, unexpected or mis-shaped names (all listed), naming ``source``.
        """
        named = self._named_or_fail()
        expected = dict(named)
        missing = [p for p in expected if p not in tensors]
        extra = sorted(p for p in tensors if p not in expected)
        shapes = [f"{p} (expected {expected[p].shape}, found {tuple(np.shape(tensors[p]))})"
                  for p in expected if p in tensors and tuple(np.shape(tensors[p])) != expected[p].shape]
        problems = [f"{label}: {', '.join(items)}" for label, items in
                    (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)) if items]
        if problems:
            raise WeightsError(f"the weights do not fit model {self.name}: " + "; ".join(problems), where=source)
        for p, v in named:
            v.assign(np.asarray(tensors[p]))

    def _named_or_fail(self) -> list[tuple[str, Variable]]:
        named = self.named_variables()
        if not named and not self.built:
            raise WeightsError(f"{self.name} has no weights yet: give Sequential an input_shape, call "
                               "model.build(input_shape), or call the model on a batch first")
        return named

    # -- config -----------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments (here: ``name``/``trainable``/``dtype`` when not defaults)."""
        config: dict[str, Any] = {}
        if self.__dict__.get("_given_name") is not None:
            config["name"] = self._given_name
        if not self.trainable:
            config["trainable"] = False
        if self.dtype != DEFAULT_DTYPE:
            config["dtype"] = self.dtype.name
        return config

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} built={self.built}>"


Layer.build = _building(Layer.build)  # subclasses get wrapped by __init_subclass__


def registry_name(obj) -> str:
    """The registered name of ``obj``'s class; raise when the class itself is not registered."""
    cls = type(obj)
    name = cls.__dict__.get("_registry_name")
    if name is None:
        raise ValueError(f"{cls.__name__} is not registered; decorate it with @register('layers') "
                         "so that configs can name it")
    return name


def layer_from_config(config: Mapping[str, Any]) -> Layer:
    """``{"type": "Dense", "units": 3}`` -> ``Dense(units=3)`` (layers, then models registry)."""
    kind = config.get("type") if isinstance(config, Mapping) else None
    if not isinstance(kind, str):
        raise ValueError(f"a layer config needs a 'type' name, found {dict(config) if isinstance(config, Mapping) else config!r}")
    return build("models" if lookup("layers", kind) is None and lookup("models", kind) else "layers", config)


class Model(Layer):
    """A layer that is trained and saved as a whole; subclass it and define ``call``.

    Example:
        >>> class TestModel(nn.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.dense1 = nn.layers.Dense(128, activation="sigmoid")
        ...         self.dense2 = nn.layers.Dense(2)
        ...     def call(self, inputs, training=False):
        ...         return self.dense2(self.dense1(inputs))
    """

    cast_inputs = False

    def _build_for(self, inputs) -> None:
        if type(self).build is Model.build:  # a subclass builds its layers as it calls them
            self.__dict__["built"] = True
            self.__dict__["_build_shape"] = _batchless(inputs)
        else:
            super()._build_for(inputs)

    def build(self, input_shape) -> None:
        """Create every weight by running the model once on a zero batch of ``input_shape``."""
        self.__dict__["built"] = True  # so that the call below does not build again
        _run_on_zeros(self, input_shape)

    @property
    def layers(self) -> list[Layer]:
        """The direct sub-layers, in tracking order."""
        if "layers" in self.__dict__:
            return self.__dict__["layers"]
        return _direct_layers(list(self.__dict__.get("_tracked", {}).values()), [])

    @layers.setter
    def layers(self, value) -> None:
        self.__dict__["layers"] = value

    # -- summaries -----------------------------------------------------------------------
    def summary_rows(self) -> list[dict]:
        """One dict per direct sub-layer: ``name``, ``type``, ``output_shape`` (batch as None, or
        None before the shape is known) and ``params``."""
        rows = []
        for layer in self.layers:
            shape = layer._output_shape
            if isinstance(shape, tuple):
                shape = (None, *shape)
            elif isinstance(shape, list):
                shape = [(None, *s) for s in shape]
            rows.append({"name": layer.name, "type": type(layer).__name__,
                         "output_shape": shape, "params": layer.count_params()})
        return rows

    def param_counts(self) -> dict[str, int]:
        """``{"total", "trainable", "non_trainable"}`` scalar counts."""
        entries = self._entries()
        trainable = sum(v.size for _, v, t in entries if t)
        total = sum(v.size for _, v, _ in entries)
        return {"total": total, "trainable": trainable, "non_trainable": total - trainable}

    def summary(self, print_fn=print) -> None:
        """Print a plain-text table of the layers, their output shapes and parameter counts."""
        table = [("Layer (type)", "Output shape", "Params")]
        for row in self.summary_rows():
            shape = "?" if row["output_shape"] is None else str(row["output_shape"])
            table.append((f"{row['name']} ({row['type']})", shape, f"{row['params']:,}"))
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        rule = "-" * (sum(widths) + 4)
        lines = [f'Model: "{self.name}"', rule]
        for i, r in enumerate(table):
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}")
            if i == 0:
                lines.append(rule)
        counts = self.param_counts()
        lines += [rule, f"Total params: {counts['total']:,}", f"Trainable params: {counts['trainable']:,}",
                  f"Non-trainable params: {counts['non_trainable']:,}"]
        print_fn("\n".join(lines))

    # -- weight files ----------------------------------------------------------------------
    def save_weights(self, path) -> None:
        """Write every weight to a safetensors file, named by path (``layers.0.kernel``).

        Example:
            >>> model.save_weights("weights.safetensors"); model.load_weights("weights.safetensors")
        """
        from safetensors.numpy import save_file

        named = self._named_or_fail()
        save_file({p: v.numpy() for p, v in named}, os.fspath(path), metadata={"format": "nncli-weights"})

    def load_weights(self, path) -> None:
        """Read a file written by :meth:`save_weights`; names and shapes must match exactly.

        Raises:
            WeightsError: an unreadable file, or missing/extra/mis-shaped weights.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(os.fspath(path))
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"cannot read the weights file: {err}", where=os.fspath(path)) from err
        self.load_named_weights(tensors, source=os.fspath(path))
