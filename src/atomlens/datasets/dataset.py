"""A cached graph data set, memory-mapped from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atomlens.datasets.cache import read_manifest
from atomlens.errors import DataError
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import FIELDS


class GraphDataset:
    """Graphs and labels of one cache entry; arrays are memory-mapped (loaded on touch).

    Attributes:
        path: The cache entry folder.
        manifest: Its manifest (parameters, versions, counts).
        arrays: Name -> array, see ``atomlens.datasets.cache``.
    """

    def __init__(self, path: Path | str, *, mmap: bool = True):
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        mode = "r" if mmap else None
        self.arrays: dict[str, np.ndarray] = {}
        for name in self.manifest["arrays"]:
            file = self.path / f"{name}.npy"
            if not file.is_file():
                raise DataError(f"cache entry '{self.path}' is missing '{file.name}'; rebuild it")
            self.arrays[name] = np.load(file, mmap_mode=mode, allow_pickle=False)

    def __len__(self) -> int:
        return int(self.manifest["n_graphs"])

    @property
    def target_names(self) -> list[str]:
        """Names of the label columns."""
        return list(self.manifest["targets"])

    @property
    def targets(self) -> np.ndarray:
        """Labels (G, T)."""
        return self.arrays["targets"]

    @property
    def ids(self) -> np.ndarray:
        """Identifier of each graph."""
        return self.arrays["ids"]

    def graph(self, index: int) -> Graph:
        """The graph at ``index`` as a Graph object (every schema field the entry holds)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
        index %= len(self)
        a = self.arrays
        rows = {
            "graph": index,
            "node": slice(int(a["atom_ptr"][index]), int(a["atom_ptr"][index + 1])),
            "edge": slice(int(a["edge_ptr"][index]), int(a["edge_ptr"][index + 1])),
        }
        return Graph(
            **{spec.name: a[spec.name][rows[spec.level]] for spec in FIELDS if spec.name in a}
        )

    @property
    def has_symmetry(self) -> bool:
        """True when the entry was built with space groups and site symmetry."""
        return "space_group" in self.arrays

    def summary(self) -> dict[str, Any]:
        """Counts and statistics for display."""
        a = self.arrays
        atoms = np.diff(a["atom_ptr"])
        degree = np.diff(a["edge_ptr"]) / np.maximum(atoms, 1)
        elements, counts = np.unique(np.asarray(a["numbers"]), return_counts=True)
        return {
            "graphs": len(self),
            "atoms": int(a["atom_ptr"][-1]),
            "edges": int(a["edge_ptr"][-1]),
            "atoms_per_graph": float(atoms.mean()),
            "mean_degree": float(a["edge_ptr"][-1] / max(int(a["atom_ptr"][-1]), 1)),
            "degree_range_per_graph": [float(degree.min()), float(degree.max())],
            "elements": {int(z): int(c) for z, c in zip(elements, counts, strict=True)},
            "skipped": len(self.manifest["skipped"]),
            "kind": self.manifest["graph"]["kind"],
            "targets": self.target_names,
        }
