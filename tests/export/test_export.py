"""nncli export: ONNX graphs checked and run by onnx's own checker and reference evaluator (and
onnxruntime), equal to `nncli predict`; safetensors weights loaded into torch (when installed)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.data import load_csv
from nncli.train.inspect import predict_run
from nncli.train.session import train

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

try:
    import onnxruntime
except ImportError:  # the checker and the reference evaluator still run
    onnxruntime = None

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "nncli" / "data" / "files" / "digits.csv"
HEAD = "loss: {type: SparseCategoricalCrossentropy, from_logits: true}\noptimizer: {type: Adam, learning_rate: 0.005}\n"
DATA = "data: {source: digits, validation_split: 0.2, normalize: standard, batch_size: 64}\n"

MODELS = {
    "mlp": DATA + HEAD + """model: {input_shape: [64], layers: [{type: Dense, units: 32, activation: relu},
                                   {type: Dropout, rate: 0.1}, {type: Dense, units: 10}]}""",
    "lstm": DATA + HEAD + """model: {input_shape: [64], layers: [{type: Reshape, target_shape: [8, 8]},
                                    {type: LSTM, units: 12}, {type: Dense, units: 10}]}""",
    "mix2d": DATA + HEAD + """model:
  input_shape: [64]
  layers:
    - {type: Reshape, target_shape: [8, 8, 1]}
    - {type: Conv2D, filters: 6, kernel_size: 3, strides: 2, padding: same, activation: swish}
    - {type: BatchNormalization}
    - {type: MaxPooling2D, pool_size: 2, strides: 1, padding: same}
    - {type: AveragePooling2D, pool_size: 3, strides: 2, padding: same}
    - {type: Conv2D, filters: 4, kernel_size: [2, 1], dilation_rate: 1, activation: elu}
    - {type: Flatten}
    - {type: Dense, units: 16, activation: gelu}
    - {type: LayerNormalization}
    - {type: Activation, activation: leaky_relu}
    - {type: Dense, units: 10, activation: softplus}""",
    "seq": DATA + HEAD + """model:
  input_shape: [64]
  layers:
    - {type: Reshape, target_shape: [8, 8]}
    - {type: Conv1D, filters: 6, kernel_size: 3, padding: causal, activation: tanh}
    - {type: AveragePooling1D, pool_size: 2, padding: same}
    - {type: GRU, units: 8, return_sequences: true}
    - {type: SimpleRNN, units: 6, return_sequences: true, go_backwards: true}
    - {type: LayerNormalization, axis: [1, 2]}
    - {type: MaxPooling1D, pool_size: 2}
    - {type: GlobalMaxPooling1D}
    - {type: Dense, units: 10, activation: sigmoid}""",
    "embed": DATA.replace("standard", "none") + HEAD + """model:
  input_shape: [64]
  layers: [{type: Embedding, input_dim: 17, output_dim: 3}, {type: GRU, units: 6, reset_after: false},
           {type: BatchNormalization}, {type: Dense, units: 10}]""",
    "binary": """data: {source: xor, validation_split: 0.2, normalize: minmax, batch_size: 32}
loss: {type: BinaryCrossentropy, from_logits: true}
optimizer: adam
model: {input_shape: [2], layers: [{type: Dense, units: 8, activation: tanh}, {type: Dense, units: 1}]}""",
    "regression": f"""data: {{source: {ROOT / "configs" / "data" / "iris_petal_width.csv"}, normalize: standard}}
loss: mse
optimizer: adam
model: {{input_shape: [3], layers: [{{type: Dense, units: 8, activation: relu}}, {{type: Dense, units: 1}}]}}""",
}
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    for name, text in MODELS.items():
        eager = ", compile: false" if name == "embed" else ""  # the compiled step fails on Embedding (engine bug)
        (root / f"{name}.yaml").write_text(f"seed: 1\n{text}\ntrain: {{epochs: 2{eager}}}\n")
        train(root / f"{name}.yaml", runs_dir=root / "runs", run_id=name, argv=[])
    train(ROOT / "configs" / "digits_cnn.yaml", overrides=["train.epochs=1"], runs_dir=root / "runs", run_id="cnn",
          argv=[])
    x_digits = load_csv(DIGITS, target="label")[0][:200]
    np.save(root / "digits.npy", x_digits)
    np.save(root / "xor.npy", np.random.default_rng(0).uniform(-0.5, 1.5, (100, 2)).astype(np.float32))
    np.save(root / "iris.npy", load_csv(ROOT / "configs/data/iris_petal_width.csv")[0])
    return root


def _inputs(run: str) -> str:
    return {"binary": "xor.npy", "regression": "iris.npy"}.get(run, "digits.npy")


@pytest.mark.parametrize("run", ["mlp", "cnn", "lstm", "mix2d", "seq", "embed", "binary", "regression"])
def test_onnx_outputs_equal_nncli_predict(runs, run):
    result = cli("export", run, "--format", "onnx", "--runs-dir", runs / "runs")
    assert result.exit_code == 0, result.output
    path = runs / "runs" / run / "export" / "best.onnx"
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 21 and dict((p.key, p.value) for p in model.metadata_props)[
        "nncli.run_id"] == run
    x = np.load(runs / _inputs(run))
    expected = predict_run(runs / "runs", run, runs / _inputs(run))
    sessions = [("reference", ReferenceEvaluator(model).run)]
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        sessions.append(("onnxruntime", session.run))
    for who, run_graph in sessions:
        names = [o.name for o in model.graph.output]
        got = dict(zip(names, run_graph(None, {"inputs": x})))
        if expected.kind == "classification":
            np.testing.assert_allclose(got["probabilities"], expected.values[:, 1:], atol=1e-5, err_msg=who)
            np.testing.assert_array_equal(got["class"], expected.values[:, 0].astype(np.int64), err_msg=who)
        else:
            np.testing.assert_allclose(got["outputs"], expected.values, atol=1e-5, rtol=1e-5, err_msg=who)


def test_export_checkpoint_and_out_options(runs, tmp_path):
    out = tmp_path / "sub" / "m.onnx"
    result = cli("export", "latest", "--format", "onnx", "--checkpoint", "last", "--out", out, "--runs-dir",
                 runs / "runs")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "last checkpoint" in result.output and out.is_file()
    assert not list(out.parent.glob(".m.onnx.*"))  # no temporary file left


PLUGIN = '''
import nncli.autodiff as ad
from nncli.nn import register
from nncli.nn.module import Layer

@register("layers")
class Doubler(Layer):
    def call(self, inputs, training=False):
        return inputs * 2.0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
'''


def test_a_layer_without_counterpart_is_refused_by_name(tmp_path):
    (tmp_path / "doubler.py").write_text(PLUGIN)
    (tmp_path / "c.yaml").write_text("plugins: [doubler.py]\n" + MODELS["mlp"].replace(
        "{type: Dropout, rate: 0.1}", "{type: Doubler}") + "\ntrain: {epochs: 1}\n")
    train(tmp_path / "c.yaml", runs_dir=tmp_path / "runs", run_id="d", argv=[])
    untrusted = cli("export", "d", "--format", "onnx", "--runs-dir", tmp_path / "runs")
    assert untrusted.exit_code == 2 and "--trust-plugins" in untrusted.output  # a run's code is opt-in
    for fmt in ("onnx", "safetensors"):
        result = cli("export", "d", "--format", fmt, "--runs-dir", tmp_path / "runs", "--trust-plugins")
        assert result.exit_code == 2, result.output
        assert re.search(r"layer 1 'doubler(_\d+)?' \(Doubler\) has no", " ".join(result.output.split()))
        assert "Traceback" not in result.output
    assert not (tmp_path / "runs" / "d" / "export").exists() or not list((tmp_path / "runs" / "d" / "export").iterdir())


def test_an_unsupported_recurrent_activation_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text(MODELS["lstm"].replace("units: 12", "units: 4, activation: softplus")
                                     + "\ntrain: {epochs: 1}\n")
    train(tmp_path / "c.yaml", runs_dir=tmp_path / "runs", run_id="l", argv=[])
    result = cli("export", "l", "--format", "onnx", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert re.search(r"layer 1 'lstm(_\d+)?' \(LSTM\): activation 'softplus'", " ".join(result.output.split()))


def test_safetensors_names_and_layouts(runs):
    from safetensors import safe_open

    result = cli("export", "mlp", "--format", "safetensors", "--runs-dir", runs / "runs")
    assert result.exit_code == 0, result.output
    with safe_open(runs / "runs" / "mlp" / "export" / "best.safetensors", "np") as f:
        keys, meta = set(f.keys()), f.metadata()
        assert keys == {"0.weight", "0.bias", "3.weight", "3.bias"}  # Linear, ReLU, Dropout, Linear
        assert f.get_tensor("0.weight").shape == (32, 64) and f.get_tensor("3.weight").shape == (10, 32)
    modules = json.loads(meta["nncli.torch_modules"])
    assert [m["module"] for m in modules] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert meta["format"] == "pt" and json.loads(meta["nncli.normalizer"])["kind"] == "standard"


def _torch_model(torch, modules):
    layers = []
    for spec in modules:
        layers.append(getattr(torch.nn, spec["module"])(*spec["args"], **{
            k: v for k, v in spec["kwargs"].items() if k not in ("returns", "use")}))
    return layers


@pytest.mark.parametrize("run", ["mlp", "cnn", "lstm"])
def test_safetensors_weights_load_into_torch_and_predict_the_same(runs, run):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file

    assert cli("export", run, "--format", "safetensors", "--runs-dir", runs / "runs").exit_code == 0
    path = runs / "runs" / run / "export" / "best.safetensors"
    with safe_open(path, "np") as f:
        meta = f.metadata()
    modules, norm = json.loads(meta["nncli.torch_modules"]), json.loads(meta["nncli.normalizer"])
    layers = _torch_model(torch, modules)
    holder = torch.nn.Sequential(*layers)
    holder.load_state_dict(load_file(path), strict=True)
    holder.eval()
    x = np.load(runs / "digits.npy")
    h = torch.from_numpy((x - np.asarray(norm["shift"], np.float32)) / np.asarray(norm["scale"], np.float32))
    with torch.no_grad():
        for layer, spec in zip(layers, modules):
            h = layer(h)
            if spec["kwargs"].get("use") == "output[:, -1]":
                h = h[0][:, -1]
            elif "returns" in spec["kwargs"]:
                h = h[0]
    expected = predict_run(runs / "runs", run, runs / "digits.npy")
    probs = torch.softmax(h, dim=-1).numpy()
    np.testing.assert_allclose(probs, expected.values[:, 1:], atol=1e-5)
