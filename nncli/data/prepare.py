"""From a config's ``data`` section to train / validation / test arrays, checked and normalized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.data.builtin import BUILTIN_SETS, load_builtin
from nncli.data.loaders import did_you_mean, file_kind, is_number, is_positive_int, load_file
from nncli.errors import DataError, LabelError

NORMALIZE_KINDS = ("none", "standard", "minmax")


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
            raise DataError(f"unknown normalize '{kind}'.{did_you_mean(kind, NORMALIZE_KINDS)} "
                            f"Expected one of: {', '.join(NORMALIZE_KINDS)}")
        self.kind = kind
        self.shift: np.ndarray | None = None  # (features...) float32
        self.scale: np.ndarray | None = None  # (features...) float32

    def fit(self, x) -> Normalizer:
        """Compute the statistics of ``x`` (samples along axis 0); returns ``self``."""
        x = np.asarray(x)
        if self.kind == "standard":
            shift = x.mean(axis=0, dtype=np.float64)  # accumulate in float64 for accuracy
            scale = x.std(axis=0, dtype=np.float64)
        elif self.kind == "minmax":
            shift = x.min(axis=0)
            scale = x.max(axis=0) - shift
        else:
            return self
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


def _load_source(source, base_dir, labels, target, x_key, y_key, samples, noise, seed):
    """``(x, y, source_desc, where(i), feature_names)`` for a built-in name or a file path."""
    if source in BUILTIN_SETS:
        for name, value in (("labels", labels), ("target", target)):
            if value is not None:
                kind = "names a CSV column" if name == "target" else "is for .npy and IDX files"
                raise DataError(f"data.{name} {kind}, but the source is the built-in set '{source}'")
        x, y = load_builtin(source, seed=seed, samples=samples, noise=noise)
        return x, y, f"built-in set '{source}'", lambda i: f"built-in set '{source}', sample {i}", None
    path = Path(base_dir) / Path(str(source)).expanduser()
    if not path.exists() and file_kind(path) is None:
        raise DataError(f"data.source '{source}' is neither a built-in set nor an existing file (looked "
                        f"for {path}).{did_you_mean(source, BUILTIN_SETS)} Built-in sets: {', '.join(BUILTIN_SETS)}")
    for name, value in (("samples", samples), ("noise", noise)):
        if value is not None:
            raise DataError(f"data.{name} applies to generated built-in sets only, not to files", str(path))
    lpath = None if labels is None else Path(base_dir) / Path(str(labels)).expanduser()
    data = load_file(path, labels=lpath, target=target, x_key=x_key, y_key=y_key)
    return data.x, data.y, data.source_desc, data.label_where, data.feature_names


def prepare_data(*, source, base_dir=".", labels=None, target=None, x_key="x", y_key="y", samples=None,
                 noise=None, validation_split=0.2, test_split=0.0, normalize="none", seed=0,
                 num_classes=None) -> PreparedData:
    """Load a data source, check its labels, split it (seeded) and normalize it.

    Args:
        source: a built-in set name (see ``BUILTIN_SETS``) or a file path, relative to ``base_dir``.
        labels, target, x_key, y_key: passed to :func:`~nncli.data.loaders.load_file`.
        samples, noise: for the generated built-in sets.
        validation_split, test_split: fractions of the samples held out (0 for none).
        normalize: ``'none'``, ``'standard'`` or ``'minmax'``, fitted on the training part only.
        seed: seeds the generated sets and the split.
        num_classes: for classification: labels must be integers in ``[0, num_classes)``.

    Example:
        >>> data = prepare_data(source="iris", normalize="standard", num_classes=3)
        >>> data.x_train.shape, data.x_val.shape
        ((120, 4), (30, 4))
    """
    # Settings fail before any file is read.
    normalizer = Normalizer(normalize)
    if num_classes is not None and not is_positive_int(num_classes):
        raise DataError(f"num_classes must be a positive integer, found {num_classes!r}")
    x, y, desc, where, names = _load_source(source, base_dir, labels, target, x_key, y_key, samples, noise, seed)
    if x.ndim == 1:
        x = x[:, None]  # one feature per sample
    if num_classes is not None:
        y = _check_labels(y, int(num_classes), where, desc)
    else:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y[:, None]  # (n, 1), like the output of a one-unit layer
    n_val, n_test = _split_sizes(x.shape[0], validation_split, test_split, desc)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    test, val, train = np.split(order, [n_test, n_test + n_val])
    x_train = np.take(x, train, axis=0)
    normalizer.fit(x_train)

    def held_out(index):  # one gather per array, scaled with the training statistics
        if not index.size:
            return None, None
        return normalizer.transform(np.take(x, index, axis=0)), np.take(y, index, axis=0)

    return PreparedData(normalizer.transform(x_train), np.take(y, train, axis=0), *held_out(val),
                        *held_out(test), normalizer,
                        num_features=int(np.prod(x.shape[1:])), num_classes=num_classes, source_desc=desc,
                        input_shape=tuple(x.shape[1:]), feature_names=names)
