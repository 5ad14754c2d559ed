"""Data sets: sources with labels, the on-disk graph cache, splits."""

from atomlens.datasets.cache import build_graph_cache, make_params, read_manifest
from atomlens.datasets.dataset import GraphDataset
from atomlens.datasets.sources import Source, load_source
from atomlens.datasets.splits import Split, random_split, target_statistics

__all__ = [
    "GraphDataset",
    "Source",
    "Split",
    "build_graph_cache",
    "load_source",
    "make_params",
    "random_split",
    "read_manifest",
    "target_statistics",
]
