"""Read a numeric CSV file (a header row, then rows of numbers) into one float32 table, fast and lean.

Two readers fill the same preallocated ``(rows, columns)`` float32 array (the rows are counted
first, in one cheap pass over the bytes, so the table is never built twice):

- **arrow**: pyarrow's streaming CSV reader (``pip install 'nncli[csv]'``), one block of text
  at a time, each block copied into its rows of the table. Chosen over pandas's C reader by
  measurement on a 60,000 x 785 file (benchmarks/csv_load.py): the same speed, a lower peak
  (its import alone is 100 MB lighter) and a third of the import time, which every small file
  pays too. It stops at the first block it cannot take whole.
- **python**: Python's ``csv`` module and numpy's string conversion, in chunks of rows. It
  reads files when pyarrow is not installed, and finishes any file from the first row the
  arrow reader could not take: that is how every problem is still reported with its file,
  row and column (and how the odd file arrow refuses but Python reads, such as one with
  trailing blank lines, still loads).

Rows are numbered as lines of the file, the header being line 1 (a file without a header row,
``header=False``, has its first data row on line 1 and columns named by position: ``"0"``,
``"1"``, ...). By default (``header="auto"``) a first row that looks like data (numbers where the
next row has numbers) is refused rather than silently taken as the names. Every column is float32
but one text column may be asked for (``text=``): class names, encoded by
:class:`~nncli.data.labels.Vocabulary` into ``CsvTable.labels`` and ``CsvTable.classes``.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import threading
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np

from nncli.data.csvtext import DATA_START, _text_lines, _without_trailing_blanks, read_header
from nncli.data.labels import Vocabulary
from nncli.errors import DataError

ENGINES = ("auto", "arrow", "python")
ARROW_BLOCK_BYTES = 1 << 20  # text per arrow batch: small blocks keep the peak low, at no cost in speed
ARROW_PART_BYTES = 32 << 20  # the least text per parallel arrow reader
ARROW_MAX_PARTS = 3  # parallel arrow readers at most: each holds about 45 MB of buffers
PYTHON_CHUNK_CELLS = 1 << 20  # cells converted at once by the python reader (about 60 MB of strings)


class CellError(DataError):
    """A cell that is not a number: ``column`` is its 0-based file column, ``text`` whether it holds text."""

    def __init__(self, message: str, where: str, column: int, text: bool):
        super().__init__(message, where)
        self.column, self.text = column, text


@dataclass
class CsvTable:
    """A CSV file's column names and its cells as one float32 table ``(rows, columns)``.

    With a text column read (``read_table(text=...)``), ``labels`` holds its class ids and
    ``classes`` the sorted class names; ``label_column`` is its 0-based column in the file.
    """

    path: Path
    header: list[str]  # the names of the table's columns (positions "0", "1", ... without a header row)
    values: np.ndarray  # (rows, columns) float32
    engine: str  # the reader that read most of it: "arrow" or "python"
    data_start: int = DATA_START  # the file line of the first data row
    named: bool = True  # whether the names come from a header row
    labels: np.ndarray | None = None  # (rows,) int64 class ids of the text column
    classes: list[str] | None = None  # the class names, sorted: labels index into them
    label_column: int | None = None
    label_name: str | None = None

    def where(self, row: int, column: int) -> str:
        """``"row 7, column 5 ('label')"`` for the cell at 0-based ``row`` and ``column``."""
        return f"row {row + self.data_start}, " + column_name(column, self.header[column], self.named)


def column_name(column: int, name: str, named: bool = True) -> str:
    """``"column 5 ('label')"`` (1-based, as the rows), or ``"column 5 (position 4)"`` without a header."""
    return f"column {column + 1} ('{name}')" if named else f"column {column + 1} (position {column})"


@dataclass
class _Layout:
    """What to read: the file's column names, the numeric ones in table order, the text one."""

    names: list[str]
    named: bool
    columns: list[int]
    text: int | None

    @property
    def start(self) -> int:
        """The file line of the first data row."""
        return DATA_START if self.named else 1

    def column(self, c: int) -> str:
        return column_name(c, self.names[c], self.named)


def arrow_available() -> bool:
    """True when pyarrow's CSV reader can be imported (the ``csv`` extra is installed)."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def read_table(path, min_columns: int = 2, engine: str = "auto", order=None, header="auto", text=None) -> CsvTable:
    """Read a CSV file, every cell a number (but one text column if asked for), into a float32 table.

    Args:
        path: the file.
        min_columns: the fewest columns the file may have.
        engine: ``"arrow"`` (pyarrow; an error when it is not installed), ``"python"``, or
            ``"auto"``: arrow when installed, else python. Both give the same table and errors.
        order: a callable ``names -> column indices``: the table's columns in that order
            (e.g. the target last, so that the features are a view); default the file's order
            (less the text column). Errors still name the file's column numbers.
        header: ``"auto"`` (the first row names the columns; refused when it looks like data),
            ``True`` (it does, whatever it holds) or ``False`` (no header: columns named
            ``"0"``, ``"1"``, ... by position, data from line 1).
        text: a column index, or a callable ``names -> index or None``: that column holds class
            names, read as text into ``labels``/``classes`` instead of the table.

    Raises:
        DataError: naming the file and, for a bad cell, its row and column (a :class:`CellError`).

    Example:
        >>> read_table("iris.csv").values.shape          # doctest: +SKIP
        (150, 5)
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, found {engine!r}")
    path = Path(path)
    use_arrow = engine == "arrow" or (engine == "auto" and arrow_available())
    names, named = read_header(path, min_columns, header)
    label = text(names) if callable(text) else text
    columns = [c for c in range(len(names)) if c != label] if order is None else [int(c) for c in order(names)]
    layout = _Layout(names, named, columns, label)
    parts = _parts(path, path.stat().st_size // ARROW_PART_BYTES if use_arrow else 1, int(named))
    out = np.empty((parts[-1].stop_row, len(columns)), dtype=np.float32)  # pages are taken as rows are written
    codes = np.empty(len(out) if label is not None else 0, dtype=np.int32)  # provisional class ids
    vocab = Vocabulary()
    filled, done = _arrow_fill(path, layout, out, codes, vocab, parts) if use_arrow else (0, False)
    if not done:
        out, codes, filled = _python_fill(path, layout, out, codes, vocab, filled)
    if filled == 0:
        after = f"after the header (line {DATA_START - 1})" if named else "in the file"
        raise DataError(f"no data rows {after}", str(path))
    if filled < len(out):
        out.resize((filled, len(columns)), refcheck=False)  # in place: nothing else refers to it
    table = CsvTable(path, [names[c] for c in columns], out, "arrow" if use_arrow else "python", layout.start, named)
    if label is not None:
        table.classes, table.labels = vocab.finish(codes[:filled])
        table.label_column, table.label_name = label, names[label]
    return table


# ----------------------------------------------------------------------------- parts of the file


@dataclass
class _Part:
    """A stretch of the file's data lines: bytes ``[start, stop)``, data rows ``[row, stop_row)``."""

    start: int
    stop: int
    row: int
    stop_row: int


def _parts(path: Path, wanted: int, skip: int = 1) -> list[_Part]:
    """The data lines (after ``skip`` header lines, 0 or 1) cut into up to ``wanted`` parts at line
    ends, in one pass over the bytes.

    Rows are counted as newline bytes (plus a last line without one): exact for ordinary files,
    an upper bound otherwise (the python reader grows the table if lone \\r end lines).
    """
    size = path.stat().st_size
    count = max(1, min(wanted, ARROW_MAX_PARTS, os.cpu_count() or 1))
    targets = [size * i // count for i in range(1, count)]
    cuts: list[tuple[int, int]] = []  # (byte after a newline, newlines before it)
    if not skip:  # the data start at the first byte (after a BOM)
        with open(path, "rb") as f:
            cuts.append((len(codecs.BOM_UTF8) if f.read(3) == codecs.BOM_UTF8 else 0, 0))
    newlines, pos, last, buf = 0, 0, b"\n", bytearray(1 << 22)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if not cuts:  # the header's line end: where the data start
                i = buf.find(b"\n", 0, n)
                if i >= 0:
                    cuts.append((pos + i + 1, 1))
            while len(cuts) and targets and pos + n > targets[0]:
                i = buf.find(b"\n", max(targets.pop(0) - pos, 0), n)
                if i >= 0 and pos + i + 1 > cuts[-1][0]:
                    cuts.append((pos + i + 1, newlines + buf.count(b"\n", 0, i + 1)))
            newlines += buf.count(b"\n", 0, n)
            last, pos = buf[n - 1:n], pos + n
    lines = max(newlines + (pos > 0 and last != b"\n"), skip)  # a last line without its newline; the header
    cuts = cuts or [(size, lines)]
    ends = cuts[1:] + [(size, lines)]
    return [_Part(a, b, rows_a - skip, rows_b - skip) for (a, rows_a), (b, rows_b) in zip(cuts, ends)]


# ----------------------------------------------------------------------------- the arrow reader


class _Range(io.RawIOBase):
    """Bytes ``[start, stop)`` of a file, as a readable stream (one arrow reader's part)."""

    def __init__(self, path: Path, start: int, stop: int):
        self._file = open(path, "rb", buffering=0)
        self._file.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:n])
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _arrow_fill(path: Path, layout: _Layout, out: np.ndarray, codes: np.ndarray, vocab: Vocabulary,
                parts: list[_Part]) -> tuple[int, bool]:
    """Fill ``out`` (and ``codes``, the text column's ids in ``vocab``) with arrow, one reader
    (thread) per part: ``(rows filled, whether to the end)``.

    A reader stops at a block it cannot take whole (a bad or empty cell, a ragged row, a blank
    line), whose values are not all finite, or that would spill out of its part's rows; the
    python reader takes over from the first row not filled.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        raise DataError("engine 'arrow' needs pyarrow: pip install 'nncli[csv]'", str(path)) from None
    names = [f"c{i}" for i in range(len(layout.names))]  # the header is read (and checked) by read_header
    types = dict.fromkeys(names, pa.float32())
    wanted = [names[c] for c in layout.columns]  # the table's order, then the text column
    if layout.text is not None:
        types[names[layout.text]] = pa.string()
        wanted.append(names[layout.text])
    ncols = len(layout.columns)
    options = dict(
        read_options=pacsv.ReadOptions(column_names=names, block_size=ARROW_BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),  # a blank line is a row: rows stay lines
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                             quoted_strings_can_be_null=False, include_columns=wanted))

    def read(part: _Part, result: list, labels: Vocabulary) -> None:
        filled, done = part.row, False
        try:
            with io.BufferedReader(_Range(path, part.start, part.stop), 1 << 20) as stream, \
                    pacsv.open_csv(stream, **options) as reader:
                for batch in reader:
                    rows = batch.num_rows
                    if filled + rows > part.stop_row:
                        break  # more rows than lines: leave the rest to the python reader
                    block = out[filled:filled + rows]
                    numbers = batch if layout.text is None else batch.select(range(ncols))
                    block[...] = numbers.to_tensor(row_major=True).to_numpy()  # (rows, columns) float32
                    if not np.isfinite(block).all():
                        break  # nan, inf or a float32 overflow: the python reader names the cell
                    if layout.text is not None:
                        ids = labels.encode_arrow(batch.column(ncols))
                        if ids is None:
                            break  # an empty label: the python reader names its cell
                        codes[filled:filled + rows] = ids
                    filled += rows
                else:
                    done = filled == part.stop_row
        except (pa.ArrowException, ValueError, OSError):
            pass  # the python reader says what is wrong from here
        finally:  # whatever stopped the thread, the python reader takes over from here
            result[:] = [filled, done]

    results = [[part.row, False] for part in parts]
    vocabs = [vocab] + [Vocabulary() for _ in parts[1:]]  # one per thread, merged into the first below
    threads = [threading.Thread(target=read, args=args, daemon=True) for args in zip(parts, results, vocabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for part, (filled, done), labels in zip(parts, results, vocabs):  # up to the first part not read to its end
        if labels is not vocab and filled > part.row:
            codes[part.row:filled] = vocab.absorb(labels, codes[part.row:filled])
        if not done:
            return filled, False
    return parts[-1].stop_row, True


# ----------------------------------------------------------------------------- the python reader


def _python_fill(path: Path, layout: _Layout, out: np.ndarray, codes: np.ndarray, vocab: Vocabulary,
                 start: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Read data rows ``start`` onwards into ``out`` and ``codes`` (grown if need be); ``(out, codes, rows filled)``."""
    where, skip = str(path), layout.start - 1 + start
    reader = csv.reader(_without_trailing_blanks(_text_lines(path, skip=skip)))
    chunk_rows = max(1, PYTHON_CHUNK_CELLS // len(layout.names))
    filled = start
    while True:
        try:
            rows = list(islice(reader, chunk_rows))
        except csv.Error as err:
            raise DataError(f"row {skip + reader.line_num}: {err}", where) from None
        if not rows:
            return out, codes, filled
        block, labels = _convert(rows, layout, filled, where)
        n = len(block)
        if filled + n > len(out):  # only for lines that \n does not end (a lone \r)
            size = max(2 * len(out), filled + n)
            out, codes = _grown(out, size, filled), _grown(codes, size if labels is not None else 0, filled)
        out[filled:filled + n] = block
        if labels is not None:
            codes[filled:filled + n] = vocab.encode(
                labels, lambda i, first=filled: f"{where}: row {first + i + layout.start}, {layout.column(layout.text)}")
        filled += n


def _grown(array: np.ndarray, rows: int, keep: int) -> np.ndarray:
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[:keep] = array[:keep]
    return grown


def _convert(rows: list[list[str]], layout: _Layout, first: int, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of cells (data rows ``first``, ``first + 1``, ...) as float32 ``(len(rows), table columns)``,
    and the text column's cells (or None)."""
    ncols, columns, start = len(layout.names), layout.columns, layout.start
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    ragged = np.flatnonzero(lengths != ncols)
    if ragged.size:
        r = int(ragged[0])
        raise DataError(f"row {first + r + start}: expected {ncols} cells as in the "
                        f"{'header' if layout.named else 'first row'}, found {lengths[r]}", where)
    labels = None
    try:  # one conversion for the chunk; look for the culprit only when it fails
        with np.errstate(over="ignore"):  # 1e39 becomes inf, reported below with its place
            if sorted(columns) == list(range(ncols)):  # every cell a number
                block = np.array(list(chain.from_iterable(rows)), dtype=np.float32).reshape(len(rows), ncols)
                if columns != list(range(ncols)):
                    block = block[:, columns]
            else:  # a column left out (the text column, a target) need not be a number
                cells = np.array(rows, dtype=str)  # (rows, ncols)
                labels = None if layout.text is None else cells[:, layout.text]
                block = cells[:, columns].astype(np.float32)
    except ValueError:
        _raise_bad_cell(rows, layout, first, where)
    bad = ~np.isfinite(block)
    if bad.any():
        r, c = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise DataError(f"row {first + r + start}, {layout.column(columns[c])}: expected a finite "
                        f"number, found {rows[r][columns[c]].strip()!r}", where)
    return block, labels


def _raise_bad_cell(rows: list[list[str]], layout: _Layout, first: int, where: str):
    """Find the first cell of a table column that does not convert, and raise a CellError naming it."""
    for r, row in enumerate(rows):
        cells = [row[c] for c in layout.columns]
        try:
            np.array(cells, dtype=np.float32)
            continue
        except ValueError:
            pass
        for c, cell in zip(layout.columns, cells):
            try:
                np.array(cell, dtype=np.float32)
            except ValueError:
                found = "an empty cell" if not cell.strip() else repr(cell.strip())
                raise CellError(f"row {first + r + layout.start}, {layout.column(c)}: expected a number, "
                                f"found {found}", where, c, bool(cell.strip())) from None
    raise DataError("a cell could not be read as a number", where)  # unreachable in practice
