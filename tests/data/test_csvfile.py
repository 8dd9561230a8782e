"""The CSV reader: arrow and python engines give the same tables and the same errors."""

import re

import numpy as np
import pytest

from nncli.data import csvfile
from nncli.data.csvfile import read_table
from nncli.data.csvtext import read_header
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


# ---------------------------------------------------------------------------- header: auto, true, false


def test_a_file_without_a_header_row(tmp_path, engine):
    lines, values = big_rows()
    path = write(tmp_path, "\n".join(lines) + "\n")
    table = read_table(path, engine=engine, header=False)
    np.testing.assert_array_equal(table.values, values)  # no sample lost to a header
    assert table.header == [str(c) for c in range(6)] and not table.named and table.data_start == 1
    assert table.where(0, 3) == "row 1, column 4 (position 3)"
    lines[1499] = lines[1499].replace(",", ",x", 1)
    with pytest.raises(DataError, match=re.escape("d.csv: row 1500, column 2 (position 1): expected a number, found 'x")):
        read_table(write(tmp_path, "\n".join(lines) + "\n"), engine=engine, header=False)


def test_a_headerless_file_with_a_bom_and_one_line(tmp_path, engine):
    table = read_table(write(tmp_path, "\ufeff1.5,2\n"), engine=engine, header=False)
    np.testing.assert_array_equal(table.values, [[1.5, 2]])
    with pytest.raises(DataError, match="the file is empty; expected rows of numbers"):
        read_table(write(tmp_path, "\n"), engine=engine, header=False)


@pytest.mark.parametrize("first, second", [("11.84,2.3,0", "12.1,3.3,1"), ("1,2,cat", "3,4,dog"),
                                           ("0.5,-2,1e3,nan", "1,2,3,4")])
def test_a_first_row_of_data_is_refused_as_a_header(tmp_path, first, second):
    path = write(tmp_path, f"{first}\n{second}\n")
    with pytest.raises(DataError, match=r"d.csv: line 1 looks like data, not a header row: it holds numbers "
                                        r".*set data.header: false .*set data.header: true"):
        read_table(path)
    assert read_header(path, header=True) == (first.split(","), True)  # taken at the user's word


@pytest.mark.parametrize("first, second", [("2019,2020,label", "1,2,3"), ("a,b,1", "1,2,3"), ("x,y", "cat,dog")])
def test_names_that_are_partly_numbers_are_a_header(tmp_path, first, second):
    assert read_header(write(tmp_path, f"{first}\n{second}\n")) == (first.split(","), True)


def test_columns_left_out_need_not_be_numbers(tmp_path, engine):
    table = read_table(write(tmp_path, "a,kind,b\n1,cat,2\n3,dog,4\n"), engine=engine, order=lambda names: [2, 0])
    np.testing.assert_array_equal(table.values, [[2, 1], [4, 3]])


# ---------------------------------------------------------------------------- a text column (class names)


def labelled_rows(n=3000, seed=1):
    lines, values = big_rows(n, cols=3, seed=seed)
    names = np.array(["zebra", "ant", "cat", "Dog"])  # sorted: 'Dog' < 'ant' < 'cat' < 'zebra'
    picks = np.random.default_rng(seed).integers(0, 4, n)
    text = [f"{line},{' ' if i % 7 == 0 else ''}{names[p]}" for i, (line, p) in enumerate(zip(lines, picks))]
    ids = np.searchsorted(sorted(names), names[picks])
    return text, values, ids


def test_a_text_column_becomes_sorted_classes(tmp_path, engine):
    lines, values, ids = labelled_rows()
    path = write(tmp_path, "a,b,c,kind\n" + "\n".join(lines) + "\n")
    table = read_table(path, engine=engine, text=3)
    assert table.classes == ["Dog", "ant", "cat", "zebra"] and table.label_name == "kind"
    np.testing.assert_array_equal(table.labels, ids)  # spaces around a label are not part of it
    np.testing.assert_array_equal(table.values, values)
    assert table.header == ["a", "b", "c"]


@pytest.mark.skipif(not csvfile.arrow_available(), reason="pyarrow is not installed")
def test_parallel_readers_agree_on_the_classes(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "ARROW_PART_BYTES", 1)
    monkeypatch.setattr(csvfile, "ARROW_BLOCK_BYTES", 4096)
    monkeypatch.setattr(csvfile.os, "cpu_count", lambda: 8)
    lines, _, ids = labelled_rows()
    lines[0] = lines[0].rsplit(",", 1)[0] + ",yak"  # a class only the first part sees
    lines[-1] = lines[-1].rsplit(",", 1)[0] + ",bee"  # and one only the last part sees
    path = write(tmp_path, "a,b,c,kind\n" + "\n".join(lines) + "\n")
    assert len(csvfile._parts(path, 3)) == 3
    arrow, python = read_table(path, engine="arrow", text=3), read_table(path, engine="python", text=3)
    assert arrow.classes == python.classes == ["Dog", "ant", "bee", "cat", "yak", "zebra"]
    np.testing.assert_array_equal(arrow.labels, python.labels)
    assert arrow.classes[arrow.labels[0]] == "yak" and arrow.classes[arrow.labels[-1]] == "bee"


def test_an_empty_label_is_named_by_row_and_column(tmp_path, engine):
    lines, _, _ = labelled_rows()
    lines[2000] = lines[2000].rsplit(",", 1)[0] + ",  "
    path = write(tmp_path, "a,b,c,kind\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape("d.csv: row 2002, column 4 ('kind'): expected a class label, "
                                                  "found an empty cell")):
        read_table(path, engine=engine, text=3)


def test_a_text_cell_in_a_number_column_is_a_cell_error(tmp_path, engine):
    path = write(tmp_path, "a,b,kind\n1,2,cat\n3,red,dog\n")
    with pytest.raises(csvfile.CellError, match=r"row 3, column 2 \('b'\): expected a number, found 'red'") as info:
        read_table(path, engine=engine, text=2)
    assert info.value.column == 1 and info.value.text


def test_a_column_without_a_name_is_refused(tmp_path):
    # pandas's to_csv writes the index so; read as a feature, it would leak the row order into the model
    with pytest.raises(DataError, match=r"column 1 has no name in the header row; .*to_csv\(path, index=False\)"):
        read_table(write(tmp_path, ",a,label\n0,1.5,1\n1,2.5,0\n"))
    with pytest.raises(DataError, match=r"column 2 has no name in the header row; expected a name for every column$"):
        read_table(write(tmp_path, "a,,label\n0,1.5,1\n"))
