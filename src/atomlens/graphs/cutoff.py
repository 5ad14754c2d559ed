"""Plain cutoff neighbour graphs (vesin), for models that want a radius graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atomlens.errors import DataError
from atomlens.graphs.graph import Graph, check_no_isolated, make_graph
from atomlens.structures.record import Structure
from atomlens.structures.symmetry import DEFAULT_SYMPREC, analyse_symmetry


@dataclass(frozen=True)
class CutoffParams:
    """Parameters of a radius graph.

    Attributes:
        cutoff: Neighbour cutoff radius in Angstrom.
        allow_isolated: keep atoms without neighbours instead of raising an error.
        widen: If an atom has no neighbour within ``cutoff``, retry with the cutoff raised
            by 1 A at a time, up to twice its value, before calling it isolated (crystals of
            large alkali atoms have no pair closer than 5 A).
        symmetry: Also record the space group and per-site symmetry (spglib).
        symprec: Distance tolerance of the symmetry search in Angstrom.
    """

    cutoff: float = 5.0
    allow_isolated: bool = False
    widen: bool = False
    symmetry: bool = False
    symprec: float = DEFAULT_SYMPREC

    def __post_init__(self) -> None:
        """Reject a cutoff or tolerance that is not a positive number (DataError)."""
        for name in ("cutoff", "symprec"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.number)
                or not (np.isfinite(value) and value > 0)
            ):
                raise DataError(
                    f"graph parameter: {name} must be positive (a number > 0), got {value}"
                )


def cutoff_graph(structure: Structure, params: CutoffParams | None = None) -> Graph:
    """All pairs closer than the cutoff (periodic images included for crystals)."""
    params = params or CutoffParams()
    if params.cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {params.cutoff}")
    radius = params.cutoff
    graph = _radius_graph(structure, radius)
    while params.widen and radius < 2 * params.cutoff and (graph.degree() == 0).any():
        radius = min(radius + 1.0, 2 * params.cutoff)
        graph = _radius_graph(structure, radius)
    if not params.allow_isolated:
        check_no_isolated(structure, graph, f"cutoff ({radius} A)")
    if params.symmetry:
        graph = graph.with_symmetry(analyse_symmetry(structure, params.symprec))
    return graph


def _radius_graph(structure: Structure, radius: float) -> Graph:
    from vesin import NeighborList

    box = structure.cell if structure.is_periodic else np.zeros((3, 3))
    i, j, shifts, distance = NeighborList(cutoff=radius, full_list=True).compute(
        structure.positions, box, structure.is_periodic, quantities="ijSd"
    )
    return make_graph(
        structure, i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64), distance
    )
