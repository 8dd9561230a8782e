"""Issue 10's reproducers, one named test each: where the compiled path crashed or differed from eager."""

from __future__ import annotations

import gc
import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import nncli.autodiff as ad
from nncli import nn
from nncli.cli import app
from nncli.data import NDArrayDataset
from nncli.train.loop import Trainer

runner = CliRunner()


def write_ids_csv(path, rows=60, seed=0):
    """Six integer id columns in [0, 10) and a label: whether the first id is below 5."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 10, (rows, 6))
    lines = ["a,b,c,d,e,f,label"] + [",".join(map(str, r)) + f",{int(r[0] < 5)}" for r in ids]
    path.write_text("\n".join(lines) + "\n")


# 1 -------------------------------------------------------------------------------------------
def test_01_indexing_a_variable_with_tensor_ids_compiles_and_reads_each_calls_ids():
    tab = ad.Variable(np.arange(8.).reshape(4, 2))
    f = ad.function(lambda a, i: a[i] * 2.)
    np.testing.assert_array_equal(f(tab, ad.Tensor(np.array([0, 3, 3]))).numpy(), [[0, 2], [12, 14], [12, 14]])
    np.testing.assert_array_equal(f(tab, ad.Tensor(np.array([1, 2, 0]))).numpy(), [[4, 6], [8, 10], [0, 2]])
    assert f.trace_count == 1


def test_01_an_embedding_layer_looks_up_each_calls_ids_when_compiled():
    layer = nn.layers.Embedding(10, 3)
    f = ad.function(lambda ids: layer(ids))
    for ids in (np.array([[1, 2]]), np.array([[7, 0]]), np.array([[9, 9]])):
        np.testing.assert_array_equal(f(ids).numpy(), layer(ids).numpy())
    assert f.trace_count == 1
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\)"):
        f(np.array([[3, 10]]))  # checked on replay too


def test_01_nncli_train_with_embedding_flatten_dense_and_default_compile(tmp_path):
    write_ids_csv(tmp_path / "ids.csv")
    (tmp_path / "emb.yaml").write_text(
        "seed: 0\ndata: {source: ids.csv, normalize: none, validation_split: 0.2, batch_size: 16}\n"
        "model:\n  input_shape: [6]\n  layers:\n    - {type: Embedding, input_dim: 10, output_dim: 4}\n"
        "    - Flatten\n    - {type: Dense, units: 2}\n"
        "loss: {type: SparseCategoricalCrossentropy, from_logits: true}\noptimizer: adam\n"
        "train: {epochs: 3, metrics: [accuracy]}\n")
    result = runner.invoke(app, ["train", str(tmp_path / "emb.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                 "--run-id", "emb", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "emb" / "metrics.csv").read_text().count("\n") == 4  # header + 3 epochs


# 2 -------------------------------------------------------------------------------------------
def test_02_one_hot_reads_each_calls_labels():
    f = ad.function(lambda x, i: ad.sum(x * ad.one_hot(i, 3)))
    x = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    assert float(f(x, np.array([0, 1]))) == 6.0
    assert float(f(x, np.array([2, 2]))) == 9.0  # eager gives 9; the trace had frozen 6
    assert f.trace_count == 1


# 3 -------------------------------------------------------------------------------------------
def test_03_fresh_variables_select_graphs_by_shape_not_by_a_recycled_id():
    f = ad.Function(lambda a: ad.sum(a * a))
    for _ in range(3):
        assert float(f(ad.Variable(np.ones((2, 3))))) == 6.0
    assert float(f(ad.Variable(np.ones((5, 3))))) == 15.0
    assert f.trace_count == 2


# 4 -------------------------------------------------------------------------------------------
def test_04_a_float64_model_trains_in_float64_when_compiled():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 5)), rng.integers(0, 3, 32)
    histories = []
    for compile in (True, False):
        nn.random.seed(0)
        model = nn.Sequential([nn.layers.Dense(8, activation="tanh", dtype="float64"),
                               nn.layers.Dense(3, dtype="float64")], input_shape=[5])
        trainer = Trainer(model, nn.losses.SparseCategoricalCrossentropy(from_logits=True), nn.optimizers.Adam(0.01),
                          NDArrayDataset(x, y, batch_size=8, shuffle=False), epochs=3, compile=compile)
        trainer.fit()
        histories.append([row["loss"] for row in trainer.history])
        assert all(w.dtype == np.float64 for w in model.get_weights())
    assert histories[0] == histories[1]  # bit for bit: no float32 rounding of the inputs


# 5 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3, 3), (2, 3, 4)])
def test_05_transpose_with_negative_axes_has_the_right_gradient(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    up = np.random.default_rng(1).standard_normal(np.transpose(x, (0, 2, 1)).shape)
    v = ad.Variable(x, dtype=np.float64)
    with ad.GradientTape() as tape:
        y = ad.transpose(v, (0, -1, -2))
    grad = tape.gradient(y, v, output_gradients=up)
    np.testing.assert_array_equal(y.numpy(), np.transpose(x, (0, 2, 1)))
    np.testing.assert_array_equal(grad.numpy(), np.transpose(up, (0, 2, 1)))  # what torch's permute gives


def test_05_nncli_grad_of_a_negative_axes_transpose():
    result = runner.invoke(app, ["grad", "transpose(x, [0, -1, -2])", "--at", "x=randn(2,3,4)"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "FAIL" not in result.output


# 6 -------------------------------------------------------------------------------------------
def test_06_zero_dimensional_tensors():
    assert float(ad.sigmoid(ad.Tensor(0.5))) == pytest.approx(1 / (1 + math.exp(-0.5)), rel=1e-7)
    for op in (ad.sigmoid, ad.softplus, ad.tanh, ad.relu, ad.exp, ad.sqrt):
        x = ad.Variable(0.7)
        with ad.GradientTape() as tape:
            y = op(x)
        assert tape.gradient(y, x).shape == ()
        assert ad.function(op)(ad.Tensor(0.7)).shape == ()


@pytest.mark.parametrize("expr", ["sigmoid(x)", "softplus(x)"])
def test_06_nncli_grad_at_a_scalar(expr):
    result = runner.invoke(app, ["grad", expr, "--at", "x=1"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


# 7 -------------------------------------------------------------------------------------------
def test_07_no_gradient_flows_through_an_integer_cast():
    x = ad.Variable([1.5, 2.5], dtype="float64")
    with ad.GradientTape() as tape:
        y = 3 * ad.cast(ad.cast(x, "int32"), "float64")
    assert tape.gradient(y, x) is None  # TensorFlow: None
    with ad.GradientTape() as tape:
        y = 3 * ad.cast(ad.cast(x, "int32"), "float64")
    np.testing.assert_array_equal(tape.gradient(y, x, unconnected_gradients="zero").numpy(), [0, 0])


# 8 -------------------------------------------------------------------------------------------
def test_08_a_persistent_tape_records_its_own_gradient_while_open():
    x = ad.Variable(3.0)
    with ad.GradientTape(persistent=True) as g:
        y = x ** 3
        dy = g.gradient(y, x)
        d2y = g.gradient(dy, x)
    assert float(dy) == 27.0 and float(d2y) == 18.0  # TensorFlow gives 18


def test_08_output_gradients_are_differentiable():
    x, og = ad.Variable(1.5), ad.Variable(1.0)
    with ad.GradientTape() as outer:
        with ad.GradientTape() as inner:
            y = x * x
        gx = inner.gradient(y, x, output_gradients=og)
    assert float(outer.gradient(gx, og)) == 3.0  # TensorFlow gives 3.0


def test_08_re_entering_an_open_tape_raises():
    tape = ad.GradientTape()
    with tape:
        with pytest.raises(ValueError, match="already recording"):
            with tape:
                pass
        y = ad.Variable(2.0) * 3.0  # still recording after the refused re-entry
    assert tape.gradient(y, tape.watched_variables()[0]) is not None


# 9 -------------------------------------------------------------------------------------------
def test_09_sigmoid_keeps_relative_precision_in_its_negative_tail():
    for x in (-17.0, -20.0, -40.0, -80.0):
        got = float(ad.sigmoid(ad.Tensor(x)))
        want = math.exp(x) / (1 + math.exp(x))
        assert got == pytest.approx(want, rel=2e-7), x
    assert float(ad.log(ad.sigmoid(ad.Tensor(-20.0)))) == pytest.approx(-20.0, rel=1e-7)
    assert float(ad.sigmoid(ad.Tensor(40.0))) == 1.0 and float(ad.sigmoid(ad.Tensor(-200.0))) == 0.0


def test_09_log_softmax_is_exact_at_large_logits_in_float32():
    out = ad.log_softmax(ad.Tensor([1000.0, 1000.0, 1000.0])).numpy()
    np.testing.assert_allclose(out, -math.log(3), rtol=1e-7)  # torch: -1.0986123
    out = ad.log_softmax(ad.Tensor([[-1000.0, -1000.0]]), axis=-1).numpy()
    np.testing.assert_allclose(out, -math.log(2), rtol=1e-7)


# 10 ------------------------------------------------------------------------------------------
def test_10_mean_over_an_empty_axis_is_nan():
    out = ad.mean(ad.Tensor(np.zeros((3, 0))), axis=1).numpy()
    assert out.shape == (3,) and np.isnan(out).all()  # numpy and torch: nan
    assert np.isnan(float(ad.mean(ad.Tensor(np.zeros(0)))))


def test_10_the_derivative_of_x_to_the_zero_at_zero_is_zero():
    x = ad.Variable(0.0)
    with ad.GradientTape() as tape:
        y = x ** 0
    assert float(tape.gradient(y, x)) == 0.0  # torch and autograd: 0


# 11 ------------------------------------------------------------------------------------------
class TestModel(nn.Model):
    """The Rindow chapter's model, as the chapter writes it."""

    __test__ = False  # a model, not a test class

    def __init__(self):
        super().__init__()
        self.dense1 = nn.layers.Dense(128, input_shape=(2,), activation="sigmoid")
        self.dense2 = nn.layers.Dense(2)

    def call(self, inputs, training=False):
        x = self.dense1(inputs)
        outputs = self.dense2(x)
        return outputs


def test_11_the_chapters_test_model_runs_as_written():
    layer = nn.layers.Dense(128, input_shape=(2,), activation="sigmoid")
    assert layer.built and layer.kernel.shape == (2, 128)  # built at construction, as Keras and Rindow

    nn.random.seed(0)
    model = TestModel()
    loss_fn = nn.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = nn.optimizers.Adam()
    train_inputs = np.array([[1, 3], [1, 4], [2, 4], [3, 1], [4, 1], [4, 2]])
    train_tests = np.array([0, 0, 0, 1, 1, 1])
    dataset = NDArrayDataset(train_inputs, tests=train_tests, batch_size=64, shuffle=False)

    @ad.function
    def train_step(inputs, trues):
        with ad.GradientTape() as tape:
            predicts = model(inputs, training=True)
            loss = loss_fn(trues, predicts)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.update(model.trainable_variables, grads)
        return loss

    history = []
    for epoch in range(100):
        total = 0.0
        for inputs, trues in dataset:
            total += float(train_step(inputs, trues))
        history.append(total / len(dataset))
    assert history[-1] < 0.5 * history[0]
    assert np.argmax(model(train_inputs).numpy(), axis=1).tolist() == train_tests.tolist()
    assert train_step.trace_count == 1


def test_11_input_shape_on_the_first_layer_is_the_sequential_models():
    model = nn.Sequential([nn.layers.Dense(4, input_shape=[3]), nn.layers.Dense(2)])
    assert model.built and [w.shape for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]


# 12 ------------------------------------------------------------------------------------------
def test_12_a_new_layer_at_a_freed_address_never_replays_the_old_graph():
    f = ad.function(lambda layer, x: layer(x))
    x = np.ones((1, 2), np.float32)
    for _ in range(5):
        layer = nn.layers.Dense(1)
        np.testing.assert_array_equal(f(layer, x).numpy(), layer(x).numpy())
        del layer
        gc.collect()
    assert f.trace_count == 5
    assert len(f._programs) == 0  # each graph died with its layer


# 13 ------------------------------------------------------------------------------------------
def test_13_a_boolean_mask_whose_count_changes():
    f = ad.function(lambda x: ad.sum(x[x > 0.0] * 2.0))
    assert float(f(np.array([1, -2, 3], np.float32))) == 8.0
    assert float(f(np.array([-1, -2, 3], np.float32))) == 6.0  # eager: 6 (the old replay gave 12)
    assert float(f(np.array([5, -2, 3], np.float32))) == 16.0  # back to two: the first graph again
    assert f.trace_count == 2


# reading a traced value ------------------------------------------------------------------------
@pytest.mark.parametrize("read, op", [(lambda t: float(ad.sum(t)), "float()"), (lambda t: t.numpy(), "numpy()"),
                                      (lambda t: np.asarray(t), "np.asarray"),
                                      (lambda t: 1 if ad.sum(t) > 0 else 0, "bool()"),
                                      (lambda t: int(ad.max(t)), "int()"),
                                      (lambda t: ad.Variable(t), "ad.Variable")])
def test_reading_a_traced_value_raises_naming_the_line_and_the_op_to_use(read, op):
    f = ad.function(lambda x: read(x))
    with pytest.raises(ad.ConcretizationError) as err:
        f(np.ones(3, np.float32))
    message = str(err.value)
    where = re.search(r"at (.*test_reproducers\.py):(\d+): `(.*)`\)", message)  # the user's line, quoted
    assert op in message and where and "lambda t:" in where.group(3), message
    assert re.search(r"Instead, \w", message)
    assert f.trace_count == 0
    read(ad.Tensor(np.ones(3, np.float32)))  # eager code reads values freely
