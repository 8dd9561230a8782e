"""Training-curve plots: formats, sizes, not blank, the right lines on the right axes, labels."""

import csv
import json

import numpy as np
import pytest
from matplotlib.image import imread

from nncli.errors import NncliError, RunError
from nncli.train.plot import (DPI, PANEL_HEIGHT, PANEL_WIDTH, diff_labels, flatten_config, load_curves,
                              make_figure, moving_average, plot_run_ids, plot_runs)
from nncli.train.session import train

XOR = """\
seed: 1
data: {{source: xor, samples: 120, validation_split: 0.25, batch_size: 32}}
model:
  input_shape: [2]
  layers: [{{type: Dense, units: 8, activation: tanh}}, {{type: Dense, units: 2}}]
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: {{type: Adam, learning_rate: {lr}}}
train: {{epochs: {epochs}, metrics: [accuracy]}}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs: 3 epochs at lr 0.05, 5 epochs at lr 0.01, and one resumed from 2 to 4 epochs."""
    root = tmp_path_factory.mktemp("plot")
    runs_dir = root / "runs"
    paths = {}
    for name, lr, epochs in (("fast", 0.05, 3), ("slow", 0.01, 5), ("resumed", 0.02, 2)):
        config = root / f"{name}.yaml"
        config.write_text(XOR.format(lr=lr, epochs=epochs))
        paths[name] = train(config, runs_dir=runs_dir, run_id=name, argv=[]).run.path
    train(root / "resumed.yaml", overrides=["train.epochs=4"], runs_dir=runs_dir, resume="resumed", argv=[])
    return runs_dir, paths


def metrics(path):
    with open(path / "metrics.csv") as f:
        return list(csv.DictReader(f))


def curves(ax):
    return [line for line in ax.get_lines() if line.get_gid() == "curve"]


def marks(ax):
    return [line for line in ax.get_lines() if line.get_gid() == "best"]


def test_one_run_png_is_written_by_default_into_the_run_with_a_readable_size(runs):
    _, paths = runs
    out = plot_runs([paths["fast"]])
    assert out == paths["fast"] / "loss.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(out)
    # two panels side by side: one row of PANEL_WIDTH x PANEL_HEIGHT inches
    assert pixels.shape[:2] == (round(PANEL_HEIGHT * DPI), round(PANEL_WIDTH * DPI))
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_one_run_has_a_panel_per_metric_with_train_validation_and_the_best_epoch(runs):
    _, paths = runs
    run = load_curves(paths["slow"])
    fig = make_figure([run])
    loss_ax, acc_ax = [ax for ax in fig.axes if ax.get_visible()]
    assert loss_ax.get_title().startswith("loss") and acc_ax.get_title() == "accuracy"
    rows = metrics(paths["slow"])
    epochs = [int(r["epoch"]) for r in rows]
    for ax, column in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        train_line, val_line = curves(ax)
        assert train_line.get_xdata().tolist() == epochs
        np.testing.assert_allclose(train_line.get_ydata(), [float(r[column]) for r in rows])
        np.testing.assert_allclose(val_line.get_ydata(), [float(r[f"val_{column}"]) for r in rows])
        assert val_line.get_linestyle() == "--"
        assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["train", "validation"]
    best = json.loads((paths["slow"] / "run.json").read_text())["best"]
    # a vertical line at the best epoch in both panels; the monitored (val_loss) panel also marks the point
    assert len(marks(loss_ax)) == 2 and len(marks(acc_ax)) == 1
    assert list(marks(acc_ax)[0].get_xdata()) == [best["epoch"], best["epoch"]]
    point = marks(loss_ax)[1]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (best["epoch"], pytest.approx(best["value"]))
    assert fig.axes[0].get_xlabel() == "epoch" and "slow" in fig._suptitle.get_text()


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<svg"), (".pdf", b"%PDF-"), (".PNG", b"\x89PNG")])
def test_format_follows_the_extension(runs, tmp_path, suffix, magic):
    _, paths = runs
    out = plot_runs([paths["fast"]], out=tmp_path / "sub" / f"curves{suffix}")
    data = out.read_bytes()
    assert magic in data[:400] and len(data) > 5000
    if suffix == ".svg":
        assert data.startswith(b"<?xml")


def test_other_extensions_are_refused_with_the_allowed_ones(runs, tmp_path):
    _, paths = runs
    with pytest.raises(NncliError, match=r"\.png, \.svg, \.pdf, found '\.jpg'"):
        plot_runs([paths["fast"]], out=tmp_path / "curves.jpg")
    assert not (tmp_path / "curves.jpg").exists()


def test_several_runs_overlay_with_labels_from_config_differences(runs):
    runs_dir, paths = runs
    fig = make_figure([load_curves(paths["fast"]), load_curves(paths["slow"])])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["optimizer.learning_rate=0.05, train.epochs=3", "optimizer.learning_rate=0.01, train.epochs=5"]
    loss_ax = fig.axes[0]
    lines = curves(loss_ax)
    assert len(lines) == 4  # train + validation per run
    assert [len(line.get_xdata()) for line in lines] == [3, 3, 5, 5]  # different lengths, each its own epochs
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert len(marks(loss_ax)) == 2  # one best-epoch marker per run
    out = plot_runs([paths["fast"], paths["slow"]])
    assert out == runs_dir / "compare-fast_vs_slow.png" and imread(out)[..., :3].std() > 0.05


def test_a_resumed_run_draws_each_epoch_once(runs):
    _, paths = runs
    run = load_curves(paths["resumed"])
    assert run.info["resumed"] and run.info["epochs_done"] == 4
    train_line = curves(make_figure([run], metric="loss").axes[0])[0]
    assert train_line.get_xdata().tolist() == [1, 2, 3, 4]


def test_metric_option_keeps_one_panel_and_names_the_choices(runs):
    _, paths = runs
    run = load_curves(paths["fast"])
    fig = make_figure([run], metric="val_accuracy")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "accuracy"
    assert fig.get_size_inches().tolist() == [PANEL_WIDTH, PANEL_HEIGHT]
    with pytest.raises(NncliError, match="no metric 'f1'.*loss, accuracy"):
        make_figure([run], metric="f1")


def test_log_y_and_smoothing(runs):
    _, paths = runs
    run = load_curves(paths["slow"])
    ax = make_figure([run], metric="loss", log_y=True, smooth=3).axes[0]
    assert ax.get_yscale() == "log" and "moving average of 3" in ax.get_title()
    np.testing.assert_allclose(curves(ax)[0].get_ydata(), moving_average(run.columns["loss"], 3))
    with pytest.raises(NncliError, match="--smooth"):
        make_figure([run], smooth=0)


def test_moving_average_matches_a_plain_loop():
    y = np.array([4.0, 2.0, np.nan, 8.0, 1.0, 3.0])
    for n in (1, 2, 3, 10):
        expected = [np.nan if np.isnan(y[i]) else np.nanmean(y[max(0, i - n + 1):i + 1]) for i in range(len(y))]
        np.testing.assert_allclose(moving_average(y, n), expected)


def test_labels_fall_back_to_ids_for_identical_configs_and_cap_the_differences():
    assert diff_labels([{"a": 1}, {"a": 1}], ["run-a", "run-b"]) == ["run-a", "run-b"]
    many = diff_labels([{"a": 1, "b": 1, "c": 1, "d": 1}, {"a": 2, "b": 2, "c": 2, "d": 2}], ["x", "y"])
    assert many == ["a=1, b=1, c=1, +1 more", "a=2, b=2, c=2, +1 more"]
    assert diff_labels([{"m": [{"u": 8}]}, {"m": [{"u": 8}, {"u": 2}]}], ["x", "y"]) == ["m[1].u=(unset)", "m[1].u=2"]
    flat = flatten_config({"model": {"input_shape": [4], "layers": [{"type": "Dense", "units": 8}]}})
    assert flat == {"model.input_shape": [4], "model.layers[0].type": "Dense", "model.layers[0].units": 8}


def test_a_run_without_epochs_and_unknown_ids_are_clear_errors(runs, tmp_path):
    runs_dir, paths = runs
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "run.json").write_text(json.dumps({"run_id": "empty", "status": "running"}))
    (empty / "metrics.csv").write_text("")
    with pytest.raises(RunError, match="no epochs to plot yet"):
        plot_runs([empty])
    with pytest.raises(RunError, match="Closest: fast"):
        plot_run_ids(runs_dir, ["fats"])
    assert plot_run_ids(runs_dir, ["fast", "fast"], out=tmp_path / "one.svg") == tmp_path / "one.svg"
