"""Data: multi-task datasets, loaders, tabular preprocessing and built-in datasets."""

from mtlkit.data.builtin import DATASETS, load_dataset
from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.datasets import MultiInputDataset, MultiTaskDataset
from mtlkit.data.loaders import SAMPLING_RULES, BatchLoader, make_loader
from mtlkit.data.tabular import EmbeddingSpec, TabularPreprocessor

__all__ = [
    "DATASETS",
    "SAMPLING_RULES",
    "BatchLoader",
    "DatasetBundle",
    "EmbeddingSpec",
    "MultiInputDataset",
    "MultiTaskDataset",
    "TabularPreprocessor",
    "load_dataset",
    "make_loader",
]
