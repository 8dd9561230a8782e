"""The text side of a CSV file: its lines as UTF-8 text, its header row, what its first rows hold.

:mod:`nncli.data.csvfile` reads the cells; this module decides what the first row is (names, or
data when ``header="auto"`` finds numbers where the rows below have numbers) and whether a column
holds text (class names) rather than numbers.
"""

from __future__ import annotations

import codecs
import csv
from itertools import islice
from pathlib import Path

from nncli.errors import DataError

__all__ = ["HEADERS", "DATA_START", "HeaderError", "read_header", "is_number", "looks_like_data", "column_is_text"]

HEADERS = ("auto", True, False)
DATA_START = 2  # the file line of the first data row of a file with a header (line 1)


class HeaderError(DataError):
    """A first row that looks like data where a header row was expected."""


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


def _check_utf8_start(path: Path, size: int = 1 << 16) -> None:
    """Refuse a file whose first ``size`` bytes are not UTF-8 text (a binary file), before its header."""
    with open(path, "rb") as f:
        head = f.read(size)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < size)  # a cut character is fine
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text (bad byte at offset {err.start}); expected a CSV file", str(path)) from None


def is_number(cell: str) -> bool:
    """Whether a cell reads as a number (``"1.5"``, ``" -2e3"``, ``"nan"``), as the readers convert it."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def column_is_text(path: Path, column: int, named: bool, rows: int = 100) -> bool:
    """Whether ``column`` holds text (a non-empty cell that is not a number) in the first ``rows`` data rows."""
    lines = islice(_without_trailing_blanks(_text_lines(path, skip=int(named))), rows)
    try:
        return any(column < len(row) and row[column].strip() and not is_number(row[column]) for row in csv.reader(lines))
    except csv.Error:
        return False  # the readers say what is wrong, with its row


def looks_like_data(first: list[str], second: list[str] | None) -> bool:
    """Whether a first row is data rather than names: it holds numbers, and a number wherever the
    next row does (``"11.84,2.3,cat"`` over ``"12.1,3.3,dog"``; not ``"2019,2020,label"`` over numbers)."""
    numbers = [is_number(cell) for cell in first]
    if not any(numbers):
        return False
    if second is None or len(second) != len(first):
        return all(numbers)
    return all(n or not is_number(cell) for n, cell in zip(numbers, second))


def read_header(path: Path, min_columns: int = 2, header="auto") -> tuple[list[str], bool]:
    """``(column names, whether a header row gave them)``, checked: enough columns, each name once.

    ``header`` is as for :func:`read_table`; without a header row the names are the positions.
    """
    if header not in HEADERS or not isinstance(header, (bool, str)):
        raise ValueError(f"header must be one of {HEADERS}, found {header!r}")
    where = str(path)
    _check_utf8_start(path)
    lines = _without_trailing_blanks(_text_lines(path))
    reader = csv.reader(lines)
    try:
        first = next(reader, None)
        second = next(reader, None) if header == "auto" and first is not None else None
    except csv.Error as err:
        raise DataError(f"row {reader.line_num}: {err}", where) from None
    if first is None:
        raise DataError("the file is empty; expected " + ("a header row, then rows of numbers" if header
                                                          else "rows of numbers"), where)
    if len(first) < min_columns:
        found = f" ({first[0]!r})" if first else ""
        what = "the header has" if header else "the first row has"
        raise DataError(f"{what} {len(first)} column{found}; expected comma-separated "
                        "feature columns and a target column", where)
    if header is False:
        return [str(c) for c in range(len(first))], False
    names = [name.strip() for name in first]
    if header == "auto" and looks_like_data(names, second):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise HeaderError(f"line 1 looks like data, not a header row: it holds numbers ({shown}) where the rows "
                        "below hold numbers. If the file has no header row, set data.header: false (columns "
                        "are then named by position, 0 to {}, and data.target may be a position); if line 1 "
                        "is the header, set data.header: true".format(len(names) - 1), where)
    seen: dict[str, int] = {}
    for col, name in enumerate(names):
        if not name:
            index = (" (pandas writes a DataFrame's index as a first column without a name: save the "
                     "frame with to_csv(path, index=False))" if col == 0 else "")
            raise HeaderError(f"column {col + 1} has no name in the header row; expected a name for every "
                              f"column{index}", where)
        if name in seen:
            raise DataError(f"columns {seen[name] + 1} and {col + 1} are both named '{name}'; "
                            "column names must be unique", where)
        seen[name] = col
    return names, True
