"""Training-curve plots: formats, sizes, not blank, the right lines on the right axes, labels."""

import csv
import json

import numpy as np
import pytest
from matplotlib.image import imread

from nncli.errors import NncliError, RunError
from nncli.train.curves import RunCurves, natural_key
from nncli.train.plot import (DPI, PANEL_HEIGHT, PANEL_WIDTH, diff_table, flatten_config, load_curves,
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


def table_rows(fig):
    """The cell texts of the config-difference table under a compare plot, row by row."""
    ax = next(ax for ax in fig.axes if ax.get_gid() == "table")
    cells = ax.tables[0].get_celld()
    rows = 1 + max(r for r, _ in cells)
    return [[cells[r, c].get_text().get_text().replace("\n", "") for c in range(1 + max(c for _, c in cells))]
            for r in range(rows)]


def test_several_runs_overlay_with_a_table_of_config_differences(runs):
    runs_dir, paths = runs
    fig = make_figure([load_curves(paths["slow"]), load_curves(paths["fast"])])
    assert table_rows(fig) == [["", "run", "optimizer.learning_rate", "train.epochs"],
                               ["━━", "fast", "0.05", "3"], ["━━", "slow", "0.01", "5"]]  # natural order
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


def test_every_differing_key_is_in_the_table_and_none_for_identical_configs():
    assert diff_table([{"a": 1}, {"a": 1}]) == ([], [[], []])
    keys, values = diff_table([{"a": 1, "b": 1, "c": 1, "d": 1, "e": "x"}, {"a": 2, "b": 2, "c": 2, "d": 2, "e": "y"}])
    assert keys == ["a", "b", "c", "d", "e"] and values == [["1", "1", "1", "1", "x"], ["2", "2", "2", "2", "y"]]
    assert diff_table([{"m": [{"u": 8}]}, {"m": [{"u": 8}, {"u": 2}]}]) == (["m[1].u"], [["(unset)"], ["2"]])
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


# ---- compare plots fit for a report -----------------------------------------------------------------
def fake_run(run_id, loss, val_loss=None, accuracy=None, status="completed", config=None):
    """A run's curves as a plot reads them, without training (the values are what is being tested)."""
    columns = {"epoch": np.arange(1, len(loss) + 1, dtype=np.float64), "loss": np.array(loss, dtype=np.float64)}
    if val_loss is not None:
        columns["val_loss"] = np.array(val_loss, dtype=np.float64)
    if accuracy is not None:
        columns["accuracy"] = np.array(accuracy, dtype=np.float64)
    info = {"status": status, "epochs_done": len(loss), "epochs": len(loss), "best": {}}
    return RunCurves(run_id, columns, info, config or {"loss": {"type": "MeanSquaredError"}, "id": run_id})


def test_runs_are_drawn_in_natural_order_of_their_ids():
    assert sorted(["run-10", "run-2", "run-1", "b"], key=natural_key) == ["b", "run-1", "run-2", "run-10"]
    fig = make_figure([fake_run(i, [1.0, 0.5]) for i in ("run-10", "run-2", "run-1")])
    assert [row[1] for row in table_rows(fig)[1:]] == ["run-1", "run-2", "run-10"]
    assert [line.get_color() for line in curves(fig.axes[0])] == ["C0", "C1", "C2"]


def test_the_loss_title_names_each_runs_own_loss_and_each_kind_has_its_panel():
    huber = fake_run("b", [2.0, 1.0], config={"loss": {"type": "Huber"}})
    assert make_figure([huber]).axes[0].get_title() == "loss (Huber)"
    assert make_figure([huber, fake_run("c", [3.0, 1.0], config={"loss": {"type": "Huber"}})]).axes[0].get_title() \
        == "loss (Huber)"
    # losses of different kinds have different scales: one panel each, not one axis and a false "clipped"
    mse = fake_run("a", [3e4, 2e4])
    fig = make_figure([mse, huber])
    titles = [ax.get_title() for ax in fig.axes if ax.get_gid() != "table"]
    assert titles == ["loss (MeanSquaredError)", "loss (Huber)"]
    assert [curves(ax)[0].get_ydata().tolist() for ax in fig.axes[:2]] == [[3e4, 2e4], [2.0, 1.0]]
    assert [len(curves(ax)) for ax in fig.axes[:2]] == [1, 1]
    assert not [t for ax in fig.axes for t in ax.texts if t.get_gid() == "clip-note"]
    assert [ax.get_title() for ax in make_figure([mse, huber], metric="loss").axes[:2]] == titles


def test_a_table_of_many_differing_keys_has_a_row_per_key_and_nothing_overflows_its_cell():
    configs = [{f"train.key_{k}": f"value-{i}-{k}" for k in range(9)} | {"data.source": f"/some/long/folder/set{i}.csv"}
               for i in range(3)]
    runs = [fake_run(f"run-{i}", [1.0, 0.5], config={"loss": "mse", **c}) for i, c in enumerate(configs)]
    fig = make_figure(runs)
    rows = table_rows(fig)
    assert rows[0] == ["key", "run-0", "run-1", "run-2"] and len(rows) == 11  # the header, then the 10 keys
    assert rows[1] == ["train.key_0", "value-0-0", "value-1-0", "value-2-0"]
    assert ["data.source", "/some/long/folder/set0.csv", "/some/long/folder/set1.csv",
            "/some/long/folder/set2.csv"] in rows
    table = next(ax for ax in fig.axes if ax.get_gid() == "table").tables[0]
    assert [table[0, c].get_text().get_color() for c in (1, 2, 3)] == ["C0", "C1", "C2"]  # each run's colour
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for cell in table.get_celld().values():  # every text inside its cell
        assert cell.get_text().get_window_extent(renderer).width <= cell.get_window_extent(renderer).width


def test_log_y_applies_to_loss_axes_only():
    fig = make_figure([fake_run("a", [1.0, 0.5, 0.2], accuracy=[0.3, 0.6, 0.9]),
                       fake_run("b", [1.0, 0.7, 0.4], accuracy=[0.2, 0.5, 0.7])], log_y=True)
    loss_ax, acc_ax = fig.axes[:2]
    assert (loss_ax.get_yscale(), acc_ax.get_yscale()) == ("log", "linear")


def test_a_failed_run_is_marked_and_a_diverged_one_is_clipped_with_a_note():
    healthy = fake_run("ok", [2.3, 1.2, 0.6, 0.3], val_loss=[2.2, 1.3, 0.7, 0.4])
    diverged = fake_run("wild", [2.3, 40.0, 9e4, 3e8, np.nan], status="failed")
    fig = make_figure([healthy, diverged])
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert 2.3 <= top < 3.5 and bottom < 0.3  # the healthy curves fill the panel
    note = next(t for t in ax.texts if t.get_gid() == "clip-note").get_text()
    assert note == "wild clipped: rises to 3e+08"
    assert [tuple(m.get_xdata()) for m in ax.get_lines() if m.get_gid() == "clipped"] == [(2.0,)]
    failed = [m for m in ax.get_lines() if m.get_gid() == "failed"]
    assert len(failed) == 1 and failed[0].get_xdata()[0] == 4 and failed[0].get_marker() == "x"
    assert table_rows(fig)[2][1] == "wild (failed)"
    alone = make_figure([fake_run("steady", [2.3, 1.0, 0.5]), fake_run("calm", [2.0, 1.1, 0.9])]).axes[0]
    assert not [t for t in alone.texts if t.get_gid() == "clip-note"]  # nothing diverged: nothing clipped


def test_a_metric_that_is_maximised_is_clipped_downwards():
    runs = [fake_run("ok", [1.0, 0.5, 0.3]), fake_run("bad", [1.0, 50.0, 9e9])]
    for run, r2 in zip(runs, ([0.1, 0.6, 0.8], [0.0, -1e6, -1e12])):
        run.columns["r2"] = np.array(r2)
    r2_ax = make_figure(runs, metric="r2").axes[0]
    bottom, top = r2_ax.get_ylim()
    assert -2 < bottom < 0 and top < 1.5
    assert "bad clipped: falls to -1e+12" in [t.get_text() for t in r2_ax.texts]


def test_a_single_epoch_run_is_drawn_with_markers():
    fig = make_figure([fake_run("one", [0.9], val_loss=[1.0]), fake_run("three", [1.0, 0.6, 0.4])])
    one, one_val, three = curves(fig.axes[0])
    assert one.get_marker() == "o" and one_val.get_marker() == "o" and three.get_marker() in (None, "None", "")
    single = make_figure([fake_run("one", [0.9])]).axes[0]
    assert single.get_xlim() == (0.5, 1.5)
