"""Export a trained run for other tools: an ONNX graph, or its weights for PyTorch.

    result = export_run("runs", "latest", format="onnx")            # runs/<id>/export/best.onnx
    result = export_run("runs", "latest", format="safetensors", checkpoint="last", out="w.safetensors")

It lives in ``train`` because it reads run folders (``inspect.restore_model``, ``run.json``'s
normalization); ``nn`` and ``data`` know nothing of it. onnx is imported only here, when used.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.errors import NncliError

FORMATS = ("onnx", "safetensors")


class ExportError(NncliError):
    """A run that cannot be exported as asked (a layer without a counterpart, a missing package)."""


@dataclass
class ExportResult:
    """What was written: ``path``, and what it holds."""

    path: Path
    format: str
    run_id: str
    checkpoint: str
    epoch: int | None
    layers: int
    weights: int  # values in the file's weights
    inputs: list  # [(name, dims, dtype)]
    outputs: list  # [(name, dims, dtype)]
    normalize: str
    details: dict = field(default_factory=dict)


def _write_atomically(path: Path, write) -> None:
    """``write(tmp_path)``, then rename over ``path``: a failure leaves nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _head(loss, units: int) -> tuple[str, bool]:
    kind, logits = getattr(loss, "label_kind", None), bool(getattr(loss, "from_logits", False))
    if kind in ("sparse", "categorical"):
        return "softmax", logits
    if kind == "binary":
        return "sigmoid", logits
    return "none", logits


def export_run(runs_dir, run_id: str, format: str = "onnx", checkpoint: str = "best", out=None,
               trust_plugins: bool = False) -> ExportResult:
    """Write a run's checkpoint as ONNX (``format="onnx"``) or as PyTorch-named weights (``"safetensors"``).

    Args:
        runs_dir: the folder of runs.
        run_id: a run id or ``latest``.
        format: ``onnx`` (the whole model, the run's input normalization inside: raw inputs in, as
            with ``nncli predict``) or ``safetensors`` (the weights alone, named and laid out as a
            ``torch.nn.Sequential`` holds them; the torch module list in the metadata).
        checkpoint: ``best`` or ``last``.
        out: the file to write (default ``runs/<id>/export/<checkpoint>.onnx|.safetensors``).
        trust_plugins: import the plugins the run's config lists (code that runs with your rights),
            as ``nncli eval --trust-plugins`` does; without it a run that lists plugins is refused.

    Raises:
        ExportError: for a layer with no counterpart (named), a model that is not Sequential, or
            a missing ``onnx`` package. Nothing is written then.

    Example:
        >>> export_run("runs", "latest").path                                  # doctest: +SKIP
        PosixPath('runs/quickstart-20260101-120000/export/best.onnx')
    """
    from nncli.data import Normalizer
    from nncli.nn import Sequential
    from nncli.train.build import output_units
    from nncli.train.export.onnx import NoCounterpart
    from nncli.train.inspect import restore_model
    from nncli.train.runs import resolve_run

    if format not in FORMATS:
        raise ExportError(f"unknown format '{format}': expected one of {', '.join(FORMATS)}")
    path = resolve_run(runs_dir, run_id)
    cfg, parts, epoch, info = restore_model(path, checkpoint, trust_plugins=trust_plugins)
    model = parts.model
    if not isinstance(model, Sequential):
        raise ExportError(f"run '{path.name}' has a {type(model).__name__} model; only Sequential models export "
                          "(a subclassed model's call() is Python code, not a graph)")
    saved = info.get("data") or {}
    input_shape = [int(s) for s in (saved.get("input_shape") or cfg.model.get("input_shape") or [])]
    normalizer = Normalizer.from_dict(saved.get("normalizer") or {"kind": "none"})
    out = Path(out) if out is not None else path / "export" / f"{checkpoint}.{format}"
    meta = {"nncli.run_id": path.name, "nncli.checkpoint": checkpoint, "nncli.epoch": epoch,
            "nncli.input_shape": json.dumps(input_shape), "nncli.normalize": normalizer.kind,
            "nncli.feature_names": json.dumps(saved.get("feature_names"))}
    try:
        if format == "onnx":
            return _export_onnx(model, input_shape, normalizer, parts.loss, output_units(model), meta, out,
                                (path.name, checkpoint, epoch))
        return _export_safetensors(model, input_shape, normalizer, meta, out, (path.name, checkpoint, epoch))
    except NoCounterpart as err:
        raise ExportError(f"cannot export run '{path.name}' as {format}: {err}") from None


def _export_onnx(model, input_shape, normalizer, loss, units, meta, out: Path, run) -> ExportResult:
    try:
        import onnx
    except ImportError:
        raise ExportError("--format onnx needs the onnx package: pip install 'nncli[onnx]'") from None
    from nncli.train.export.onnx import OPSET, build_model_proto, weight_count

    head, logits = _head(loss, units)
    doc = f"nncli run {run[0]}, {run[1]} checkpoint (epoch {run[2]}); inputs are raw features, normalized inside"
    proto = build_model_proto(model.layers, input_shape, normalizer, head, logits, meta, doc)
    onnx.checker.check_model(proto, full_check=True)  # a graph onnx itself rejects is never written
    _write_atomically(out, lambda tmp: onnx.save_model(proto, tmp))

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    def dtype(v):
        return onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name

    return ExportResult(out, "onnx", *run, len(model.layers), weight_count(proto),
                        [(v.name, dims(v), dtype(v)) for v in proto.graph.input],
                        [(v.name, dims(v), dtype(v)) for v in proto.graph.output], normalizer.kind,
                        {"opset": OPSET})


def _export_safetensors(model, input_shape, normalizer, meta, out: Path, run) -> ExportResult:
    from safetensors.numpy import save_file

    from nncli.train.export.pytorch import count, torch_state

    tensors, modules = torch_state(model.layers, input_shape)
    meta = {**meta, "format": "pt", "nncli.torch_modules": json.dumps(modules),
            "nncli.normalizer": json.dumps(normalizer.to_dict())}
    _write_atomically(out, lambda tmp: save_file(tensors, tmp, metadata={k: str(v) for k, v in meta.items()}))
    return ExportResult(out, "safetensors", *run, len(model.layers), count(tensors),
                        [(k, list(np.shape(v)), str(np.asarray(v).dtype)) for k, v in tensors.items()], [],
                        normalizer.kind, {"modules": modules})
