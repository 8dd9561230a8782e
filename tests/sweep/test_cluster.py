"""Sweeps on a real Dask cluster: files travel with trials, run folders come back, a dead worker costs an attempt."""

from __future__ import annotations

import json
import signal

import pytest
import yaml
from sweep_tools import ROOT, kill, metrics_rows, read_json, row_count, run, start, sweep_record, wait_for

pytestmark = pytest.mark.slow

PLUGIN = '''\
from nncli import nn
from nncli.nn.layers import Dense


@nn.register("layers")
class PluginDense(Dense):
    """A Dense layer that only a plugin file registers: a worker knows it only if the file travelled."""
'''

CONFIG = """\
seed: 0
data: {source: data/petals.csv, target: petal_width, validation_split: 0.2, normalize: standard, batch_size: 16}
model:
  input_shape: [3]
  layers:
    - {type: PluginDense, units: 8, activation: relu}
    - {type: Dense, units: 1}
loss: mse
optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: EPOCHS, metrics: [mae]}
plugins: [layers.py]
"""

GRID = ["--grid", "optimizer.learning_rate=[0.003, 0.01, 0.03]", "--grid", "model.layers[0].units=[8, 16]"]


def client_folder(tmp_path, epochs: int = 20):
    """The user's folder: a config naming a CSV and a plugin file by relative paths."""
    folder = tmp_path / "client"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "petals.csv").write_bytes((ROOT / "configs" / "data" / "iris_petal_width.csv").read_bytes())
    (folder / "layers.py").write_text(PLUGIN)
    (folder / "reg.yaml").write_text(CONFIG.replace("EPOCHS", str(epochs)))
    return folder


def _under_way(folder):
    """A trial's run folder on a worker with an epoch in its metrics.csv, or None."""
    def find():
        return next((p.parent for p in (folder / "scratch").rglob("metrics.csv") if row_count(p.parent) >= 1), None)
    return find


def _alone(folder, trial, threads: int = 1):
    sets = [a for s in trial["set"] for a in ("--set", s)]
    run("train", "reg.yaml", *sets, "--run-id", trial["run_id"], "--runs-dir", "alone", "--quiet", cwd=folder,
        threads=threads, check_code=0)
    return metrics_rows(folder / "alone" / trial["run_id"])


# The first trial worker w1 runs holds after 12 batches (an epoch and a half of the 120 training rows in 16s):
# it is surely mid-trial when the test acts, however loaded the machine is.
HOLD_W1 = pytest.mark.parametrize("cluster", [{"w1": "batch:12=pause"}], indirect=True)


@HOLD_W1
def test_a_cluster_sweep_survives_a_killed_worker_and_brings_every_run_folder_home(tmp_path, cluster):
    folder = client_folder(tmp_path)
    sweep = start("sweep", "reg.yaml", *GRID, "--cluster", cluster.address, "--threads", 1, "--sweep-id", "c",
                  cwd=folder)
    wait_for(cluster.paused["w1"].is_file, "a trial on worker w1 to hold mid-trial", proc=sweep)
    running = wait_for(_under_way(cluster.folders["w1"]), "its run folder on worker w1", proc=sweep)
    # the worker trains on the files that travelled, in its own folder: not on the client's paths
    remote = yaml.safe_load((running / "config.yaml").read_text())
    assert remote["data"]["source"].startswith(str(cluster.folders["w1"]))
    assert remote["plugins"][0].startswith(str(cluster.folders["w1"]))
    kill(cluster.workers["w1"].pid)  # SIGKILL, mid-trial
    out, err = sweep.communicate()
    assert sweep.returncode == 0, out + err
    record = sweep_record(folder / "runs", "c")
    assert [t["status"] for t in record["trials"]] == ["completed"] * 6
    lost = [t for t in record["trials"] if any(a["outcome"] == "lost" for a in t["attempts"])]
    assert len(lost) == 1, record["trials"]
    first, second = lost[0]["attempts"]
    assert first["outcome"] == "lost" and "was lost" in first["error"]
    assert second["outcome"] == "completed" and second["worker"] != first["worker"]
    assert {a["worker"] for t in record["trials"] for a in t["attempts"]} <= {first["worker"], second["worker"]}
    # every run folder is back, an ordinary run of this machine: its config names the local files
    local = yaml.safe_load((folder / "runs" / lost[0]["run_id"] / "config.yaml").read_text())
    assert local["data"]["source"] == str(folder / "data" / "petals.csv")
    assert local["plugins"] == [str(folder / "layers.py")]
    info = read_json(folder / "runs" / lost[0]["run_id"] / "run.json")
    assert str(tmp_path / "w1") not in json.dumps(info) and str(tmp_path / "w2") not in json.dumps(info)
    evaluated = json.loads(run("eval", lost[0]["run_id"], "--json", "--trust-plugins", cwd=folder,
                               check_code=0).stdout)  # the plugin is the user's own file
    assert evaluated["metrics"]["loss"] == pytest.approx(lost[0]["best"]["value"], rel=1e-5)
    # and it trained as it does here (same BLAS threads): the lost attempt cost nothing but time
    assert metrics_rows(folder / "runs" / lost[0]["run_id"]) == _alone(folder, lost[0])


def test_a_file_over_the_limit_stays_and_is_read_at_the_same_path(tmp_path, cluster):
    folder = client_folder(tmp_path, epochs=2)
    proc = run("sweep", "reg.yaml", "--grid", "model.layers[0].units=[8]", "--cluster", cluster.address,
               "--sweep-id", "big", cwd=folder, NNCLI_SWEEP_SHIP_LIMIT=1000)  # the CSV has 3 kB
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sweep_record(folder / "runs", "big")["trials"][0]["status"] == "completed"


def test_a_missing_file_that_did_not_travel_is_named_with_what_to_do(tmp_path, monkeypatch):
    from nncli.sweep.executors.bundle import BundleError, make_bundle, unpack_bundle

    data = tmp_path / "big.csv"
    data.write_text("a,b\n1,2\n" * 100)
    monkeypatch.setenv("NNCLI_SWEEP_SHIP_LIMIT", "100")
    bundle = make_bundle({"data": {"source": str(data)}, "plugins": []}, {})
    assert bundle["files"][0]["data"] is None and bundle["files"][0]["size"] == 800
    data.unlink()  # as on a worker that does not have it
    with pytest.raises(BundleError, match=rf"{data} \(800 bytes, more than the 100 that travel with a trial; "
                                          r"NNCLI_SWEEP_SHIP_LIMIT sets the limit\) must exist at the same path on "
                                          r"every worker, but it is not there"):
        unpack_bundle(bundle, tmp_path / "worker")


@HOLD_W1
def test_an_interrupted_cluster_sweep_brings_back_saved_trials_and_resumes_them_there(tmp_path, cluster):
    folder = client_folder(tmp_path, epochs=40)
    grid = ["--grid", "optimizer.learning_rate=[0.003, 0.01]"]
    sweep = start("sweep", "reg.yaml", *grid, "--cluster", cluster.address, "--threads", 1, "--sweep-id", "i",
                  cwd=folder)
    wait_for(cluster.paused["w1"].is_file, "a trial on worker w1 to hold mid-trial", proc=sweep)
    sweep.send_signal(signal.SIGINT)  # the held trial is asked to stop: it saves at its next batch
    out, err = sweep.communicate()
    assert sweep.returncode == 130, out + err
    kill(cluster.workers["w1"].pid)  # its fault would hold the resumed trials too: they resume on w2
    cluster.wait_for_workers(1)
    record = sweep_record(folder / "runs", "i")
    # a trial under way saved at a batch boundary on its worker, and its run folder came back (one that was
    # still starting stopped before it made a run folder)
    stopped = [t for t in record["trials"] if t["status"] == "interrupted" and (folder / "runs" / t["run_id"]).is_dir()]
    assert stopped, record["trials"]
    for t in stopped:
        info = read_json(folder / "runs" / t["run_id"] / "run.json")
        assert info["status"] == "interrupted" and 1 <= info["epochs_done"] < 40
    proc = run("sweep", "--resume", "i", cwd=folder, check_code=0)
    record = sweep_record(folder / "runs", "i")
    assert [t["status"] for t in record["trials"]] == ["completed"] * 2, proc.stdout
    for t in stopped:
        assert t["run_id"] and record["trials"][t["trial"]]["attempts"][-1]["resumed"] is True
        assert metrics_rows(folder / "runs" / t["run_id"]) == _alone(folder, t)
