"""Bad configs through `nncli train`: exit 2, one message with the place, no traceback, no run folder.

These are beyond tests/train/test_train_cli.py's corpus (which has the everyday mistakes: typos,
wrong types, missing sections, a plain empty file): here are hostile and odd files. Each case is one
line: the config text (or bytes) and a regular expression the message must contain, usually the
file with its line and column.
"""

from __future__ import annotations

import os

import pytest

from reliability_tools import TINY, assert_bad_input, cli, cli_process, run_folders, write


def tiny(old: str, new: str, count: int = 1) -> str:
    """TINY with one piece replaced (the piece must be there)."""
    assert old in TINY, old
    return TINY.replace(old, new, count)


def bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: each level an alias list of the one before (9**9 strings expanded)."""
    rows = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n" + TINY


def merge_bomb(levels: int = 30) -> str:
    """Merge keys that double at each level: <<: [*m0, *m0] ... (2**30 merged keys)."""
    rows = ["m0: &m0 {a: 1, b: 2}"]
    rows += [f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]\n  k{i}: 1" for i in range(1, levels)]
    return "\n".join(rows) + "\n" + TINY


BIG = "1" + "0" * 100  # 10**100, a YAML int
LAYERS = "    - {type: Dense, units: 8, activation: relu}\n    - {type: Dense, units: 3}\n"
CFG = r"cfg\.yaml"
AT = CFG + r":\d+:\d+: "  # file:line:col

CASES: dict[str, tuple[str | bytes, str]] = {
    # -- YAML that would take unbounded time or memory, or crash the parser
    "billion_laughs": (bomb(), CFG + r":1:\d+: l\d: .*alias bomb"),
    "merge_key_bomb": (merge_bomb(), AT + r"m\d+: .*alias bomb"),
    "recursive_alias": (tiny("data: {source: iris,", "data: &d {loop: *d, source: iris,"),
                        CFG + r":2:\d+: data.loop: expected a value, found an alias to itself"),
    "deep_flow_mapping": ("seed: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n", CFG + r":1:\d+: .*nesting of at most"),
    "deep_block_mapping": ("".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
                           CFG + r":\d+:\d+: .*nesting of at most"),
    "deep_list_in_layers": (tiny("units: 3}", "units: " + "[" * 3000 + "]" * 3000 + "}"),
                            CFG + r":7:\d+: .*nesting of at most"),
    "very_long_key": (TINY + "k" * 200_000 + ": 1\n", CFG + r":11:\d+: expected valid YAML"),
    "one_huge_line_of_flow": ("seed: [" + "1, " * 200_000 + "1]\n" + TINY.split("\n", 1)[1],
                              CFG + r":1:\d+: expected at most 20000 values in a config"),
    "two_megabytes": (TINY + ("# " + "x" * 1000 + "\n") * 2000, CFG + r": expected a config file of at most 1,048,576 bytes"),
    # -- bytes that are not (clean) UTF-8 text
    "latin1_byte": (TINY.encode().replace(b"source: iris", b"source: ir\xefs"), CFG + r":2:\d+: expected UTF-8"),
    "utf16_file": (TINY.encode("utf-16"), CFG + r":1:1: expected UTF-8 text, found byte 0xff"),
    "lone_surrogate_bytes": (TINY.encode().replace(b"seed: 3", b"seed: \xed\xa0\x80"), CFG + r":1:7: expected UTF-8"),
    "nul_byte": (tiny("seed: 3", "seed: 3\x00"), CFG + r":1:8: .*U\+0000"),
    "bell_control_char": (tiny("seed: 3", "seed: 3\x07"), CFG + r":1:8: .*U\+0007"),
    "tab_indentation": (tiny("  input_shape", "\tinput_shape"), CFG + r":4:1: .*'\\t'"),
    # -- files that hold no config
    "only_comments": ("# nothing here\n# at all\n", CFG + r": expected a mapping .* found an empty file"),
    "only_whitespace": ("   \n\n \n", CFG + r": expected a mapping .* found an empty file"),
    "only_document_marker": ("---\n", CFG + r":\d+:\d+: expected a mapping .* found null"),
    "two_documents": (TINY + "---\n" + TINY, CFG + r":11:1: .*another document"),
    "top_level_number": ("42\n", CFG + r":1:1: expected a mapping .* found 42"),
    # -- tags: nothing but plain YAML is constructed
    "python_object_apply": (tiny("seed: 3", "seed: !!python/object/apply:os.system ['echo PWNED']"),
                            CFG + r":1:7: seed: .*tagged !!python/object/apply:os.system"),
    "python_name": (tiny("seed: 3", "seed: !!python/name:os.system"), CFG + r":1:7: seed: .*tagged !!python/name"),
    "custom_tag": (tiny("seed: 3", "seed: !secret 3"), CFG + r":1:7: seed: .*tagged !secret"),
    "set_tag": (tiny("seed: 3", "seed: !!set {a, b}"), CFG + r":1:7: seed: .*tagged !!set"),
    "binary_value": (tiny("seed: 3", "seed: !!binary aGVsbG8="), CFG + r":1:7: seed: expected an integer"),
    "timestamp_value": (tiny("seed: 3", "seed: 2001-12-14"), CFG + r":1:7: seed: expected an integer, found a date"),
    "list_as_key": (TINY + "? [a, b]\n: 1\n", CFG + r":11:3: expected a plain key"),
    # -- enormous numbers
    "epochs_1e400": (tiny("epochs: 2", "epochs: 1e400"), CFG + r":10:\d+: train.epochs: expected an integer, found inf"),
    "epochs_10_pow_100": (tiny("epochs: 2", f"epochs: {BIG}"), CFG + r":10:\d+: train.epochs: expected a value <= 1000000"),
    "units_10_pow_100": (tiny("units: 8", f"units: {BIG}"), CFG + r":6:\d+: model.layers\[0\]: .*would hold"),
    "seed_5000_digits": (tiny("seed: 3", "seed: " + "9" * 5000), CFG + r":1:7: seed: expected a plain YAML value"),
    "learning_rate_nan": (tiny("learning_rate: 0.01", "learning_rate: .nan"), CFG + r":9:\d+: optimizer.learning_rate: .*nan"),
    "validation_split_inf": (tiny("validation_split: 0.2", "validation_split: .inf"),
                             CFG + r":2:\d+: data.validation_split: expected a finite number"),
    "samples_10_pow_9": (tiny("source: iris", "source: xor, samples: 1000000000"),
                         CFG + r":2:\d+: data.samples: expected a value <= 10000000"),
    "batch_size_fraction": (tiny("batch_size: 16", "batch_size: 1.5"), CFG + r":2:\d+: data.batch_size: expected an integer"),
    "input_shape_100000_squared": (tiny("input_shape: [4]", "input_shape: [100000, 100000]"),
                                   CFG + r":4:\d+: model.input_shape: .*at most 100,000,000 values"),
    "input_shape_10_pow_100": (tiny("input_shape: [4]", f"input_shape: [{BIG}]"),
                               CFG + r":4:\d+: model.input_shape: .*at most 100,000,000 values"),
    # -- zero, negative, empty and fractional sizes
    "input_shape_empty": (tiny("input_shape: [4]", "input_shape: []"), CFG + r":4:\d+: model.input_shape: expected at least 1"),
    "input_shape_negative": (tiny("input_shape: [4]", "input_shape: [-4]"), CFG + r":4:\d+: model.input_shape\[0\]: .*>= 1"),
    "units_zero": (tiny("units: 8", "units: 0"), CFG + r":6:\d+: model.layers\[0\].units: .*positive"),
    "units_float": (tiny("units: 8", "units: 8.0"), CFG + r":6:\d+: model.layers\[0\].units: expected an integer, found 8.0"),
    "dropout_rate_two": (tiny("    - {type: Dense, units: 3}", "    - {type: Dropout, rate: 2.0}\n    - {type: Dense, units: 3}"),
                         CFG + r":7:\d+: model.layers\[1\].rate: .*rate"),
    "layers_empty": (tiny(LAYERS, "    []\n").replace("  layers:\n    []", "  layers: []"),
                     CFG + r":5:\d+: model.layers: expected at least 1 item"),
    # -- null where a mapping is expected, lists where scalars are, and the reverse
    "data_null": (tiny("data: {source: iris, validation_split: 0.2, normalize: standard, batch_size: 16}", "data: null"),
                  CFG + r":2:7: data: expected a mapping, found null"),
    "model_null": (TINY.split("model:")[0] + "model: ~\nloss: mse\noptimizer: adam\n", CFG + r":3:8: model: .*found null"),
    "layer_null": (tiny("    - {type: Dense, units: 3}", "    - null"), CFG + r":7:7: model.layers\[1\]: .*found null"),
    "loss_null": (tiny("loss: {type: SparseCategoricalCrossentropy, from_logits: true}", "loss: null"),
                  CFG + r":8:7: loss: .*found null"),
    "units_list": (tiny("units: 8", "units: [8, 9]"), CFG + r":6:\d+: model.layers\[0\].units: expected an integer, found a list"),
    "source_list": (tiny("source: iris", "source: [iris]"), CFG + r":2:\d+: data.source: expected a string, found a list"),
    "epochs_mapping": (tiny("epochs: 2", "epochs: {n: 2}"), CFG + r":10:\d+: train.epochs: expected an integer, found a mapping"),
    "learning_rate_list": (tiny("learning_rate: 0.01", "learning_rate: [0.01]"), CFG + r":9:\d+: optimizer.learning_rate: "),
    "metrics_string": (tiny("metrics: [accuracy]", "metrics: accuracy"), CFG + r":10:\d+: train.metrics: expected a list"),
    "layers_mapping": (tiny(LAYERS, "").replace("  layers:\n", "  layers: {type: Dense, units: 3}\n"),
                       CFG + r":5:\d+: model.layers: expected a list, found a mapping"),
    "optimizer_type_list": (tiny("type: Adam", "type: [Adam]"), CFG + r":9:\d+: optimizer.type: .*found a list"),
    "early_stopping_number": (tiny("metrics: [accuracy]}", "metrics: [accuracy], early_stopping: 5}"),
                              CFG + r":10:\d+: train.early_stopping: expected a mapping"),
    # -- plugins
    "plugin_is_this_config": ("plugins: [cfg.yaml]\n" + TINY, CFG + r":1:\d+: plugins\[0\]: .*this config file itself"),
    "plugin_raises": ("plugins: [boom.py]\n" + TINY, CFG + r":1:\d+: plugins\[0\]: .*RuntimeError: plugin exploded"),
    "plugin_exits": ("plugins: [leave.py]\n" + TINY, CFG + r":1:\d+: plugins\[0\]: .*SystemExit: 3"),
    "plugin_outside_tree": ("plugins: ['../../../../no/such/plugin.py']\n" + TINY, CFG + r":1:\d+: plugins\[0\]: .*no such file"),
    # -- names that reach for Python internals, and data sources that are not data files
    "layer_type_dunder_import": (tiny("type: Dense, units: 3", "type: __import__, units: 3"),
                                 CFG + r":7:\d+: model.layers\[1\].type: expected a layer name"),
    "layer_param_dunder": (tiny("type: Dense, units: 3", "type: Dense, units: 3, __class__: 1"),
                           CFG + r":7:\d+: model.layers\[1\].__class__: expected a key of Dense"),
    "source_empty_string": (tiny("source: iris", "source: ''"), CFG + r":2:\d+: data.source: expected .* found ''"),
    "source_is_a_directory": (tiny("source: iris", "source: subdir"), CFG + r":2:\d+: data.source: expected a data file, found the directory"),
    "source_is_this_config": (tiny("source: iris", "source: cfg.yaml"), r"cfg\.yaml: unknown data file type '\.yaml'"),
    "target_on_builtin_set": (tiny("source: iris", "source: iris, target: label"), r"data.target names a CSV column"),
}


@pytest.fixture
def folder(tmp_path):
    """A config folder with the helper files some cases point at."""
    (tmp_path / "boom.py").write_text("raise RuntimeError('plugin exploded')\n")
    (tmp_path / "leave.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "subdir").mkdir()
    return tmp_path


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_exits_2_with_the_place(folder, case):
    text, where = CASES[case]
    cfg = write(folder, text)
    runs = folder / "runs"
    assert_bad_input(cli("train", cfg, "--runs-dir", runs), where, runs)


def test_paths_that_are_not_config_files(tmp_path):
    runs = tmp_path / "runs"
    (tmp_path / "cfg.yaml").mkdir()
    assert_bad_input(cli("train", tmp_path / "cfg.yaml", "--runs-dir", runs), r"cfg\.yaml: .*found a directory", runs)
    assert_bad_input(cli("train", tmp_path / "nope.yaml", "--runs-dir", runs), r"nope\.yaml: .*found no such file", runs)
    assert_bad_input(cli("train", "/dev/zero", "--runs-dir", runs), r"/dev/zero: .*at most 1,048,576 bytes", runs)
    assert_bad_input(cli("train", "/dev/null", "--runs-dir", runs), r"/dev/null: .*found an empty file", runs)


def test_an_unreadable_file(tmp_path):
    cfg = write(tmp_path, TINY)
    cfg.chmod(0)
    if os.access(cfg, os.R_OK):  # root reads anything: use a path that cannot be opened instead
        cfg = tmp_path / "cfg.yaml" / "x.yaml"
    runs = tmp_path / "runs"
    assert_bad_input(cli("train", cfg, "--runs-dir", runs), r"cfg\.yaml", runs)


@pytest.mark.parametrize("override, where", [
    (f"train.epochs={BIG}", r"--set train.epochs=1000+: train.epochs: expected a value <= 1000000"),
    ("model.input_shape=[100000, 100000]", r"--set model.input_shape=.*at most 100,000,000 values"),
    ("seed=!!python/object/apply:os.getpid []", r"--set seed=.*tagged"),
    ("data=" + "[" * 100 + "]" * 100, r"--set data=.*nesting"),
])
def test_hostile_overrides(tiny, override, where):
    runs = tiny.parent / "runs"
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--set", override), where, runs)


@pytest.mark.parametrize("variant", ["bom", "crlf", "old_mac_cr", "long_comment_line"])
def test_harmless_oddities_read_like_the_plain_file(tmp_path, variant):
    """A byte-order mark, Windows or old-Mac line ends and a 500 kB comment line are fine."""
    from nncli.train.config import load_config

    text = {"bom": "\ufeff" + TINY, "crlf": TINY.replace("\n", "\r\n"), "old_mac_cr": TINY.replace("\n", "\r"),
            "long_comment_line": TINY.replace("seed: 3", "seed: 3  # " + "x" * 500_000)}[variant]
    plain = load_config(write(tmp_path, TINY, "plain.yaml"))
    odd = load_config(write(tmp_path, text, "odd.yaml"))
    assert odd.to_dict() == plain.to_dict()
    result = cli("train", tmp_path / "odd.yaml", "--runs-dir", tmp_path / "runs", "--run-id", "odd",
                 "--set", "train.epochs=1", "--quiet")
    assert result.exit_code == 0, result.output


# -- a real process: the same promises hold outside the test runner, under a 4 GB address-space
# cap so that a case that did try to allocate fails instead of eating the machine.
PROCESS_CASES = ["billion_laughs", "merge_key_bomb", "deep_flow_mapping", "one_huge_line_of_flow", "epochs_10_pow_100",
                 "input_shape_100000_squared", "samples_10_pow_9"]


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_a_real_process_answers_quickly(folder, case):
    text, where = CASES[case]
    cfg = write(folder, text)
    proc = cli_process("train", cfg, "--runs-dir", folder / "runs", limit_memory=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert __import__("re").search(where, proc.stderr), proc.stderr
    assert run_folders(folder / "runs") == []
    assert proc.seconds < 5.0  # CPU seconds, including ~0.7 s of interpreter and numpy start-up


@pytest.mark.parametrize("layers, found", [
    ("[{type: Dense, units: 1000000000}, {type: Dense, units: 3}]",
     r"model.layers\[0\]: .*would hold 4,000,000,000 values"),
    ("[{type: Dense, units: 100000}, {type: Dense, units: 100000}, {type: Dense, units: 3}]",
     r"model.layers\[1\]: .*would hold 10,000,000,000 values"),
    ("[{type: Embedding, input_dim: 1000000000, output_dim: 8}, Flatten, {type: Dense, units: 3}]",
     r"model.layers\[0\]: .*would hold 8,000,000,000 values"),
])
def test_absurd_layer_sizes_are_refused_not_a_crash(tmp_path, layers, found):
    """Layers whose weights need tens of gigabytes: exit 2 at the layer before anything is allocated.

    No memory cap here: a weight over ``MAX_WEIGHT_VALUES`` is refused by its size, so this is
    quick on any machine rather than a MemoryError (or a slow success) after allocating.
    """
    text = tiny(LAYERS, "").replace("  layers:\n", f"  layers: {layers}\n")
    cfg = write(tmp_path, text)
    proc = cli_process("train", cfg, "--runs-dir", tmp_path / "runs", timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert __import__("re").search(AT + found, proc.stderr), proc.stderr
    assert run_folders(tmp_path / "runs") == []
