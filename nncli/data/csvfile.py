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

Rows are numbered as lines of the file, the header being line 1. The header's place is fixed in
one spot (:data:`DATA_START`), the per-column type in another (every column float32), so that a
file without a header or with a text column can be added without touching the readers' loops.
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

from nncli.errors import DataError

ENGINES = ("auto", "arrow", "python")
DATA_START = 2  # the file line of the first data row: the header is line 1
ARROW_BLOCK_BYTES = 1 << 20  # text per arrow batch: small blocks keep the peak low, at no cost in speed
ARROW_PART_BYTES = 32 << 20  # the least text per parallel arrow reader
ARROW_MAX_PARTS = 3  # parallel arrow readers at most: each holds about 45 MB of buffers
PYTHON_CHUNK_CELLS = 1 << 20  # cells converted at once by the python reader (about 60 MB of strings)


@dataclass
class CsvTable:
    """A CSV file's header and its cells as one float32 table ``(rows, columns)``."""

    path: Path
    header: list[str]
    values: np.ndarray  # (rows, columns) float32
    engine: str  # the reader that read most of it: "arrow" or "python"

    def where(self, row: int, column: int) -> str:
        """``"row 7, column 5 ('label')"`` for the cell at 0-based ``row`` and ``column``."""
        return f"row {row + DATA_START}, column {column + 1} ('{self.header[column]}')"


def arrow_available() -> bool:
    """True when pyarrow's CSV reader can be imported (the ``csv`` extra is installed)."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def read_table(path, min_columns: int = 2, engine: str = "auto", order=None) -> CsvTable:
    """Read a CSV file with a header row, every cell a number, into a float32 table.

    Args:
        path: the file.
        min_columns: the fewest columns the header may have.
        engine: ``"arrow"`` (pyarrow; an error when it is not installed), ``"python"``, or
            ``"auto"``: arrow when installed, else python. Both give the same table and errors.
        order: a callable ``header -> column indices``: the table's columns in that order
            (e.g. the target last, so that the features are a view); default the file's order.
            Errors still name the file's column numbers.

    Raises:
        DataError: naming the file and, for a bad cell, its row and column.

    Example:
        >>> read_table("iris.csv").values.shape          # doctest: +SKIP
        (150, 5)
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, found {engine!r}")
    path = Path(path)
    use_arrow = engine == "arrow" or (engine == "auto" and arrow_available())
    header = read_header(path, min_columns)
    columns = list(range(len(header))) if order is None else [int(c) for c in order(header)]
    parts = _parts(path, path.stat().st_size // ARROW_PART_BYTES if use_arrow else 1)
    out = np.empty((parts[-1].stop_row, len(columns)), dtype=np.float32)  # pages are taken as rows are written
    filled, done = _arrow_fill(path, len(header), columns, out, parts) if use_arrow else (0, False)
    if not done:
        out, filled = _python_fill(path, header, columns, out, filled)
    if filled == 0:
        raise DataError(f"no data rows after the header (line {DATA_START - 1})", str(path))
    if filled < len(out):
        out.resize((filled, len(columns)), refcheck=False)  # in place: nothing else refers to it
    return CsvTable(path, [header[c] for c in columns], out, "arrow" if use_arrow else "python")


# ----------------------------------------------------------------------------- reading lines


def _text_lines(path: Path, skip: int = 0):
    """The file's lines from line ``skip + 1`` on, as text decoded from UTF-8 (a BOM dropped).

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as for arrow. The ``skip`` lines before are
    passed over without decoding. Undecodable bytes raise a DataError with their file offset.
    """
    where, offset = str(path), 0
    try:
        with open(path, "rb") as f:
            for raw in f:  # split at b"\\n"; bytes.splitlines also splits at \\r (and at nothing else)
                start = offset
                offset += len(raw)
                if start == 0 and raw.startswith(codecs.BOM_UTF8):
                    raw, start = raw[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
                pieces = raw.splitlines() or [b""]
                if skip >= len(pieces):
                    skip -= len(pieces)
                    continue
                try:
                    raw.decode("utf-8")  # the whole line, for the offset of a bad byte
                except UnicodeDecodeError as err:
                    raise DataError(f"not UTF-8 text (bad byte at offset {start + err.start}); "
                                    "expected a CSV file", where) from None
                texts = [piece.decode("utf-8") for piece in pieces[skip:]]
                skip = 0
                yield from texts
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", where) from None


def _without_trailing_blanks(lines):
    """``lines`` less the blank ones at the end (a blank line in the middle is kept: it is a row)."""
    pending = []
    for line in lines:
        if line.strip():
            yield from pending
            pending.clear()
            yield line
        else:
            pending.append(line)


@dataclass
class _Part:
    """A stretch of the file's data lines: bytes ``[start, stop)``, data rows ``[row, stop_row)``."""

    start: int
    stop: int
    row: int
    stop_row: int


def _parts(path: Path, wanted: int) -> list[_Part]:
    """The data lines cut into up to ``wanted`` parts at line ends, in one pass over the bytes.

    Rows are counted as newline bytes (plus a last line without one): exact for ordinary files,
    an upper bound otherwise (the python reader grows the table if lone \\r end lines).
    """
    size = path.stat().st_size
    count = max(1, min(wanted, ARROW_MAX_PARTS, os.cpu_count() or 1))
    targets = [size * i // count for i in range(1, count)]
    cuts: list[tuple[int, int]] = []  # (byte after a newline, newlines before it)
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
    lines = max(newlines + (pos > 0 and last != b"\n"), 1)  # a last line without its newline; the header
    cuts = cuts or [(size, lines)]
    ends = cuts[1:] + [(size, lines)]
    return [_Part(a, b, rows_a - 1, rows_b - 1) for (a, rows_a), (b, rows_b) in zip(cuts, ends)]


def _check_utf8_start(path: Path, size: int = 1 << 16) -> None:
    """Refuse a file whose first ``size`` bytes are not UTF-8 text (a binary file), before its header."""
    with open(path, "rb") as f:
        head = f.read(size)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < size)  # a cut character is fine
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text (bad byte at offset {err.start}); expected a CSV file", str(path)) from None


def read_header(path: Path, min_columns: int = 2) -> list[str]:
    """The header row's names, checked: enough columns, each name once."""
    where = str(path)
    _check_utf8_start(path)
    lines = _without_trailing_blanks(_text_lines(path))
    reader = csv.reader(lines)
    try:
        first = next(reader, None)
    except csv.Error as err:
        raise DataError(f"row {reader.line_num}: {err}", where) from None
    if first is None:
        raise DataError("the file is empty; expected a header row, then rows of numbers", where)
    header = [name.strip() for name in first]
    if len(header) < min_columns:
        found = f" ({first[0]!r})" if first else ""
        raise DataError(f"the header has {len(header)} column{found}; expected comma-separated "
                        "feature columns and a target column", where)
    seen: dict[str, int] = {}
    for col, name in enumerate(header):
        if name in seen:
            raise DataError(f"columns {seen[name] + 1} and {col + 1} are both named '{name}'; "
                            "column names must be unique", where)
        seen[name] = col
    return header


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


def _arrow_fill(path: Path, ncols: int, columns: list[int], out: np.ndarray, parts: list[_Part]) -> tuple[int, bool]:
    """Fill ``out`` with arrow, one reader (thread) per part: ``(rows filled, whether to the end)``.

    A reader stops at a block it cannot take whole (a bad or empty cell, a ragged row, a blank
    line), whose values are not all finite, or that would spill out of its part's rows; the
    python reader takes over from the first row not filled.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        raise DataError("engine 'arrow' needs pyarrow: pip install 'nncli[csv]'", str(path)) from None
    names = [f"c{i}" for i in range(ncols)]  # the header is read (and checked) by read_header
    options = dict(
        read_options=pacsv.ReadOptions(column_names=names, block_size=ARROW_BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),  # a blank line is a row: rows stay lines
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float32()), null_values=[],
                                             strings_can_be_null=False, quoted_strings_can_be_null=False,
                                             include_columns=[names[c] for c in columns]))  # the table's order

    def read(part: _Part, result: list) -> None:
        filled, done = part.row, False
        try:
            with io.BufferedReader(_Range(path, part.start, part.stop), 1 << 20) as stream, \
                    pacsv.open_csv(stream, **options) as reader:
                for batch in reader:
                    rows = batch.num_rows
                    if filled + rows > part.stop_row:
                        break  # more rows than lines: leave the rest to the python reader
                    block = out[filled:filled + rows]
                    block[...] = batch.to_tensor(row_major=True).to_numpy()  # (rows, columns) float32
                    if not np.isfinite(block).all():
                        break  # nan, inf or a float32 overflow: the python reader names the cell
                    filled += rows
                else:
                    done = filled == part.stop_row
        except (pa.ArrowException, ValueError, OSError):
            pass  # the python reader says what is wrong from here
        finally:  # whatever stopped the thread, the python reader takes over from here
            result[:] = [filled, done]

    results = [[part.row, False] for part in parts]
    threads = [threading.Thread(target=read, args=(part, res), daemon=True) for part, res in zip(parts, results)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for filled, done in results:  # the first part that did not end where the next one starts
        if not done:
            return filled, False
    return parts[-1].stop_row, True


# ----------------------------------------------------------------------------- the python reader


def _python_fill(path: Path, header: list[str], columns: list[int], out: np.ndarray,
                 start: int) -> tuple[np.ndarray, int]:
    """Read data rows ``start`` onwards into ``out`` (grown if need be); ``(out, rows filled)``."""
    where, ncols = str(path), len(columns)
    reader = csv.reader(_without_trailing_blanks(_text_lines(path, skip=DATA_START - 1 + start)))
    reorder = columns != list(range(len(header)))
    chunk_rows = max(1, PYTHON_CHUNK_CELLS // ncols)
    filled = start
    while True:
        try:
            rows = list(islice(reader, chunk_rows))
        except csv.Error as err:
            raise DataError(f"row {DATA_START - 1 + start + reader.line_num}: {err}", where) from None
        if not rows:
            return out, filled
        block = _convert(rows, header, filled, where)
        if reorder:
            block = block[:, columns]
        if filled + len(block) > len(out):  # only for lines that \n does not end (a lone \r)
            grown = np.empty((max(2 * len(out), filled + len(block)), ncols), dtype=np.float32)
            grown[:filled] = out[:filled]
            out = grown
        out[filled:filled + len(block)] = block
        filled += len(block)


def _convert(rows: list[list[str]], header: list[str], first: int, where: str) -> np.ndarray:
    """Rows of cells (data rows ``first``, ``first + 1``, ...) as float32 ``(len(rows), columns)``."""
    ncols = len(header)
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    ragged = np.flatnonzero(lengths != ncols)
    if ragged.size:
        r = int(ragged[0])
        raise DataError(f"row {first + r + DATA_START}: expected {ncols} cells as in the header, "
                        f"found {lengths[r]}", where)
    try:  # one conversion for the chunk; look for the culprit only when it fails
        with np.errstate(over="ignore"):  # 1e39 becomes inf, reported below with its place
            block = np.array(list(chain.from_iterable(rows)), dtype=np.float32).reshape(len(rows), ncols)
    except ValueError:
        _raise_bad_cell(rows, header, first, where)
    bad = ~np.isfinite(block)
    if bad.any():
        r, c = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise DataError(f"row {first + r + DATA_START}, column {c + 1} ('{header[c]}'): expected a finite "
                        f"number, found {rows[r][c].strip()!r}", where)
    return block


def _raise_bad_cell(rows: list[list[str]], header: list[str], first: int, where: str):
    """Find the first cell that does not convert, and raise a DataError naming it."""
    for r, row in enumerate(rows):
        try:
            np.array(row, dtype=np.float32)
            continue
        except ValueError:
            pass
        for c, cell in enumerate(row):
            try:
                np.array(cell, dtype=np.float32)
            except ValueError:
                found = "an empty cell" if not cell.strip() else repr(cell.strip())
                raise DataError(f"row {first + r + DATA_START}, column {c + 1} ('{header[c]}'): expected "
                                f"a number, found {found}", where) from None
    raise DataError("a cell could not be read as a number", where)  # unreachable in practice
