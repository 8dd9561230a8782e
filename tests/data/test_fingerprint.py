"""Data fingerprints cover every file a data: section names, the validation and test files included."""

import numpy as np

from nncli.data.fingerprint import data_fingerprint, fingerprint_changes


def test_a_builtin_source_with_a_validation_file(tmp_path):
    x = np.zeros((4, 4), np.float32)
    np.savez(tmp_path / "v.npz", x=x, y=np.zeros(4))
    before = data_fingerprint("iris", base_dir=tmp_path, validation="v.npz")
    assert before["kind"] == "builtin" and [f["role"] for f in before["files"]] == ["validation"]
    assert fingerprint_changes(before, data_fingerprint("iris", base_dir=tmp_path, validation="v.npz")) == []
    np.savez(tmp_path / "v.npz", x=x + 1, y=np.zeros(4))
    changes = fingerprint_changes(before, data_fingerprint("iris", base_dir=tmp_path, validation="v.npz"))
    assert len(changes) == 1 and changes[0].startswith(f"{tmp_path / 'v.npz'} has changed")
    assert fingerprint_changes(before, data_fingerprint("iris")) == [f"the validation file {tmp_path / 'v.npz'} was used then"]
