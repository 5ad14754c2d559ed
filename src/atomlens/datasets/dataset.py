"""Cached graphs as a data set: a view of chosen records over memory-mapped cache shards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.datasets.cache import read_manifest, shard_folders
from atomlens.errors import DataError
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import FIELDS

# Level of every array of a cache shard that is not a schema field (the pointers are special).
_LEVELS = {spec.name: spec.level for spec in FIELDS} | {
    "targets": "graph",
    "ids": "graph",
    "record_index": "graph",
}
_POINTERS = ("atom_ptr", "edge_ptr")


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each start/count pair, vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return (offsets + np.arange(total)).astype(np.int64)


class GraphDataset:
    """Graphs and labels of chosen records of one or more cache entries.

    The arrays stay memory-mapped in their shards (see :mod:`atomlens.datasets.cache`);
    :meth:`take` gathers the rows a batch needs. Row ``k`` of the data set is the ``k``-th
    record of the view: by default every record the entry holds a graph for, in record
    order; with ``records``, exactly those source records, in the given order.

    Attributes:
        path: The (first) cache entry folder.
        manifest: Its manifest (parameters, versions, counts, skipped records).
        arrays: Name -> array over the data set's rows (``atom_ptr``/``edge_ptr`` index the
            concatenated atoms and edges). Memory-mapped when the view is one whole shard,
            else gathered on first access: batches should use :meth:`take`.
    """

    def __init__(
        self, path: Path | str, *, records: np.ndarray | None = None, mmap: bool = True
    ) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        mode = "r" if mmap else None
        self._shards: list[dict[str, np.ndarray]] = []
        for folder in shard_folders(self.path, self.manifest):
            arrays = {}
            for name in self.manifest["arrays"]:
                file = folder / f"{name}.npy"
                if not file.is_file():
                    raise DataError(f"cache entry '{self.path}' is missing '{file}'; rebuild it")
                arrays[name] = np.load(file, mmap_mode=mode, allow_pickle=False)
            self._shards.append(arrays)
        shard_of = np.concatenate(
            [np.full(len(s["record_index"]), k, np.int64) for k, s in enumerate(self._shards)]
            or [np.empty(0, np.int64)]
        )
        local = np.concatenate(
            [np.arange(len(s["record_index"]), dtype=np.int64) for s in self._shards]
            or [np.empty(0, np.int64)]
        )
        built = np.concatenate(
            [np.asarray(s["record_index"], np.int64) for s in self._shards]
            or [np.empty(0, np.int64)]
        )
        order = np.argsort(built, kind="stable")
        if records is None:
            chosen = order
        else:
            records = np.asarray(records, dtype=np.int64).reshape(-1)
            at = np.searchsorted(built[order], records)
            found = at < built.size
            found[found] = built[order][at[found]] == records[found]
            if not found.all():
                record = int(records[~found][0])
                raise DataError(
                    f"record {record} of '{self.manifest['source']['name']}' has no graph in "
                    f"'{self.path}' ({int((~found).sum())} of {records.size} records missing)"
                )
            chosen = order[at]
        self._shard = shard_of[chosen]
        self._local = local[chosen]
        self._arrays: dict[str, np.ndarray] = {}
        self._whole = self._whole_shard()
        self.arrays: Mapping[str, np.ndarray] = _ViewArrays(self)

    @classmethod
    def join(cls, parts: list[GraphDataset]) -> GraphDataset:
        """One data set whose rows are those of ``parts``, one after the other.

        Path and manifest are the first part's (all parts must hold the same targets).
        """
        if not parts:
            raise ValueError("nothing to join")
        names = {tuple(p.manifest["targets"]) for p in parts}
        if len(names) > 1:
            raise DataError(f"cannot join cache entries with different targets {sorted(names)}")
        joined = cls.__new__(cls)
        joined.path, joined.manifest = parts[0].path, parts[0].manifest
        joined._shards, shard_ids = [], []
        for part in parts:
            shard_ids.append(part._shard + len(joined._shards))
            joined._shards.extend(part._shards)
        joined._shard = np.concatenate(shard_ids)
        joined._local = np.concatenate([p._local for p in parts])
        joined._arrays = {}
        joined._whole = joined._whole_shard()
        joined.arrays = _ViewArrays(joined)
        return joined

    def __len__(self) -> int:
        return int(self._shard.size)

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

    @property
    def records(self) -> np.ndarray:
        """Source record index of each row."""
        return self.arrays["record_index"]

    def take(self, rows: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays (default: all) of the graphs at ``rows``, in order, from their shards.

        Graph-level arrays have one row per graph; atom and edge arrays are concatenated
        and ``atom_ptr``/``edge_ptr`` (always returned) index them, starting at 0.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row out of range for {len(self)} graphs")
        shard, local = self._shard[rows], self._local[rows]
        used = np.unique(shard)
        if used.size <= 1:
            return _gather(self._shards[int(used[0]) if used.size else 0], local, names)
        # Gather shard by shard, then put the graphs back in the requested order.
        grouped = np.argsort(shard, kind="stable")
        parts = [
            _gather(self._shards[int(s)], local[grouped][shard[grouped] == s], names) for s in used
        ]
        merged = {
            name: np.concatenate([p[name] for p in parts]) for name in parts[0] if name in _LEVELS
        }
        position = np.empty_like(grouped)
        position[grouped] = np.arange(grouped.size)
        count = {
            level: np.concatenate([np.diff(p[ptr]) for p in parts])[position]
            for level, ptr in (("node", "atom_ptr"), ("edge", "edge_ptr"))
        }
        start = {
            level: np.concatenate(
                [[0], np.cumsum(np.concatenate([np.diff(p[ptr]) for p in parts]))[:-1]]
            )[position].astype(np.int64)
            for level, ptr in (("node", "atom_ptr"), ("edge", "edge_ptr"))
        }
        out = {}
        for name, values in merged.items():
            level = _LEVELS[name]
            index = position if level == "graph" else ranges(start[level], count[level])
            out[name] = values[index]
        out["atom_ptr"] = _pointer(count["node"])
        out["edge_ptr"] = _pointer(count["edge"])
        return out

    def graph(self, index: int) -> Graph:
        """The graph at ``index`` as a Graph object (every schema field the entry holds)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
        a = self.take(np.array([index % len(self)]))
        return Graph(
            **{spec.name: _one(a[spec.name], spec.level) for spec in FIELDS if spec.name in a}
        )

    @property
    def has_symmetry(self) -> bool:
        """True when the entry was built with space groups and site symmetry."""
        return "space_group" in self.manifest["arrays"]

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
            "atoms_per_graph": float(atoms.mean()) if atoms.size else 0.0,
            "mean_degree": float(a["edge_ptr"][-1] / max(int(a["atom_ptr"][-1]), 1)),
            "degree_range_per_graph": [
                float(degree.min()) if degree.size else 0.0,
                float(degree.max()) if degree.size else 0.0,
            ],
            "elements": {int(z): int(c) for z, c in zip(elements, counts, strict=True)},
            "skipped": len(self.manifest["skipped"]),
            "kind": self.manifest["graph"]["kind"],
            "targets": self.target_names,
        }

    def _whole_shard(self) -> dict[str, np.ndarray] | None:
        """The one shard this view is, row for row (None when it is not)."""
        if len(self._shards) != 1:
            return None
        shard = self._shards[0]
        n = len(shard["record_index"])
        if self._local.size == n and np.array_equal(self._local, np.arange(n)):
            return shard
        return None


class _ViewArrays(Mapping):
    """``GraphDataset.arrays``: a whole shard's memory maps, or arrays gathered once."""

    def __init__(self, dataset: GraphDataset) -> None:
        self._dataset = dataset

    def __getitem__(self, name: str) -> np.ndarray:
        dataset = self._dataset
        if name not in dataset.manifest["arrays"]:
            raise KeyError(name)
        whole = dataset._whole
        if whole is not None:
            return whole[name]
        if name not in dataset._arrays:
            level = _LEVELS.get(name)
            if level == "graph":  # cheap: no atoms or edges gathered
                dataset._arrays[name] = _graph_level(dataset, name)
            else:  # only this array (and the pointers) gathered
                dataset._arrays.update(dataset.take(np.arange(len(dataset)), [name]))
        return dataset._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dataset.manifest["arrays"])

    def __len__(self) -> int:
        return len(self._dataset.manifest["arrays"])


def _graph_level(dataset: GraphDataset, name: str) -> np.ndarray:
    """A graph-level array over the rows of ``dataset``."""
    shards = dataset._shards
    if not len(dataset):
        return shards[0][name][:0] if shards else np.empty(0)
    dtype = np.result_type(*(shard[name].dtype for shard in shards))  # e.g. widest id
    out = np.empty((len(dataset), *shards[0][name].shape[1:]), dtype=dtype)
    for k, shard in enumerate(shards):
        mask = dataset._shard == k
        if mask.any():
            out[mask] = shard[name][dataset._local[mask]]
    return out


def _gather(
    shard: dict[str, np.ndarray], local: np.ndarray, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Arrays ``names`` (default: all) of rows ``local`` of one shard, pointers from 0."""
    atom_start = np.asarray(shard["atom_ptr"][local], dtype=np.int64)
    atom_count = np.asarray(shard["atom_ptr"][local + 1], dtype=np.int64) - atom_start
    edge_start = np.asarray(shard["edge_ptr"][local], dtype=np.int64)
    edge_count = np.asarray(shard["edge_ptr"][local + 1], dtype=np.int64) - edge_start
    index = {
        "graph": local,
        "node": ranges(atom_start, atom_count),
        "edge": ranges(edge_start, edge_count),
    }
    wanted = [name for name in (shard if names is None else names) if name in _LEVELS]
    out = {name: shard[name][index[_LEVELS[name]]] for name in wanted}
    out["atom_ptr"] = _pointer(atom_count)
    out["edge_ptr"] = _pointer(edge_count)
    return out


def _pointer(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _one(values: np.ndarray, level: str) -> np.ndarray:
    """A field of a one-graph selection as the Graph wants it."""
    return values[0] if level == "graph" else values
