"""From a config's ``data`` section to train / validation / test arrays, checked and normalized."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.data.builtin import BUILTIN_SETS, load_builtin
from nncli.data.loaders import file_kind, is_number, is_positive_int, load_file
from nncli.data.mapped import MappedArray, MappedSamples
from nncli.errors import DataError, LabelError, did_you_mean

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


@dataclass
class PreparedData:
    """Split, checked and normalized arrays, ready for :class:`NDArrayDataset`.

    ``y_*`` are int64 ``(n,)`` for classification (``num_classes`` given) and float32 ``(n, 1)``
    or ``(n, ...)`` for regression; ``x_val`` / ``x_test`` are ``None`` when their split is 0.
    From a memory-mapped ``.npy`` file the ``x_*`` are :class:`~nncli.data.mapped.MappedSamples`
    (read and normalized batch by batch) instead of arrays; ``mapped`` is then that file.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    normalizer: Normalizer
    num_features: int  # values per sample (the product of input_shape)
    num_classes: int | None
    source_desc: str
    input_shape: tuple[int, ...] = ()
    feature_names: list[str] | None = None
    mapped: MappedArray | None = None
    raw: np.ndarray | MappedSamples | None = None  # every sample as loaded (keep_raw=True), in file order


def _check_labels(y: np.ndarray, num_classes: int, where, source_desc: str) -> np.ndarray:
    """Integer labels in ``[0, num_classes)`` as int64; ``where(i)`` places label ``i``."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"classification needs one integer label per sample, found labels of shape "
                        f"{y.shape}", source_desc)
    bad = (y != np.round(y)) | (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        value = y[i].item()
        shown = int(value) if value == round(value) else value
        raise LabelError(f"label {shown} is not a class: expected an integer in [0, {num_classes}) "
                        f"(num_classes = {num_classes})", where(i))
    return y.astype(np.int64)


def _split_sizes(n: int, validation_split: float, test_split: float, source_desc: str) -> tuple[int, int]:
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not is_number(value) or not 0 <= value < 1:
            raise DataError(f"data.{name} must be a fraction in [0, 1), found {value!r}")
    n_val, n_test = round(n * validation_split), round(n * test_split)
    n_train = n - n_val - n_test
    if n_train < 1 or (validation_split > 0 and n_val < 1) or (test_split > 0 and n_test < 1):
        raise DataError(f"{source_desc} has {n} samples; validation_split={validation_split} and "
                        f"test_split={test_split} give train {n_train}, validation {n_val}, test {n_test}; "
                        "training and each held-out part asked for need at least 1 sample")
    return n_val, n_test


def _load_source(source, base_dir, labels, target, x_key, y_key, samples, noise, seed, memory_map):
    """``(x, y, source_desc, where(i), feature_names)`` for a built-in name or a file path."""
    if source in BUILTIN_SETS:
        for name, value in (("labels", labels), ("target", target), ("memory_map", memory_map or None)):
            if value is not None and value != "auto":
                kind = {"target": "names a CSV column", "labels": "is for .npy and IDX files",
                        "memory_map": "maps .npy files"}[name]
                raise DataError(f"data.{name} {kind}, but the source is the built-in set '{source}'")
        x, y = load_builtin(source, seed=seed, samples=samples, noise=noise)
        return x, y, f"built-in set '{source}'", lambda i: f"built-in set '{source}', sample {i}", None
    path = Path(base_dir) / Path(str(source)).expanduser()
    if not path.exists() and file_kind(path) is None:
        raise DataError(f"data.source '{source}' is neither a built-in set nor an existing file (looked "
                        f"for {path}).{did_you_mean(source, BUILTIN_SETS, sentence=True)} Built-in sets: {', '.join(BUILTIN_SETS)}")
    for name, value in (("samples", samples), ("noise", noise)):
        if value is not None:
            raise DataError(f"data.{name} applies to generated built-in sets only, not to files", str(path))
    lpath = None if labels is None else Path(base_dir) / Path(str(labels)).expanduser()
    data = load_file(path, labels=lpath, target=target, x_key=x_key, y_key=y_key, memory_map=memory_map)
    return data.x, data.y, data.source_desc, data.label_where, data.feature_names


def prepare_data(*, source, base_dir=".", labels=None, target=None, x_key="x", y_key="y", samples=None,
                 noise=None, validation_split=0.2, test_split=0.0, normalize="none", seed=0,
                 num_classes=None, memory_map=False, keep_raw=False) -> PreparedData:
    """Load a data source, check its labels, split it (seeded) and normalize it.

    Args:
        source: a built-in set name (see ``BUILTIN_SETS``) or a file path, relative to ``base_dir``.
        labels, target, x_key, y_key: passed to :func:`~nncli.data.loaders.load_file`.
        samples, noise: for the generated built-in sets.
        validation_split, test_split: fractions of the samples held out (0 for none).
        normalize: ``'none'``, ``'standard'`` or ``'minmax'``, fitted on the training part only.
        seed: seeds the generated sets and the split.
        num_classes: for classification: labels must be integers in ``[0, num_classes)``.
        memory_map: for a ``.npy`` features file: ``True`` reads samples from a memory map as
            they are needed (for data larger than memory), ``"auto"`` does so for files of at least
            ``MMAP_AUTO_BYTES``, ``False`` reads the file into memory. Same batches either way.
        keep_raw: also keep every sample as loaded, before splitting and normalizing, in ``raw``.

    Example:
        >>> data = prepare_data(source="iris", normalize="standard", num_classes=3)
        >>> data.x_train.shape, data.x_val.shape
        ((120, 4), (30, 4))
    """
    # Settings fail before any file is read.
    normalizer = Normalizer(normalize)
    if num_classes is not None and not is_positive_int(num_classes):
        raise DataError(f"num_classes must be a positive integer, found {num_classes!r}")
    x, y, desc, where, names = _load_source(source, base_dir, labels, target, x_key, y_key, samples, noise, seed,
                                            memory_map)
    mapped = x if isinstance(x, MappedArray) else None
    if x.ndim == 1 and mapped is None:
        x = x[:, None]  # one feature per sample
    sample_shape = tuple(x.shape[1:]) or (1,)
    if num_classes is not None:
        y = _check_labels(y, int(num_classes), where, desc)
    else:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y[:, None]  # (n, 1), like the output of a one-unit layer
    n_val, n_test = _split_sizes(x.shape[0], validation_split, test_split, desc)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    test, val, train = np.split(order, [n_test, n_test + n_val])

    if mapped is not None:  # views of the map, read and scaled batch by batch
        normalizer.fit(MappedSamples(mapped, train, None, sample_shape))
        mapped.release()

        def part(index):
            return MappedSamples(mapped, index, normalizer, sample_shape) if index.size else None

        x_train, x_val, x_test = part(train), part(val), part(test)
    else:
        x_train = np.take(x, train, axis=0)
        normalizer.fit(x_train)
        x_train = normalizer.transform(x_train)

        def part(index):  # one gather per array, scaled with the training statistics
            return normalizer.transform(np.take(x, index, axis=0)) if index.size else None

        x_val, x_test = part(val), part(test)

    def labels_of(index):
        return np.take(y, index, axis=0) if index.size else None

    return PreparedData(x_train, labels_of(train), x_val, labels_of(val), x_test, labels_of(test), normalizer,
                        num_features=int(np.prod(sample_shape)), num_classes=num_classes, source_desc=desc,
                        input_shape=sample_shape, feature_names=names, mapped=mapped,
                        raw=(MappedSamples(mapped, np.arange(len(mapped)), None, sample_shape) if mapped is not None
                             else x) if keep_raw else None)
