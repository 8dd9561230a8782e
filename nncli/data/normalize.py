"""Per-feature scaling fitted on the training part: ``standard`` (mean, std), ``minmax``, ``none``."""

from __future__ import annotations

import math

import numpy as np

from nncli.errors import DataError, did_you_mean

__all__ = ["NORMALIZE_KINDS", "Normalizer"]

NORMALIZE_KINDS = ("none", "standard", "minmax")
STATS_CHUNK_VALUES = 1 << 18  # values per chunk of Normalizer.fit: 1 MB of float32, 2 MB of float64


class Normalizer:
    """Per-feature affine scaling ``(x - shift) / scale``, fitted on training data.

    ``standard``: shift = mean, scale = standard deviation; ``minmax``: shift = min, scale =
    max - min; ``none``: identity. A constant feature gets scale 1 (never a division by zero).

    Example:
        >>> norm = Normalizer("standard").fit(x_train)
        >>> x_val = norm.transform(x_val)                       # float32, train statistics
        >>> Normalizer.from_dict(norm.to_dict())                 # e.g. back from run.json
    """

    def __init__(self, kind: str = "none"):
        if kind not in NORMALIZE_KINDS:
            raise DataError(f"unknown normalize '{kind}'.{did_you_mean(kind, NORMALIZE_KINDS, sentence=True)} "
                            f"Expected one of: {', '.join(NORMALIZE_KINDS)}")
        self.kind = kind
        self.shift: np.ndarray | None = None  # (features...) float32
        self.scale: np.ndarray | None = None  # (features...) float32

    def fit(self, x) -> Normalizer:
        """Compute the statistics of ``x`` (samples along axis 0); returns ``self``.

        ``x`` is an array or anything sliceable into float32 rows (a memory-mapped
        :class:`~nncli.data.mapped.MappedSamples`): the statistics are accumulated over chunks of
        rows in float64 (means and squared deviations combined per chunk, Chan et al.), so an
        array and a map of the same samples give the same statistics, bit for bit.
        """
        if self.kind == "none":
            return self
        n = len(x)
        step = max(1, STATS_CHUNK_VALUES // max(math.prod(x.shape[1:]), 1))
        count, mean, m2, low, high = 0, 0.0, 0.0, None, None
        for start in range(0, n, step):
            chunk = np.asarray(x[start:start + step], dtype=np.float32)  # (rows, features...)
            if self.kind == "minmax":
                c_low, c_high = chunk.min(axis=0), chunk.max(axis=0)
                low = c_low if low is None else np.minimum(low, c_low)
                high = c_high if high is None else np.maximum(high, c_high)
                continue
            c_n = len(chunk)
            c_mean = chunk.mean(axis=0, dtype=np.float64)  # accumulate in float64 for accuracy
            deviations = chunk - c_mean  # float64: the float32 chunk minus a float64 mean
            c_m2 = np.square(deviations, out=deviations).sum(axis=0)
            delta, total = c_mean - mean, count + c_n
            mean = mean + delta * (c_n / total)
            m2 = m2 + c_m2 + np.square(delta) * (count * c_n / total)
            count = total
        if self.kind == "standard":
            shift, scale = mean, np.sqrt(m2 / max(count, 1))
        else:
            shift, scale = low, high - low
        self.shift = np.asarray(shift, dtype=np.float32)
        scale = np.asarray(scale, dtype=np.float32)
        self.scale = np.where(scale > np.finfo(np.float32).tiny, scale, np.float32(1.0))
        return self

    def transform(self, x) -> np.ndarray:
        """``x`` scaled with the fitted statistics, as float32 (no float64 promotion)."""
        x = np.asarray(x, dtype=np.float32)
        if self.kind == "none":
            return x
        if self.shift is None:
            raise RuntimeError(f"Normalizer('{self.kind}') must be fitted before transform")
        if x.shape[1:] != self.shift.shape:
            raise DataError(f"inputs have shape {x.shape[1:]} per sample, but the normalizer was fitted "
                            f"on {self.shift.shape}")
        out = x - self.shift  # (n, features...) float32
        out /= self.scale
        return out

    def to_dict(self) -> dict:
        """The kind and statistics as JSON-serialisable lists."""
        if self.kind == "none" or self.shift is None:
            return {"kind": self.kind}
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        """The normalizer saved by :meth:`to_dict`."""
        if not isinstance(d, dict) or "kind" not in d:
            raise DataError(f"not a saved normalizer (expected a dict with 'kind'), found {d!r}")
        norm = cls(d["kind"])
        if norm.kind != "none" and "shift" in d:
            norm.shift = np.asarray(d["shift"], dtype=np.float32)
            norm.scale = np.asarray(d["scale"], dtype=np.float32)
            if norm.shift.shape != norm.scale.shape:
                raise DataError(f"saved normalizer: shift has shape {norm.shift.shape}, "
                                f"scale {norm.scale.shape}; expected the same")
        return norm

    def __repr__(self) -> str:
        return f"Normalizer('{self.kind}')"
