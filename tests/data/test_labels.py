"""Class names as class ids: sorted, the same whatever the order they are met in, mapped onto a run's."""

import numpy as np
import pytest

from nncli.data.labels import Vocabulary, map_to_classes
from nncli.errors import DataError, LabelError


def test_classes_are_sorted_whatever_the_order_of_the_rows():
    rng = np.random.default_rng(0)
    labels = np.array(["cat", "ant", "zebra", "Dog"])[rng.integers(0, 4, 200)]
    results = []
    for order in (np.arange(200), rng.permutation(200)):
        vocab = Vocabulary()
        classes, ids = vocab.finish(vocab.encode(labels[order]))
        results.append((classes, ids[np.argsort(order)]))
        assert [classes[i] for i in ids] == labels[order].tolist()
    assert results[0][0] == results[1][0] == ["Dog", "ant", "cat", "zebra"]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_parts_read_apart_are_merged_into_one_vocabulary():
    first, second = Vocabulary(), Vocabulary()
    a, b = first.encode(["b", "a", "b"]), second.encode([" c ", "a"])
    merged = np.concatenate([a, first.absorb(second, b)])
    classes, ids = first.finish(merged)
    assert classes == ["a", "b", "c"] and ids.tolist() == [1, 0, 1, 2, 0]


def test_an_empty_label_is_placed_or_left_to_the_caller():
    with pytest.raises(DataError, match=r"d.csv: row 4: expected a class label, found an empty cell"):
        Vocabulary().encode(["a", "b", " "], place=lambda i: f"d.csv: row {i + 2}")
    assert Vocabulary().encode(["a", ""]) is None


def test_labels_are_mapped_onto_a_runs_classes_and_unseen_ones_named():
    ids = map_to_classes(np.array([0, 1, 0]), ["cat", "dog"], ["ant", "cat", "dog"], str, "run 'r'")
    assert ids.tolist() == [1, 2, 1]
    with pytest.raises(LabelError, match=r"^v.csv: row 3: label 'emu' is not one of the 2 classes of run 'r': 'cat', 'dog'"):
        map_to_classes(np.array([0, 1]), ["cat", "emu"], ["cat", "dog"], lambda i: f"v.csv: row {i + 2}", "run 'r'")
