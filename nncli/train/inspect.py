"""Looking at finished runs: list them, restore a checkpoint, evaluate it, predict with it.

    rows = runs_table("runs")                                  # newest first, JSON-ready
    result = evaluate_run("runs", "latest")                    # the validation part, best checkpoint
    preds = predict_run("runs", "latest", "new.csv", out="predictions.csv")

Everything here reads a run folder written by :func:`nncli.train.session.train`; bad input
(an unknown run id, a missing or damaged checkpoint, inputs of the wrong shape) raises an
:class:`~nncli.errors.NncliError` with a one-line message.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nncli.data.csvtext import HeaderError
from nncli.errors import DataError, RunError
from nncli.train.checkpoint import check_finite
from nncli.train.files import atomic_write
from nncli.train.layout import layout, split_checkpoint
from nncli.train.runinfo import check_data_unchanged
from nncli.train.runs import CHECKPOINTS, RunFolder, is_locked, list_runs, load_checkpoint, read_metrics_rows, resolve_run
from nncli.train.threads import blas_threads

PREDICT_BATCH = 1024  # samples per forward pass when predicting


# -- listing ------------------------------------------------------------------------
def runs_table(runs_dir: str | Path = "runs") -> list[dict]:
    """One JSON-ready summary per run in ``runs_dir``, newest first.

    Each row has ``run_id, status, epochs_done, epochs, best {monitor, epoch, value},
    best_val_loss, best_val_loss_epoch, final {...}, duration_s, created, resumed, bad_rows, path``.
    A run whose run.json says ``running`` while no process holds its lock is ``crashed``; a run
    whose run.json cannot be read or does not fit its schema is ``unreadable``, with an ``error``.

    Example:
        >>> [row["run_id"] for row in runs_table("runs")]           # doctest: +SKIP
        ['quickstart-20260101-120000']
    """
    return [_summary(RunFolder(path)) for path in list_runs(Path(runs_dir))]


def _summary(run: RunFolder) -> dict:
    row = {"run_id": run.run_id, "path": str(run.path)}
    try:
        info = run.read_json()
    except RunError as err:
        return {**row, "status": "unreadable", "error": str(err)}
    metrics, bad_rows = read_metrics_rows(run.path / "metrics.csv")
    status = info.get("status")
    if status == "running" and not is_locked(run.path):
        status = "crashed"  # the process that wrote it is gone: resume it
    val = [(r["val_loss"], r.get("epoch")) for r in metrics if _finite(r.get("val_loss"))]
    best_val = min(val) if val else (None, None)
    times = [r["time_s"] for r in metrics if _finite(r.get("time_s"))]
    return _json_ready({
        **row, "status": status, "epochs_done": info.get("epochs_done", len(metrics)),
        "epochs": info.get("epochs"), "best": info.get("best"), "best_val_loss": best_val[0],
        "best_val_loss_epoch": best_val[1], "final": info.get("final") or {},
        "duration_s": sum(times) if times else None, "created": info.get("created"),
        "resumed": len(info.get("resumed") or []), "bad_rows": bad_rows,
    })


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _json_ready(value):
    """Plain data for ``json.dumps``: NaN and infinities become None."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- restoring ----------------------------------------------------------------------
class Restored(NamedTuple):
    """A run's config and built parts with a checkpoint's weights loaded."""

    cfg: object  # nncli.train.config.Config
    parts: object  # nncli.train.build.Parts
    epoch: int | None  # the epoch the checkpoint was written after
    info: dict  # run.json


def restore_model(run_path: str | Path, checkpoint: str = "best", with_data: bool = False,
                  trust_plugins: bool = False) -> Restored:
    """Rebuild a run's model from its config.yaml and load ``checkpoints/<checkpoint>.safetensors``.

    Args:
        run_path: the run folder.
        checkpoint: ``best`` or ``last``.
        with_data: also rebuild the data (same seed, same split) into ``parts.data``.
        trust_plugins: import the plugins the run's config lists. They are Python code that runs
            with your rights, and a run folder may come from anyone: without this, a run that
            lists plugins is refused (and nothing is imported).

    Example:
        >>> cfg, parts, epoch, info = restore_model("runs/quickstart-20260101-120000")  # doctest: +SKIP
        >>> parts.model(x, training=False)                                              # doctest: +SKIP
    """
    from nncli.train.build import build
    from nncli.train.config import listed_plugins, load_config

    run = RunFolder(Path(run_path))
    if not (run.path / "run.json").is_file():
        raise RunError(f"{run.path} is not a run folder: it has no run.json")
    if checkpoint not in CHECKPOINTS:
        raise RunError(f"unknown checkpoint '{checkpoint}': expected one of {', '.join(CHECKPOINTS)}")
    info = run.read_json()
    path = run.checkpoints / f"{checkpoint}.safetensors"
    if not path.is_file():
        others = [c for c in CHECKPOINTS if (run.checkpoints / f"{c}.safetensors").is_file()]
        hint = f"; try --checkpoint {others[0]}" if others else "; the run has no checkpoint (no epoch finished)"
        raise RunError(f"run '{run.run_id}' has no {checkpoint} checkpoint ({path} is missing){hint}")
    if not (run.path / "config.yaml").is_file():
        raise RunError(f"{run.path} is not a complete run folder: config.yaml is missing")
    plugins = listed_plugins(run.path / "config.yaml")
    if plugins and not trust_plugins:
        raise RunError(f"run '{run.run_id}' lists plugins in its config.yaml ({', '.join(plugins)}): they are "
                       "Python code that would run with your rights, so they are not imported unless you pass "
                       "--trust-plugins (do so only for a run folder you trust)")
    cfg = load_config(run.path / "config.yaml", import_plugins=trust_plugins)
    parts = build(cfg, with_data=with_data)
    model = parts.model
    if not model.named_variables():  # a subclassed model gets its weights on its first call
        shape = tuple((info.get("data") or {}).get("input_shape") or cfg.model.get("input_shape") or ())
        model(np.zeros((1, *shape), dtype=np.float32), training=False)
    tensors, meta = load_checkpoint(path, layout(model, parts.optimizer))  # sizes checked before reading
    weights = split_checkpoint(tensors)[0]
    check_finite(weights, path)
    model.load_named_weights(weights, source=str(path))
    epoch = meta.get("epoch")
    return Restored(cfg, parts, epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None, info)


# -- evaluating ---------------------------------------------------------------------
SPLITS = ("train", "validation", "test")


def evaluate_run(runs_dir: str | Path, run_id: str, checkpoint: str = "best", data: str | Path | None = None,
                 split: str | None = None, allow_changed_data: bool = False, trust_plugins: bool = False) -> dict:
    """Loss and metrics of a run's checkpoint, in inference mode, like the validation during training.

    Args:
        runs_dir: the folder of runs.
        run_id: a run id or ``latest``.
        checkpoint: ``best`` or ``last``.
        data: a data file (or built-in set name) prepared as the run's data was: same target
            column and header, the run's saved normalization, labels checked against the model's
            classes (class names mapped onto the run's).
        split: which part of the run's own data to score, rebuilt from its config (same seed,
            same split, same files): ``validation`` (the default without ``data``), ``test``
            (``data.test_split`` or the ``data.test`` file) or ``train``.
        allow_changed_data: score the part even when the run's data has changed since it was
            trained (its fingerprint in run.json differs); the change is then a warning.
        trust_plugins: see :func:`restore_model`.

    Returns:
        ``{"run_id", "checkpoint", "epoch", "data", "split", "samples", "metrics": {"loss": ..., <metric>: ...},
        "warnings": [...]}``. It runs with the BLAS thread count the run was trained with.

    Example:
        >>> evaluate_run("runs", "latest", split="test")["metrics"]        # doctest: +SKIP
        {'loss': 0.0972, 'accuracy': 0.9694}
    """
    from nncli.train.build import output_units, prepare_targets
    from nncli.train.evaluate import evaluate

    if data is not None and split is not None:
        raise RunError(f"give --data (another file) or --split (a part of the run's own data), not both; "
                       f"found --data {data} and --split {split}")
    split = "validation" if data is None and split is None else split
    if split is not None and split not in SPLITS:
        raise RunError(f"unknown split '{split}': expected one of {', '.join(SPLITS)}")
    path = resolve_run(runs_dir, run_id)
    cfg, parts, epoch, info = restore_model(path, checkpoint, with_data=data is None, trust_plugins=trust_plugins)
    warnings = []
    if data is None:
        changes = check_data_unchanged(info, cfg, "evaluating")
        if changes and not allow_changed_data:
            raise DataError(f"the data of run '{path.name}' has changed since it was trained: {'; '.join(changes)}. "
                            f"Its {split} part would not be the one it was trained with: evaluate on a file "
                            "with --data PATH, or pass --allow-changed-data to score the changed data anyway")
        warnings += [f"{c} (scored anyway: --allow-changed-data)" for c in changes]
        x, y, desc = _run_part(path.name, split, parts.data, info, changed=bool(changes))
    else:
        x, y, desc = _labelled_file(data, cfg, parts, info, path.name)
    y = prepare_targets(parts.loss, y, output_units(parts.model))
    with blas_threads((info.get("blas") or {}).get("threads")):
        values = evaluate(parts.model, parts.loss, parts.metrics, x, y)  # as the trainer's validation
    return _json_ready({"run_id": path.name, "checkpoint": checkpoint, "epoch": epoch, "data": desc, "split": split,
                        "samples": int(len(x)), "metrics": values, "warnings": warnings})


def _run_part(run_id: str, split: str, data, info: dict, changed: bool = False):
    """``(x, y, description)`` of one part of the run's data, refused when it is not the part trained with."""
    x, y = data.part(split)
    if x is None or not len(x):
        how = {"validation": "data.validation_split is 0 and there is no data.validation file",
               "test": "data.test_split is 0 and there is no data.test file"}.get(split, "")
        raise RunError(f"run '{run_id}' has no {split} part ({how}): evaluate it on a file with --data PATH"
                       + ("" if split == "validation" else ", or another part with --split"))
    desc = data.sources.get(split, f"{split} part of {data.source_desc}")
    if changed:  # allowed by the caller: the checks below would only refuse it again
        return x, y, f"{desc} (changed since training)"
    saved = info.get("data") or {}
    expected = saved.get({"train": "train_samples", "validation": "validation_samples",
                          "test": "test_samples"}[split])
    norm = saved.get("normalizer") or {}
    changed = expected is not None and expected != len(x)
    if not changed and "shift" in norm and data.normalizer.shift is not None:
        changed = not (np.allclose(norm["shift"], data.normalizer.shift, rtol=1e-5, atol=1e-6)
                       and np.allclose(norm["scale"], data.normalizer.scale, rtol=1e-5, atol=1e-6))
    changed = changed or ("classes" in saved and saved["classes"] != data.classes)
    if changed:
        raise DataError(f"the data of run '{run_id}' ({data.source_desc}) has changed since it was trained, "
                        f"so its {split} part cannot be rebuilt; evaluate on a file with --data PATH")
    return x, y, data.sources.get(split, f"{split} part of {data.source_desc}")


def _labelled_file(source, cfg, parts, info: dict, run_id: str):
    """Features and checked labels of ``source``, scaled with the run's saved normalizer."""
    from nncli.data import Normalizer, prepare_data
    from nncli.train.build import num_classes_for, output_units

    d, saved, want = cfg.data, info.get("data") or {}, _input_shape(cfg, info)
    header = _csv_header(source) if d.header is not False else None
    if header and not saved.get("feature_names") and want and len(header) - 1 != math.prod(want):
        raise DataError(f"expected {math.prod(want)} feature columns and a target column (run '{run_id}' has "
                        f"input shape {list(want)}), found {len(header)} columns", str(source))
    loaded = prepare_data(source=str(source), target=d.target, header=d.header if _is_csv(source) else "auto",
                          x_key=d.x_key, y_key=d.y_key, validation_split=0.0, normalize="none", seed=cfg.seed,
                          num_classes=num_classes_for(parts.loss, output_units(parts.model)),
                          classes=saved.get("classes"))
    x = loaded.x_train
    names, have = saved.get("feature_names"), loaded.feature_names
    if names and have and names != have and d.header is not False:
        missing, extra = [n for n in names if n not in have], [n for n in have if n not in names]
        if missing or extra:
            raise DataError(f"its feature columns differ from run '{run_id}': missing {missing or 'none'}, "
                            f"unexpected {extra or 'none'}", str(source))
        x = x[:, [have.index(n) for n in names]]  # the run's column order
    x = _fit_shape(x, want, str(source), run_id)
    norm = Normalizer.from_dict(saved.get("normalizer") or {"kind": "none"})
    return norm.transform(x), loaded.y_train, loaded.source_desc


def _is_csv(path) -> bool:
    return Path(path).suffix.lower() == ".csv"


def _input_shape(cfg, info: dict) -> tuple[int, ...]:
    shape = (info.get("data") or {}).get("input_shape") or cfg.model.get("input_shape") or ()
    return tuple(int(s) for s in shape)


def _fit_shape(x: np.ndarray, want: tuple[int, ...], where: str, run_id: str) -> np.ndarray:
    """``x`` as ``(n, *want)``: reshaped when only the layout differs, else a DataError with both counts."""
    if not want or x.shape[1:] == want:
        return x
    need, found = math.prod(want), math.prod(x.shape[1:])
    if need == found:
        return x.reshape((len(x), *want))
    raise DataError(f"expected {need} features per sample (run '{run_id}' has input shape {list(want)}), "
                    f"found {found}", where)


# -- predicting ---------------------------------------------------------------------
@dataclass
class Predictions:
    """Model outputs as a table: ``columns`` name the columns of ``values`` (n, len(columns)).

    Classification: ``class`` then ``prob_0..prob_{k-1}``; regression: ``value`` (or ``value_0..``).
    A run trained on class names has them in ``classes``: the CSV's class column then holds the
    names, and its probability columns are ``prob_<name>``.
    """

    columns: list[str]
    values: np.ndarray  # (n, columns) float32; the class column holds whole numbers (class ids)
    kind: str  # "classification" or "regression"
    classes: list[str] | None = None

    def class_names(self) -> list[str]:
        """The predicted class of each sample, by name (needs ``classes``)."""
        return [self.classes[i] for i in self.values[:, 0].astype(np.int64)]

    def to_csv(self, target=None) -> str | None:
        """Write the CSV (header, then one row per sample) to a path or text stream, or return it."""
        stream = io.StringIO() if target is None else target
        if isinstance(target, (str, Path)):
            stream = open(target, "w", newline="")
        try:
            if self.classes is not None:
                self._named_csv(stream)
            else:
                fmt = ["%d" if c == "class" else "%.6f" if c.startswith("prob_") else "%.7g" for c in self.columns]
                np.savetxt(stream, self.values, fmt=fmt, delimiter=",", header=",".join(self.columns), comments="")
        finally:
            if isinstance(target, (str, Path)):
                stream.close()
        return stream.getvalue() if target is None else None

    def _named_csv(self, stream) -> None:
        """The class column as names (quoted where CSV needs it), the probabilities as numbers."""
        quoted = np.asarray([_csv_cell(c) for c in self.classes], dtype=object)
        stream.write(",".join(_csv_cell(c) for c in self.columns) + "\n")
        numbers = io.StringIO()
        np.savetxt(numbers, self.values[:, 1:], fmt="%.6f", delimiter=",")
        names = quoted[self.values[:, 0].astype(np.int64)]
        stream.writelines(f"{name},{line}\n" for name, line in zip(names, numbers.getvalue().splitlines()))


def _csv_cell(text: str) -> str:
    """``text`` as one CSV cell: quoted when it holds a comma, a quote, a line end or edge spaces."""
    if any(ch in text for ch in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def predict_run(runs_dir: str | Path, run_id: str, input_path: str | Path, out: str | Path | None = None,
                checkpoint: str = "best", trust_plugins: bool = False) -> Predictions:
    """Predict with a run's checkpoint on a CSV (features by the run's names) or ``.npy``/``.npz`` file.

    The run's saved normalization is applied first. For classification the table has the
    class and its probabilities (softmax of logits, sigmoid for binary logits, as given
    otherwise); for regression the values. Written to ``out`` as CSV when given, atomically: a
    failed write (a full disk) leaves the previous file as it was. The run's training data is not
    read (the normalization is the one saved in run.json), so it need not be unchanged.

    Example:
        >>> predict_run("runs", "latest", "new.csv").columns[:3]        # doctest: +SKIP
        ['class', 'prob_0', 'prob_1']
    """
    from nncli.data import Normalizer, load_inputs

    path = resolve_run(runs_dir, run_id)
    cfg, parts, _, info = restore_model(path, checkpoint, trust_plugins=trust_plugins)
    saved = info.get("data") or {}
    want = _input_shape(cfg, info)
    header = cfg.data.header if _is_csv(input_path) else "auto"
    try:
        x = load_inputs(input_path, feature_names=_feature_columns(input_path, saved, cfg, want),
                        x_key=cfg.data.x_key, header=header)
    except HeaderError:
        names = saved.get("feature_names") or []
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise DataError(f"line 1 looks like data, not a header row; run '{path.name}' was trained on a CSV with a "
                        f"header and reads its features by name ({shown}): add that header row", str(input_path)) \
            from None
    if x.ndim == 1:
        x = x[:, None]
    x = _fit_shape(x, want, str(input_path), path.name)
    x = Normalizer.from_dict(saved.get("normalizer") or {"kind": "none"}).transform(x)
    with blas_threads((info.get("blas") or {}).get("threads")):
        outputs = [np.asarray(parts.model(x[i:i + PREDICT_BATCH], training=False))
                   for i in range(0, len(x), PREDICT_BATCH)]
    y = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    preds = _as_table(y.reshape(len(y), -1), parts.loss, saved.get("classes"))
    if out is not None:
        _write_predictions(preds, Path(out))
    return preds


def _write_predictions(preds: Predictions, out: Path) -> None:
    """Write through a temporary file and a rename; a device or pipe (``/dev/stdout``) directly."""
    try:
        if out.exists() and not out.is_file():
            preds.to_csv(out)
        else:
            atomic_write(out, preds.to_csv().encode())
    except OSError as err:
        raise DataError(f"cannot write predictions: {err.strerror or err}; "
                        f"{'the previous file is unchanged' if out.is_file() else 'nothing was written'}",
                        str(out)) from None


def _feature_columns(input_path, saved: dict, cfg, want: tuple[int, ...]) -> list[str] | None:
    """The CSV columns to read: the run's feature names, or (when it has none) all but the target.

    Without a header row (``data.header: false``) columns go by position: all of them when the
    file has as many as the run's features, else all but the target's position.
    """
    if cfg.data.header is False and _is_csv(input_path):
        count = _csv_width(input_path)
        features = len(saved.get("feature_names") or ()) or math.prod(want)
        if count is None or count == features:
            return None
        target = cfg.data.target if isinstance(cfg.data.target, int) else (
            int(cfg.data.target) if str(cfg.data.target).lstrip("-").isdigit() else -1)
        skip = target % count
        return [str(c) for c in range(count) if c != skip]
    if saved.get("feature_names") and _is_csv(input_path):
        return list(saved["feature_names"])
    header = _csv_header(input_path)
    if header and want and len(header) == math.prod(want) + 1:  # a labelled file: leave the target out
        target = cfg.data.target if cfg.data.target in header else header[-1]
        return [h for h in header if h != target]
    return None


def _csv_width(path) -> int | None:
    """The number of cells in the first row of a CSV file, or None when unreadable (its loader says why)."""
    row = _csv_header(path)
    return len(row) if row is not None else None


def _csv_header(path) -> list[str] | None:
    """The header row of a ``.csv`` file, or None (not a CSV, or unreadable: its loader says why)."""
    if Path(path).suffix.lower() != ".csv":
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _as_table(y: np.ndarray, loss, classes: list[str] | None = None) -> Predictions:
    """Classes and probabilities (or values) from raw outputs ``y`` (n, units); ``classes``: their names."""
    kind, logits = getattr(loss, "label_kind", None), getattr(loss, "from_logits", False)
    y = y.astype(np.float32, copy=False)

    def named(count):  # the names of the probability columns, and the classes to show (when they fit)
        fits = classes is not None and len(classes) <= count
        names = [f"prob_{c}" for c in classes] + [f"prob_{i}" for i in range(len(classes), count)] if fits else \
            [f"prob_{i}" for i in range(count)]
        return names, list(classes) + [str(i) for i in range(len(classes), count)] if fits else None

    if kind in ("sparse", "categorical"):
        probs = _softmax(y) if logits else y
        table = np.column_stack([np.argmax(probs, axis=1).astype(np.float32), probs])
        names, shown = named(y.shape[1])
        return Predictions(["class"] + names, table, "classification", shown)
    if kind == "binary":
        p = 0.5 * (1.0 + np.tanh(0.5 * y)) if logits else y  # sigmoid, stable for any logit
        if p.shape[1] == 1:
            table = np.column_stack([(p[:, 0] > 0.5).astype(np.float32), 1.0 - p, p])
            names, shown = named(2)
            return Predictions(["class"] + names, table, "classification", shown)
        return Predictions([f"prob_{i}" for i in range(p.shape[1])], p, "classification")  # multi-label
    names = ["value"] if y.shape[1] == 1 else [f"value_{i}" for i in range(y.shape[1])]
    return Predictions(names, y, "regression")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))  # (n, k) float32
    e /= e.sum(axis=1, keepdims=True)
    return e

