"""``train.loggers: [mlflow]``, read back with MLflow's own client from a real SQLite tracking store.

MLflow is heavy (each new database runs its migrations): few tests, each a tiny run.
"""

import csv
import json

import pytest
from logger_runs import StopAt, config

from nncli.train.session import TrainingInterrupted, train

pytest.importorskip("mlflow")  # in the dev extra; a venv without it skips only this file
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


def history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_params_metrics_and_best_checkpoint_survive_a_resume(tmp_path):
    runs = tmp_path / "runs"
    cfg = config(tmp_path, epochs=3, loggers="[mlflow]")
    with pytest.raises(TrainingInterrupted):
        train(cfg, runs_dir=runs, run_id="ml", callbacks=[StopAt(2, 3)])  # inside epoch 2
    info = json.loads((runs / "ml" / "run.json").read_text())["loggers"]["mlflow"]
    assert info["tracking_uri"] == f"sqlite:///{runs.resolve() / 'mlflow.db'}"  # the default: beside the runs
    client = MlflowClient(tracking_uri=info["tracking_uri"])
    assert client.get_run(info["run_id"]).info.status == "KILLED"
    assert [step for step, _ in history(client, info["run_id"], "loss")] == [1]

    train(cfg, runs_dir=runs, resume="ml", overrides=["train.epochs=4"])
    kept = json.loads((runs / "ml" / "run.json").read_text())["loggers"]["mlflow"]
    assert kept["run_id"] == info["run_id"]  # the same MLflow run goes on
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "ml"
    assert client.get_experiment(run.info.experiment_id).name == "nncli"
    params = run.data.params
    assert params["optimizer.learning_rate"] == "0.01" and params["model.layers.0.units"] == "8"
    assert params["train.epochs"] == "3" and run.data.tags["resumed.train.epochs"] == "4"

    with open(runs / "ml" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in rows[0]:
        if key != "epoch":  # each epoch once, with the value metrics.csv has
            assert history(client, run.info.run_id, key) == [
                (int(r["epoch"]), pytest.approx(float(r[key]), rel=1e-12)) for r in rows], key

    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"config.yaml", "checkpoints"}
    local = client.download_artifacts(run.info.run_id, "checkpoints/best.safetensors", str(tmp_path))
    assert open(local, "rb").read() == (runs / "ml" / "checkpoints" / "best.safetensors").read_bytes()
    assert (runs / "mlartifacts").is_dir()  # artifacts beside the database, not in the working directory


def test_the_tracking_uri_and_experiment_come_from_the_environment(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow alone would put artifacts in ./mlruns
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "iris-tries")
    result = train(config(tmp_path, epochs=2, loggers="[mlflow]"), runs_dir=tmp_path / "runs", run_id="env")
    assert result.warnings == [] and not (tmp_path / "runs" / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("iris-tries").experiment_id])
    assert run.info.run_name == "env" and len(history(client, run.info.run_id, "val_accuracy")) == 2
    assert (tmp_path / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


def test_an_unreachable_store_is_a_warning_and_the_run_keeps_its_files(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")  # the database's folder cannot be made: a store that is not there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}")
    result = train(config(tmp_path, epochs=2, loggers="[tensorboard, mlflow]"), runs_dir=tmp_path / "runs",
                   run_id="down")
    run = tmp_path / "runs" / "down"
    assert result.status == "completed"
    [warning] = result.warnings
    assert warning.startswith("mlflow logger could not start") and "--resume down" in warning
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_done"] == 2 and info["warnings"] == [warning]
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    assert (run / "checkpoints" / "best.safetensors").is_file() and (run / "loss.png").is_file()
    assert any((run / "tensorboard").iterdir())  # the other logger went on
