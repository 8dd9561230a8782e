"""Read data files (CSV, .npz, .npy pairs, IDX) into float32 arrays.

Every problem with a file raises :class:`~nncli.errors.DataError` naming the file and, where it
has them, the row (the 1-based line number, the CSV header being line 1) and the column (number
and name). Nothing is ever unpickled: numpy files load with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncli.data.csvfile import CellError, column_name, read_table
from nncli.data.csvtext import column_is_text
from nncli.data.mapped import MappedArray
from nncli.errors import DataError, TargetError, did_you_mean

# IDX type codes (the byte after the two zero magic bytes) and their big-endian dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(r"(idx\d-ubyte|\.idx)(\.gz)?$", re.IGNORECASE)
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class LoadedData:
    """Features and labels read from a file, with enough context to point at one label later.

    ``label_at`` is a template for the place of label ``index`` (``{index}`` 0-based, ``{row}``
    the CSV line number), e.g. ``"row {row}, column 5 ('label')"``; ``label_file`` is its file.
    A CSV target column of text gives ``classes`` (the sorted class names) and ``y`` their ids.
    """

    x: np.ndarray  # (n, ...) float32
    y: np.ndarray  # (n,) or (n, ...) float32; (n,) int64 class ids with ``classes``
    source_desc: str
    label_file: str
    label_at: str
    feature_names: list[str] | None = None
    target_name: str | None = None
    classes: list[str] | None = None
    first_row: int = 2  # the CSV line of sample 0 (1 without a header row)
    named: bool = True  # whether the CSV's column names come from a header row

    def label_where(self, index: int) -> str:
        """``"file: row 7, column 5 ('label')"`` for the label of sample ``index`` (no file: ``label_at`` alone)."""
        at = self.label_at.format(index=index, row=index + self.first_row)
        return f"{self.label_file}: {at}" if self.label_file else at


def is_positive_int(value) -> bool:
    """True for 1, 2, ... (numpy integers too), False for bools, floats and anything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def is_number(value) -> bool:
    """True for real numbers (numpy ones too), False for bools and anything else."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- CSV


def _column_index(header: list[str], name, where: str, error=DataError) -> int:
    if name not in header:
        raise error(f"no column named '{name}'.{did_you_mean(name, header, sentence=True)} "
                    f"The header has: {', '.join(header)}", where)
    return header.index(name)


def target_index(names: list[str], target, where: str) -> int:
    """The 0-based file column of ``target``: a name, a position (negative from the end), or None (the last)."""
    if target is None:
        return len(names) - 1
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        n = len(names)
        if -n <= target < n:
            return int(target) % n
        named = f"; the column named '{target}' is target: '{target}' (quoted)" if str(target) in names else ""
        raise TargetError(f"target {target} is not a column position: the file has {n} columns, positions 0 to "
                          f"{n - 1} (or -1 for the last, -{n} for the first){named}", where)
    return _column_index(names, str(target), where, TargetError)


def load_csv(path, target: str | int | None = None, engine: str = "auto", header="auto", text=None):
    """Read a CSV file: every cell a number, one column the target (numbers, or text: class names).

    Args:
        path: the file.
        target: name or 0-based position (negative from the end) of the target column; default the last.
        engine: the reader, ``auto`` (pyarrow when installed), ``arrow`` or ``python``; see
            :mod:`nncli.data.csvfile`.
        header: ``"auto"``, ``True`` or ``False``, as for :func:`~nncli.data.csvfile.read_table`.
        text: whether the target holds class names: None (text in its first rows, or anywhere
            a number was expected), True or False.

    Returns:
        ``(x float32 (n, features), y (n,), feature_names, target_name)``; ``y`` is float32,
        or int64 class ids for a text target (see :func:`load_file` for the class names).

    Example:
        >>> x, y, names, target = load_csv("iris.csv")      # doctest: +SKIP
        >>> x.shape, target
        ((150, 4), 'label')
    """
    x, y, table = _load_csv(path, target, engine, header, text)
    return x, y, table.header[:len(table.header) - (table.labels is None)], _target_name(table)


def _target_name(table) -> str:
    return table.label_name if table.labels is not None else table.header[-1]


def _load_csv(path, target, engine="auto", header="auto", text=None):
    """``(x, y, table)`` of :func:`load_csv`; ``table.label_column`` or ``found['t']`` is the target's column."""
    path = _existing_file(path)
    found: dict = {}

    def text_column(names):  # the target, when it is read as text
        t = found["t"] = target_index(names, target, str(path))
        found["text"] = column_is_text(path, t, found.setdefault("named", header is not False)) \
            if found.get("force") is None else found["force"]
        return t if found["text"] else None

    def target_last(names):  # the table's columns: the features in file order, then a numeric target
        t = found["t"]
        return [c for c in range(len(names)) if c != t] + ([] if found["text"] else [t])

    found["force"] = text
    try:
        table = read_table(path, engine=engine, order=target_last, header=header, text=text_column)
    except CellError as err:  # text further down the target column than the first rows: class names
        if text is not None or found.get("text") or err.column != found.get("t") or not err.text:
            raise
        found["force"] = True
        table = read_table(path, engine=engine, order=target_last, header=header, text=text_column)
    table.label_column = found["t"]
    if table.labels is not None:
        return table.values, table.labels, table
    return table.values[:, :-1], table.values[:, -1], table


# ----------------------------------------------------------------------------- numpy files


_NUMPY_MAGIC = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy, .npz (zip), empty .npz
MMAP_AUTO_BYTES = 256 << 20  # `memory_map: auto` maps .npy features files of this size and more


def _check_npy_size(f, path: Path) -> None:
    """Refuse a .npy file whose header declares more data than the file holds (before allocating it)."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        return  # np.load checks the rest
    shape, _, dtype = readers[version](f)
    if dtype.hasobject:
        return  # refused as pickled data by np.load
    needed, have = math.prod(shape) * dtype.itemsize, path.stat().st_size - f.tell()
    if have < needed:
        raise DataError(f"truncated: the header declares shape {shape} of {dtype}, {needed:,} bytes of data, "
                        f"but the file holds {have:,}", str(path))


def _numpy_magic(path: Path) -> bytes:
    """The file's magic bytes, refusing anything but .npy and .npz (np.load would unpickle it)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise DataError(f"not a readable numpy file: {err}", str(path)) from None
    for known in _NUMPY_MAGIC:
        if magic.startswith(known):
            return known
    raise DataError("is not .npy or .npz data (numpy would read it as a pickle, which is "
                    "never loaded); expected numeric arrays saved with numpy", str(path))


def _np_load(path: Path):
    """``np.load`` without pickles, its failures turned into DataErrors."""
    try:
        if _numpy_magic(path) == _NUMPY_MAGIC[0]:
            with open(path, "rb") as f:
                _check_npy_size(f, path)
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError("holds Python objects (pickled data), which are never loaded; "
                            "expected numeric arrays", str(path)) from None
        raise DataError(f"not a readable numpy file: {err}", str(path)) from None
    except MemoryError as err:  # a header that claims more than the file holds
        raise DataError(f"declares an array too large to load ({err})", str(path)) from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise DataError(f"not a readable numpy file: {err}", str(path)) from None


def _npy_array(path: Path) -> np.ndarray:
    """The single array in a ``.npy`` file."""
    array = _np_load(path)
    if not isinstance(array, np.ndarray):
        array.close()
        raise DataError("is an .npz archive, expected a single .npy array", str(path))
    return array


def _npz_arrays(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays called ``keys`` in an ``.npz`` archive."""
    where = str(path)
    archive = _np_load(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError("holds a single array (.npy format), expected an .npz archive with "
                        f"keys {', '.join(repr(k) for k in keys)}", where)
    with archive:
        for key in keys:
            if key not in archive.files:
                raise DataError(f"no array named '{key}'.{did_you_mean(key, archive.files, sentence=True)} "
                                f"The archive has: {', '.join(archive.files) or 'nothing'}", where)
        try:
            return [archive[key] for key in keys]
        except ValueError as err:
            if "pickle" in str(err):
                raise DataError("holds Python objects (object arrays), which are never loaded; "
                                "expected numeric arrays", where) from None
            raise DataError(f"not a readable .npz archive: {err}", where) from None
        except MemoryError as err:
            raise DataError(f"declares an array too large to load ({err})", where) from None
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:  # truncated or damaged
            raise DataError(f"not a readable .npz archive (damaged or truncated): {err}", where) from None


def _as_float32(array: np.ndarray, where: str, what: str) -> np.ndarray:
    """``array`` as float32 (no copy when it already is), refusing non-numbers, NaN and inf."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected numbers, found an array of dtype {array.dtype}", where)
    if array.ndim == 0:
        raise DataError(f"{what}: expected an array with one entry per sample, found a scalar", where)
    out = np.asarray(array, dtype=np.float32)
    if array.dtype.kind == "f":  # integers are always finite
        bad = ~np.isfinite(out)
        if bad.any():
            pos = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise DataError(f"{what} at index {tuple(int(i) for i in pos)}: expected a finite "
                            f"float32 number, found {array[pos].item()!r}", where)
    return out


def _check_counts(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, where: str | None = None):
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{x_name} has {x.shape[0]} samples but {y_name} has {y.shape[0]} labels; "
                        "expected the same number", where)


def load_npz(path, x_key: str = "x", y_key: str = "y") -> LoadedData:
    """Read features and labels from an ``.npz`` archive (keys ``x_key`` and ``y_key``).

    Example:
        >>> np.savez("d.npz", x=np.zeros((4, 2)), y=np.arange(4))   # doctest: +SKIP
        >>> load_npz("d.npz").x.shape
        (4, 2)
    """
    path = _existing_file(path)
    where = str(path)
    raw_x, raw_y = _npz_arrays(path, (x_key, y_key))
    x = _as_float32(raw_x, where, f"array '{x_key}'")
    y = _as_float32(raw_y, where, f"array '{y_key}'")
    _check_counts(x, y, f"array '{x_key}'", f"array '{y_key}'", where)
    return LoadedData(x, y, where, where, f"array '{y_key}', index {{index}}")


def load_npy_pair(features, labels, memory_map=False) -> LoadedData:
    """Read features from one ``.npy`` file and labels from another.

    Args:
        features, labels: the two files (the same number of samples).
        memory_map: ``True`` maps the features file instead of reading it (``x`` is then a
            :class:`~nncli.data.mapped.MappedArray` in the file's dtype, checked for NaN and inf
            in one pass); ``"auto"`` maps files of at least ``MMAP_AUTO_BYTES``.

    Example:
        >>> load_npy_pair("x.npy", "y.npy").y.shape                  # doctest: +SKIP
        (100,)
    """
    fpath, lpath = _existing_file(features), _existing_file(labels)
    if memory_map is True or (memory_map == "auto" and fpath.stat().st_size >= MMAP_AUTO_BYTES):
        if _numpy_magic(fpath) != _NUMPY_MAGIC[0]:
            raise DataError("is an .npz archive, expected a single .npy array", str(fpath))
        x = MappedArray(fpath)
        x.check_finite("features")
    else:
        x = _as_float32(_npy_array(fpath), str(fpath), "features")
    y = _as_float32(_npy_array(lpath), str(lpath), "labels")
    _check_counts(x, y, str(fpath), str(lpath))
    return LoadedData(x, y, f"{fpath} + {lpath}", str(lpath), "index {index}")


# ----------------------------------------------------------------------------- IDX (MNIST)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed, as a numpy array.

    Example:
        >>> read_idx("train-labels-idx1-ubyte.gz").shape            # doctest: +SKIP
        (60000,)
    """
    path = _existing_file(path)
    where = str(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC or path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"not readable gzip data: {err}", where) from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"not an IDX file: expected the magic bytes 00 00 <type code> <ndim>, found "
                        f"{raw[:4].hex(' ') or 'nothing'} (type codes: "
                        f"{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}; ndim at least 1)", where)
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"truncated header: {ndim} dimensions need {offset} bytes, found {len(raw)}", where)
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize  # exact: int64 would wrap for 3 dims near 2**32
    found = len(raw) - offset
    if found != expected:
        kind = "truncated data" if found < expected else "extra data"
        raise DataError(f"{kind}: dims {dims} of {dtype.name} need {expected} bytes after the "
                        f"{offset}-byte header, found {found}", where)
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


def _guess_idx_labels(images: Path) -> Path:
    """``train-images-idx3-ubyte.gz`` -> ``train-labels-idx1-ubyte.gz`` (when it exists)."""
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    guess = images.with_name(name)
    if guess == images or not guess.is_file():
        raise DataError("an IDX images file needs its labels file: give `labels:` "
                        f"(looked for {guess.name} beside it)", str(images))
    return guess


def load_idx(images, labels=None) -> LoadedData:
    """Read an IDX images file and its IDX labels file (found beside it when not given).

    Images keep their shape, ``(n, rows, cols)`` for MNIST.

    Example:
        >>> load_idx("train-images-idx3-ubyte.gz").x.shape          # doctest: +SKIP
        (60000, 28, 28)
    """
    ipath = _existing_file(images)
    lpath = _guess_idx_labels(ipath) if labels is None else _existing_file(labels)
    x = _as_float32(read_idx(ipath), str(ipath), "images")
    y = _as_float32(read_idx(lpath), str(lpath), "labels")
    if y.ndim != 1:
        raise DataError(f"labels: expected 1 dimension (one label per image), found dims {y.shape}", str(lpath))
    _check_counts(x, y, str(ipath), str(lpath))
    return LoadedData(x, y, f"{ipath} + {lpath}", str(lpath), "label {index}")


# ----------------------------------------------------------------------------- dispatch


def _existing_file(path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError("is a directory; expected a data file", str(path))
    if not path.is_file():
        raise DataError("no such file", str(path))
    return path


def file_kind(path) -> str | None:
    """``'csv'``, ``'npz'``, ``'npy'``, ``'idx'`` from a file name, or ``None`` when unknown."""
    name = Path(path).name.lower()
    if _IDX_NAME.search(name):
        return "idx"
    for kind in ("csv", "npz", "npy"):
        if name.endswith("." + kind):
            return kind
    return None


def _kind_or_raise(path) -> str:
    kind = file_kind(path)
    if kind is None:
        raise DataError(f"unknown data file type '{Path(path).suffix}'; expected .csv, .npz, .npy, "
                        "or an IDX file (*-idx3-ubyte, *.idx, optionally .gz)", str(path))
    return kind


def load_file(path, *, labels=None, target=None, x_key: str = "x", y_key: str = "y",
              memory_map=False, header="auto", text=None) -> LoadedData:
    """Read features and labels from a data file, choosing the reader by the file name.

    Args:
        path: a ``.csv`` (with header), ``.npz``, ``.npy`` (features) or IDX file.
        labels: the labels file for a ``.npy`` or IDX features file.
        target: the CSV target column, by name or 0-based position (default the last column).
        header, text: for a CSV, see :func:`load_csv`; a text target gives ``classes``.
        x_key, y_key: the array names inside an ``.npz`` archive.
        memory_map: for a ``.npy`` features file, see :func:`load_npy_pair` (``True`` is an
            error for other kinds of file; ``"auto"`` leaves them alone).

    Example:
        >>> data = load_file("iris.csv", target="label")             # doctest: +SKIP
        >>> data.x.shape, data.y.shape
        ((150, 4), (150,))
    """
    kind = _kind_or_raise(path)
    if target is not None and kind != "csv":
        raise DataError(f"`target` names a CSV column, but this is a .{kind} file", str(path))
    if header != "auto" and kind != "csv":
        raise DataError(f"`header` is about the first row of a CSV file, but this is a .{kind} file", str(path))
    if labels is not None and kind in ("csv", "npz"):
        raise DataError(f"a .{kind} file holds its own labels; `labels` is for .npy and IDX files", str(path))
    if memory_map is True and kind != "npy":
        raise DataError(f"`memory_map: true` maps .npy features files, but this is a{'n' if kind in 'idx' else ''} "
                        f".{kind} file (use `auto` or `false`, or save the features with np.save)", str(path))
    if kind == "csv":
        x, y, table = _load_csv(path, target, header=header, text=text)
        t, target_name = table.label_column, _target_name(table)
        names = table.header[:len(table.header) - (table.labels is None)]
        at = column_name(t, target_name, table.named).replace("{", "{{").replace("}", "}}")
        return LoadedData(x, y, str(path), str(path), "row {row}, " + at, names, target_name, table.classes,
                          table.data_start, table.named)
    if kind == "npz":
        return load_npz(path, x_key, y_key)
    if kind == "npy":
        if labels is None:
            raise DataError("a .npy features file needs `labels`: the path of the labels .npy file", str(path))
        return load_npy_pair(path, labels, memory_map=memory_map)
    return load_idx(path, labels)


def load_inputs(path, *, feature_names=None, x_key: str = "x", header="auto") -> np.ndarray:
    """Read inputs to predict on (no labels needed), as float32 ``(n, ...)``.

    Args:
        path: a ``.csv`` with header, ``.npz``, ``.npy`` or IDX images file.
        feature_names: for a CSV, the columns to take, in this order (others, such as the
            target, are left out); default every column. Without a header row, the
            positions ``"0"``, ``"1"``, ... name the columns.
        x_key: the array name inside an ``.npz`` archive.
        header: for a CSV, as for :func:`~nncli.data.csvfile.read_table`.

    Example:
        >>> load_inputs("new.csv", feature_names=["a", "b"]).shape    # doctest: +SKIP
        (10, 2)
    """
    kind = _kind_or_raise(path)
    path = _existing_file(path)
    where = str(path)
    if kind == "csv":
        def wanted(names):  # only the columns asked for: the target may be text
            return [_column_index(names, name, where) for name in feature_names]

        return read_table(path, min_columns=1, header=header, order=None if feature_names is None else wanted).values
    if kind == "idx":
        return _as_float32(read_idx(path), where, "images")
    array = _npz_arrays(path, (x_key,))[0] if kind == "npz" else _npy_array(path)
    return _as_float32(array, where, "inputs")
