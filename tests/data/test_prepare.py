import json

import numpy as np
import pytest

from nncli.data import Normalizer, load_builtin, prepare_data
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
