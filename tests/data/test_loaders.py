import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import nncli.data.builtin as builtin
from nncli.data import csvfile
from nncli.data import load_csv, load_file, load_inputs
from nncli.errors import DataError

GOOD_CSV = "a,b,label\n1,2,0\n3.5,-4,1\n5,6e1,2\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def idx_bytes(array, code=0x08):
    """An IDX file: two zero bytes, the type code, ndim, big-endian dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def raises(match_all, fn, *args, **kwargs):
    """Call ``fn``; it must raise DataError whose message contains every string in ``match_all``."""
    with pytest.raises(DataError) as err:
        fn(*args, **kwargs)
    for part in match_all:
        assert part in str(err.value), f"{part!r} not in {str(err.value)!r}"
    return str(err.value)


# ---------------------------------------------------------------------------- CSV


def test_csv_default_target_is_the_last_column(tmp_path):
    x, y, names, target = load_csv(write(tmp_path, "d.csv", GOOD_CSV))
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.tolist() == [[1, 2], [3.5, -4], [5, 60]]
    assert y.tolist() == [0, 1, 2]
    assert (names, target) == (["a", "b"], "label")


def test_csv_target_by_name(tmp_path):
    x, y, names, target = load_csv(write(tmp_path, "d.csv", GOOD_CSV), target="a")
    assert x.tolist() == [[2, 0], [-4, 1], [60, 2]]
    assert y.tolist() == [1, 3.5, 5]
    assert (names, target) == (["b", "label"], "a")


def test_csv_tolerates_crlf_spaces_and_trailing_blank_lines(tmp_path):
    x, y, names, _ = load_csv(write(tmp_path, "d.csv", " a , b,label\r\n1, 2 ,0\r\n3,4,1\r\n\r\n\n"))
    assert names == ["a", "b"] and x.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]


@pytest.mark.parametrize("body, row, column, found", [
    ("1,2,0\n3,abc,1\n", 3, "column 2 ('b')", "'abc'"),
    ("1,2,0\n3,,1\n", 3, "column 2 ('b')", "empty cell"),
    ("1,2,0\n3,4,1\n5,6,\n", 4, "column 3 ('label')", "empty cell"),
    ("1,nan,0\n", 2, "column 2 ('b')", "'nan'"),
    ("1,2,0\n-inf,2,0\n", 3, "column 1 ('a')", "'-inf'"),
    ("1,2,0\n1e999,2,0\n", 3, "column 1 ('a')", "'1e999'"),
])
def test_csv_bad_cell_names_file_row_and_column(tmp_path, body, row, column, found):
    path = write(tmp_path, "bad.csv", "a,b,label\n" + body)
    raises(["bad.csv", f"row {row}", column, found], load_csv, path)


def test_csv_ragged_row(tmp_path):
    path = write(tmp_path, "ragged.csv", "a,b,label\n1,2,0\n1,2\n")
    raises(["ragged.csv", "row 3", "expected 3 cells", "found 2"], load_csv, path)


def test_csv_blank_line_in_the_middle_is_a_ragged_row(tmp_path):
    raises(["gap.csv", "row 3", "found 0"], load_csv, write(tmp_path, "gap.csv", "a,label\n1,0\n\n2,1\n"))


@pytest.mark.parametrize("text, part", [("", "empty"), ("a,label\n", "no data rows"),
                                        ("a;b;label\n1;2;0\n", "1 column"), ("a,a,label\n1,2,3\n", "both named 'a'")])
def test_csv_unusable_files(tmp_path, text, part):
    raises(["f.csv", part], load_csv, write(tmp_path, "f.csv", text))


def test_csv_unknown_target_lists_columns_and_closest(tmp_path):
    path = write(tmp_path, "d.csv", GOOD_CSV)
    raises(["d.csv", "'labels'", "Did you mean 'label'?", "a, b, label"], load_csv, path, target="labels")


def _spy(monkeypatch, module, name):
    """Record the calls of ``module.name`` (still calling it)."""
    calls, real = [], getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.skipif(not csvfile.arrow_available(), reason="pyarrow is not installed")
def test_digits_csv_loads_on_the_fast_path_with_pyarrow(monkeypatch):
    # How fast is for benchmarks/csv_load.py; what a test can see is which path read the file:
    # the arrow reader, whole, with no hand-over to the python reader and no cell-by-cell search.
    fallback = _spy(monkeypatch, csvfile, "_python_fill")
    x, y, names, target = load_csv(builtin._FILES / "digits.csv")
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert fallback == [], "the python reader had to take over from arrow"
    monkeypatch.undo()
    reference = load_csv(builtin._FILES / "digits.csv", engine="python")
    np.testing.assert_array_equal(x, reference[0])
    np.testing.assert_array_equal(y, reference[1])


def test_digits_csv_loads_on_the_fast_path_without_pyarrow(monkeypatch):
    # The python reader converts whole chunks of rows with numpy; per-cell work happens only to
    # name a bad cell, which a clean file never needs.
    chunks = _spy(monkeypatch, csvfile, "_convert")
    searches = _spy(monkeypatch, csvfile, "_raise_bad_cell")
    x, _, _, _ = load_csv(builtin._FILES / "digits.csv", engine="python")
    assert x.shape == (1797, 64)
    assert len(chunks) == -(-1797 // (csvfile.PYTHON_CHUNK_CELLS // 65)) and searches == []


# ---------------------------------------------------------------------------- npz / npy


def test_npz_with_default_and_custom_keys(tmp_path):
    x, y = np.arange(12, dtype=np.int16).reshape(4, 3), np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", x=x, y=y, features=x * 2, target=y + 1)
    data = load_file(tmp_path / "d.npz")
    assert data.x.dtype == np.float32 and np.array_equal(data.x, x) and np.array_equal(data.y, y)
    other = load_file(tmp_path / "d.npz", x_key="features", y_key="target")
    assert np.array_equal(other.x, x * 2) and np.array_equal(other.y, y + 1)


def test_npz_missing_key_lists_the_keys(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    raises(["d.npz", "'x'", "inputs, y"], load_file, tmp_path / "d.npz")


def test_npz_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([[1], "a"], dtype=object), y=np.zeros(2))
    raises(["obj.npz", "Python objects"], load_file, tmp_path / "obj.npz")


def test_npz_strings_and_nan_are_refused(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.array([["a"], ["b"]]), y=np.zeros(2))
    raises(["s.npz", "'x'", "expected numbers"], load_file, tmp_path / "s.npz")
    x = np.ones((3, 2))
    x[2, 1] = np.nan
    np.savez(tmp_path / "n.npz", x=x, y=np.zeros(3))
    raises(["n.npz", "(2, 1)", "nan"], load_file, tmp_path / "n.npz")


def test_npz_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    raises(["d.npz", "4 samples", "3 labels"], load_file, tmp_path / "d.npz")


def test_npy_pair(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(5, 2, 2)), np.arange(5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    data = load_file(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert data.x.shape == (5, 2, 2) and np.allclose(data.x, x) and np.array_equal(data.y, y)
    raises(["x.npy", "labels"], load_file, tmp_path / "x.npy")
    np.save(tmp_path / "short.npy", y[:4])
    raises(["x.npy", "short.npy", "5 samples", "4 labels"], load_file, tmp_path / "x.npy",
           labels=tmp_path / "short.npy")
    x[1, 0, 1] = np.inf
    np.save(tmp_path / "x.npy", x)
    raises(["x.npy", "(1, 0, 1)", "inf"], load_file, tmp_path / "x.npy", labels=tmp_path / "y.npy")


# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_raw_and_gzip(tmp_path, gz):
    images = np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2)
    labels = np.array([3, 1, 4, 1], dtype=np.uint8)
    suffix, pack = (".gz", gzip.compress) if gz else ("", bytes)
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(idx_bytes(images)))
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(idx_bytes(labels)))
    for given in (tmp_path / f"train-labels-idx1-ubyte{suffix}", None):  # None: found beside the images
        data = load_file(tmp_path / f"train-images-idx3-ubyte{suffix}", labels=given)
        assert data.x.dtype == np.float32 and np.array_equal(data.x, images)
        assert np.array_equal(data.y, labels)


def test_idx_other_dtypes(tmp_path):
    values = np.array([[-1.5, 2.0], [3.25, -4.0]], dtype=np.float32)
    (tmp_path / "x.idx").write_bytes(idx_bytes(values, 0x0D))
    (tmp_path / "y.idx").write_bytes(idx_bytes(np.array([-300, 2]), 0x0B))
    data = load_file(tmp_path / "x.idx", labels=tmp_path / "y.idx")
    assert np.array_equal(data.x, values) and data.y.tolist() == [-300, 2]


def test_idx_truncated_says_expected_and_found_bytes(tmp_path):
    (tmp_path / "t-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-5])
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    raises(["t-images-idx3-ubyte", "truncated", "18 bytes", "found 13"], load_file,
           tmp_path / "t-images-idx3-ubyte")


def test_idx_bad_magic_gzip_and_counts(tmp_path):
    (tmp_path / "a.idx").write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    (tmp_path / "l.idx").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    raises(["a.idx", "not an IDX file", "01 02 08 01"], load_file, tmp_path / "a.idx", labels=tmp_path / "l.idx")
    (tmp_path / "b.idx.gz").write_bytes(b"\x1f\x8bnot really gzip")
    raises(["b.idx.gz", "gzip"], load_file, tmp_path / "b.idx.gz", labels=tmp_path / "l.idx")
    (tmp_path / "c.idx").write_bytes(idx_bytes(np.zeros((2, 2, 2), np.uint8)))
    raises(["c.idx", "l.idx", "2 samples", "3 labels"], load_file, tmp_path / "c.idx", labels=tmp_path / "l.idx")
    raises(["c.idx", "labels"], load_file, tmp_path / "c.idx")


# ---------------------------------------------------------------------------- dispatch and inputs


def test_missing_file_directory_and_unknown_type(tmp_path):
    raises(["nope.csv", "no such file"], load_file, tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    raises(["dir.csv", "directory"], load_file, tmp_path / "dir.csv")
    raises(["d.txt", "'.txt'", ".csv"], load_file, write(tmp_path, "d.txt", GOOD_CSV))


def test_options_that_do_not_fit_the_file_type(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.zeros(2))
    raises(["d.npz", "target"], load_file, tmp_path / "d.npz", target="label")
    raises(["d.csv", "labels"], load_file, write(tmp_path, "d.csv", GOOD_CSV), labels=tmp_path / "y.npy")


def test_csv_label_positions(tmp_path):
    data = load_file(write(tmp_path, "d.csv", GOOD_CSV), target="b")
    assert data.label_where(1) == f"{tmp_path / 'd.csv'}: row 3, column 2 ('b')"


def test_load_inputs_selects_columns_by_name(tmp_path):
    path = write(tmp_path, "new.csv", "b,label,a\n2,9,1\n4,9,3\n")
    assert load_inputs(path, feature_names=["a", "b"]).tolist() == [[1, 2], [3, 4]]
    assert load_inputs(write(tmp_path, "one.csv", "a\n1\n2\n")).tolist() == [[1], [2]]
    raises(["new.csv", "'c'"], load_inputs, path, feature_names=["a", "c"])
    np.save(tmp_path / "x.npy", np.ones((2, 3)))
    assert load_inputs(Path(tmp_path / "x.npy")).shape == (2, 3)


# ---------------------------------------------------------------------------- headerless files, positions, class names

NO_HEADER = "1,2,0\n3.5,-4,1\n5,60,2\n"


@pytest.mark.parametrize("target, x, y, names", [(None, [[1, 2], [3.5, -4], [5, 60]], [0, 1, 2], ["0", "1"]),
                                                 (0, [[2, 0], [-4, 1], [60, 2]], [1, 3.5, 5], ["1", "2"]),
                                                 (-2, [[1, 0], [3.5, 1], [5, 2]], [2, -4, 60], ["0", "2"]),
                                                 ("1", [[1, 0], [3.5, 1], [5, 2]], [2, -4, 60], ["0", "2"])])
def test_a_headerless_csv_keeps_every_row_and_takes_positions(tmp_path, target, x, y, names):
    data = load_file(write(tmp_path, "d.csv", NO_HEADER), header=False, target=target)
    assert data.x.tolist() == x and data.y.tolist() == y and data.feature_names == names
    position = names and int(data.target_name)
    assert data.label_where(0) == f"{tmp_path / 'd.csv'}: row 1, column {position + 1} (position {position})"


def test_a_headerless_csv_read_as_if_it_had_a_header_is_refused(tmp_path):
    raises(["d.csv", "line 1 looks like data", "(1, 2, 0)", "data.header: false"], load_file,
           write(tmp_path, "d.csv", NO_HEADER))


def test_a_target_position_past_the_columns(tmp_path):
    raises(["target 3 is not a column position", "positions 0 to 2"], load_file,
           write(tmp_path, "d.csv", NO_HEADER), header=False, target=3)
    raises(["target 2019", "the column named '2019' is target: '2019'"], load_file,
           write(tmp_path, "y.csv", "a,2019\n1,2\n"), target=2019)
    assert load_file(write(tmp_path, "y.csv", "a,2019\n1,2\n"), target="2019").y.tolist() == [2]


def test_a_text_target_is_class_names(tmp_path):
    data = load_file(write(tmp_path, "d.csv", "a,b,species\n1,2,setosa\n3,4, virginica\n5,6,setosa\n7,8,versicolor\n"))
    assert data.classes == ["setosa", "versicolor", "virginica"]
    assert data.y.tolist() == [0, 2, 0, 1] and data.x.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert data.label_where(1) == f"{tmp_path / 'd.csv'}: row 3, column 3 ('species')"


def test_text_far_down_a_numeric_looking_target_is_class_names_too(tmp_path):
    rows = [f"{i},{i % 2}" for i in range(500)]
    rows[400] = "400,other"  # after the rows looked at first
    data = load_file(write(tmp_path, "d.csv", "a,label\n" + "\n".join(rows) + "\n"))
    assert data.classes == ["0", "1", "other"] and data.y[400] == 2 and data.y[:4].tolist() == [0, 1, 0, 1]


def test_text_in_a_feature_column_is_still_a_bad_cell(tmp_path):
    raises(["d.csv", "row 3, column 2 ('b'): expected a number, found 'red'"], load_file,
           write(tmp_path, "d.csv", "a,b,kind\n1,2,cat\n3,red,dog\n"))


def test_load_inputs_without_a_header_and_beside_a_text_target(tmp_path):
    assert load_inputs(write(tmp_path, "n.csv", NO_HEADER), header=False).tolist()[0] == [1, 2, 0]
    path = write(tmp_path, "t.csv", "a,b,species\n1,2,setosa\n3,4,virginica\n")
    assert load_inputs(path, feature_names=["a", "b"]).tolist() == [[1, 2], [3, 4]]
