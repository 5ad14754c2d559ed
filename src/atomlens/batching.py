"""Flat batches: the atoms and edges of several graphs concatenated, with a graph index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from atomlens.datasets.dataset import GraphDataset
from atomlens.graphs.graph import Graph
from atomlens.graphs.schema import BATCH_FIELDS, FIELDS, FieldSpec


class Batch:
    """Tensors of B graphs with N atoms and E edges in all, by field name.

    Holds every graph field of :mod:`atomlens.graphs.schema` that the graphs carry (an
    optional field they lack reads as None) plus ``graph_index`` (N,), ``num_atoms`` (B,),
    ``targets`` (B, T) and ``index`` (B,). Edge indices (``centers``, ``neighbors``) point
    into the batch's atoms. Read a field as an attribute: ``batch.distance``.
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: dict[str, torch.Tensor]):
        unknown = sorted(set(tensors) - set(_BATCH_SPECS))
        if unknown:
            raise TypeError(f"unknown batch field(s) {unknown}; see atomlens.graphs.schema")
        missing = [n for n, s in _BATCH_SPECS.items() if not s.optional and n not in tensors]
        if missing:
            raise TypeError(f"a Batch needs the field(s) {missing}")
        object.__setattr__(self, "_tensors", dict(tensors))

    def __getattr__(self, name: str) -> Any:
        if name == "_tensors":
            raise AttributeError(name)
        if name in self._tensors:
            return self._tensors[name]
        if name in _BATCH_SPECS:
            return None
        raise AttributeError(f"'Batch' has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Batch is immutable; use batch.replace(...)")

    def __repr__(self) -> str:
        return f"Batch(graphs={self.num_graphs}, atoms={self.numbers.shape[0]})"

    @property
    def num_graphs(self) -> int:
        """Number of graphs B."""
        return int(self._tensors["num_atoms"].shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the batch, by field name."""
        return dict(self._tensors)

    def replace(self, **changes: torch.Tensor) -> Batch:
        """A copy with some tensors changed."""
        return Batch(self._tensors | changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device`` (asynchronous from pinned memory)."""
        return Batch({k: v.to(device, non_blocking=non_blocking) for k, v in self._tensors.items()})

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory, for fast asynchronous copies to a GPU."""
        return Batch({k: v.pin_memory() for k, v in self._tensors.items()})


_BATCH_SPECS: dict[str, FieldSpec] = {f.name: f for f in (*FIELDS, *BATCH_FIELDS)}


def _tensor(array: np.ndarray, spec: FieldSpec, dtype: torch.dtype) -> torch.Tensor:
    """A contiguous tensor of the field's type (floats in ``dtype``) from a numpy array."""
    kind = {"index": torch.long, "int": torch.long, "float": dtype, "bool": torch.bool}
    return torch.from_numpy(np.ascontiguousarray(array)).to(kind[spec.kind])


def _atom_offsets(atom_count: np.ndarray, edge_count: np.ndarray) -> dict[str, np.ndarray]:
    """Per level, the batch position of the first atom of each row's graph.

    Added to ``index`` fields, it turns atom indices local to a graph into batch indices.
    """
    first_atom = np.concatenate([[0], np.cumsum(atom_count)[:-1]])
    return {
        "graph": first_atom,
        "node": np.repeat(first_atom, atom_count),
        "edge": np.repeat(first_atom, edge_count),
    }


def _batch_extras(
    atom_count: np.ndarray, targets: np.ndarray, index: np.ndarray, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The batch-only fields: graph of each atom, atom counts, labels and data-set rows."""
    spec = _BATCH_SPECS
    return {
        "graph_index": torch.repeat_interleave(
            torch.arange(atom_count.size), torch.from_numpy(atom_count.astype(np.int64))
        ),
        "num_atoms": _tensor(atom_count, spec["num_atoms"], dtype),
        "targets": _tensor(targets, spec["targets"], dtype),
        "index": _tensor(index, spec["index"], dtype),
    }


def collate(
    dataset: GraphDataset, indices: np.ndarray, dtype: torch.dtype = torch.float32
) -> Batch:
    """Gather the graphs at ``indices`` into one flat Batch (no per-graph Python loop)."""
    indices = np.asarray(indices, dtype=np.int64)
    a = dataset.take(indices)
    atom_count = np.diff(a["atom_ptr"])
    edge_count = np.diff(a["edge_ptr"])
    offsets = _atom_offsets(atom_count, edge_count)
    tensors = {}
    for spec in FIELDS:
        if spec.name in a:
            values = a[spec.name]
            if spec.kind == "index":
                values = values + offsets[spec.level]
            tensors[spec.name] = _tensor(values, spec, dtype)
    tensors |= _batch_extras(atom_count, a["targets"], indices, dtype)
    return Batch(tensors)


def batch_from_graphs(graphs: list[Graph], dtype: torch.dtype = torch.float32) -> Batch:
    """One Batch from in-memory Graphs (for prediction on new structures; no targets).

    An optional field group enters the batch when every graph carries it.
    """
    if not graphs:
        raise ValueError("no graphs to batch")
    atom_count = np.array([g.num_atoms for g in graphs], dtype=np.int64)
    edge_count = np.array([g.num_edges for g in graphs], dtype=np.int64)
    offsets = _atom_offsets(atom_count, edge_count)
    tensors = {}
    for spec in FIELDS:
        parts = [getattr(g, spec.name) for g in graphs]
        if any(p is None for p in parts):
            continue
        values = np.stack(parts) if spec.level == "graph" else np.concatenate(parts)
        if spec.kind == "index":
            values = values + offsets[spec.level]
        tensors[spec.name] = _tensor(values, spec, dtype)
    targets = np.full((len(graphs), 1), np.nan)
    tensors |= _batch_extras(atom_count, targets, np.arange(len(graphs)), dtype)
    return Batch(tensors)


def iterate_batches(
    dataset: GraphDataset,
    indices: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> Iterator[Batch]:
    """Yield Batches over ``indices`` (shuffled reproducibly from ``seed`` if asked)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.asarray(indices, dtype=np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(order)
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        yield collate(dataset, order[start : start + batch_size])
