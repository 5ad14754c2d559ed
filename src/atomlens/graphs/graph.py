"""The neighbour graph of one structure, as plain numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atomlens.structures.record import Structure
from atomlens.structures.symmetry import SiteSymmetry

EDGE_FIELDS = ("distance", "solid_angle", "solid_angle_ratio")


@dataclass(frozen=True)
class Graph:
    """A directed neighbour graph: edge k points from ``centers[k]`` to ``neighbors[k]``.

    Neighbours are unit-cell sites; the neighbour's position is
    ``positions[neighbors] + shifts @ cell`` (shifts are zero for molecules).

    Attributes:
        numbers: Atomic numbers (N,).
        positions: Cartesian positions (N, 3) in Angstrom.
        cell: Cell vectors as rows (3, 3).
        pbc: Periodicity (3,).
        centers: Index of the atom that owns each edge (E,).
        neighbors: Unit-cell index of the neighbouring atom (E,).
        shifts: Integer image offset of the neighbour (E, 3).
        distance: Edge length in Angstrom (E,).
        solid_angle: Solid angle of the shared Voronoi face seen from the centre, in sr
            (E,); NaN for cutoff graphs.
        solid_angle_ratio: ``solid_angle`` divided by the largest face solid angle of
            the centre atom (E,); NaN for cutoff graphs.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    centers: np.ndarray
    neighbors: np.ndarray
    shifts: np.ndarray
    distance: np.ndarray
    solid_angle: np.ndarray
    solid_angle_ratio: np.ndarray
    symmetry: SiteSymmetry | None = None

    @property
    def num_atoms(self) -> int:
        """Number of atoms."""
        return int(self.numbers.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of directed edges."""
        return int(self.centers.shape[0])

    def degree(self) -> np.ndarray:
        """Number of neighbours of each atom (N,)."""
        return np.bincount(self.centers, minlength=self.num_atoms)

    def edge_vectors(self) -> np.ndarray:
        """Cartesian vectors from centre to neighbour (E, 3)."""
        return (
            self.positions[self.neighbors] + self.shifts @ self.cell - self.positions[self.centers]
        )


def make_graph(
    structure: Structure,
    centers: np.ndarray,
    neighbors: np.ndarray,
    shifts: np.ndarray,
    distance: np.ndarray,
    solid_angle: np.ndarray | None = None,
    solid_angle_ratio: np.ndarray | None = None,
) -> Graph:
    """Assemble a Graph with edges in canonical order: by centre, neighbour, then shift."""
    n_edges = centers.shape[0]
    nan = np.full(n_edges, np.nan)
    solid_angle = nan if solid_angle is None else solid_angle
    solid_angle_ratio = nan if solid_angle_ratio is None else solid_angle_ratio
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], neighbors, centers))
    return Graph(
        numbers=structure.numbers,
        positions=structure.positions,
        cell=structure.cell,
        pbc=structure.pbc,
        centers=centers[order].astype(np.int64),
        neighbors=neighbors[order].astype(np.int64),
        shifts=shifts[order].astype(np.int64),
        distance=distance[order].astype(np.float64),
        solid_angle=solid_angle[order].astype(np.float64),
        solid_angle_ratio=solid_angle_ratio[order].astype(np.float64),
    )


def check_no_isolated(structure: Structure, graph: Graph, what: str) -> None:
    """Raise StructureError if an atom of the graph has no neighbour."""
    isolated = np.nonzero(graph.degree() == 0)[0]
    if isolated.size:
        raise structure.fail(
            f"isolated atom {isolated[0]} ({isolated.size} in all): no neighbour passes "
            f"the {what} filters; check the structure or relax the graph parameters"
        )
