"""What prepared data holds: parts, shapes, dtypes, classes and their counts, feature ranges.

    summary = summarize(prepare_data(source="iris", normalize="standard", num_classes=3))
    summary["parts"]["train"]["classes"]         # {0: 41, 1: 40, 2: 39}
    summary["features"]["columns"][0]            # {"name": "sepal_length", "min": 4.3, ...}

Everything is computed in chunks of samples, so memory-mapped data is read piece by piece.
Feature statistics are of the values as loaded (before normalization) over all samples, from
``data.raw`` when it was kept (``prepare_data(keep_raw=True)``); the normalized range (what the
model sees) is given beside them.
"""

from __future__ import annotations

import math

import numpy as np

from nncli.data.prepare import PreparedData

CHUNK_VALUES = 1 << 18  # values per chunk of samples read at once


def _chunks(x):
    step = max(1, CHUNK_VALUES // max(math.prod(x.shape[1:]), 1))
    for start in range(0, len(x), step):
        yield np.asarray(x[start:start + step], dtype=np.float32).reshape(-1, math.prod(x.shape[1:]))


def _feature_stats(parts: list) -> dict[str, np.ndarray]:
    """Per-feature min, max, mean and std (float64) of the samples of ``parts``, in chunks."""
    count, total, squares, low, high = 0, 0.0, 0.0, None, None
    for x in parts:
        for chunk in _chunks(x):  # (rows, features) float32
            low = chunk.min(axis=0) if low is None else np.minimum(low, chunk.min(axis=0))
            high = chunk.max(axis=0) if high is None else np.maximum(high, chunk.max(axis=0))
            total = total + chunk.sum(axis=0, dtype=np.float64)
            squares = squares + np.square(chunk, dtype=np.float64).sum(axis=0)
            count += len(chunk)
    mean = total / count
    return {"min": low.astype(np.float64), "max": high.astype(np.float64), "mean": mean,
            "std": np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))}


def _targets(y: np.ndarray, classes: int | None) -> dict:
    if classes is not None:
        counts = np.bincount(y, minlength=classes)
        return {"shape": list(y.shape), "dtype": str(y.dtype), "classes": {int(c): int(n) for c, n in enumerate(counts)}}
    flat = y.reshape(len(y), -1)
    return {"shape": list(y.shape), "dtype": str(y.dtype), "min": float(flat.min()), "max": float(flat.max()),
            "mean": float(flat.mean(dtype=np.float64))}


def summarize(data: PreparedData) -> dict:
    """A JSON-ready description of ``data`` (see the module docstring)."""
    parts = {name: (x, y) for name, x, y in (("train", data.x_train, data.y_train), ("validation", data.x_val, data.y_val),
                                             ("test", data.x_test, data.y_test)) if x is not None}
    described = {name: {"samples": len(x), "x_shape": list(x.shape), "x_dtype": str(x.dtype),
                        **{f"y_{k}" if k in ("shape", "dtype") else k: v
                           for k, v in _targets(y, data.num_classes).items()}}
                 for name, (x, y) in parts.items()}
    normalized = _feature_stats([x for x, _ in parts.values()])
    if data.raw is not None:
        raw = _feature_stats([data.raw])
    else:  # undo the normalization: exact up to float32 rounding
        norm = data.normalizer
        shift = 0.0 if norm.shift is None else norm.shift.reshape(-1).astype(np.float64)
        scale = 1.0 if norm.scale is None else norm.scale.reshape(-1).astype(np.float64)
        raw = {"min": normalized["min"] * scale + shift, "max": normalized["max"] * scale + shift,
               "mean": normalized["mean"] * scale + shift, "std": normalized["std"] * scale}
    names = data.feature_names or [f"x{i}" for i in range(data.num_features)]
    columns = [{"name": names[i], **{k: float(v[i]) for k, v in raw.items()},
                "normalized_min": float(normalized["min"][i]), "normalized_max": float(normalized["max"][i])}
               for i in range(data.num_features)]
    constant = [c["name"] for c in columns if c["max"] == c["min"]]
    return {
        "source": data.source_desc,
        "memory_mapped": None if data.mapped is None else {
            "file": str(data.mapped.path), "bytes": data.mapped.file_bytes, "dtype": str(data.mapped.dtype),
            "release_budget": data.mapped.budget},
        "input_shape": list(data.input_shape), "num_classes": data.num_classes, "class_names": data.classes,
        "normalize": data.normalizer.kind, "sources": dict(data.sources), "warnings": list(data.warnings),
        "parts": described,
        "features": {"count": data.num_features, "min": float(raw["min"].min()), "max": float(raw["max"].max()),
                     "normalized_min": float(normalized["min"].min()),
                     "normalized_max": float(normalized["max"].max()), "constant": constant, "columns": columns},
    }
