"""``nncli check``: validate a config, build it, run one step and gradient-check each layer.

Nothing is trained and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import nncli.autodiff as ad
from nncli import nn
from nncli.autodiff.gradcheck import check_gradients
from nncli.train.build import build, output_units, prepare_targets
from nncli.train.config import load_config

MAX_CHECKS = 40  # elements checked per tensor: enough to catch a wrong rule, fast on big layers
ATOL, RTOL = 1e-5, 1e-4  # in float64 (the layers run in float64 for the check)


@dataclass
class LayerCheck:
    name: str
    kind: str
    checked: list[str]  # what was differentiated: "inputs", "kernel", ...
    max_error: float
    ok: bool
    note: str = ""


@dataclass
class CheckReport:
    """What ``check_config`` found: the layer table, one step's loss, per-layer gradient checks."""

    config_path: str
    rows: list[dict]
    params: dict
    data: dict
    loss: float
    grad_norm: float
    layers: list[LayerCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the data, as train gives them (a tiny training part)

    @property
    def ok(self) -> bool:
        return math.isfinite(self.loss) and all(c.ok for c in self.layers)


def _sample_input(layer, shape, rng: np.random.Generator):
    """A float64 batch of two for ``layer`` (integers for an Embedding)."""
    if type(layer).__name__ == "Embedding":
        return rng.integers(0, layer.input_dim, size=(2, *shape)).astype(np.int64)
    return rng.standard_normal((2, *shape))


def _check_layer(layer, input_shape, rng) -> LayerCheck:
    """Gradients of a float64 twin of ``layer`` w.r.t. its input and weights vs central differences."""
    twin = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
    x = _sample_input(layer, input_shape, rng)
    twin(x[:1])  # build
    weights = {path: v for path, v in twin.named_variables() if v.trainable}
    float_input = x.dtype.kind == "f"
    labels = (["inputs"] if float_input else []) + list(weights)
    if not labels:
        return LayerCheck(layer.name, type(layer).__name__, [], 0.0, True, "nothing to differentiate")
    result = check_gradients(lambda inputs: twin(inputs, training=False), [x], names=["inputs"],
                             wrt=[0] if float_input else [], variables=weights, seed=int(rng.integers(2**31)),
                             atol=ATOL, rtol=RTOL, max_checks=MAX_CHECKS)
    return LayerCheck(layer.name, type(layer).__name__, labels, result.max_error, result.ok)


def check_config(config_path, overrides=()) -> CheckReport:
    """Validate and build a config, run one forward/backward step, gradient-check every layer."""
    cfg = load_config(config_path, overrides)
    parts = build(cfg)
    model, data = parts.model, parts.data
    units = output_units(model)
    n = min(cfg.data.batch_size, len(data.x_train))
    x, y = data.x_train[:n], prepare_targets(parts.loss, data.y_train[:n], units)
    with ad.GradientTape() as tape:
        loss = parts.loss(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    grad_norm = math.sqrt(sum(float(np.vdot(g.numpy(), g.numpy())) for g in grads if g is not None))
    report = CheckReport(str(config_path), model.summary_rows(), model.param_counts(),
                         {"source": data.source_desc, "train": len(data.x_train),
                          "validation": 0 if data.x_val is None else len(data.x_val)},
                         float(loss), grad_norm, warnings=list(data.warnings))
    rng = np.random.default_rng(cfg.seed)
    if isinstance(model, nn.Sequential):
        shape = tuple(cfg.model["input_shape"])
        for layer in model.layers:
            report.layers.append(_check_layer(layer, shape, rng))
            shape = tuple(layer.compute_output_shape(shape))
    return report
