"""The neighbour graph of one structure, as plain numpy arrays (fields: graphs.schema)."""

from __future__ import annotations

from typing import Any

import numpy as np

from atomlens.graphs.schema import FIELDS, FIELDS_BY_NAME, GROUPS, group_fields
from atomlens.structures.record import Structure
from atomlens.structures.symmetry import SiteSymmetry


class Graph:
    """A directed neighbour graph: edge k points from ``centers[k]`` to ``neighbors[k]``.

    Neighbours are unit-cell sites; the neighbour's position is
    ``positions[neighbors] + shifts @ cell`` (shifts are zero for molecules). The fields,
    their levels and units are declared once in :mod:`atomlens.graphs.schema`; each is an
    attribute (``graph.distance``), and an optional field the graph lacks reads as None.
    A Graph is immutable: :meth:`replace` makes a changed copy.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any):
        unknown = sorted(set(values) - set(FIELDS_BY_NAME))
        if unknown:
            raise TypeError(f"unknown graph field(s) {unknown}; see atomlens.graphs.schema")
        stored: dict[str, np.ndarray] = {}
        for spec in FIELDS:
            value = values.get(spec.name)
            if value is None:
                if not spec.optional:
                    raise TypeError(f"a Graph needs the field '{spec.name}'")
                continue
            stored[spec.name] = np.asarray(value, dtype=spec.memory_dtype)
        for group in GROUPS:
            present = [f.name in stored for f in group_fields(group)]
            if any(present) and not all(present):
                raise TypeError(f"the '{group}' fields of a Graph come all together or not at all")
        object.__setattr__(self, "_values", stored)

    def __getattr__(self, name: str) -> Any:
        if name == "_values":
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        if name in FIELDS_BY_NAME:
            return None
        raise AttributeError(f"'Graph' has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Graph is immutable; use graph.replace(...)")

    def __reduce__(self) -> tuple:
        return (_rebuild, (self._values,))

    def __repr__(self) -> str:
        return (
            f"Graph(atoms={self.num_atoms}, edges={self.num_edges}, fields={sorted(self._values)})"
        )

    def values(self) -> dict[str, np.ndarray]:
        """Every field the graph holds, by name."""
        return dict(self._values)

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (None removes an optional field)."""
        return Graph(**(self._values | changes))

    def has_group(self, group: str) -> bool:
        """True when the graph holds the optional fields of ``group``."""
        return all(f.name in self._values for f in group_fields(group))

    @property
    def num_atoms(self) -> int:
        """Number of atoms."""
        return int(self._values["numbers"].shape[0])

    @property
    def num_edges(self) -> int:
        """Number of directed edges."""
        return int(self._values["centers"].shape[0])

    @property
    def symmetry(self) -> SiteSymmetry | None:
        """Space group and site symmetry, when the graph was built with them."""
        if not self.has_group("symmetry"):
            return None
        return SiteSymmetry(
            space_group=int(self.space_group),
            site_order=self.site_symmetry_order,
            multiplicity=self.wyckoff_multiplicity,
        )

    def with_symmetry(self, symmetry: SiteSymmetry) -> Graph:
        """A copy carrying ``symmetry`` as its symmetry fields."""
        return self.replace(
            space_group=symmetry.space_group,
            site_symmetry_order=symmetry.site_order,
            wyckoff_multiplicity=symmetry.multiplicity,
        )

    def subgraph(self, keep: np.ndarray) -> Graph:
        """The graph restricted to atoms where ``keep`` is True (edges between kept atoms).

        Node fields keep the chosen rows, edge fields the edges between kept atoms, with
        their atom indices renumbered; graph fields are unchanged.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.num_atoms,):
            raise ValueError(f"keep must have one entry per atom ({self.num_atoms})")
        new_index = np.cumsum(keep) - 1
        edges = keep[self.centers] & keep[self.neighbors]
        rows = {"graph": slice(None), "node": keep, "edge": edges}
        values = {}
        for name, value in self._values.items():
            spec = FIELDS_BY_NAME[name]
            part = value if spec.level == "graph" else value[rows[spec.level]]
            values[name] = new_index[part] if spec.kind == "index" else part
        return Graph(**values)

    def degree(self) -> np.ndarray:
        """Number of neighbours of each atom (N,)."""
        return np.bincount(self.centers, minlength=self.num_atoms)

    def edge_vectors(self) -> np.ndarray:
        """Cartesian vectors from centre to neighbour (E, 3)."""
        return (
            self.positions[self.neighbors] + self.shifts @ self.cell - self.positions[self.centers]
        )


def _rebuild(values: dict[str, np.ndarray]) -> Graph:
    return Graph(**values)


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
        centers=centers[order],
        neighbors=neighbors[order],
        shifts=shifts[order],
        distance=distance[order],
        solid_angle=solid_angle[order],
        solid_angle_ratio=solid_angle_ratio[order],
    )


def check_no_isolated(structure: Structure, graph: Graph, what: str) -> None:
    """Raise StructureError if an atom of the graph has no neighbour."""
    isolated = np.nonzero(graph.degree() == 0)[0]
    if isolated.size:
        raise structure.fail(
            f"isolated atom {isolated[0]} ({isolated.size} in all): no neighbour passes "
            f"the {what} filters; check the structure or relax the graph parameters"
        )
