"""``train.loggers: [mlflow]``: the run's config, epochs and best checkpoint in an MLflow tracking store.

The tracking store is ``tracking_uri`` if the config names one, else ``MLFLOW_TRACKING_URI``, else
a SQLite database beside the run folders (``runs/mlflow.db``): a real database, as MLflow
recommends now that its file store is deprecated, and one that ``--runs-dir`` moves with the runs.
A SQLite store's new experiments keep their artifacts beside the database (``runs/mlartifacts/``). One nncli run is one MLflow run, named by the run id, in the
experiment ``experiment`` (else ``MLFLOW_EXPERIMENT_NAME``, else ``nncli``):

- params: the resolved config, flattened (``optimizer.learning_rate``, ``model.layers.0.units``);
- metrics: every metrics.csv column but ``epoch`` at step = epoch;
- artifacts: ``config.yaml``, and ``checkpoints/best.safetensors`` each time an epoch improves on the best.

A resumed run continues the same MLflow run (its id is kept in run.json under ``loggers.mlflow``):
its status is set back to RUNNING and it is sent the checkpoint's epochs it lacks, each step once.
MLflow cannot delete a metric's value, so none is ever sent before its checkpoint is written (the
run folder's recorder runs before every logger): an MLflow run never holds an epoch the run folder lost.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from nncli.nn.registry import register
from nncli.train.loggers.base import Logger, LoggerRun, flat_config

__all__ = ["MLflowLogger", "DATABASE", "ARTIFACTS"]

DATABASE, ARTIFACTS = "mlflow.db", "mlartifacts"  # in the runs folder, when no tracking URI is set
EXPERIMENT = "nncli"
_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_PARAM_LIMIT = 6000  # characters of a param value that MLflow stores
_BATCH = 1000  # metrics per log_batch call (MLflow's limit)


@contextmanager
def _quiet():
    """MLflow's and its database migrations' INFO lines stay out of nncli's output."""
    import mlflow  # noqa: F401 - its import sets its loggers' levels: set ours after it

    loggers = [logging.getLogger(name) for name in ("alembic", "mlflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@register("loggers", name="mlflow", aliases=("MLflow", "MLflowLogger"))
class MLflowLogger(Logger):
    """An MLflow run per nncli run: config as params, every epoch's metrics, the best checkpoint.

    Args:
        experiment: the MLflow experiment (made if missing); default ``MLFLOW_EXPERIMENT_NAME`` or ``nncli``.
        tracking_uri: where to log; default ``MLFLOW_TRACKING_URI`` or ``sqlite:///<runs dir>/mlflow.db``.

    See the runs with ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``.
    Needs the mlflow package: ``pip install 'nncli[mlflow]'``.
    """

    requires = {"mlflow": "mlflow"}

    def __init__(self, experiment: str | None = None, tracking_uri: str | None = None):
        super().__init__()
        self.experiment, self.tracking_uri = experiment, tracking_uri
        self.client = self.run_id = None

    def _uri(self, run: LoggerRun) -> tuple[str, str | None]:
        """The tracking URI, and where a new experiment keeps its artifacts (None: the store decides).

        A SQLite store keeps them beside its database file (as ``mlflow server`` does), not in the
        working directory's ``mlruns/``, where MLflow would put them by itself.
        """
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{run.path.parent.resolve() / DATABASE}"
        if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
            return uri, (Path(uri[len("sqlite:///"):]).resolve().parent / ARTIFACTS).as_uri()
        return uri, None

    def open(self, run: LoggerRun) -> None:
        with _quiet():
            self._open(run)

    def _open(self, run: LoggerRun) -> None:
        from mlflow.tracking import MlflowClient

        uri, artifacts = self._uri(run)
        self.client = MlflowClient(tracking_uri=uri)
        kept = run.recorded(self.name)
        existing = self._existing(run, kept, uri)
        if existing is None:
            name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            found = self.client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found else self.client.create_experiment(
                name, artifact_location=artifacts)
            created = self.client.create_run(experiment_id, run_name=run.run_id,
                                             tags={"nncli.run_folder": str(run.path.resolve())})
            self.run_id = created.info.run_id
            self._send_params(run, {})
            self.client.log_artifact(self.run_id, str(run.path / "config.yaml"))
        else:
            self.run_id, experiment_id = existing.info.run_id, existing.info.experiment_id
            self.client.update_run(self.run_id, status="RUNNING")
            self._send_params(run, existing.data.params)
        run.keep(self.name, {"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": uri})
        self._send_missing(run)

    def _existing(self, run: LoggerRun, kept: dict, uri: str):
        """The MLflow run this run logged to before, if it is at ``uri`` and still there."""
        from mlflow.exceptions import MlflowException

        if not kept.get("run_id"):
            return None
        if kept.get("tracking_uri") != uri:
            run.warn(f"mlflow logger: the run logged to {kept.get('tracking_uri')} before and logs to {uri} now; "
                     "it starts a new MLflow run there with every epoch so far")
            return None
        try:
            return self.client.get_run(kept["run_id"])
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        run.warn(f"mlflow logger: MLflow run {kept['run_id']} is gone from {uri}; a new one gets every epoch so far")
        return None

    def _send_params(self, run: LoggerRun, old: dict) -> None:
        """The config as params; on a resume, the ones MLflow lacks (a param never changes in MLflow:
        values the resumed config changed, such as train.epochs, go to tags ``resumed.<key>``)."""
        from mlflow.entities import Param, RunTag

        params, tags = [], []
        for key, value in flat_config(run.config).items():
            text = str(value)[:_PARAM_LIMIT]
            if key not in old:
                params.append(Param(key, text))
            elif old[key] != text:
                tags.append(RunTag(f"resumed.{key}"[:250], text))
        for start in range(0, max(len(params), len(tags)), 100):  # MLflow takes 100 params a call
            self.client.log_batch(self.run_id, params=params[start:start + 100], tags=tags[start:start + 100])

    def _send_missing(self, run: LoggerRun) -> None:
        """Send the finished epochs MLflow lacks, and the best checkpoint; warn about epochs beyond them."""
        keys = [key for key in (run.history[0] if run.history else {}) if key != "epoch"]
        logged = {key: {m.step for m in self.client.get_metric_history(self.run_id, key)} for key in keys}
        if "loss" not in logged:
            logged["loss"] = {m.step for m in self.client.get_metric_history(self.run_id, "loss")}
        beyond = sorted(step for step in logged["loss"] if step > run.epoch)
        if beyond:
            run.warn(f"mlflow logger: MLflow run {self.run_id} holds epochs {beyond[0]}-{beyond[-1]} that the "
                     f"checkpoint (epoch {run.epoch}) does not; they are trained again and MLflow keeps both values")
        metrics = [metric for row in run.history
                   for metric in self._metrics(row["epoch"], {k: v for k, v in row.items()
                                                              if row["epoch"] not in logged.get(k, ())})]
        self._send(metrics)
        if run.history and run.best.exists():
            self.client.log_artifact(self.run_id, str(run.best), "checkpoints")

    def _metrics(self, epoch: int, logs: dict) -> list:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        return [Metric(key, float(value), stamp, epoch) for key, value in logs.items()
                if key != "epoch" and value is not None]

    def _send(self, metrics: list) -> None:
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + _BATCH])

    def log_epoch(self, epoch: int, logs: dict, improved: bool) -> None:
        with _quiet():
            self._send(self._metrics(epoch, logs))
            if improved and self.run.best.exists():
                self.client.log_artifact(self.run_id, str(self.run.best), "checkpoints")

    def close(self, status: str) -> None:
        if self.run_id is not None:
            with _quiet():
                self.client.set_terminated(self.run_id, status=_STATUS.get(status, "KILLED"))
