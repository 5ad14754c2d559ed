"""Flat batches: the atoms and edges of several graphs concatenated, with a graph index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from atomlens.datasets.dataset import GraphDataset
from atomlens.graphs.graph import Graph
from atomlens.structures.symmetry import concatenate_symmetry


@dataclass
class Batch:
    """Tensors of B graphs with N atoms and E edges in all.

    Edge indices (``centers``, ``neighbors``) point into the batch's atoms.
    """

    numbers: torch.Tensor  # (N,) long
    positions: torch.Tensor  # (N, 3)
    graph_index: torch.Tensor  # (N,) long: graph of each atom
    centers: torch.Tensor  # (E,) long
    neighbors: torch.Tensor  # (E,) long
    shifts: torch.Tensor  # (E, 3)
    distance: torch.Tensor  # (E,)
    solid_angle: torch.Tensor  # (E,)
    solid_angle_ratio: torch.Tensor  # (E,)
    cell: torch.Tensor  # (B, 3, 3)
    num_atoms: torch.Tensor  # (B,) long
    targets: torch.Tensor  # (B, T)
    index: torch.Tensor  # (B,) long: position of each graph in its data set
    # Symmetry, present when the graphs were built with it (see structures.symmetry):
    space_group: torch.Tensor | None = None  # (B,) long, 0 = unknown
    site_symmetry_order: torch.Tensor | None = None  # (N,) long
    wyckoff_multiplicity: torch.Tensor | None = None  # (N,) long

    @property
    def num_graphs(self) -> int:
        """Number of graphs B."""
        return int(self.num_atoms.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor on ``device``."""
        return Batch(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                for f in fields(self)
            }
        )


def _tensor(array: np.ndarray, kind: torch.dtype) -> torch.Tensor:
    """A contiguous torch tensor of the given dtype from a numpy array (or memory map)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(kind)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each start/count pair, vectorised."""
    total = int(counts.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return offsets + np.arange(total)


def collate(
    dataset: GraphDataset, indices: np.ndarray, dtype: torch.dtype = torch.float32
) -> Batch:
    """Gather the graphs at ``indices`` into one flat Batch (no per-graph Python loop)."""
    a = dataset.arrays
    indices = np.asarray(indices, dtype=np.int64)
    atom_start = a["atom_ptr"][indices]
    atom_count = a["atom_ptr"][indices + 1] - atom_start
    edge_start = a["edge_ptr"][indices]
    edge_count = a["edge_ptr"][indices + 1] - edge_start
    atoms = _ranges(atom_start, atom_count)
    edges = _ranges(edge_start, edge_count)
    new_offset = np.concatenate([[0], np.cumsum(atom_count)[:-1]])
    edge_offset = np.repeat(new_offset, edge_count)
    symmetry = {}
    if "space_group" in a:
        rows = {"space_group": indices, "site_symmetry_order": atoms, "wyckoff_multiplicity": atoms}
        symmetry = {name: _tensor(a[name][rows[name]], torch.long) for name in rows}

    return Batch(
        numbers=_tensor(a["numbers"][atoms], torch.long),
        positions=_tensor(a["positions"][atoms], dtype),
        graph_index=torch.repeat_interleave(
            torch.arange(indices.size), torch.from_numpy(atom_count)
        ),
        centers=_tensor(a["centers"][edges] + edge_offset, torch.long),
        neighbors=_tensor(a["neighbors"][edges] + edge_offset, torch.long),
        shifts=_tensor(a["shifts"][edges], dtype),
        distance=_tensor(a["distance"][edges], dtype),
        solid_angle=_tensor(a["solid_angle"][edges], dtype),
        solid_angle_ratio=_tensor(a["solid_angle_ratio"][edges], dtype),
        cell=_tensor(a["cell"][indices], dtype),
        num_atoms=_tensor(atom_count, torch.long),
        targets=_tensor(a["targets"][indices], dtype),
        index=_tensor(indices, torch.long),
        **symmetry,
    )


def batch_from_graphs(graphs: list[Graph], dtype: torch.dtype = torch.float32) -> Batch:
    """One Batch from in-memory Graphs (for prediction on new structures; no targets)."""
    if not graphs:
        raise ValueError("no graphs to batch")
    atom_count = np.array([g.num_atoms for g in graphs])
    edge_count = np.array([g.num_edges for g in graphs])
    offset = np.repeat(np.concatenate([[0], np.cumsum(atom_count)[:-1]]), edge_count)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in graphs])

    symmetry = {}
    records = [g.symmetry for g in graphs]
    if all(r is not None for r in records):
        stacked = concatenate_symmetry(records)
        symmetry = {name: _tensor(values, torch.long) for name, values in stacked.items()}

    return Batch(
        numbers=_tensor(cat("numbers"), torch.long),
        positions=_tensor(cat("positions"), dtype),
        graph_index=torch.repeat_interleave(
            torch.arange(len(graphs)), torch.from_numpy(atom_count)
        ),
        centers=_tensor(cat("centers") + offset, torch.long),
        neighbors=_tensor(cat("neighbors") + offset, torch.long),
        shifts=_tensor(cat("shifts").reshape(-1, 3), dtype),
        distance=_tensor(cat("distance"), dtype),
        solid_angle=_tensor(cat("solid_angle"), dtype),
        solid_angle_ratio=_tensor(cat("solid_angle_ratio"), dtype),
        cell=_tensor(np.stack([g.cell for g in graphs]), dtype),
        num_atoms=_tensor(atom_count, torch.long),
        targets=torch.full((len(graphs), 1), float("nan"), dtype=dtype),
        index=torch.arange(len(graphs)),
        **symmetry,
    )


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
