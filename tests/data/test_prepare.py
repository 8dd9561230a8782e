import json

import numpy as np
import pytest

from nncli.data import Normalizer, load_builtin, prepare_data
from nncli.data.prepare import ClassNamesError
from nncli.errors import DataError


def id_npz(tmp_path, n=50, features=3):
    """An .npz whose first feature is the sample id and whose label is id % 3."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(n)[:, None], rng.normal(5.0, 3.0, (n, features - 1))], axis=1)
    np.savez(tmp_path / "ids.npz", x=x.astype(np.float32), y=np.arange(n) % 3)
    return "ids.npz"


def test_split_sizes_are_disjoint_and_cover_everything(tmp_path):
    data = prepare_data(source=id_npz(tmp_path), base_dir=tmp_path, validation_split=0.2, test_split=0.1)
    ids = [part[:, 0].astype(int) for part in (data.x_train, data.x_val, data.x_test)]
    assert [len(i) for i in ids] == [35, 10, 5]
    assert sorted(np.concatenate(ids).tolist()) == list(range(50))
    assert np.array_equal(data.y_val[:, 0], ids[1] % 3)  # labels follow their samples
    assert data.num_features == 3 and data.input_shape == (3,)


def test_split_is_seeded(tmp_path):
    source = id_npz(tmp_path)
    a, b, c = (prepare_data(source=source, base_dir=tmp_path, seed=s) for s in (4, 4, 5))
    assert np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_no_validation_part_gives_none():
    data = prepare_data(source="toy", validation_split=0.0)
    assert data.x_val is None and data.y_val is None and data.x_test is None
    assert data.x_train.shape == (6, 2)


@pytest.mark.parametrize("val, test, sizes", [(0.05, 0.0, "train 6, validation 0, test 0"),
                                              (0.5, 0.5, "train 0, validation 3, test 3"),
                                              (0.5, 0.05, "train 3, validation 3, test 0")])
def test_splits_that_leave_a_part_empty(val, test, sizes):
    with pytest.raises(DataError) as err:
        prepare_data(source="toy", validation_split=val, test_split=test)
    assert "'toy' has 6 samples" in str(err.value) and sizes in str(err.value)


def test_smallest_allowed_training_part():
    data = prepare_data(source="toy", validation_split=0.9)
    assert (data.x_train.shape[0], data.x_val.shape[0]) == (1, 5)


def test_standard_uses_training_statistics_only(tmp_path):
    source = id_npz(tmp_path)
    raw = prepare_data(source=source, base_dir=tmp_path, test_split=0.1)
    std = prepare_data(source=source, base_dir=tmp_path, test_split=0.1, normalize="standard")
    assert std.x_train.dtype == np.float32 and std.x_val.dtype == np.float32
    assert np.allclose(std.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(std.x_train.std(axis=0), 1, atol=1e-5)
    mean, scale = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    assert np.allclose(std.x_val, (raw.x_val - mean) / scale, atol=1e-5)
    assert np.allclose(std.x_test, (raw.x_test - mean) / scale, atol=1e-5)
    assert not np.allclose(std.x_val.mean(axis=0), 0, atol=1e-3)  # not the validation part's own stats


def test_minmax_and_constant_features():
    data = prepare_data(source="digits", normalize="minmax", num_classes=10)
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    assert np.isfinite(data.x_val).all()
    constant = data.x_train.max(axis=0) == 0  # digits has always-blank pixels
    assert constant.any()
    assert np.all(np.asarray(data.normalizer.to_dict()["scale"])[constant] == 1)


def test_normalizer_round_trip_and_float32():
    x = np.random.default_rng(1).normal(3.0, 2.0, (40, 5)).astype(np.float32)
    norm = Normalizer("standard").fit(x)
    restored = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    new = np.random.default_rng(2).normal(size=(7, 5))  # float64 in
    out = restored.transform(new)
    assert out.dtype == np.float32
    assert np.array_equal(out, norm.transform(new))
    assert Normalizer.from_dict(Normalizer("none").to_dict()).transform(x) is x
    with pytest.raises(DataError, match=r"\(4,\).*\(5,\)"):
        norm.transform(np.zeros((2, 4)))


def test_label_out_of_range_names_csv_row_and_column(tmp_path):
    (tmp_path / "d.csv").write_text("label,a\n0,1\n2,1\n3,1\n1,1\n")
    with pytest.raises(DataError) as err:
        prepare_data(source="d.csv", base_dir=tmp_path, target="label", num_classes=3)
    message = str(err.value)
    assert "d.csv" in message and "row 4" in message and "column 1 ('label')" in message and "label 3" in message


def test_non_integer_label_in_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.array([0, 1.5, 1]))
    with pytest.raises(DataError, match=r"d\.npz: array 'y', index 1: label 1\.5"):
        prepare_data(source="d.npz", base_dir=tmp_path, num_classes=2)


def test_builtin_label_error_names_the_set_and_sample():
    _, y = load_builtin("iris")
    first = int(np.argmax(y >= 2))
    with pytest.raises(DataError, match=rf"built-in set 'iris', sample {first}: label 2"):
        prepare_data(source="iris", num_classes=2)


def test_classification_and_regression_label_types():
    cls = prepare_data(source="iris", num_classes=3)
    assert cls.y_train.dtype == np.int64 and cls.y_train.ndim == 1 and cls.num_classes == 3
    reg = prepare_data(source="iris")
    assert reg.y_train.dtype == np.float32 and reg.y_train.shape == (120, 1) and reg.num_classes is None


def test_bad_sources_and_settings(tmp_path):
    with pytest.raises(DataError, match="Did you mean 'digits'"):
        prepare_data(source="digitz", base_dir=tmp_path)
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="samples"):
        prepare_data(source="d.npz", base_dir=tmp_path, samples=10)
    with pytest.raises(DataError, match="Did you mean 'standard'"):
        prepare_data(source="toy", normalize="std")
    with pytest.raises(DataError, match="validation_split"):
        prepare_data(source="toy", validation_split=1.0)


# ---------------------------------------------------------------------------- validation and test files


def write_csv(path, x, labels, header="a,b,c,kind"):
    rows = [",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(x, labels)]
    path.write_text((header + "\n" if header else "") + "\n".join(rows) + "\n")
    return path.name


def csv_files(tmp_path, names=("cat", "dog", "emu")):
    rng = np.random.default_rng(3)
    parts = {}
    for part, n, loc in (("train", 60, 0.0), ("val", 20, 5.0), ("test", 15, -5.0)):
        x = rng.normal(loc, 2.0, (n, 3)).astype(np.float32)
        labels = np.array(names)[np.arange(n) % len(names)]
        parts[part] = (write_csv(tmp_path / f"{part}.csv", x, labels), x, labels)
    return parts


def test_validation_and_test_files_are_scaled_with_the_training_statistics(tmp_path):
    parts = csv_files(tmp_path)
    data = prepare_data(source="train.csv", validation="val.csv", test="test.csv", base_dir=tmp_path,
                        normalize="standard", num_classes=3)
    train_x, val_x, test_x = (parts[p][1] for p in ("train", "val", "test"))
    assert [len(data.x_train), len(data.x_val), len(data.x_test)] == [60, 20, 15]  # the files whole, no split
    mean, std = train_x.mean(axis=0, dtype=np.float64), train_x.std(axis=0, dtype=np.float64)
    np.testing.assert_allclose(data.normalizer.shift, mean, rtol=1e-4, atol=1e-5)  # x went through "%g" text
    np.testing.assert_allclose(data.x_val, (val_x - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(data.x_test, (test_x - mean) / std, rtol=1e-4, atol=1e-5)
    assert data.classes == ["cat", "dog", "emu"] and data.y_val.tolist() == (np.arange(20) % 3).tolist()
    assert data.sources == {"train": str(tmp_path / "train.csv"), "validation": f"validation file {tmp_path / 'val.csv'}",
                            "test": f"test file {tmp_path / 'test.csv'}"}


def test_a_validation_file_with_its_columns_in_another_order(tmp_path):
    csv_files(tmp_path)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_csv(tmp_path / "swapped.csv", x[:, [2, 0, 1]], ["dog", "cat"], header="c,a,b,kind")
    data = prepare_data(source="train.csv", validation="swapped.csv", base_dir=tmp_path, num_classes=3)
    np.testing.assert_array_equal(data.x_val, x)
    assert data.y_val.tolist() == [1, 0]


@pytest.mark.parametrize("make, fragment", [
    (lambda p: write_csv(p, np.zeros((2, 3)), ["cat", "dog"], header="a,b,d,kind"),
     "its columns differ from those of data.source ({train}): missing c; unexpected d"),
    (lambda p: write_csv(p, np.zeros((2, 3)), ["cat", "yak"]),
     "row 3, column 4 ('kind'): label 'yak' is not one of the 3 classes of the training file {train}: 'cat', 'dog', 'emu'"),
    (lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((2, 2)), y=np.zeros(2)),
     "its samples have shape (2,), but those of data.source ({train}) have (3,)"),
])
def test_a_validation_file_that_does_not_fit_is_named(tmp_path, make, fragment):
    csv_files(tmp_path)
    make(tmp_path / "bad.csv")
    bad = "bad.csv" if (tmp_path / "bad.csv").exists() else "bad.npz"
    with pytest.raises(DataError) as info:
        prepare_data(source="train.csv", validation=bad, base_dir=tmp_path, num_classes=3)
    assert str(info.value).startswith(str(tmp_path / bad))
    assert fragment.format(train=tmp_path / "train.csv") in str(info.value)


def test_a_npy_validation_file_is_refused_for_its_missing_labels(tmp_path):
    csv_files(tmp_path)
    np.save(tmp_path / "v.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"v.npy: data.validation is a .npy file, which holds no labels; .*np.savez"):
        prepare_data(source="train.csv", validation="v.npy", base_dir=tmp_path, num_classes=3)


def test_an_npz_validation_file_beside_a_builtin_source(tmp_path):
    x, y = load_builtin("iris")
    np.savez(tmp_path / "v.npz", x=x[:10], y=y[:10])
    data = prepare_data(source="iris", validation="v.npz", base_dir=tmp_path, num_classes=3, normalize="minmax")
    assert len(data.x_train) == 150 and len(data.x_val) == 10  # validation_split does not apply
    np.testing.assert_allclose(data.x_val, (x[:10] - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0)), atol=1e-6)


def test_class_names_need_a_classifier_with_enough_outputs(tmp_path):
    csv_files(tmp_path)
    with pytest.raises(ClassNamesError, match=r"holds class names \('cat', 'dog', 'emu'\), not numbers") as info:
        prepare_data(source="train.csv", base_dir=tmp_path)
    assert info.value.classes == ["cat", "dog", "emu"] and info.value.num_classes is None
    with pytest.raises(ClassNamesError, match="holds 3 classes .* more than num_classes = 2"):
        prepare_data(source="train.csv", base_dir=tmp_path, num_classes=2)


def test_a_runs_classes_map_the_labels_of_new_data(tmp_path):
    csv_files(tmp_path, names=("dog", "emu"))  # only two of the run's three classes
    data = prepare_data(source="val.csv", base_dir=tmp_path, classes=["cat", "dog", "emu"], num_classes=3,
                        validation_split=0.0)
    assert data.classes == ["cat", "dog", "emu"] and set(data.y_train.tolist()) == {1, 2}
    write_csv(tmp_path / "ids.csv", np.zeros((2, 3)), ["0", "1"])  # numbers that are names in this run
    assert prepare_data(source="ids.csv", base_dir=tmp_path, classes=["0", "1", "10"], num_classes=3,
                        validation_split=0.0).y_train.tolist() == [0, 1]


# ---------------------------------------------------------------------------- warnings


def test_a_tiny_training_part_is_a_warning():
    assert prepare_data(source="iris", validation_split=0.2).warnings == []
    data = prepare_data(source="iris", validation_split=0.99)
    assert len(data.x_train) == 2
    assert data.warnings[0] == ("validation_split 0.99 and test_split 0.0 hold out 148 of the 150 samples of "
                                "built-in set 'iris', leaving 2 (1%) to train on: a model learns little from so "
                                "few (0.1 to 0.3 is usual for each)")


def test_a_class_missing_from_the_training_part_is_a_warning(tmp_path):
    x, y = np.zeros((20, 2), np.float32), np.zeros(20)
    y[19] = 2
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = prepare_data(source="d.npz", base_dir=tmp_path, num_classes=3, validation_split=0.25, seed=0)
    in_train = 2 in data.y_train
    assert data.warnings == ([] if in_train else ["class 2 is in the held-out samples but not in the training "
                                                  "part: the model cannot learn it"])
