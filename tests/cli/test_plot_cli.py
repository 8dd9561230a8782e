"""`nncli plot` on real runs made by `nncli train`: a compare plot fit for a report."""

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from nncli.cli import app
from nncli.train.plot import load_curves, make_figure

runner = CliRunner()

CONFIG = """\
seed: 0
data: {source: line.csv, normalize: standard, batch_size: 16}
model: {input_shape: [3], layers: [{type: Dense, units: 16, activation: relu}, {type: Dense, units: 1}]}
loss: mse
optimizer: {type: sgd, learning_rate: 0.01}
train: {epochs: 6, metrics: [r2]}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """run-2 and run-10 (two learning rates), run-1 (one epoch), and 'wild', which diverges and fails."""
    root = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = x @ [3.0, -2.0, 1.0] + 1
    np.savetxt(root / "line.csv", np.c_[x, y], delimiter=",", header="a,b,c,y", comments="", fmt="%.5f")
    (root / "cfg.yaml").write_text(CONFIG)
    for run_id, overrides, code in (("run-10", ["optimizer.learning_rate=0.003"], 0), ("run-2", [], 0),
                                    ("run-1", ["train.epochs=1"], 0), ("wild", ["optimizer.learning_rate=0.26", "seed=1", "train.epochs=12"], 1)):
        args = [a for o in overrides for a in ("--set", o)]
        result = cli("train", root / "cfg.yaml", "--runs-dir", root / "runs", "--run-id", run_id, "--quiet", *args)
        assert result.exit_code == code, result.output
    return root / "runs"


def test_compare_plot_of_real_runs(runs, tmp_path):
    result = cli("plot", "wild", "run-10", "run-2", "run-1", "--runs-dir", runs, "--log-y", "--out",
                 tmp_path / "report.png")
    assert result.exit_code == 0, result.output
    assert imread(tmp_path / "report.png")[..., :3].std() > 0.05
    fig = make_figure([load_curves(runs / r) for r in ("wild", "run-10", "run-2", "run-1")], log_y=True)
    loss_ax, r2_ax = fig.axes[:2]
    table = next(ax for ax in fig.axes if ax.get_gid() == "table").tables[0].get_celld()
    column = [table[row, 1].get_text().get_text() for row in range(5)]
    assert column == ["run", "run-1", "run-2", "run-10", "wild (failed)"]  # natural order, the failed run marked
    header = [table[0, c].get_text().get_text().replace("\n", "") for c in range(5)]
    assert header[2:] == ["seed", "optimizer.learning_rate", "train.epochs"]  # every key that differs
    assert loss_ax.get_title() == "loss (MeanSquaredError)"
    assert (loss_ax.get_yscale(), r2_ax.get_yscale()) == ("log", "linear")
    assert any("wild clipped: rises to" in t.get_text() for t in loss_ax.texts)
    assert [line for line in loss_ax.get_lines() if line.get_gid() == "failed"]
    one_epoch = [line for line in loss_ax.get_lines() if line.get_gid() == "curve" and len(line.get_xdata()) == 1]
    assert one_epoch and all(line.get_marker() == "o" for line in one_epoch)
