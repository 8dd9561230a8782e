"""The CSV reader: arrow and python engines give the same tables and the same errors."""

import re

import numpy as np
import pytest

from nncli.data import csvfile
from nncli.data.csvfile import read_table
from nncli.errors import DataError

ENGINES = ["python", pytest.param("arrow", marks=pytest.mark.skipif(not csvfile.arrow_available(),
                                                                     reason="pyarrow is not installed"))]


@pytest.fixture(params=ENGINES)
def engine(request, monkeypatch):
    """Each test runs once per engine, with arrow blocks small enough that a file spans many."""
    monkeypatch.setattr(csvfile, "ARROW_BLOCK_BYTES", 4096)
    monkeypatch.setattr(csvfile, "PYTHON_CHUNK_CELLS", 512)
    return request.param


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def big_rows(n=3000, cols=6, seed=0):
    """``n`` rows of whole numbers and decimals, as text and as the float32 table they hold."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(0, 100, (n, cols)), 3).astype(np.float32)
    lines = [",".join(f"{v:.3f}" for v in row) for row in values]
    return lines, values


HEADER6 = "a,b,c,d,e,label"


def test_engines_read_the_same_table(tmp_path, engine):
    lines, values = big_rows()
    path = write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n")
    table = read_table(path, engine=engine)
    assert table.header == HEADER6.split(",")
    assert table.values.dtype == np.float32 and table.values.flags.c_contiguous
    np.testing.assert_array_equal(table.values, values)
    assert table.engine == engine


@pytest.mark.parametrize("row", [2, 1500, 3001])
@pytest.mark.parametrize("cell, found", [("abc", "expected a number, found 'abc'"),
                                         ("", "expected a number, found an empty cell"),
                                         ("nan", "expected a finite number, found 'nan'"),
                                         ("1e39", "expected a finite number, found '1e39'")])
def test_a_bad_cell_anywhere_is_named_by_row_and_column(tmp_path, engine, row, cell, found):
    lines, _ = big_rows()
    cells = lines[row - 2].split(",")
    cells[3] = cell
    lines[row - 2] = ",".join(cells)
    path = write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"d.csv: row {row}, column 4 ('d'): {found}")):
        read_table(path, engine=engine)


@pytest.mark.parametrize("keep, extra, found", [(6, ",7", 7), (5, "", 5)])
def test_a_ragged_row_late_in_the_file(tmp_path, engine, keep, extra, found):
    lines, _ = big_rows()
    lines[2500] = ",".join(lines[2500].split(",")[:keep]) + extra
    path = write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"row 2502: expected 6 cells as in the header, found {found}"):
        read_table(path, engine=engine)


def test_trailing_blank_lines_crlf_and_spaces_load(tmp_path, engine):
    lines, values = big_rows(500)
    text = HEADER6 + "\r\n" + "\r\n".join(" " + line.replace(",", " , ") for line in lines) + "\r\n\r\n  \n\n"
    table = read_table(write(tmp_path, text), engine=engine)
    np.testing.assert_array_equal(table.values, values)
    assert table.values.shape == (500, 6)  # the blank lines are not rows, and the array holds no spare rows


def test_a_blank_line_in_the_middle_is_a_ragged_row(tmp_path, engine):
    lines, _ = big_rows(500)
    lines.insert(300, "")
    with pytest.raises(DataError, match=r"row 302: expected 6 cells as in the header, found 0"):
        read_table(write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n"), engine=engine)


def test_lone_carriage_returns_and_no_final_newline(tmp_path, engine):
    table = read_table(write(tmp_path, "a,b\r1,2\r3,4\r5,6"), engine=engine)
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4], [5, 6]])


def test_bom_and_quoted_numbers(tmp_path, engine):
    table = read_table(write(tmp_path, '\ufeffa,"b"\n"1.5",2\n3,"4e2"\n'), engine=engine)
    assert table.header == ["a", "b"]
    np.testing.assert_array_equal(table.values, [[1.5, 2], [3, 400]])


def test_bad_utf8_late_in_the_file_names_its_offset(tmp_path, engine):
    lines, _ = big_rows()
    text = (HEADER6 + "\n" + "\n".join(lines) + "\n").encode()
    at = len(text) - 20
    path = write(tmp_path, text[:at] + b"\xff" + text[at + 1:])
    with pytest.raises(DataError, match=rf"not UTF-8 text \(bad byte at offset {at}\)"):
        read_table(path, engine=engine)


def test_header_only_and_empty_files(tmp_path, engine):
    with pytest.raises(DataError, match=r"no data rows after the header \(line 1\)"):
        read_table(write(tmp_path, "a,b\n\n\n"), engine=engine)
    with pytest.raises(DataError, match="the file is empty"):
        read_table(write(tmp_path, "\n \n"), engine=engine)


def test_where_names_a_cell(tmp_path):
    table = read_table(write(tmp_path, "x,y\n1,2\n"))
    assert table.where(0, 1) == "row 2, column 2 ('y')"


def test_parts_count_rows_and_tile_the_data(tmp_path, monkeypatch):
    def rows(text, wanted=1):
        return [(p.row, p.stop_row) for p in csvfile._parts(write(tmp_path, text), wanted)]

    assert rows("a\n1\n2") == [(0, 2)]
    assert rows("a\n1\n2\n") == [(0, 2)]
    assert rows("a") == [(0, 0)] and rows("") == [(0, 0)]
    monkeypatch.setattr(csvfile.os, "cpu_count", lambda: 8)
    lines, _ = big_rows(1000)
    path = write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n")
    parts = csvfile._parts(path, 3)
    assert len(parts) == 3 and parts[0].row == 0 and parts[-1].stop_row == 1000
    data = path.read_bytes()
    for a, b in zip(parts, parts[1:]):
        assert a.stop == b.start and a.stop_row == b.row and data[b.start - 1:b.start] == b"\n"
        assert data[:b.start].count(b"\n") - 1 == b.row  # rows before the cut


@pytest.mark.skipif(not csvfile.arrow_available(), reason="pyarrow is not installed")
@pytest.mark.parametrize("bad_row", [None, 150, 700, 1001])
def test_parallel_arrow_readers_hand_over_at_the_first_bad_row(tmp_path, monkeypatch, bad_row):
    monkeypatch.setattr(csvfile, "ARROW_PART_BYTES", 1)  # as many parts as allowed
    monkeypatch.setattr(csvfile, "ARROW_BLOCK_BYTES", 4096)
    monkeypatch.setattr(csvfile.os, "cpu_count", lambda: 8)
    lines, values = big_rows(1000)
    if bad_row is not None:
        lines[bad_row - 2] = lines[bad_row - 2].replace(",", ",x", 1)
    path = write(tmp_path, HEADER6 + "\n" + "\n".join(lines) + "\n")
    if bad_row is None:
        np.testing.assert_array_equal(read_table(path, engine="arrow").values, values)
    else:
        with pytest.raises(DataError, match=rf"row {bad_row}, column 2 \('b'\): expected a number, found 'x"):
            read_table(path, engine="arrow")


def test_arrow_engine_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    path = write(tmp_path, "a,b\n1,2\n")
    assert not csvfile.arrow_available()
    assert read_table(path).engine == "python"  # auto falls back
    with pytest.raises(DataError, match=re.escape("pip install 'nncli[csv]'")):
        read_table(path, engine="arrow")
