"""Safety: nncli reads configs, data and checkpoints without ever executing them, runs only the
plugins a config lists, and writes only inside the runs folder."""

from __future__ import annotations

import ast
import io
import os
from pathlib import Path

import numpy as np
import pytest

from reliability_tools import ROOT, TINY, assert_bad_input, cli, write

PACKAGE = ROOT / "nncli"


# -- YAML: safe loading only -------------------------------------------------------------------
@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "EXECUTED"
    yield path
    assert not path.exists() or path.read_text() == "plugin", "something ran that only should have been read"


PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {m}']",
    "!!python/object/apply:subprocess.check_call [['touch', '{m}']]",
    "!!python/object/new:os.system ['touch {m}']",
    "!!python/object:builtins.object {{}}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple [1, 2]",
    "!!python/unicode 'x'",
]


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_python_tags_in_a_config_are_refused_and_nothing_runs(tmp_path, marker, tag):
    value = tag.format(m=marker)
    cfg = write(tmp_path, TINY.replace("seed: 3", f"seed: {value}"))
    assert_bad_input(cli("train", cfg, "--runs-dir", tmp_path / "runs"), r"cfg\.yaml:1:7: seed: .*tagged !!python/",
                     tmp_path / "runs")
    assert not marker.exists()
    override = cli("train", write(tmp_path, TINY, "plain.yaml"), "--runs-dir", tmp_path / "runs", "--set", f"seed={value}")
    assert_bad_input(override, r"--set seed=.*tagged !!python/", tmp_path / "runs")
    assert not marker.exists()


def test_a_tampered_run_config_is_refused_on_resume(tmp_path, marker, tiny):
    runs = tmp_path / "runs"
    assert cli("train", tiny, "--runs-dir", runs, "--run-id", "r", "--quiet").exit_code == 0
    saved = runs / "r/config.yaml"
    saved.write_text(saved.read_text().replace("seed: 3", f"seed: !!python/object/apply:os.system ['touch {marker}']"))
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--resume", "r"), r"config\.yaml:\d+:\d+: seed: .*tagged")
    assert not marker.exists()


# -- no pickle, anywhere ------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs a shell command: what an attacker would put in a data file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _malicious_npy(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload(marker)] * 4, dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_pickled_data_files_are_refused_and_never_unpickled(tmp_path, marker):
    from nncli.data import load_inputs

    write(tmp_path, _malicious_npy(marker), "x.npy")
    np.save(tmp_path / "y.npy", np.zeros(4))
    buf = io.BytesIO()
    np.savez(buf, x=np.array([_Payload(marker)] * 4, dtype=object), y=np.zeros(4))
    write(tmp_path, buf.getvalue(), "d.npz")
    import pickle  # noqa: S403 - only to build the hostile file
    write(tmp_path, pickle.dumps(_Payload(marker)), "raw.npy")

    for source, extra in (("x.npy", ", labels: y.npy"), ("d.npz", ""), ("raw.npy", ", labels: y.npy")):
        text = TINY.replace("source: iris", f"source: {source}{extra}").replace("input_shape: [4]", "input_shape: [1]")
        cfg = write(tmp_path, text)
        assert_bad_input(cli("train", cfg, "--runs-dir", tmp_path / "runs"),
                         r"(holds Python objects|is not \.npy or \.npz data)", tmp_path / "runs")
        assert not marker.exists()
    for name in ("x.npy", "d.npz", "raw.npy"):  # the predict path reads inputs the same way
        with pytest.raises(Exception, match="Python objects|not .npy or .npz data"):
            load_inputs(tmp_path / name)
    assert not marker.exists()


def test_a_pickle_in_place_of_a_checkpoint_is_refused(tmp_path, marker, tiny):
    import pickle  # noqa: S403 - only to build the hostile file

    runs = tmp_path / "runs"
    assert cli("train", tiny, "--runs-dir", runs, "--run-id", "r", "--quiet").exit_code == 0
    (runs / "r/checkpoints/last.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--resume", "r"), r"last\.safetensors is damaged")
    assert_bad_input(cli("eval", "r", "--runs-dir", runs, "--checkpoint", "last"), r"last\.safetensors is damaged")
    assert not marker.exists()


# -- the package's own source, read with ast ---------------------------------------------------
FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "torch"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "Loader",
               "UnsafeLoader", "FullLoader", "CLoader", "CUnsafeLoader", "CFullLoader", "add_constructor"}
SAFE_YAML_BASES = {"SafeLoader", "CSafeLoader"}
RUNS_USER_CODE = {"spec_from_file_location", "exec_module"}  # code from a file path: plugins only


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _shell(call: ast.Call) -> bool:
    """A subprocess call that goes through a shell: ``shell=`` anything but False, or one command string.

    (nncli sweep starts its trials as ``[sys.executable, "-m", ...]`` lists, which no shell reads.)
    """
    shell = next((k.value for k in call.keywords if k.arg == "shell"), None)
    if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
        return True
    return bool(call.args) and isinstance(call.args[0], (ast.Constant, ast.JoinedStr))


def scan(files: list[Path], root: Path) -> list[str]:
    """Every use of pickle-like modules, eval/exec, unsafe YAML, np.load with pickles, shells."""
    problems = []
    for path in files:
        name = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                problems += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
            elif isinstance(node, ast.ImportFrom):
                if (node.module or "").split(".")[0] in FORBIDDEN_MODULES or node.module == "safetensors.torch":
                    problems.append(f"{where}: imports from {node.module}")
                if node.module == "yaml":
                    problems += [f"{where}: imports yaml.{a.name}" for a in node.names if a.name in UNSAFE_YAML]
            elif isinstance(node, ast.Attribute) and _dotted(node.value) == "yaml" and node.attr in UNSAFE_YAML:
                problems.append(f"{where}: uses yaml.{node.attr}")
            elif isinstance(node, ast.ClassDef):
                yaml_bases = {b for b in map(_dotted, node.bases) if b.startswith("yaml.")}
                if yaml_bases and not {b[5:] for b in yaml_bases} <= SAFE_YAML_BASES:
                    problems.append(f"{where}: {node.name} derives from {sorted(yaml_bases)}")
            elif isinstance(node, ast.Call):
                func = _dotted(node.func)
                if func in FORBIDDEN_CALLS:
                    problems.append(f"{where}: calls {func}()")
                if func in ("np.load", "numpy.load"):
                    kw = {k.arg: k.value for k in node.keywords}
                    if not (isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False):
                        problems.append(f"{where}: np.load without allow_pickle=False")
                if func.split(".")[-1] in RUNS_USER_CODE and name != "nncli/train/config/plugins.py":
                    problems.append(f"{where}: runs code from a file ({func}) outside the plugin loader")
                if func in ("os.system", "os.popen") or (func.startswith("subprocess.") and _shell(node)):
                    problems.append(f"{where}: runs a shell command ({func})")
    return problems


def test_the_package_source_never_unpickles_evaluates_or_loads_unsafely():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    assert scan(files, ROOT) == []


def test_the_scan_would_catch_what_it_looks_for(tmp_path):
    """The scanner is not blind: a module with every forbidden pattern is caught, line by line."""
    planted = write(tmp_path, "import pickle\nimport yaml, numpy as np\nyaml.load('a', Loader=yaml.Loader)\n"
                              "np.load('x.npy')\neval('1')\nclass L(yaml.FullLoader):\n    pass\n"
                              "from torch import nn\nimport subprocess\nsubprocess.run('ls', shell=True)\n"
                              "subprocess.run([sys.executable, '-m', 'nncli.cli'])\n", "planted.py")
    assert sorted(scan([planted], tmp_path)) == sorted([
        "planted.py:1: imports pickle", "planted.py:3: uses yaml.load", "planted.py:3: uses yaml.Loader",
        "planted.py:4: np.load without allow_pickle=False", "planted.py:5: calls eval()",
        "planted.py:6: L derives from ['yaml.FullLoader']", "planted.py:6: uses yaml.FullLoader",
        "planted.py:8: imports from torch", "planted.py:10: runs a shell command (subprocess.run)"])
    # (line 11, a process started from an argument list, goes through no shell: nncli sweep starts its trials so)


# -- plugins run only when listed -------------------------------------------------------------
PLUGIN = "from pathlib import Path\nPath({marker!r}).write_text('plugin')\n"


def test_plugins_run_only_when_the_config_lists_them(tmp_path, marker):
    for name in ("plugin.py", "layers.py", "nncli_plugin.py", "conftest.py", "__init__.py"):
        write(tmp_path, PLUGIN.format(marker=str(marker)), name)
    cfg = write(tmp_path, TINY)
    runs = tmp_path / "runs"
    assert cli("check", cfg).exit_code == 0
    assert cli("train", cfg, "--runs-dir", runs, "--run-id", "plain", "--quiet").exit_code == 0
    assert cli("eval", "plain", "--runs-dir", runs).exit_code == 0
    for layer in ("plugin", "layers.Dense", "os.system", "nncli_plugin"):  # a type name never imports anything
        bad = write(tmp_path, TINY.replace("type: Dense, units: 3", f"type: {layer}, units: 3"), "bad.yaml")
        assert cli("train", bad, "--runs-dir", runs).exit_code == 2
    assert not marker.exists()
    listed = write(tmp_path, "plugins: [plugin.py]\n" + TINY, "listed.yaml")
    assert cli("train", listed, "--runs-dir", runs, "--run-id", "listed", "--quiet").exit_code == 0
    assert marker.read_text() == "plugin"  # the positive control: listed, it runs


def _received_run_with_a_plugin(tmp_path, marker, tiny):
    """A run folder as received from someone else, whose config.yaml was given a plugin."""
    runs = tmp_path / "runs"
    assert cli("train", tiny, "--runs-dir", runs, "--run-id", "r", "--quiet").exit_code == 0
    evil = write(tmp_path, PLUGIN.format(marker=str(marker)), "evil.py")
    saved = runs / "r/config.yaml"
    saved.write_text(saved.read_text().replace("plugins: []", f"plugins: [{evil}]"))
    inputs = write(tmp_path, "a,b,c,d\n5.1,3.5,1.4,0.2\n", "inputs.csv")
    return runs, inputs


def test_eval_and_predict_never_import_a_run_s_plugins_without_trust_plugins(tmp_path, marker, tiny):
    runs, inputs = _received_run_with_a_plugin(tmp_path, marker, tiny)
    assert_bad_input(cli("eval", "r", "--runs-dir", runs), r"evil\.py.*--trust-plugins")
    assert_bad_input(cli("predict", "r", inputs, "--runs-dir", runs), r"evil\.py.*--trust-plugins")
    assert not marker.exists()
    assert cli("eval", "r", "--runs-dir", runs, "--trust-plugins").exit_code == 0
    assert marker.read_text() == "plugin"  # the positive control: trusted, it runs


def test_resume_never_imports_a_plugin_that_only_the_run_s_config_lists(tmp_path, marker, tiny):
    runs, _ = _received_run_with_a_plugin(tmp_path, marker, tiny)
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--resume", "r", "--quiet"), r"plugins")
    assert not marker.exists()


# -- writes stay inside the runs folder ---------------------------------------------------------
BAD_RUN_IDS = ["../../x", "..", ".", "../x", "x/../../y", "/tmp/x", "a/b", "a\\b", "~", "~root", "", " x", "x ",
               "x\ny", "x\x00y", ".hidden", "-rf", "é", "x" * 129, "latest", "con:", "x*"]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS, ids=[repr(r)[:20] for r in BAD_RUN_IDS])
def test_run_ids_cannot_leave_the_runs_folder(tmp_path, tiny, run_id):
    runs = tmp_path / "deep/er/runs"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--run-id", run_id), r"invalid run id", runs)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new anywhere near
    if run_id not in ("latest",):
        assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--resume", run_id), r"invalid run id|no run")
        assert_bad_input(cli("eval", "--runs-dir", runs, "--", run_id), r"invalid run id|no run")


def test_a_symlink_in_the_runs_folder_is_not_written_through(tmp_path, tiny):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir(), outside.mkdir()
    (runs / "evil").symlink_to(outside)
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--run-id", "evil"), r"already exists")
    (runs / "dangling").symlink_to(tmp_path / "nowhere")
    assert_bad_input(cli("train", tiny, "--runs-dir", runs, "--run-id", "dangling"), r"already exists")
    assert list(outside.iterdir()) == [] and not (tmp_path / "nowhere").exists()


def test_a_runs_dir_that_is_a_file_is_a_clear_error(tmp_path, tiny):
    (tmp_path / "runs").write_text("not a folder")
    assert_bad_input(cli("train", tiny, "--runs-dir", tmp_path / "runs"), r"--runs-dir .*runs is a file, expected a folder")
    assert_bad_input(cli("train", tiny, "--runs-dir", tmp_path / "runs", "--run-id", "x"), r"is a file, expected a folder")
    assert_bad_input(cli("train", tiny, "--runs-dir", tmp_path / "runs/sub"), r"cannot create run folder .*Not a directory")
    assert (tmp_path / "runs").read_text() == "not a folder"
