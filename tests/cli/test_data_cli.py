"""`nncli data CONFIG`: what a config loads, through the Typer app."""

import json

import numpy as np
from typer.testing import CliRunner

from nncli.cli import app

runner = CliRunner()
MODEL = "model: {input_shape: [8], layers: [{type: Dense, units: 3}]}\n" \
        "loss: {type: SparseCategoricalCrossentropy, from_logits: true}\noptimizer: adam\n"


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_data_prints_parts_classes_ranges_time_and_memory(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (300, 8)).astype(np.uint8))
    np.save(tmp_path / "y.npy", np.arange(300) % 3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: x.npy, labels: y.npy, memory_map: true, normalize: minmax}\n" + MODEL)
    result = cli("data", cfg)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # Rich wraps long lines
    for text in ("memory-mapped:", "of uint8", "train", "validation", "(240, 8)", "float32", "3 classes",
                 "features: 8 per sample", "as loaded", "normalize: minmax -> ", "loaded in", "peak memory"):
        assert text in out, (text, out)
    report = json.loads(cli("data", cfg, "--json").output)
    assert report["parts"]["train"]["samples"] == 240
    assert sum(report["parts"]["validation"]["classes"].values()) == 60
    assert report["features"]["max"] <= 255 and report["memory_mapped"]["dtype"] == "uint8"
    assert report["load_seconds"] > 0 and report["peak_memory_bytes"] >= 0


def test_data_with_bad_data_exits_2_naming_the_cell(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: d.csv}\n" + MODEL.replace("[8]", "[2]"))
    result = cli("data", cfg)
    assert result.exit_code == 2
    assert "d.csv: row 3, column 2 ('b'): expected a number, found 'x'" in " ".join(result.output.split())
