"""summarize(): class counts, shapes and feature ranges of prepared data, arrays and maps alike."""

import numpy as np
import pytest

from nncli.data import prepare_data
from nncli.data.summary import summarize


def test_counts_and_ranges_match_numpy_on_the_raw_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (500, 6)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature
    y = rng.integers(0, 4, 500)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for memory_map in (False, True):
        data = prepare_data(source=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"), normalize="standard",
                            validation_split=0.2, test_split=0.1, num_classes=4, memory_map=memory_map,
                            keep_raw=True)
        s = summarize(data)
        assert (s["memory_mapped"] is not None) == memory_map
        assert {k: v["samples"] for k, v in s["parts"].items()} == {"train": 350, "validation": 100, "test": 50}
        total = np.zeros(4, int)
        for part, labels in (("train", data.y_train), ("validation", data.y_val), ("test", data.y_test)):
            counts = s["parts"][part]["classes"]
            assert counts == {c: int((labels == c).sum()) for c in range(4)}
            total += list(counts.values())
        assert total.tolist() == np.bincount(y, minlength=4).tolist()
        cols = s["features"]["columns"]
        np.testing.assert_array_equal([c["min"] for c in cols], x.min(axis=0))
        np.testing.assert_array_equal([c["max"] for c in cols], x.max(axis=0))
        np.testing.assert_allclose([c["mean"] for c in cols], x.mean(axis=0, dtype=np.float64), rtol=1e-6)
        np.testing.assert_allclose([c["std"] for c in cols], x.std(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-6)
        assert s["features"]["constant"] == ["x2"]
        assert s["parts"]["train"]["x_shape"] == [350, 6] and s["parts"]["train"]["y_dtype"] == "int64"


def test_regression_targets_and_csv_feature_names(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,t\n" + "".join(f"{i},{2 * i},{i / 10}\n" for i in range(20)))
    data = prepare_data(source=str(tmp_path / "d.csv"), validation_split=0.0, normalize="minmax")
    s = summarize(data)  # without keep_raw: the ranges come from undoing the normalization
    assert [c["name"] for c in s["features"]["columns"]] == ["a", "b"]
    assert s["features"]["columns"][1]["max"] == pytest.approx(38)
    assert s["features"]["normalized_min"] == 0 and s["features"]["normalized_max"] == 1
    train = s["parts"]["train"]
    assert train["min"] == 0 and train["max"] == pytest.approx(1.9) and train["y_shape"] == [20, 1]
