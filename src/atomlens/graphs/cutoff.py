"""Plain cutoff neighbour graphs (vesin), for models that want a radius graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atomlens.graphs.graph import Graph, check_no_isolated, make_graph
from atomlens.structures.record import Structure


@dataclass(frozen=True)
class CutoffParams:
    """Parameters of a radius graph.

    Attributes:
        cutoff: Neighbour cutoff radius in Angstrom.
        allow_isolated: keep atoms without neighbours instead of raising an error.
    """

    cutoff: float = 5.0
    allow_isolated: bool = False


def cutoff_graph(structure: Structure, params: CutoffParams | None = None) -> Graph:
    """All pairs closer than the cutoff (periodic images included for crystals)."""
    from vesin import NeighborList

    params = params or CutoffParams()
    if params.cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {params.cutoff}")
    box = structure.cell if structure.is_periodic else np.zeros((3, 3))
    i, j, shifts, distance = NeighborList(cutoff=params.cutoff, full_list=True).compute(
        structure.positions, box, structure.is_periodic, quantities="ijSd"
    )
    graph = make_graph(
        structure, i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64), distance
    )
    if not params.allow_isolated:
        check_no_isolated(structure, graph, f"cutoff ({params.cutoff} A)")
    return graph
