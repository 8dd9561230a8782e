"""From a config's ``data`` section to train / validation / test arrays, checked and normalized.

The validation and test parts are held out of the source (``validation_split``, ``test_split``,
seeded) or read from their own files (``validation``, ``test``): same columns as the source, labels
mapped onto the source's classes, scaled with the statistics of the training part alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nncli.data.builtin import BUILTIN_SETS, load_builtin
from nncli.data.labels import map_to_classes, shown_classes, typo_hint
from nncli.data.loaders import LoadedData, file_kind, is_number, is_positive_int, load_file
from nncli.data.mapped import MappedArray, MappedSamples
from nncli.data.normalize import NORMALIZE_KINDS, Normalizer
from nncli.errors import DataError, LabelError, did_you_mean

__all__ = ["NORMALIZE_KINDS", "Normalizer", "PreparedData", "ClassNamesError", "prepare_data", "PARTS"]

PARTS = ("train", "validation", "test")
HELD_OUT_WARNING = 0.5  # warn when the splits hold out more than this share of the samples


class ClassNamesError(LabelError):
    """A target of class names that the loss or the model cannot take: ``classes`` and the model's ``num_classes``."""

    def __init__(self, message: str, where: str | None, classes: list[str], num_classes: int | None):
        super().__init__(message, where)
        self.classes, self.num_classes = classes, num_classes


@dataclass
class PreparedData:
    """Split, checked and normalized arrays, ready for :class:`NDArrayDataset`.

    ``y_*`` are int64 ``(n,)`` for classification (``num_classes`` given) and float32 ``(n, 1)``
    or ``(n, ...)`` for regression; ``x_val`` / ``x_test`` are ``None`` without a split or file.
    ``classes`` names the class ids of a target of class names; ``sources`` says where each part
    comes from; ``warnings`` are problems that do not stop training (a tiny training part).
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
    classes: list[str] | None = None  # the class names of a text target, by class id
    target_name: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # part -> "validation part of d.csv", "val.csv", ...
    warnings: list[str] = field(default_factory=list)

    def part(self, name: str):
        """``(x, y)`` of the part ``train``, ``validation`` or ``test``; ``(None, None)`` when there is none."""
        return {"train": (self.x_train, self.y_train), "validation": (self.x_val, self.y_val),
                "test": (self.x_test, self.y_test)}[name]


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
        shown = int(value) if value == round(value) else str(np.float32(value))  # 6.1, not 6.099999904632568
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


def _load_source(source, base_dir, labels, target, header, x_key, y_key, samples, noise, seed, memory_map,
                 text) -> LoadedData:
    """The samples of a built-in set name or a file path (relative to ``base_dir``)."""
    if source in BUILTIN_SETS:
        for name, value in (("labels", labels), ("target", target), ("memory_map", memory_map or None),
                            ("header", None if header == "auto" else header)):
            if value is not None and value != "auto":
                kind = {"target": "names a CSV column", "labels": "is for .npy and IDX files",
                        "memory_map": "maps .npy files", "header": "is about a CSV file's first row"}[name]
                raise DataError(f"data.{name} {kind}, but the source is the built-in set '{source}'")
        x, y = load_builtin(source, seed=seed, samples=samples, noise=noise)
        desc = f"built-in set '{source}'"
        return LoadedData(x, y, desc, "", desc + ", sample {index}")
    path = Path(base_dir) / Path(str(source)).expanduser()
    if not path.exists() and file_kind(path) is None:
        raise DataError(f"data.source '{source}' is neither a built-in set nor an existing file (looked "
                        f"for {path}).{did_you_mean(source, BUILTIN_SETS, sentence=True)} Built-in sets: {', '.join(BUILTIN_SETS)}")
    for name, value in (("samples", samples), ("noise", noise)):
        if value is not None:
            raise DataError(f"data.{name} applies to generated built-in sets only, not to files", str(path))
    lpath = None if labels is None else Path(base_dir) / Path(str(labels)).expanduser()
    return load_file(path, labels=lpath, target=target, x_key=x_key, y_key=y_key, memory_map=memory_map,
                     header=header, text=text)


def _load_part_file(role: str, name, base_dir, main: LoadedData, *, target, header, x_key, y_key,
                    classes: list[str] | None) -> LoadedData:
    """The samples of ``data.validation`` or ``data.test``: the source's columns, its classes."""
    path = Path(base_dir) / Path(str(name)).expanduser()
    where, kind = str(path), file_kind(path)
    if kind == "npy":
        raise DataError(f"data.{role} is a .npy file, which holds no labels; save the {role} samples with "
                        "np.savez(path, x=..., y=...) as an .npz, or as a CSV with the columns of data.source", where)
    csv = kind == "csv"
    data = load_file(path, target=target if csv else None, header=header if csv else "auto", x_key=x_key,
                     y_key=y_key, text=(classes is not None) if csv else None)
    names, have = main.feature_names, data.feature_names
    if names is not None and have is not None and names != have:
        missing, extra = [n for n in names if n not in have], [n for n in have if n not in names]
        if missing or extra:
            raise DataError(f"its columns differ from those of data.source ({main.source_desc}): missing "
                            f"{', '.join(missing) or 'none'}; unexpected {', '.join(extra) or 'none'}", where)
        data.x = data.x[:, [have.index(n) for n in names]]  # the source's column order
    x_shape, want = data.x.shape[1:] or (1,), main.x.shape[1:] or (1,)
    if x_shape != want:
        raise DataError(f"its samples have shape {x_shape}, but those of data.source ({main.source_desc}) have "
                        f"{want}; expected the same features", where)
    if classes is not None and data.classes is not None:
        data.y = map_to_classes(data.y, data.classes, classes, data.label_where,
                                f"the training file {main.source_desc}")
    return data


def _targets(data: LoadedData, num_classes: int | None, classes: list[str] | None) -> np.ndarray:
    """The labels as the loss takes them: checked class ids int64 ``(n,)``, or float32 values ``(n, 1)``."""
    y = data.y
    if classes is not None and data.classes is not None:  # class names, already class ids
        target = f"the target column '{data.target_name}'" if data.target_name else "the target"
        if num_classes is None:
            raise ClassNamesError(f"{target} holds class names ({shown_classes(classes)}), not numbers to regress "
                                  "on", data.label_file, classes, None)
        if len(classes) > num_classes:
            raise ClassNamesError(f"{target} holds {len(classes)} classes ({shown_classes(classes)}), more "
                                  f"than num_classes = {num_classes}{typo_hint(y, classes, _label_at(data))}",
                                  data.label_file, classes, num_classes)
        return np.asarray(y, dtype=np.int64)
    if num_classes is not None:
        return _check_labels(y, int(num_classes), data.label_where, data.source_desc)
    y = np.asarray(y, dtype=np.float32)
    return y[:, None] if y.ndim == 1 else y  # (n, 1), like the output of a one-unit layer


def _label_at(data: LoadedData):
    """``"row 7, column 5 ('label')"`` of sample i, for a message that has named the file already."""
    return lambda i: data.label_at.format(index=i, row=i + data.first_row)


def _missing_classes(y_train: np.ndarray, held: list[np.ndarray], classes: list[str] | None) -> list[str]:
    """A warning for classes that the held-out parts have but the training part lacks (never learnt)."""
    seen = np.zeros(int(max([y_train.max(initial=0)] + [y.max(initial=0) for y in held])) + 1, dtype=bool)
    seen[y_train] = True
    lacking = sorted({int(c) for y in held for c in np.unique(y) if not seen[c]})
    if not lacking:
        return []
    named = [f"{c} ({classes[c]!r})" if classes and c < len(classes) else str(c) for c in lacking]
    return [f"class{'es' if len(named) > 1 else ''} {', '.join(named[:8])} {'are' if len(named) > 1 else 'is'} in the "
            "held-out samples but not in the training part: the model cannot learn "
            f"{'them' if len(named) > 1 else 'it'}"]


def prepare_data(*, source, base_dir=".", labels=None, target=None, header="auto", validation=None, test=None,
                 x_key="x", y_key="y", samples=None, noise=None, validation_split=0.2, test_split=0.0,
                 normalize="none", seed=0, num_classes=None, classes=None, memory_map=False,
                 keep_raw=False) -> PreparedData:
    """Load a data source, check its labels, split it (seeded) and normalize it.

    Args:
        source: a built-in set name (see ``BUILTIN_SETS``) or a file path, relative to ``base_dir``.
        labels, target, header, x_key, y_key: passed to :func:`~nncli.data.loaders.load_file`.
        validation, test: files of validation / test samples (relative to ``base_dir``) instead of
            ``validation_split`` / ``test_split``: the source's columns, labels among its classes.
        samples, noise: for the generated built-in sets.
        validation_split, test_split: fractions of the samples held out (0 for none).
        normalize: ``'none'``, ``'standard'`` or ``'minmax'``, fitted on the training part only.
        seed: seeds the generated sets and the split.
        num_classes: for classification: labels must be integers in ``[0, num_classes)``, or
            class names (a text CSV target), at most ``num_classes`` of them.
        classes: the class names to map a text target onto (a run's, when evaluating it);
            default: the source's own, sorted.
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
    main = _load_source(source, base_dir, labels, target, header, x_key, y_key, samples, noise, seed, memory_map,
                        None if classes is None else True)
    if classes is not None and main.classes is not None:
        main.y = map_to_classes(main.y, main.classes, classes, main.label_where, "the run")
    classes = main.classes if classes is None else list(classes)
    desc = main.source_desc
    x, mapped = main.x, main.x if isinstance(main.x, MappedArray) else None
    if x.ndim == 1 and mapped is None:
        x = x[:, None]  # one feature per sample
    sample_shape = tuple(x.shape[1:]) or (1,)
    y = _targets(main, num_classes, classes)
    files = {role: _load_part_file(role, name, base_dir, main, target=target, header=header, x_key=x_key,
                                   y_key=y_key, classes=classes)
             for role, name in (("validation", validation), ("test", test)) if name is not None}
    file_y = {role: _targets(data, num_classes, classes) for role, data in files.items()}
    n = x.shape[0]
    shares = (0.0 if validation is not None else validation_split, 0.0 if test is not None else test_split)
    n_val, n_test = _split_sizes(n, *shares, desc)
    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])

    if mapped is not None:  # views of the map, read and scaled batch by batch
        normalizer.fit(MappedSamples(mapped, train_idx, None, sample_shape))
        mapped.release()

        def part(index):
            return MappedSamples(mapped, index, normalizer, sample_shape) if index.size else None

        x_train = part(train_idx)
    else:
        x_train = np.take(x, train_idx, axis=0)
        normalizer.fit(x_train)
        x_train = normalizer.transform(x_train)

        def part(index):  # one gather per array, scaled with the training statistics
            return normalizer.transform(np.take(x, index, axis=0)) if index.size else None

    def labels_of(index):
        return np.take(y, index, axis=0) if index.size else None

    held = {"validation": (part(val_idx), labels_of(val_idx)), "test": (part(test_idx), labels_of(test_idx))}
    sources = {"train": desc if n_val + n_test == 0 else f"training part of {desc}"}
    for role, index in (("validation", val_idx), ("test", test_idx)):
        if role in files:
            held[role] = (normalizer.transform(files[role].x.reshape(-1, *sample_shape)), file_y[role])
            sources[role] = f"{role} file {files[role].source_desc}"
        elif index.size:
            sources[role] = f"{role} part of {desc}"
    warnings = []
    if n_val + n_test > n - n_val - n_test:
        warnings.append(f"validation_split {shares[0]} and test_split {shares[1]} hold out {n_val + n_test} of the "
                        f"{n} samples of {desc}, leaving {n - n_val - n_test} ({(n - n_val - n_test) / n:.0%}) to "
                        "train on: a model learns little from so few (0.1 to 0.3 is usual for each)")
    (x_val, y_val), (x_test, y_test) = held["validation"], held["test"]
    y_train = labels_of(train_idx)
    if num_classes is not None and y_train is not None:
        warnings += _missing_classes(y_train, [p for p in (y_val, y_test) if p is not None], classes)
    return PreparedData(x_train, y_train, x_val, y_val, x_test, y_test, normalizer,
                        num_features=int(np.prod(sample_shape)), num_classes=num_classes, source_desc=desc,
                        input_shape=sample_shape, feature_names=main.feature_names, mapped=mapped,
                        raw=(MappedSamples(mapped, np.arange(len(mapped)), None, sample_shape) if mapped is not None
                             else x) if keep_raw else None,
                        classes=classes, target_name=main.target_name, sources=sources, warnings=warnings)
