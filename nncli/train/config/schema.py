"""The fixed config sections and every default, one description per field.

``data``, ``train`` and the top level are pydantic models: strict types, unknown keys refused.
The descriptions feed ``nncli config --schema`` and its JSON Schema. Components (layers, loss,
optimizer, schedules, models) have no schema here: they are checked against their registered
class (:mod:`nncli.train.config.components`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nncli.data.builtin import BUILTIN_SETS, MAX_SAMPLES

__all__ = ["DataConfig", "TrainConfig", "EarlyStoppingConfig", "ReduceLROnPlateauConfig", "CheckpointConfig",
           "SequentialConfig", "SweepConfig", "TopLevel", "BUILTIN_DATASETS", "SEQUENTIAL", "PATH_KEYS", "SECTIONS",
           "MAX_TRIALS"]

BUILTIN_DATASETS = BUILTIN_SETS  # the one list, kept by nncli.data.builtin
SEQUENTIAL = "Sequential"  # model.type when the config leaves it out
PATH_KEYS = (("data", "source"), ("data", "labels"), ("data", "validation"), ("data", "test"))  # file paths
# (relative to the file that names them)

MAX_EPOCHS = 1_000_000  # a run that could never finish is refused, not started
MAX_SAMPLE_VALUES = 10**8  # values in one sample (the product of input_shape): 400 MB of float32
_Count = Annotated[int, Field(ge=1)]
_Share = Annotated[float, Field(ge=0, lt=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class DataConfig(_Section):
    """The ``data:`` section: where the samples come from and how they are batched."""

    source: str = Field(description="a built-in set (digits, iris, xor, moons, spirals, circles, toy) or a "
                                    ".csv/.npz/.npy/IDX file, relative to the config file that names it")
    labels: str | None = Field(None, description="a second file holding the labels of .npy or IDX inputs")
    target: str | int | None = Field(
        None, description="the CSV column to predict: a name, or a 0-based position (-1: the last); null: the last "
                          "column. Numbers are regressed on or are class ids; text is class names (sorted into ids)")
    header: bool | Literal["auto"] = Field(
        "auto", description="auto: the CSV's first row names the columns, refused when it looks like data; true: it "
                            "does, whatever it holds; false: there is no header row (columns are named 0, 1, ...)")
    validation: str | None = Field(
        None, description="a file of validation samples with the columns of source, instead of validation_split")
    test: str | None = Field(None, description="a file of test samples, instead of test_split (nncli eval RUN --split "
                                               "test scores it)")
    x_key: str = Field("x", description="the .npz key of the inputs")
    y_key: str = Field("y", description="the .npz key of the labels")
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | None = Field(
        None, description="samples of a generated set (xor, moons, ...); null: the set's own size")
    noise: Annotated[float, Field(ge=0)] | None = Field(None, description="noise of a generated set; null: its default")
    validation_split: _Share = Field(0.2, description="share of the samples held out for validation (0 with a "
                                                      "validation file)")
    test_split: _Share = Field(0.0, description="share held out for a final test (with validation_split, below 1), "
                                                "scored by nncli eval RUN --split test")
    normalize: Literal["none", "standard", "minmax"] = Field(
        "none", description="feature scaling, fitted on the training part only")
    batch_size: _Count = Field(32, description="samples per training step")
    shuffle: bool = Field(True, description="reshuffle the training samples every epoch")
    memory_map: bool | Literal["auto"] = Field(
        "auto", description="a .npy features file is read batch by batch from a memory map: true, false, or auto "
                            "(files of 256 MB and more)")

    def has_validation(self) -> bool:
        """Whether training gets a validation part (and so logs val_loss and val_<metric>)."""
        return self.validation_split > 0 or self.validation is not None

    def has_test(self) -> bool:
        """Whether a test part is held out (a split or a file)."""
        return self.test_split > 0 or self.test is not None


_Mode = Literal["auto", "min", "max"]
_MODE = "auto: the metric's own direction (accuracy, f1, auc, r2... are maximised), else min or max"


class EarlyStoppingConfig(_Section):
    """``train.early_stopping``: stop when the monitored value stops improving (Keras's EarlyStopping)."""

    monitor: str = Field("val_loss", description="the logged value to watch: loss, val_loss, <metric>, val_<metric>")
    patience: Annotated[int, Field(ge=0)] = Field(
        5, description="epochs without improvement before stopping, as Keras counts them (1: one epoch after the best)")
    min_delta: Annotated[float, Field(ge=0)] = Field(0.0, description="smallest change that counts as an improvement")
    mode: _Mode = Field("auto", description=_MODE)
    baseline: float | None = Field(None, description="a value to beat; epochs that do not beat it count as no "
                                                     "improvement")
    restore_best_weights: bool = Field(False, description="on stopping, put the best epoch's weights back (into "
                                                          "checkpoints/last.safetensors too)")
    start_from_epoch: Annotated[int, Field(ge=0)] = Field(0, description="epochs of warm-up before watching")


class ReduceLROnPlateauConfig(_Section):
    """``train.reduce_lr_on_plateau``: lower the learning rate on a plateau (Keras's ReduceLROnPlateau)."""

    monitor: str = Field("val_loss", description="the logged value to watch")
    factor: Annotated[float, Field(gt=0, lt=1)] = Field(0.1, description="new rate = rate * factor")
    patience: Annotated[int, Field(ge=0)] = Field(10, description="epochs without improvement before a reduction")
    mode: _Mode = Field("auto", description=_MODE)
    min_delta: Annotated[float, Field(ge=0)] = Field(1e-4, description="smallest change that counts as an improvement")
    cooldown: Annotated[int, Field(ge=0)] = Field(0, description="epochs after a reduction in which nothing is counted")
    min_lr: Annotated[float, Field(ge=0)] = Field(0.0, description="the rate never goes below this")


class CheckpointConfig(_Section):
    """``train.checkpoint``: periodic checkpoints besides best and last."""

    every: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = Field(
        1, description="write checkpoints/epoch-NNNN.safetensors every this many epochs")
    keep: Annotated[int, Field(ge=1)] | None = Field(None, description="keep the most recent this many; null: all")


class TrainConfig(_Section):
    """The ``train:`` section: how long and what to log."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = Field(10, description="passes over the training samples")
    metrics: list[str] = Field([], description="metric names (nncli layers --kind metrics), logged as <name> "
                                               "and val_<name>")
    compile: bool = Field(True, description="run the training step as a traced ad.Function")
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="null: never stop early; true: the defaults; or a mapping of the keys below")
    monitor: str = Field("val_loss", description="the logged value whose best epoch is kept in "
                                                 "checkpoints/best.safetensors")
    loggers: list[str | dict] = Field([], description="tools the run is also sent to, each a name or {type: <logger>, "
                                                      "...params}: tensorboard (runs/<id>/tensorboard/), mlflow "
                                                      "(MLFLOW_TRACKING_URI, default runs/mlflow.db)")
    reduce_lr_on_plateau: ReduceLROnPlateauConfig | None = Field(
        None, description="null: a fixed learning rate; true: the defaults; or a mapping of the keys below")
    checkpoint: CheckpointConfig | None = Field(
        None, description="null: only best and last; or {every: N, keep: k}")
    callbacks: list[Any] = Field([], description="registered callbacks (nncli layers --kind callbacks), each "
                                                 "{type: <callback>, ...params} or a name")

    @field_validator("early_stopping", "reduce_lr_on_plateau", "checkpoint", mode="before")
    @classmethod
    def _switch(cls, value):
        return {} if value is True else (None if value is False else value)


class SequentialConfig(_Section):
    """``model:`` when its type is Sequential (the default): a stack of layers."""

    input_shape: list[_Count] = Field(min_length=1, description="one sample's shape, without the batch axis")
    layers: list[Any] = Field(min_length=1, description="each {type: <layer>, ...params} or a layer name")

    @field_validator("input_shape")
    @classmethod
    def _bounded(cls, shape: list[int]) -> list[int]:
        values = math.prod(shape)  # refused before any array of that size is made
        if values > MAX_SAMPLE_VALUES:
            raise ValueError(f"a sample shape of at most {MAX_SAMPLE_VALUES:,} values (this one has {values:,})")
        return shape


MAX_TRIALS = 10_000  # most trials in one sweep (a grid multiplies quickly)
_Trials = Annotated[int, Field(ge=1, le=MAX_TRIALS)]


class SweepConfig(_Section):
    """The ``sweep:`` section, read by ``nncli sweep`` (``nncli train`` ignores it): the trials, where they run.

    Keys are config keys as ``--set`` writes them (``model.layers[0].units``); ``nncli sweep``
    checks them, the distributions and every trial's config before the first trial starts.
    """

    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None, description="config key -> the values to try; every combination is a trial")
    random: _Trials | None = Field(None, description="this many trials drawn at random from space")
    sampler: Literal["random", "tpe"] | None = Field(
        None, description="with trials: random draws, or Optuna's TPE proposing from the results so far")
    trials: _Trials | None = Field(None, description="trials of the sampler")
    space: dict[str, str] | None = Field(
        None, description="config key -> loguniform(a, b), uniform(a, b) or choice(x, y, ...)")
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = Field(
        None, description="seed of the random draws; null: draw one and record it")
    workers: Annotated[int, Field(ge=1, le=1024)] = Field(1, description="trials at once on this machine")
    cluster: str | None = Field(None, description="tcp://HOST:PORT of a Dask scheduler: the trials run on its workers")
    retries: Annotated[int, Field(ge=0, le=100)] = Field(
        2, description="more attempts for a trial whose process or worker was lost")
    threads: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None, description="BLAS threads per trial; null: the cores divided among the trials at once")


class TopLevel(_Section):
    """The top level of a config file."""

    base: str | list[str] | None = Field(
        None, description="config file(s) merged under this one (this file wins), relative to this file")
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = Field(None, description="null: draw one and record it")
    data: dict = Field(description="see data.*")
    model: dict | str = Field(description="Sequential (input_shape, layers) or {type: <registered model>, ...}")
    loss: str | dict = Field(description="a loss name (mse) or {type: <loss>, ...params}")
    optimizer: str | dict = Field(description="an optimizer name (adam) or {type: <optimizer>, ...params}; "
                                              "learning_rate may be a number or a schedule mapping")
    train: dict | None = Field(None, description="see train.*; absent: all its defaults")
    plugins: list[str] = Field([], description="python files (relative to the config) or modules imported "
                                               "first, to register custom components")
    sweep: dict | None = Field(None, description="see sweep.*: the trials of nncli sweep (nncli train ignores it)")


SECTIONS = {(): TopLevel, ("data",): DataConfig, ("train",): TrainConfig,
            ("train", "early_stopping"): EarlyStoppingConfig,
            ("train", "reduce_lr_on_plateau"): ReduceLROnPlateauConfig, ("train", "checkpoint"): CheckpointConfig,
            ("sweep",): SweepConfig}  # the fixed parts, by path
