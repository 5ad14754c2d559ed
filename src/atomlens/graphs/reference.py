"""The reference path: SCANN's neighbours from pymatgen ``VoronoiNN``, one atom at a time.

Slow by design (it is what the reference implementation does); used to validate the
vectorised graphs and to measure the speed-up in benchmarks.
"""

from __future__ import annotations

import numpy as np

from atomlens.graphs.graph import Graph, make_graph
from atomlens.graphs.voronoi import VoronoiParams
from atomlens.structures.record import Structure


def pymatgen_voronoi_graph(structure: Structure, params: VoronoiParams | None = None) -> Graph:
    """SCANN's filtered Voronoi graph of a crystal computed with pymatgen ``VoronoiNN``."""
    from pymatgen.analysis.local_env import VoronoiNN
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as PmgStructure

    if not structure.is_periodic:
        raise ValueError("the pymatgen reference path is defined for periodic crystals")
    params = params or VoronoiParams()
    pmg = PmgStructure(
        Lattice(structure.cell),
        structure.numbers,
        structure.positions,
        coords_are_cartesian=True,
        to_unit_cell=False,
    )
    finder = VoronoiNN(weight="solid_angle")
    d_max = params.distance_limit(True)
    rows: list[tuple[int, int, tuple[int, int, int], float, float, float]] = []
    for i in range(len(pmg)):
        for nn in finder.get_nn_info(pmg, i):
            angle = nn["poly_info"]["solid_angle"]
            distance = float(np.linalg.norm(nn["site"].coords - pmg[i].coords))
            if (
                angle >= params.min_solid_angle
                and nn["weight"] >= params.min_solid_angle_ratio
                and distance <= d_max
            ):
                image = tuple(int(x) for x in np.round(nn["image"]))
                rows.append((i, int(nn["site_index"]), image, distance, angle, nn["weight"]))
    centers, neighbors, shifts, distance, angle, ratio = (
        np.array([r[k] for r in rows]) for k in range(6)
    )
    return make_graph(structure, centers, neighbors, shifts.reshape(-1, 3), distance, angle, ratio)


def pymatgen_molecule_faces(
    structure: Structure, box_side: float, extra_points: np.ndarray | None = None
) -> dict[tuple[int, int], float]:
    """Face solid angles between the atoms of a molecule placed in a vacuum box.

    The molecule (plus optional extra point atoms, e.g. ghosts) is centred in a cubic
    periodic box of side ``box_side`` and tessellated by pymatgen ``VoronoiNN``; faces
    shared with periodic images or extra points are removed.

    Returns:
        ``{(i, j): solid angle}`` for every face between two atoms of the molecule.
    """
    from pymatgen.analysis.local_env import VoronoiNN
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as PmgStructure

    n_atoms = len(structure)
    centre = structure.positions.mean(axis=0)
    coords = structure.positions - centre + box_side / 2
    species = list(structure.numbers)
    if extra_points is not None:
        coords = np.vstack([coords, extra_points - centre + box_side / 2])
        species += [2] * len(extra_points)
    pmg = PmgStructure(
        Lattice.cubic(box_side), species, coords, coords_are_cartesian=True, to_unit_cell=False
    )
    finder = VoronoiNN(weight="solid_angle", cutoff=box_side, compute_adj_neighbors=False)
    faces: dict[tuple[int, int], float] = {}
    for i in range(n_atoms):
        for nn in finder.get_voronoi_polyhedra(pmg, i).values():
            site = nn["site"]
            j = int(site.index)
            image = np.round(site.frac_coords - pmg[j].frac_coords)
            if j < n_atoms and not image.any():
                faces[(i, j)] = float(nn["solid_angle"])
    return faces
