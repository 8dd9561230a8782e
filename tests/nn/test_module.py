"""Layer/Model/Sequential: tracking, building, weights, weight files, summaries, configs, the example."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli import nn
from nncli.nn import WeightsError
from nncli.nn.layers import BatchNormalization, Dense, Dropout, Flatten

ROOT = Path(__file__).resolve().parents[2]
X = np.array([[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]], dtype=np.float32)


class TestModel(nn.Model):
    __test__ = False  # not a pytest class

    def __init__(self):
        super().__init__()
        self.dense1 = Dense(128, activation="sigmoid")
        self.dense2 = Dense(2)

    def call(self, inputs, training=False):
        return self.dense2(self.dense1(inputs))


class Blocks(nn.Model):
    def __init__(self):
        super().__init__()
        self.scale = ad.Variable(2.0)
        self.blocks = [Dense(3), Dense(3)]
        self.heads = {"a": Dense(1), "b": Dense(2, use_bias=False)}
        self.shared = self.blocks[0]  # the same layer again: tracked once
        self.note = "not state"

    def call(self, inputs):  # no training argument: still callable with one
        x = self.blocks[1](self.blocks[0](inputs)) * self.scale
        return ad.concat([self.heads["a"](x), self.heads["b"](x)], axis=-1)


def test_subclassed_model_tracks_attributes_in_order():
    model = TestModel()
    assert model.variables == [] and not model.built
    y = model(X, training=True)
    assert y.shape == (6, 2) and model.built
    assert [p for p, _ in model.named_variables()] == ["dense1.kernel", "dense1.bias", "dense2.kernel", "dense2.bias"]
    assert [v.shape for v in model.trainable_variables] == [(2, 128), (128,), (128, 2), (2,)]
    assert model.layers == [model.dense1, model.dense2]


def test_lists_dicts_variables_and_shared_layers():
    model = Blocks()
    model(X, training=True)
    assert [p for p, _ in model.named_variables()] == [
        "scale", "blocks.0.kernel", "blocks.0.bias", "blocks.1.kernel", "blocks.1.bias",
        "heads.a.kernel", "heads.a.bias", "heads.b.kernel"]
    model.heads = None  # untracked when replaced by something stateless
    del model.scale
    assert [p for p, _ in model.named_variables()][0] == "blocks.0.kernel"
    assert len(model.variables) == 4


def test_frozen_layers_move_to_non_trainable():
    model = nn.Sequential([Dense(4), BatchNormalization(), Dense(2)], input_shape=[3])
    assert len(model.trainable_variables) == 6 and len(model.non_trainable_variables) == 2
    model.layers[0].trainable = False
    assert [v.shape for v in model.non_trainable_variables] == [(3, 4), (4,), (4,), (4,)]
    model.trainable = False
    assert model.trainable_variables == [] and len(model.non_trainable_variables) == 8


def test_build_from_input_shape_on_first_call_and_explicitly():
    built = nn.Sequential([Dense(4), Flatten()], input_shape=[3])
    assert built.built and [v.shape for v in built.variables] == [(3, 4), (4,)]
    lazy = nn.Sequential([Dense(4)])
    assert lazy.variables == []
    lazy(np.ones((2, 5), np.float32))
    assert [v.shape for v in lazy.variables] == [(5, 4), (4,)]
    model = TestModel()
    with ad.GradientTape() as tape:
        model.build([2])  # a zero batch, not recorded on the open tape
    assert tape._nodes == [] and [v.shape for v in model.variables][0] == (2, 128)
    assert model.summary_rows()[1]["output_shape"] == (None, 2)


def test_training_flag_reaches_the_layers():
    model = nn.Sequential([Dropout(0.5)], input_shape=[100])
    x = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(model(x).numpy(), x)
    assert np.any(model(x, training=True).numpy() == 0)
    assert Blocks()(X, training=True).shape == (6, 3)


def test_get_weights_are_copies_and_set_weights_checks():
    model = nn.Sequential([Dense(4), Dense(2)], input_shape=[3])
    weights = model.get_weights()
    weights[0][...] = 7
    assert not np.any(model.get_weights()[0] == 7)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[0], 7)
    with pytest.raises(WeightsError, match=r"has 4 weights \(layers.0.kernel, .*\), got 3 arrays"):
        model.set_weights(weights[:3])
    with pytest.raises(WeightsError, match=r"layers.1.kernel: expected \(4, 2\), found \(2, 4\)"):
        model.set_weights([weights[0], weights[1], weights[2].T, weights[3]])
    with pytest.raises(WeightsError, match="no weights yet"):
        TestModel().set_weights([])


def test_save_and_load_weights_round_trip_exactly(tmp_path):
    from safetensors.numpy import load_file

    model = nn.Sequential([Dense(5, activation="tanh"), BatchNormalization(), Dense(2)], input_shape=[3])
    model(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32), training=True)  # moving stats
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    assert sorted(load_file(path)) == sorted(p for p, _ in model.named_variables())
    clone = nn.Sequential.from_config(json.loads(json.dumps(model.get_config())))
    clone.load_weights(path)
    for a, b in zip(model.get_weights(), clone.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_load_weights_refuses_files_that_do_not_fit(tmp_path):
    path = tmp_path / "w.safetensors"
    nn.Sequential([Dense(5), Dense(2)], input_shape=[3]).save_weights(path)
    other = nn.Sequential([Dense(4), Dense(2), Dense(1)], input_shape=[3])
    before = other.get_weights()
    with pytest.raises(WeightsError) as err:
        other.load_weights(path)
    message = str(err.value)
    assert str(path) in message and "missing: layers.2.kernel, layers.2.bias" in message
    assert "wrong shape: layers.0.kernel (expected (3, 4), found (3, 5))" in message
    for a, b in zip(before, other.get_weights()):  # nothing assigned
        np.testing.assert_array_equal(a, b)
    extra = nn.Sequential([Dense(5)], input_shape=[3])
    with pytest.raises(WeightsError, match="unexpected: layers.1.bias, layers.1.kernel"):
        extra.load_weights(path)
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot read"):
        extra.load_weights(garbage)
    with pytest.raises(WeightsError, match="cannot read"):
        extra.load_weights(tmp_path / "missing.safetensors")


def test_summary_rows_counts_and_text(capsys):
    model = nn.Sequential([Dense(8, activation="relu", name="hidden"), BatchNormalization(), Dense(2)],
                          input_shape=[4])
    rows = model.summary_rows()
    assert [(r["name"], r["type"], r["output_shape"], r["params"]) for r in rows] == [
        ("hidden", "Dense", (None, 8), 40), (rows[1]["name"], "BatchNormalization", (None, 8), 32),
        (rows[2]["name"], "Dense", (None, 2), 18)]
    assert model.param_counts() == {"total": 90, "trainable": 74, "non_trainable": 16}
    model.summary()
    text = capsys.readouterr().out
    for piece in ("hidden (Dense)", "(None, 8)", "Total params: 90", "Trainable params: 74",
                  "Non-trainable params: 16"):
        assert piece in text
    assert nn.Sequential([Dense(3)]).summary_rows()[0]["output_shape"] is None


def test_sequential_config_round_trip_and_layer_dicts():
    model = nn.Sequential([{"type": "Dense", "units": 4, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
                           Dense(2, name="out", dtype="float64")], input_shape=[3], name="net")
    config = model.get_config()
    assert config == {"layers": [
        {"type": "Dense", "units": 4, "activation": "relu", "use_bias": True,
         "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"},
        {"type": "Dropout", "rate": 0.2, "seed": None},
        {"type": "Dense", "units": 2, "activation": None, "use_bias": True, "kernel_initializer": "glorot_uniform",
         "bias_initializer": "zeros", "name": "out", "dtype": "float64"}], "input_shape": [3], "name": "net"}
    clone = nn.Sequential(**json.loads(json.dumps(config)))
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(X[:, :1].repeat(3, 1)).numpy(), model(X[:, :1].repeat(3, 1)).numpy())


def test_sequential_add_nesting_and_unregistered_layers():
    inner = nn.Sequential([Dense(3)])
    model = nn.Sequential([inner], input_shape=[2])
    model.add(Dense(1))
    assert [p for p, _ in model.named_variables()] == [
        "layers.0.layers.0.kernel", "layers.0.layers.0.bias", "layers.1.kernel", "layers.1.bias"]
    assert nn.Sequential.from_config(model.get_config()).count_params() == model.count_params() == 13

    class Custom(Dense):
        pass

    with pytest.raises(ValueError, match="Custom is not registered"):
        nn.Sequential([Custom(2)]).get_config()
    with pytest.raises(nn.UnknownNameError, match="Did you mean 'Dense'"):
        nn.Sequential([{"type": "Dnse", "units": 2}])


def test_compiled_train_step_matches_eager():
    def run(compiled):
        nn.random.seed(0)
        model = nn.Sequential([Dense(8, activation="tanh"), BatchNormalization(), Dropout(0.3), Dense(2)],
                              input_shape=[3])

        def step(x):
            with ad.GradientTape() as tape:
                loss = ad.mean(ad.square(model(x, training=True)))
            for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables)):
                v.assign_sub(g * 0.1)
            return loss

        f = ad.Function(step) if compiled else step
        rng = np.random.default_rng(1)
        return [float(f(rng.random((8, 3)).astype(np.float32))) for _ in range(4)], model.get_weights()

    (eager, w_eager), (traced, w_traced) = run(False), run(True)
    np.testing.assert_allclose(traced, eager, rtol=1e-5)
    for a, b in zip(w_eager, w_traced):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_custom_model_example_learns(tmp_path):
    spec = importlib.util.spec_from_file_location("custom_model", ROOT / "examples" / "custom_model.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    lines = []
    result = example.main(tmp_path / "curve.png", log=lines.append)
    losses = result["losses"]
    assert len(losses) == 100 and losses[-1] < 0.35 and losses[-1] < losses[0] / 2
    assert result["predictions"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("epoch 100/100" in line for line in lines)
