"""Bad data files through `nncli train`: exit 2 naming the file, and the row and column where they exist.

Each case writes one data file (CSV, .npz, .npy pair, IDX) into the config's folder and trains a
one-layer model on it. Nothing is ever unpickled; nothing gets as far as a run folder.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from reliability_tools import assert_bad_input, cli, write

CONFIG = """\
seed: 0
data: {{source: {source}, validation_split: {split}, batch_size: 16{extra}}}
model:
  input_shape: {shape}
  layers:
    - {{type: Dense, units: {units}}}
loss: {loss}
optimizer: adam
train: {{epochs: 2}}
"""
SPARSE = "{type: SparseCategoricalCrossentropy, from_logits: true}"
HEADER = "a,b,c,label\n"
GOOD_ROWS = "".join(f"{i},{i + 1},{i + 2},{i % 3}\n" for i in range(30))


def config(folder: Path, source: str, *, shape="[3]", units=3, loss=SPARSE, split=0.2, extra="") -> Path:
    return write(folder, CONFIG.format(source=source, split=split, extra=extra, shape=shape, units=units, loss=loss))


def idx_bytes(array, dims=None, code=0x08) -> bytes:
    """An IDX file: 00 00 <type> <ndim>, big-endian dims, big-endian data."""
    array = np.asarray(array)
    dims = array.shape if dims is None else dims
    dtype = {0x08: ">u1", 0x0D: ">f4"}[code]
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + array.astype(dtype).tobytes()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_header_only(shape) -> bytes:
    """A .npy header that declares ``shape`` of float32, followed by 48 bytes instead."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(48)


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 255, (20, 2, 2))
LABELS = RNG.integers(0, 3, 20)
GOOD_NPZ = npz_bytes(x=RNG.random((40, 3)), y=np.arange(40) % 3)

# name -> ({file: bytes or text}, config keywords, regex the message must contain)
CSV = {
    "ragged_row": ({"d.csv": HEADER + "1,2,3,0\n4,5,0\n7,8,9,1\n"}, {}, r"d\.csv: row 3: expected 4 cells .* found 3"),
    "empty_file": ({"d.csv": ""}, {}, r"d\.csv: the file is empty"),
    "header_only": ({"d.csv": HEADER}, {}, r"d\.csv: no data rows"),
    "one_column": ({"d.csv": "label\n1\n0\n"}, {}, r"d\.csv: the header has 1 column"),
    "duplicate_column": ({"d.csv": "a,a,c,label\n1,2,3,0\n"}, {}, r"d\.csv: columns 1 and 2 are both named 'a'"),
    "word_in_a_cell": ({"d.csv": HEADER + "1,2,3,0\n4,five,6,1\n"}, {}, r"d\.csv: row 3, column 2 \('b'\): expected a number, found 'five'"),
    "nan_cell": ({"d.csv": HEADER + "1,2,3,0\n4,5,nan,1\n"}, {}, r"d\.csv: row 3, column 3 \('c'\): expected a finite number, found 'nan'"),
    "minus_inf_cell": ({"d.csv": HEADER + "-inf,2,3,0\n"}, {}, r"d\.csv: row 2, column 1 \('a'\): expected a finite number"),
    "float32_overflow": ({"d.csv": HEADER + "1,2,3,0\n4,1e39,6,1\n"}, {}, r"d\.csv: row 3, column 2 \('b'\): expected a finite number, found '1e39'"),
    "empty_cell": ({"d.csv": HEADER + GOOD_ROWS + "4,,6,1\n"}, {}, r"d\.csv: row 32, column 2 \('b'\): expected a number, found an empty cell"),
    "nul_in_a_cell": ({"d.csv": HEADER + "1,2,3,0\n4,5\x00,6,1\n"}, {}, r"d\.csv: row 3, column 2 \('b'\)"),
    "latin1_byte": ({"d.csv": (HEADER + "1,2,3,0\n4,\xe9,6,1\n").encode("latin-1")}, {}, r"d\.csv: not UTF-8 text"),
    "binary_junk": ({"d.csv": bytes(range(256)) * 8}, {}, r"d\.csv: not UTF-8 text"),
    "cell_over_field_limit": ({"d.csv": HEADER + '1,"' + "1" * 200_000 + '",3,0\n'}, {}, r"d\.csv: row 2: field larger than field limit"),
    "unclosed_quote": ({"d.csv": HEADER + '1,2,3,0\n4,"5,6,1\n7,8,9,1\n'}, {}, r"d\.csv: row 3: expected 4 cells"),
    "fractional_label": ({"d.csv": HEADER + GOOD_ROWS + "4,5,6,1.5\n"}, {},
                         r"d\.csv: row 32, column 4 \('label'\): label 1\.5 is not a class"),
    "negative_label": ({"d.csv": HEADER + "4,5,6,-1\n" + GOOD_ROWS}, {}, r"d\.csv: row 2, column 4 \('label'\): label -1 is not a class"),
    "label_beyond_outputs": ({"d.csv": HEADER + GOOD_ROWS + "4,5,6,7\n"}, {},
                             r"the model has 3 outputs, but .*d\.csv: row 32, column 4 \('label'\): label 7"),
    "binary_label_2": ({"d.csv": HEADER + GOOD_ROWS.replace(",2\n", ",1\n") + "1,1,1,2\n"},
                       {"units": 1, "loss": "{type: BinaryCrossentropy, from_logits: true}"},
                       r"d\.csv: row 32, column 4 \('label'\): label 2 is not a class: expected an integer in \[0, 2\)"),
    "regression_target_width": ({"d.csv": HEADER + GOOD_ROWS}, {"units": 2, "loss": "mse"},
                                r"loss: expected targets with 2 value\(s\) per sample .* found 1 in .*d\.csv"),
    "target_column_missing": ({"d.csv": HEADER + GOOD_ROWS}, {"extra": ", target: lable"},
                              r"d\.csv: no column named 'lable'\. Did you mean 'label'\?"),
    "smaller_than_validation_split": ({"d.csv": HEADER + "1,2,3,0\n4,5,6,1\n"}, {},
                                      r"d\.csv has 2 samples; validation_split=0\.2 .* give train 2, validation 0"),
}
NPZ = {
    "npz_count_mismatch": ({"d.npz": npz_bytes(x=np.zeros((10, 3)), y=np.zeros(9))}, {},
                           r"d\.npz: array 'x' has 10 samples but array 'y' has 9 labels"),
    "npz_wrong_keys": ({"d.npz": npz_bytes(inputs=np.zeros((10, 3)), y=np.zeros(10))}, {}, r"d\.npz: no array named 'x'"),
    "npz_truncated": ({"d.npz": GOOD_NPZ[: len(GOOD_NPZ) // 2]}, {}, r"d\.npz: not a readable numpy file"),
    "npz_bytes_flipped": ({"d.npz": GOOD_NPZ[:200] + bytes(b ^ 0xFF for b in GOOD_NPZ[200:260]) + GOOD_NPZ[260:]}, {},
                          r"d\.npz: not a readable \.npz archive \(damaged or truncated\)"),
    "npz_object_array": ({"d.npz": npz_bytes(x=np.array([[1, 2, 3]] * 10, dtype=object), y=np.zeros(10))}, {},
                         r"d\.npz: holds Python objects"),
    "npz_strings": ({"d.npz": npz_bytes(x=np.array([["a", "b", "c"]] * 10), y=np.zeros(10))}, {},
                    r"d\.npz: array 'x': expected numbers, found an array of dtype <U1"),
    "npz_nan": ({"d.npz": npz_bytes(x=np.where(np.eye(10, 3) > 0, np.nan, 0.0), y=np.zeros(10))}, {},
                r"d\.npz: array 'x' at index \(0, 0\): expected a finite float32 number"),
    "npz_complex": ({"d.npz": npz_bytes(x=np.zeros((10, 3), complex), y=np.zeros(10))}, {}, r"d\.npz: array 'x': expected numbers"),
    "npz_no_samples": ({"d.npz": npz_bytes(x=np.zeros((0, 3)), y=np.zeros(0))}, {}, r"d\.npz has 0 samples"),
    "npz_scalar": ({"d.npz": npz_bytes(x=np.float64(3), y=np.zeros(10))}, {}, r"d\.npz: array 'x': .*found a scalar"),
    "npz_is_text": ({"d.npz": "x,y\n1,2\n"}, {}, r"d\.npz: is not \.npy or \.npz data"),
    "npz_is_npy": ({"d.npz": npy_bytes(np.zeros((4, 3)))}, {}, r"d\.npz: holds a single array \(\.npy format\)"),
    "npy_header_claims_terabytes": ({"x.npy": npy_header_only((10**12, 3)), "y.npy": npy_bytes(np.zeros(4))},
                                    {"extra": ", labels: y.npy"}, r"x\.npy: truncated: the header declares shape \(1000000000000, 3\)"),
    "npy_truncated": ({"x.npy": npy_bytes(np.zeros((10, 3)))[:-20], "y.npy": npy_bytes(np.zeros(10))},
                      {"extra": ", labels: y.npy"}, r"x\.npy: truncated"),
    "npy_count_mismatch": ({"x.npy": npy_bytes(np.zeros((10, 3))), "y.npy": npy_bytes(np.zeros(8))},
                           {"extra": ", labels: y.npy"}, r"x\.npy has 10 samples but .*y\.npy has 8 labels"),
    "npy_object_labels": ({"x.npy": npy_bytes(np.zeros((10, 3))), "y.npy": npy_bytes(np.array([None] * 10))},
                          {"extra": ", labels: y.npy"}, r"y\.npy: holds Python objects"),
    "npy_without_labels": ({"x.npy": npy_bytes(np.zeros((10, 3)))}, {}, r"x\.npy: a \.npy features file needs `labels`"),
}
IDX = {
    "idx_truncated": ({"t-images-idx3-ubyte": idx_bytes(IMAGES)[:-7], "t-labels-idx1-ubyte": idx_bytes(LABELS)}, {},
                      r"t-images-idx3-ubyte: truncated data: dims \(20, 2, 2\) of uint8 need 80 bytes .* found 73"),
    "idx_extra_bytes": ({"t-images-idx3-ubyte": idx_bytes(IMAGES) + b"\0", "t-labels-idx1-ubyte": idx_bytes(LABELS)}, {},
                        r"t-images-idx3-ubyte: extra data"),
    "idx_count_mismatch": ({"t-images-idx3-ubyte": idx_bytes(IMAGES), "t-labels-idx1-ubyte": idx_bytes(LABELS[:15])}, {},
                           r"t-images-idx3-ubyte has 20 samples but .*t-labels-idx1-ubyte has 15 labels"),
    "idx_dims_near_2_pow_32": ({"t-images-idx3-ubyte": idx_bytes(IMAGES, dims=(2**32 - 1,) * 3),
                                "t-labels-idx1-ubyte": idx_bytes(LABELS)}, {},
                               r"t-images-idx3-ubyte: truncated data: .* need 79228162458924105385300197375 bytes"),
    "idx_labels_are_images": ({"t-images-idx3-ubyte": idx_bytes(IMAGES), "t-labels-idx1-ubyte": idx_bytes(IMAGES)}, {},
                              r"t-labels-idx1-ubyte: labels: expected 1 dimension"),
    "idx_labels_beyond_outputs": ({"t-images-idx3-ubyte": idx_bytes(IMAGES), "t-labels-idx1-ubyte": idx_bytes(LABELS + 7)}, {},
                                  r"t-labels-idx1-ubyte: label 0: label \d+ is not a class"),
    "idx_gzip_truncated": ({"t-images-idx3-ubyte.gz": gzip.compress(idx_bytes(IMAGES))[:-10],
                            "t-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(LABELS))}, {},
                           r"t-images-idx3-ubyte\.gz: not readable gzip data"),
    "idx_bad_magic": ({"t-images-idx3-ubyte": b"\x01\x02\x03\x04garbage", "t-labels-idx1-ubyte": idx_bytes(LABELS)}, {},
                      r"t-images-idx3-ubyte: not an IDX file: .* found 01 02 03 04"),
    "idx_without_labels_file": ({"t-images-idx3-ubyte": idx_bytes(IMAGES)}, {},
                                r"t-images-idx3-ubyte: an IDX images file needs its labels file"),
}
CASES = {**CSV, **NPZ, **IDX}


def _setup(folder: Path, files: dict, keywords: dict) -> Path:
    """Write the files; the config trains on the first one (IDX images through a Flatten layer)."""
    for name, content in files.items():
        write(folder, content, name)
    source = next(iter(files))
    cfg = config(folder, source, **({"shape": "[2, 2]"} if source.startswith("t-") else {}), **keywords)
    if source.startswith("t-"):
        cfg.write_text(cfg.read_text().replace("    - {type: Dense", "    - Flatten\n    - {type: Dense"))
    return cfg


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_exits_2_with_file_row_and_column(tmp_path, case):
    files, keywords, where = CASES[case]
    cfg = _setup(tmp_path, files, keywords)
    runs = tmp_path / "runs"
    assert_bad_input(cli("train", cfg, "--runs-dir", runs), where, runs)


def test_a_set_smaller_than_one_batch_trains_as_one_partial_batch(tmp_path):
    """As in Keras: 10 samples with batch_size 16 make one batch of 10 per epoch."""
    write(tmp_path, HEADER + "".join(f"{i},{i},{i},{i % 3}\n" for i in range(10)), "d.csv")
    cfg = config(tmp_path, "d.csv", split=0.0)
    result = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--run-id", "small", "--quiet")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "runs/small/run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 2 and info["step"] == 2  # one step an epoch
    assert info["data"]["train_samples"] == 10


def test_one_sample_without_validation_trains(tmp_path):
    write(tmp_path, HEADER + "1,2,3,0\n", "d.csv")
    result = cli("train", config(tmp_path, "d.csv", split=0.0), "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output


def test_check_reports_bad_data_the_same_way(tmp_path):
    write(tmp_path, HEADER + "1,2,3,0\n4,five,6,1\n", "d.csv")
    result = cli("check", config(tmp_path, "d.csv"))
    assert_bad_input(result, r"d\.csv: row 3, column 2 \('b'\): expected a number, found 'five'")
