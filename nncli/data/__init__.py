"""Data for nncli: built-in sets, file loaders, splitting and normalization, mini-batches.

    from nncli.data import prepare_data, NDArrayDataset
    data = prepare_data(source="digits", normalize="standard", num_classes=10)
    for x, y in NDArrayDataset(data.x_train, data.y_train, batch_size=64, seed=0):
        ...
"""

from nncli.data.builtin import BUILTIN_SETS, load_builtin
from nncli.data.csvfile import CsvTable, read_table
from nncli.data.datasets import NDArrayDataset
from nncli.data.loaders import LoadedData, load_csv, load_file, load_idx, load_inputs, load_npy_pair, load_npz, read_idx
from nncli.data.mapped import MappedArray, MappedSamples
from nncli.data.normalize import Normalizer
from nncli.data.prepare import PreparedData, prepare_data
from nncli.data.summary import summarize

__all__ = [
    "BUILTIN_SETS",
    "CsvTable",
    "LoadedData",
    "MappedArray",
    "MappedSamples",
    "NDArrayDataset",
    "Normalizer",
    "PreparedData",
    "load_builtin",
    "load_csv",
    "load_file",
    "load_idx",
    "load_inputs",
    "load_npy_pair",
    "load_npz",
    "prepare_data",
    "read_idx",
    "read_table",
    "summarize",
]
