"""Memory-mapped .npy inputs: the same data and training as in memory, in a fraction of the memory."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nncli.data import NDArrayDataset, prepare_data
from nncli.data.mapped import MappedArray, MappedSamples
from nncli.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def write_pair(folder: Path, n=600, features=(12,), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(3.0, 2.0, (n, *features)) * 10).astype(dtype)
    y = rng.integers(0, 3, n)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return x, y


def prepared(folder, memory_map, normalize="standard", **kw):
    return prepare_data(source=str(folder / "x.npy"), labels=str(folder / "y.npy"), normalize=normalize,
                        validation_split=0.2, test_split=0.1, seed=3, num_classes=3, memory_map=memory_map, **kw)


@pytest.mark.parametrize("normalize", ["none", "standard", "minmax"])
@pytest.mark.parametrize("dtype, features", [(np.float32, (12,)), (np.uint8, (4, 4, 1)), (np.float64, (5,))])
def test_mapped_parts_equal_the_in_memory_ones_bit_for_bit(tmp_path, normalize, dtype, features):
    write_pair(tmp_path, features=features, dtype=dtype)
    mem, mapped = prepared(tmp_path, False, normalize), prepared(tmp_path, True, normalize)
    assert mem.mapped is None and isinstance(mapped.mapped, MappedArray)
    assert isinstance(mapped.x_train, MappedSamples) and mapped.x_train.shape == mem.x_train.shape
    for name in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(np.asarray(getattr(mapped, name)), getattr(mem, name), err_msg=name)
        np.testing.assert_array_equal(getattr(mapped, name.replace("x", "y")), getattr(mem, name.replace("x", "y")))
    assert mapped.normalizer.to_dict() == mem.normalizer.to_dict()
    assert mapped.input_shape == mem.input_shape == features


def test_statistics_in_chunks_match_numpy(tmp_path, monkeypatch):
    from nncli.data import normalize as prepare

    monkeypatch.setattr(prepare, "STATS_CHUNK_VALUES", 50)  # many chunks of 4 rows
    x, _ = write_pair(tmp_path)
    norm = prepare.Normalizer("standard").fit(x)
    np.testing.assert_allclose(norm.shift, x.mean(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(norm.scale, x.std(axis=0, dtype=np.float64), rtol=1e-6)
    mapped = prepare.Normalizer("standard").fit(MappedSamples(MappedArray(tmp_path / "x.npy"), np.arange(len(x))))
    assert mapped.to_dict() == norm.to_dict()


def test_shuffled_batches_are_the_same_and_resume_exactly(tmp_path):
    write_pair(tmp_path)
    mem, mapped = prepared(tmp_path, False), prepared(tmp_path, True)
    a = NDArrayDataset(mem.x_train, mem.y_train, batch_size=32, seed=5)
    b = NDArrayDataset(mapped.x_train, mapped.y_train, batch_size=32, seed=5)
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    state = b.get_state()
    expected = [x.copy() for x, _ in b]
    b.set_state(state)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in b]), np.concatenate(expected))


def test_pages_are_released_as_batches_are_read(tmp_path):
    write_pair(tmp_path, n=4000, features=(256,))
    source = MappedArray(tmp_path / "x.npy", budget=256 * 1024)
    samples = MappedSamples(source, np.random.default_rng(0).permutation(len(source)))
    for x, _ in NDArrayDataset(samples, batch_size=100, seed=0):
        assert x.shape == (100, 256)
    assert source.releases >= 10


CONFIG = """\
seed: 0
data: {{source: x.npy, labels: y.npy, normalize: standard, batch_size: 64, validation_split: 0.2,
        memory_map: {mm}}}
model:
  input_shape: [12]
  layers: [{{type: Dense, units: 16, activation: relu}}, {{type: Dropout, rate: 0.1}}, {{type: Dense, units: 3}}]
loss: {{type: SparseCategoricalCrossentropy, from_logits: true}}
optimizer: adam
train: {{epochs: {epochs}, metrics: [accuracy]}}
"""


def _train(folder, mm, epochs, run_id, resume=None):
    from nncli.train.session import train

    cfg = folder / f"{run_id}.yaml"
    cfg.write_text(CONFIG.format(mm=mm, epochs=epochs))
    return train(cfg, run_id=None if resume else run_id, runs_dir=folder / "runs", resume=resume)


def _weights(folder, run_id):
    from nncli.train.runs import load_checkpoint

    return load_checkpoint(folder / "runs" / run_id / "checkpoints" / "last.safetensors")[0]


def test_training_from_the_map_equals_training_in_memory_and_resumes_bit_for_bit(tmp_path):
    write_pair(tmp_path)
    _train(tmp_path, "false", 4, "memory")
    _train(tmp_path, "true", 4, "mapped")
    _train(tmp_path, "true", 2, "resumed")
    _train(tmp_path, "true", 4, "resumed", resume="resumed")
    memory, mapped, resumed = (_weights(tmp_path, r) for r in ("memory", "mapped", "resumed"))
    assert memory.keys() == mapped.keys() == resumed.keys()
    for key in memory:
        a, b, c = memory[key], mapped[key], resumed[key]
        if key == "run/history":  # one row per epoch; its last column is the epoch's wall time
            a, b, c = a[:, :-1], b[:, :-1], c[:, :-1]
        np.testing.assert_array_equal(b, a, err_msg=key)
        np.testing.assert_array_equal(c, a, err_msg=key)


def test_bad_mapped_files_are_named(tmp_path):
    x, y = write_pair(tmp_path)
    x[123, 4] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"x\.npy: features at index \(123, 4\): expected a finite float32 number"):
        prepared(tmp_path, True)
    np.save(tmp_path / "x.npy", np.asfortranarray(x))
    with pytest.raises(DataError, match=r"x\.npy: is stored column by column"):
        prepared(tmp_path, True)
    raw = (tmp_path / "x.npy").read_bytes()
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:len(raw) // 2])
    with pytest.raises(DataError, match=r"x\.npy: truncated"):
        prepared(tmp_path, True)
    (tmp_path / "x.npy").write_bytes(b"\x80\x04junk")
    with pytest.raises(DataError, match=r"x\.npy: is not \.npy or \.npz data"):
        prepared(tmp_path, True)
    (tmp_path / "d.csv").write_text("a,b\n1,0\n2,1\n3,0\n4,1\n5,0\n")
    with pytest.raises(DataError, match=r"d\.csv: `memory_map: true` maps \.npy features files"):
        prepare_data(source=str(tmp_path / "d.csv"), memory_map=True)
    with pytest.raises(DataError, match=r"data\.memory_map maps \.npy files"):
        prepare_data(source="iris", memory_map=True)
    assert prepare_data(source=str(tmp_path / "d.csv"), memory_map="auto").mapped is None


RSS_PROBE = """
import json, sys
import numpy as np
import matplotlib.pyplot  # loss.png: a library the run loads, part of the interpreter's memory
import nncli.train.session as session
from nncli.data.memory import PeakMemory
with PeakMemory() as m:
    result = session.train(sys.argv[1], runs_dir=sys.argv[2], run_id="big")
print(json.dumps({"above": m.above_start, "exact": m.exact, "status": result.status,
                  "releases": result.trainer.train_data.inputs.source.releases}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_training_on_a_mapped_file_keeps_resident_memory_under_a_quarter_of_it(tmp_path):
    rows, features = 40_960, 1024  # 168 MB of float32: the fixed cost of a run is far below a quarter
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(rows, features))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 4096):
        x[start:start + 4096] = rng.random((min(4096, rows - start), features), dtype=np.float32)
    x.flush()
    del x
    np.save(tmp_path / "y.npy", rng.integers(0, 3, rows))
    cfg = tmp_path / "big.yaml"
    cfg.write_text(CONFIG.format(mm="true", epochs=2).replace("[12]", f"[{features}]").replace("64", "256"))
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(cfg), str(tmp_path / "runs")], capture_output=True,
                         text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    size = (tmp_path / "x.npy").stat().st_size
    assert result["status"] == "completed" and result["exact"] and result["releases"] > 0
    assert result["above"] < size / 4, f"peak {result['above'] / 1e6:.0f} MB above the start, file {size / 1e6:.0f} MB"
