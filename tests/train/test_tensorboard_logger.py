"""``train.loggers: [tensorboard]``, read back with TensorBoard's own event reader; loggers in general."""

import csv
import json
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from logger_runs import StopAt, config
from nncli.cli import app
from nncli.train.session import TrainingInterrupted, train

pytest.importorskip("tensorboard")  # in the dev extra; a venv without it skips only this file
from tensorboard.backend.event_processing import plugin_event_accumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2  # noqa: E402
from tensorboard.plugins.hparams import metadata as hparams_metadata  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

def metrics_rows(run):
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_events(run):
    """``({tag: [(step, value), ...]}, hparams, session end status)`` as TensorBoard reads the run."""
    acc = plugin_event_accumulator.EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    scalars = {}
    for tag in acc.Tags()["tensors"]:
        if tag.startswith("_hparams_/"):
            continue
        scalars[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
    content = acc.PluginTagToContent("hparams")
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    end = hparams_metadata.parse_session_end_info_plugin_data(content[hparams_metadata.SESSION_END_INFO_TAG]) \
        if hparams_metadata.SESSION_END_INFO_TAG in content else None
    return scalars, start, end


def assert_matches_csv(run, scalars):
    rows = metrics_rows(run)
    assert set(scalars) == set(rows[0]) - {"epoch"}  # every metrics.csv column, lr and time_s among them
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [int(r["epoch"]) for r in rows], tag  # each epoch once, in order
        np.testing.assert_allclose([v for _, v in points], [r[tag] for r in rows], rtol=1e-6, err_msg=tag)


def test_every_column_per_epoch_and_the_config_as_hparams(tmp_path):
    result = train(config(tmp_path), runs_dir=tmp_path / "runs", run_id="tb")
    run = result.run.path
    scalars, start, end = read_events(run)
    assert_matches_csv(run, scalars)
    assert len(scalars["loss"]) == 3 and {"lr", "val_accuracy", "time_s"} <= set(scalars)
    hparams = start.hparams
    assert hparams["optimizer.learning_rate"].number_value == pytest.approx(0.01)
    assert hparams["model.layers.0.units"].number_value == 8
    assert hparams["loss.type"].string_value == "SparseCategoricalCrossentropy"
    assert hparams["seed"].number_value == 3 and start.group_name == "tb"
    assert end.status == api_pb2.Status.Value("STATUS_SUCCESS")
    assert result.warnings == []


def write_stale_event(folder, step, value):
    """An event file holding ``loss`` at ``step``, as a kill after logging past the checkpoint leaves."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    stamp = int(time.time())  # a later file of the same run: TensorBoard reads it after the first
    with open(folder / f"events.out.tfevents.{stamp}.stale.1.nncli", "wb") as f:
        writer = RecordWriter(f)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=value)])
        writer.write(event_pb2.Event(wall_time=1.0, step=step, summary=summary).SerializeToString())


def test_resume_continues_the_same_run_with_each_epoch_once(tmp_path):
    cfg = config(tmp_path, epochs=4)
    with pytest.raises(TrainingInterrupted):
        train(cfg, runs_dir=tmp_path / "runs", run_id="tb", callbacks=[StopAt(3, 2)])  # inside epoch 3
    run = tmp_path / "runs" / "tb"
    scalars, _, end = read_events(run)
    assert [s for s, _ in scalars["loss"]] == [1, 2]
    assert end.status == api_pb2.Status.Value("STATUS_UNKNOWN")
    write_stale_event(run / "tensorboard", 3, 99.0)  # epoch 3 is trained again: this value must go
    train(cfg, runs_dir=tmp_path / "runs", resume="tb", overrides=["train.epochs=5"])
    scalars, start, end = read_events(run)
    assert_matches_csv(run, scalars)  # steps 1..5 once each, the values of metrics.csv (no 99)
    assert len(scalars["loss"]) == 5 and start.hparams["train.epochs"].number_value == 5
    assert end.status == api_pb2.Status.Value("STATUS_SUCCESS")


def test_a_resumed_run_sends_what_tensorboard_lacks(tmp_path):
    cfg = config(tmp_path, epochs=2, loggers="[]")
    train(cfg, runs_dir=tmp_path / "runs", run_id="tb")
    assert not (tmp_path / "runs" / "tb" / "tensorboard").exists()
    train(config(tmp_path, epochs=3), runs_dir=tmp_path / "runs", resume="tb")  # logging turned on later
    scalars, _, _ = read_events(tmp_path / "runs" / "tb")
    assert_matches_csv(tmp_path / "runs" / "tb", scalars)
    assert len(scalars["loss"]) == 3


def test_a_logger_that_fails_costs_the_run_nothing(tmp_path):
    run = tmp_path / "runs" / "tb"
    train(config(tmp_path, epochs=2), runs_dir=tmp_path / "runs", run_id="tb")
    (run / "elsewhere").mkdir()
    for path in (run / "tensorboard").iterdir():
        path.unlink()
    (run / "tensorboard").rmdir()
    (run / "tensorboard").symlink_to(run / "elsewhere")  # nncli never writes through a link
    result = train(config(tmp_path, epochs=4), runs_dir=tmp_path / "runs", resume="tb")
    assert result.status == "completed"
    assert [int(r["epoch"]) for r in metrics_rows(run)] == [1, 2, 3, 4]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 4
    assert (run / "checkpoints" / "last.safetensors").is_file()
    [warning] = result.warnings
    assert "tensorboard logger could not start" in warning and "symbolic link" in warning
    assert warning in info["warnings"]
    assert list((run / "elsewhere").iterdir()) == []


def test_a_missing_package_is_refused_with_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["train", str(config(tmp_path)), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "train.loggers[0]" in result.output and "tiny.yaml:8" in result.output
    assert "pip install 'nncli[tensorboard]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_and_repeated_loggers_are_config_errors(tmp_path):
    result = CliRunner().invoke(app, ["check", str(config(tmp_path, loggers="[tensorbord, mlflow, mlflow]"))])
    assert result.exit_code == 2, result.output
    assert "did you mean 'tensorboard'" in result.output
    assert "train.loggers[2]" in result.output and "each logger once" in result.output


PLUGIN = '''
from pathlib import Path
from nncli.nn import register
from nncli.train.loggers import Logger


@register("loggers", name="flaky_{tag}")
class Flaky(Logger):
    def __init__(self, out: str, fail_at: int = 2):
        super().__init__()
        self.out, self.fail_at = Path(out), fail_at

    def open(self, run):
        self.out.write_text(f"open {{run.run_id}} after {{run.epoch}}\\n")

    def log_epoch(self, epoch, logs, improved):
        if epoch == self.fail_at:
            raise ConnectionError("the server went away")
        with self.out.open("a") as f:
            f.write(f"epoch {{epoch}} loss {{logs['loss']:.6f}}\\n")
'''


def test_a_plugin_logger_that_fails_mid_run_is_one_warning(tmp_path):
    (tmp_path / "flaky.py").write_text(PLUGIN.format(tag=tmp_path.name.replace("-", "_")))
    out = tmp_path / "sent.txt"
    loggers = f"[tensorboard, {{type: flaky_{tmp_path.name.replace('-', '_')}, out: '{out}'}}]"
    cfg = config(tmp_path, epochs=4, loggers=loggers)
    cfg.write_text("plugins: [flaky.py]\n" + cfg.read_text())
    result = train(cfg, runs_dir=tmp_path / "runs", run_id="flaky")
    run = result.run.path
    assert result.status == "completed" and len(metrics_rows(run)) == 4
    [warning] = result.warnings
    assert "could not log epoch 2 (ConnectionError: the server went away)" in warning
    assert "sends nothing more in this run" in warning
    rows = metrics_rows(run)
    assert out.read_text() == f"open flaky after 0\nepoch 1 loss {rows[0]['loss']:.6f}\n"  # nothing after it failed
    scalars, _, _ = read_events(run)
    assert_matches_csv(run, scalars)  # the other logger went on
