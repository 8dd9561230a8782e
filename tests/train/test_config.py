"""Config loading: defaults, one message for all problems with file:line:col, overrides, plugins."""

import textwrap

import pytest
import yaml

from nncli.errors import ConfigError
from nncli.nn import registry
from nncli.train.config import Config, config_from_dict, load_config

pytestmark = pytest.mark.usefixtures("fake_components")  # stand-in components, see conftest.py

GOOD = """\
seed: 7
data:
  source: xor
model:
  input_shape: [2]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: dropout, rate: 0.1}
    - {type: Dense, units: 1}
loss: mse
optimizer: {type: Adam, learning_rate: 0.01}
"""


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def marked_line(text):
    """The 1-based number of the line tagged ``#<`` in a YAML text: where the error must point."""
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if "#<" in line)


# ---- valid configs --------------------------------------------------------------------------
def test_good_config_fills_defaults_and_normalises_types(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.seed == 7
    assert (cfg.data.source, cfg.data.batch_size, cfg.data.validation_split) == ("xor", 32, 0.2)
    assert (cfg.data.normalize, cfg.data.shuffle, cfg.data.test_split) == ("none", True, 0.0)
    assert (cfg.train.epochs, cfg.train.metrics, cfg.train.compile) == (10, [], True)
    assert cfg.train.early_stopping is None and cfg.train.monitor == "val_loss"
    assert cfg.model == {"type": "Sequential", "input_shape": [2], "layers": [
        {"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dropout", "rate": 0.1},
        {"type": "Dense", "units": 1}]}
    assert cfg.loss == {"type": "MeanSquaredError"}
    assert cfg.optimizer == {"type": "Adam", "learning_rate": 0.01}
    assert cfg.path == tmp_path / "cfg.yaml" and cfg.base_dir == tmp_path.resolve()


def test_snake_case_names_and_exponent_numbers(tmp_path):
    cfg = load_config(write(tmp_path, """\
        data: {source: xor}
        model:
          input_shape: [8, 8, 1]
          layers: [{type: conv2d, filters: 4, kernel_size: [3, 3], padding: same}, {type: max_pooling2d}]
        loss: {type: sparse_categorical_crossentropy, from_logits: true}
        optimizer: {type: sgd, learning_rate: 1e-3}
        train: {metrics: [accuracy], early_stopping: true, monitor: val_accuracy}
        """))
    assert [layer["type"] for layer in cfg.model["layers"]] == ["Conv2D", "MaxPooling2D"]
    assert cfg.loss == {"type": "SparseCategoricalCrossentropy", "from_logits": True}
    assert cfg.optimizer == {"type": "SGD", "learning_rate": 0.001}
    assert cfg.train.early_stopping.patience == 5 and cfg.train.early_stopping.monitor == "val_loss"


def test_schedules_nested_layers_and_registered_models(tmp_path):
    cfg = load_config(write(tmp_path, """\
        data: {source: iris}
        model: {type: mlp, hidden: [16, 16], outputs: 3, activation: tanh}
        loss: mse
        optimizer:
          type: adam
          learning_rate: {type: exponential_decay, initial_learning_rate: 0.1, decay_steps: 10, decay_rate: 0.5}
        """))
    assert cfg.model == {"type": "MLP", "hidden": [16, 16], "outputs": 3, "activation": "tanh"}
    assert cfg.optimizer["learning_rate"]["type"] == "ExponentialDecay"
    wrapped = config_from_dict({"data": {"source": "xor"}, "loss": "mse", "optimizer": "adam", "model": {
        "input_shape": [5, 2], "layers": [{"type": "bidirectional", "layer": {"type": "simple_rnn", "units": 4}}]}})
    assert wrapped.model["layers"][0]["layer"] == {"type": "SimpleRNN", "units": 4}


def test_anchors_and_merge_keys(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace(
        "    - {type: Dense, units: 1}", "    - &out {type: Dense, units: 1}\n    - {<<: *out, units: 3}")))
    assert cfg.model["layers"][-2:] == [{"type": "Dense", "units": 1}, {"type": "Dense", "units": 3}]


def test_null_seed_is_drawn_and_recorded(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace("seed: 7", "seed: null")))
    assert isinstance(cfg.seed, int) and 0 <= cfg.seed < 2**31
    assert cfg.to_dict()["seed"] == cfg.seed


def test_to_dict_round_trips_through_yaml(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["train.early_stopping.patience=2", "seed=null"])
    dumped = write(tmp_path, yaml.safe_dump(cfg.to_dict()), "resolved.yaml")
    again = load_config(dumped)
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert again.train.early_stopping.patience == 2 and again.seed == cfg.seed
    assert again != load_config(dumped, ["train.epochs=3"])


def test_to_dict_absolute_paths_load_from_elsewhere(tmp_path):
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    cfg = load_config(write(tmp_path, GOOD.replace("source: xor", "source: rows.csv")))
    (tmp_path / "run").mkdir()
    moved = write(tmp_path, yaml.safe_dump(cfg.to_dict(absolute_paths=True)), "run/config.yaml")
    assert load_config(moved).data.source == str(tmp_path.resolve() / "rows.csv")
    relative = write(tmp_path, yaml.safe_dump(cfg.to_dict()), "run/relative.yaml")
    assert "data.source: expected an existing file, found 'rows.csv'" in problems(relative)


# ---- overrides ------------------------------------------------------------------------------
def test_overrides_change_values_and_create_keys(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace("optimizer: {type: Adam, learning_rate: 0.01}", "optimizer: adam")), [
        "model.layers[0].units=64", "optimizer.learning_rate=5e-2", "train.early_stopping.patience=3",
        "data.source=iris", "model.layers[2].use_bias=false", "model.input_shape=[2]", "data.target=null",
        "train.metrics=[accuracy]", "seed=3"])
    assert cfg.model["layers"][0]["units"] == 64
    assert cfg.optimizer == {"type": "Adam", "learning_rate": 0.05}
    assert cfg.train.early_stopping.patience == 3 and cfg.train.early_stopping.mode == "auto"
    assert cfg.data.source == "iris" and cfg.model["layers"][2]["use_bias"] is False
    assert cfg.train.metrics == ["accuracy"]


def test_override_errors_name_the_override(tmp_path):
    path = write(tmp_path, GOOD)
    text = problems(path, ["model.layers[5].units=3", "train.epochs=many", "trainepochs", "a..b=1",
                           "train.epochs=[1,", "model.layers[0].unitz=4", "data.source.x=1"])
    assert "--set model.layers[5].units=3: model.layers[5]: expected an index from 0 to 2, found 5" in text
    assert "--set train.epochs=many: train.epochs: expected an integer, found 'many'" in text
    assert "--set trainepochs: expected KEY=VALUE" in text and "--set a..b=1: expected KEY=VALUE" in text
    assert "--set train.epochs=[1,: train.epochs: expected valid YAML" in text
    assert "--set model.layers[0].unitz=4: model.layers[0].unitz: expected a key of Dense" in text
    assert "(did you mean 'units'?)" in text
    assert "--set data.source.x=1: data.source: expected a string, found a mapping" in text
    assert len(text.splitlines()) == 7


# ---- broken configs: every case must point at the right line with the dotted path ------------
BROKEN = {
    "unknown top-level key": ("seed: 1\noptimiser: adam  #<\n", "optimiser", "did you mean 'optimizer'?"),
    "unknown layer type": ("    - {type: Dens, units: 8}  #<\n", "model.layers[0].type", "did you mean 'Dense'?"),
    "unknown layer param": ("    - {type: Dense, unitz: 8}  #<\n", "model.layers[0].unitz", "did you mean 'units'?"),
    "missing layer param": ("    - {type: Dense, activation: relu}  #<\n", "model.layers[0].units", "required"),
    "wrong param type": ("    - {type: Dense, units: eight}  #<\n", "model.layers[0].units", "expected an integer"),
    "bool is not an int": ("    - {type: Dense, units: true}  #<\n", "model.layers[0].units", "found true"),
    "unknown activation": ("    - {type: Dense, units: 2, activation: relux}  #<\n", "model.layers[0].activation",
                           "did you mean 'relu'?"),
    "unknown initializer": ("    - {type: Dense, units: 2, kernel_initializer: glorot}  #<\n",
                            "model.layers[0].kernel_initializer", "expected an initializer name"),
    "tuple too long": ("    - {type: Conv2D, filters: 2, kernel_size: [3, 3, 3]}  #<\n", "model.layers[0].kernel_size",
                       "expected at most 2 items"),
    "bad literal": ("    - {type: Conv2D, filters: 2, kernel_size: 3, padding: sme}  #<\n", "model.layers[0].padding",
                    "did you mean 'same'?"),
    "layer not a mapping": ("    - 5  #<\n", "model.layers[0]", "expected a layer name or a mapping"),
    "layer without type": ("    - {units: 5}  #<\n", "model.layers[0]", "'type'"),
    "nested layer type": ("    - {type: Bidirectional, layer: {type: SimpleRN}}  #<\n", "model.layers[0].layer.type",
                          "did you mean 'SimpleRNN'?"),
    "input shape zero": ("model:\n  input_shape: [8, 0]  #<\n", "model.input_shape[1]", "expected a value >= 1"),
    "input shape missing": ("model:  #<\n  layers: [{type: Dense, units: 1}]\n", "model.input_shape", "required"),
    "batch size zero": ("data:\n  source: xor\n  batch_size: 0  #<\n", "data.batch_size", "expected a value >= 1"),
    "split too big": ("data:\n  source: xor\n  validation_split: 1.5  #<\n", "data.validation_split", "< 1"),
    "splits sum to one": ("data:\n  source: xor\n  validation_split: 0.5\n  test_split: 0.5  #<\n", "data.test_split",
                          "validation_split + test_split < 1"),
    "bad normalize": ("data:\n  source: xor\n  normalize: standart  #<\n", "data.normalize",
                      "did you mean 'standard'?"),
    "missing source": ("data:  #<\n  batch_size: 4\n", "data.source", "required"),
    "builtin typo": ("data:\n  source: digts  #<\n", "data.source", "did you mean 'digits'?"),
    "missing data file": ("data:\n  source: data/none.csv  #<\n", "data.source", "no such file"),
    "string for bool": ("data:\n  source: xor\n  shuffle: 'yes'  #<\n", "data.shuffle", "expected true or false"),
    "seed negative": ("seed: -3  #<\n", "seed", "expected a value >= 0"),
    "fractional epochs": ("train:\n  epochs: 2.5  #<\n", "train.epochs", "expected an integer, found 2.5"),
    "unknown metric": ("train:\n  metrics: [acuracy]  #<\n", "train.metrics[0]", "did you mean 'accuracy'?"),
    "early stopping patience": ("train:\n  early_stopping: {patience: -1}  #<\n", "train.early_stopping.patience",
                                "expected a value >= 0"),
    "early stopping key": ("train:\n  early_stopping:\n    patiense: 2  #<\n", "train.early_stopping.patiense",
                           "did you mean 'patience'?"),
    "early stopping monitor": ("train:\n  metrics: [accuracy]\n  early_stopping: {monitor: val_acc}  #<\n",
                               "train.early_stopping.monitor", "did you mean 'val_accuracy'?"),
    "early stopping mode": ("train:\n  early_stopping: {mode: biggest}  #<\n", "train.early_stopping.mode",
                            "expected one of 'auto', 'min' or 'max'"),
    "schedule missing params": ("optimizer:\n  type: adam\n  learning_rate: {type: ExponentialDecay}  #<\n",
                                "optimizer.learning_rate.decay_steps", "required"),
    "schedule unknown": ("optimizer:\n  type: adam\n  learning_rate: {type: ExponentialDecai}  #<\n",
                         "optimizer.learning_rate.type", "did you mean 'ExponentialDecay'?"),
    "learning rate string": ("optimizer:\n  type: adam\n  learning_rate: '0.1'  #<\n", "optimizer.learning_rate",
                             "expected a number or a schedule mapping"),
    "unknown loss": ("loss: msee  #<\n", "loss", "did you mean 'mse'?"),
    "loss as a list": ("loss: [mse]  #<\n", "loss", "expected a string or a mapping, found a list"),
    "unknown optimizer param": ("optimizer: {type: adam, beta1: 0.8}  #<\n", "optimizer.beta1",
                                "did you mean 'beta_1'?"),
    "duplicate key": ("train:\n  epochs: 3\n  epochs: 4  #<\n", "train.epochs", "duplicate"),
    "python tag": ("seed: !!python/object/apply:os.getpid []  #<\n", "seed", "tagged"),
    "unknown model": ("model: {type: Transformr}  #<\n", "model.type", "expected a model name"),
    "model param type": ("model: {type: MLP, hidden: 16, outputs: 2}  #<\n", "model.hidden", "expected a list"),
}


def _broken(replacement):
    """GOOD with the sections ``replacement`` names swapped for it (a layers line replaces the layers)."""
    if replacement.startswith("    -"):
        return GOOD.replace("    - {type: Dense, units: 8, activation: relu}\n    - {type: dropout, rate: 0.1}\n"
                            "    - {type: Dense, units: 1}\n", replacement)
    first = replacement.split(":")[0]
    lines, out, skip = GOOD.splitlines(keepends=True), [], False
    for line in lines:
        if not line.startswith(" "):
            skip = line.split(":")[0] == first
        if not skip:
            out.append(line)
    return "".join(out) + replacement


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_points_at_line_and_path(tmp_path, case):
    replacement, dotted, fragment = BROKEN[case]
    text = _broken(replacement)
    message = problems(write(tmp_path, text))
    line = f"cfg.yaml:{marked_line(text)}:"
    matching = [m for m in message.splitlines() if line in m and f": {dotted}: " in m]
    assert matching, f"no line with {line} and {dotted} in:\n{message}"
    assert fragment in matching[0] and "expected" in matching[0], message
    assert "pydantic" not in message and "http" not in message


def test_all_problems_reported_together(tmp_path):
    text = GOOD.replace("units: 8", "units: 8.5").replace("rate: 0.1", "rate: high") + "train: {epochs: 0}\nextra: 1\n"
    lines = problems(write(tmp_path, text)).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "model.layers[0].units", "model.layers[1].rate", "train.epochs", "extra"]
    assert lines[1].startswith(f"{tmp_path / 'cfg.yaml'}:8:") and "found 'high'" in lines[1]


@pytest.mark.parametrize("text, line, fragment", [
    ("data:\n  source: xor\n  batch_size: [1, 2\nmodel: {}\n", 4, "expected ',' or ']'"),
    ("data:\n  source: xor\n   bad: 1\n", 3, "mapping values are not allowed here"),
    ("seed: 1\n\tdata: 2\n", 2, "cannot start any token"),
    ("seed: 1\n---\nseed: 2\n", 2, "another document"),
    ("seed: 1\ndata: \x00\n", 2, "U+0000"),
])
def test_yaml_syntax_errors(tmp_path, text, line, fragment):
    message = problems(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'cfg.yaml'}:{line}:")
    assert "expected valid YAML" in message and fragment in message


def test_unreadable_files(tmp_path):
    assert "found an empty file" in problems(write(tmp_path, ""))
    assert "found an empty file" in problems(write(tmp_path, "# only a comment\n"))
    assert "found a list" in problems(write(tmp_path, "- data\n- model\n"))
    assert "found 'just text'" in problems(write(tmp_path, "just text\n"))
    assert "found a directory" in problems(tmp_path)
    assert "found no such file" in problems(tmp_path / "nope.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"seed: 1\ndata: {source: caf\xe9}\n")
    message = problems(tmp_path / "latin1.yaml")
    assert "latin1.yaml:2:19: expected UTF-8 text, found byte 0xe9" in message


def test_alias_bomb_is_refused_after_a_bounded_number_of_values(tmp_path, monkeypatch):
    # A billion values after expansion; the guard must stop building at MAX_NODES of them. Counting
    # the values built (not the seconds taken) is what the guard promises, on any machine.
    from nncli.train.config import reader

    levels = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join(levels) + "\n")
    built, real_build = [0], reader.LineLoader._build

    def counting_build(self, node, key, depth):
        built[0] += 1
        assert built[0] <= 2 * reader.MAX_NODES, "the alias bomb is being expanded past its bound"
        return real_build(self, node, key, depth)

    monkeypatch.setattr(reader.LineLoader, "_build", counting_build)
    message = problems(path)
    assert "alias bomb" in message and "cfg.yaml:" in message
    assert reader.MAX_NODES // 2 < built[0] <= reader.MAX_NODES + 1  # refused at the bound, not before, not after


def test_deep_nesting_and_recursive_alias(tmp_path):
    assert "found deeper nesting" in problems(write(tmp_path, "seed: " + "[" * 500 + "]" * 500 + "\n"))
    assert "cfg.yaml:1:" in problems(write(tmp_path, "seed: &s [*s]\n"))


# ---- plugins --------------------------------------------------------------------------------
PLUGIN = """\
from nncli.nn import registry

@registry.register("layers")
class Gaussian:
    def __init__(self, stddev: float, seed: int = 0):
        self.stddev = stddev
"""


def test_plugin_file_registers_a_component(tmp_path):
    write(tmp_path, PLUGIN, "my_layers.py")
    text = GOOD.replace("    - {type: dropout, rate: 0.1}", "    - {type: gaussian, stddev: 0.5}") + "plugins: [my_layers.py]\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.model["layers"][1] == {"type": "Gaussian", "stddev": 0.5}
    assert "Gaussian" in registry.names("layers") and cfg.plugins == ["my_layers.py"]
    bad = write(tmp_path, text.replace("stddev: 0.5", "stddev: wide"), "bad.yaml")
    assert "bad.yaml:8:" in problems(bad) and "expected a number, found 'wide'" in problems(bad)


def test_plugin_module_by_name(tmp_path, monkeypatch):
    write(tmp_path, PLUGIN.replace("Gaussian", "Jitter"), "nncli_test_jitter_plugin.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = GOOD.replace("{type: dropout, rate: 0.1}", "{type: Jitter, stddev: 1}") + "plugins: [nncli_test_jitter_plugin]\n"
    assert load_config(write(tmp_path, text)).model["layers"][1]["type"] == "Jitter"


@pytest.mark.parametrize("plugins, fragment", [
    ("[missing.py]", "found no such file"),
    ("[broken.py]", "ZeroDivisionError: division by zero"),
    ("[cfg.yaml]", "this config file itself"),
    ("[no_such_module_xyz]", "no module named 'no_such_module_xyz'"),
    ("['not a module!']", "expected a .py file or a module name"),
])
def test_plugin_problems(tmp_path, plugins, fragment):
    write(tmp_path, "x = 1 / 0\n", "broken.py")
    message = problems(write(tmp_path, GOOD + f"plugins: {plugins}  #<\n"))
    assert f"cfg.yaml:{marked_line(GOOD + 'plugins: #<')}:" in message and "plugins[0]" in message
    assert fragment in message


def test_plugins_are_not_imported_unless_listed(tmp_path):
    write(tmp_path, "raise SystemExit('imported!')\n", "stray.py")
    assert isinstance(load_config(write(tmp_path, GOOD)), Config)


def test_config_from_dict_names_its_source():
    data = yaml.safe_load(GOOD)
    assert config_from_dict(data).model["layers"][1]["type"] == "Dropout"
    data["model"]["layers"][0]["units"] = "many"
    with pytest.raises(ConfigError, match=r"^defaults: model.layers\[0\].units: expected an integer"):
        config_from_dict(data, source="defaults")
    assert data["model"]["layers"][0]["units"] == "many"  # the caller's data is left alone


def test_error_helper_places_later_problems(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["model.layers[2].units=0"])
    assert str(cfg.error("model.layers[1].rate", "expected rate < 1, found 1.5")) == (
        f"{tmp_path / 'cfg.yaml'}:8:29: model.layers[1].rate: expected rate < 1, found 1.5")
    assert str(cfg.error(("model", "layers", 2, "units"), "expected units > 0, found 0")).startswith(
        "--set model.layers[2].units=0: model.layers[2].units:")


def test_plugins_are_imported_by_their_own_step_only_when_asked(tmp_path):
    marker = tmp_path / "imported"
    write(tmp_path, PLUGIN.replace("Gaussian", "Hiss") + f"open({str(marker)!r}, 'w').close()\n", "hiss.py")
    text = GOOD.replace("{type: dropout, rate: 0.1}", "{type: Hiss, stddev: 1}") + "plugins: [hiss.py]\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, import_plugins=False)
    assert not marker.exists()  # nothing ran
    assert "model.layers[1].type: expected a layer name" in str(info.value)
    assert "(the config lists plugins, which were not imported here)" in str(info.value)
    assert load_config(path).model["layers"][1] == {"type": "Hiss", "stddev": 1} and marker.exists()
