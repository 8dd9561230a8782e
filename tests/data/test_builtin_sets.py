import numpy as np
import pytest

from nncli.data import BUILTIN_SETS, load_builtin
from nncli.errors import DataError

GENERATED = {"xor": 2, "moons": 2, "spirals": 3, "circles": 2}  # name -> classes


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_every_set_has_float32_features_and_int64_labels(name):
    x, y = load_builtin(name)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.ndim == 2 and y.shape == (x.shape[0],)
    assert np.isfinite(x).all()
    assert y.min() == 0


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_same_seed_same_data(name):
    (xa, ya), (xb, yb) = load_builtin(name, seed=5), load_builtin(name, seed=5)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


@pytest.mark.parametrize("name, classes", GENERATED.items())
def test_generated_sets(name, classes):
    x, y = load_builtin(name, seed=1, samples=90)
    assert x.shape == (90, 2)
    counts = np.bincount(y)
    assert len(counts) == classes and counts.max() - counts.min() <= 1  # balanced classes
    other, _ = load_builtin(name, seed=2, samples=90)
    assert not np.array_equal(x, other)
    assert not np.array_equal(y, np.sort(y))  # classes are mixed, not in blocks


def test_circles_without_noise_lie_on_their_radius():
    x, y = load_builtin("circles", samples=60, noise=0.0)
    radius = np.hypot(x[:, 0], x[:, 1])
    assert np.allclose(radius[y == 0], 1.0, atol=1e-6)
    assert np.allclose(radius[y == 1], 0.5, atol=1e-6)


def test_xor_labels_follow_the_corner():
    x, y = load_builtin("xor", samples=200, noise=0.05)
    corner = (x > 0.5).astype(np.int64)
    assert np.array_equal(corner[:, 0] ^ corner[:, 1], y)


def test_digits_and_iris_row_counts():
    x, y = load_builtin("digits")
    assert x.shape == (1797, 64)
    assert x.min() == 0 and x.max() == 16
    assert set(np.unique(y).tolist()) == set(range(10))
    x, y = load_builtin("iris")
    assert x.shape == (150, 4)
    assert np.bincount(y).tolist() == [50, 50, 50]


def test_toy_is_the_six_points():
    x, y = load_builtin("toy", samples=100, noise=3.0)
    assert x.tolist() == [[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]]
    assert y.tolist() == [0, 0, 0, 1, 1, 1]


def test_unknown_name_lists_the_sets_and_the_closest():
    with pytest.raises(DataError) as err:
        load_builtin("moon")
    message = str(err.value)
    assert "Did you mean 'moons'?" in message
    assert all(name in message for name in BUILTIN_SETS)


@pytest.mark.parametrize("kwargs, word", [({"samples": 0}, "samples"), ({"samples": 2.5}, "samples"),
                                          ({"noise": -0.1}, "noise"), ({"noise": float("nan")}, "noise")])
def test_bad_generator_settings(kwargs, word):
    with pytest.raises(DataError, match=word):
        load_builtin("moons", **kwargs)
