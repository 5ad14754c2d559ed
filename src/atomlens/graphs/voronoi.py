"""Voronoi neighbour graphs with face solid angles (the SCANN input), vectorised over Qhull.

Crystals: the unit-cell atoms are tessellated together with every periodic image that can
touch their cells, and each cell is checked to be exact (every Voronoi vertex of a central
atom is closer than half the image padding), growing the padding where needed. Any cell
shape works: skewed, thin, or one atom per cell.

Molecules: open boundaries. No periodic images are ever added; a shell of ghost points far
away (``open_boundary_radius``) only closes the cells of surface atoms so that Qhull can work
with planar and tiny molecules. Faces shared with ghosts are not neighbours and do not count
towards an atom's largest face.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from scipy.spatial import QhullError, Voronoi

from atomlens.graphs.graph import Graph, check_no_isolated, make_graph
from atomlens.structures.record import Structure

MOLECULE_MAX_DISTANCE = 4.0
CRYSTAL_MAX_DISTANCE = 6.0
_INITIAL_PADDING = 2.0  # in units of the mean interatomic spacing; measured optimum
_PADDING_GROWTH = 1.25
_MAX_PADDING_ATTEMPTS = 8


@dataclass(frozen=True)
class VoronoiParams:
    """Filters of SCANN's Voronoi neighbours (defaults: the reference implementation's).

    Attributes:
        min_solid_angle: w_t, smallest face solid angle kept (sr).
        min_solid_angle_ratio: smallest ratio to the atom's largest face solid angle.
        max_distance: d_t in Angstrom; None means 4 A for molecules, 6 A for crystals.
        open_boundary_radius: distance (A) beyond a molecule's bounding sphere of the
            ghost points that close surface cells. Faces that reach to infinity are cut
            there, which changes their solid angle by about (face distance / radius) sr.
        allow_isolated: keep atoms without neighbours instead of raising an error.
    """

    min_solid_angle: float = 0.4
    min_solid_angle_ratio: float = 0.2
    max_distance: float | None = None
    open_boundary_radius: float = 1.0e4
    allow_isolated: bool = False

    def distance_limit(self, periodic: bool) -> float:
        """The d_t in force for a periodic or an open structure."""
        if self.max_distance is not None:
            return self.max_distance
        return CRYSTAL_MAX_DISTANCE if periodic else MOLECULE_MAX_DISTANCE


@dataclass(frozen=True)
class VoronoiFaces:
    """All Voronoi faces of the central atoms, before any filter.

    Attributes:
        centers, neighbors, shifts, distance, solid_angle: per face, as in Graph.
        max_solid_angle: the largest face solid angle of each atom (N,).
    """

    centers: np.ndarray
    neighbors: np.ndarray
    shifts: np.ndarray
    distance: np.ndarray
    solid_angle: np.ndarray
    max_solid_angle: np.ndarray


def voronoi_graph(structure: Structure, params: VoronoiParams | None = None) -> Graph:
    """Build the filtered Voronoi neighbour graph of a structure.

    Args:
        structure: A validated structure (molecule or crystal).
        params: Filters; SCANN's reference defaults when None.

    Returns:
        The directed graph with distance, solid angle and normalised solid angle per edge.

    Raises:
        StructureError: If the tessellation fails or an atom ends up without neighbours.
    """
    params = params or VoronoiParams()
    faces = voronoi_faces(structure, params)
    ratio = faces.solid_angle / faces.max_solid_angle[faces.centers]
    keep = (
        (faces.solid_angle >= params.min_solid_angle)
        & (ratio >= params.min_solid_angle_ratio)
        & (faces.distance <= params.distance_limit(structure.is_periodic))
    )
    graph = make_graph(
        structure,
        faces.centers[keep],
        faces.neighbors[keep],
        faces.shifts[keep],
        faces.distance[keep],
        faces.solid_angle[keep],
        ratio[keep],
    )
    if not params.allow_isolated:
        check_no_isolated(structure, graph, "Voronoi")
    return graph


def voronoi_faces(structure: Structure, params: VoronoiParams | None = None) -> VoronoiFaces:
    """Compute every Voronoi face of every atom (no filters)."""
    params = params or VoronoiParams()
    if structure.is_periodic:
        return _periodic_faces(structure)
    return _open_faces(structure, params.open_boundary_radius)


def _open_faces(structure: Structure, boundary_radius: float) -> VoronoiFaces:
    n_atoms = len(structure)
    if n_atoms < 2:
        raise structure.fail("isolated atom 0: a molecule needs at least two atoms")
    centroid = structure.positions.mean(axis=0)
    extent = float(np.linalg.norm(structure.positions - centroid, axis=1).max())
    ghosts = centroid + (extent + boundary_radius) * _GHOST_DIRECTIONS
    points = np.vstack([structure.positions, ghosts])
    try:
        ridges = _tessellate(structure, points, n_atoms, only_between_central=True)
    except _FlatInputError as exc:
        raise structure.fail(f"Voronoi tessellation failed: {exc}") from None
    if not np.isfinite(ridges.max_vertex_distance):
        raise structure.fail("Voronoi cell of an atom is unbounded (tessellation failed)")
    pairs = ridges.points
    angle = ridges.solid_angle
    max_angle = _max_per_atom(pairs, angle, n_atoms)
    centers = np.concatenate([pairs[:, 0], pairs[:, 1]])
    neighbors = np.concatenate([pairs[:, 1], pairs[:, 0]])
    distance = np.linalg.norm(points[pairs[:, 1]] - points[pairs[:, 0]], axis=1)
    return VoronoiFaces(
        centers=centers,
        neighbors=neighbors,
        shifts=np.zeros((centers.size, 3), dtype=np.int64),
        distance=np.concatenate([distance, distance]),
        solid_angle=np.concatenate([angle, angle]),
        max_solid_angle=max_angle,
    )


def _periodic_faces(structure: Structure) -> VoronoiFaces:
    n_atoms = len(structure)
    volume_per_atom = abs(np.linalg.det(structure.cell)) / n_atoms
    padding = _INITIAL_PADDING * volume_per_atom ** (1.0 / 3.0)
    for _ in range(_MAX_PADDING_ATTEMPTS):
        sites, shifts = _images_within(structure, padding)
        points = np.vstack(
            [structure.positions, structure.positions[sites] + shifts @ structure.cell]
        )
        all_sites = np.concatenate([np.arange(n_atoms), sites])
        all_shifts = np.vstack([np.zeros((n_atoms, 3), dtype=np.int64), shifts])
        try:
            ridges = _tessellate(structure, points, n_atoms)
        except _FlatInputError:  # e.g. a layer whose padding reaches no neighbouring layer
            padding *= 2.0
            continue
        needed = 2.0 * ridges.max_vertex_distance
        if needed <= padding * (1.0 - 1e-9):
            break
        padding = min(needed, 2.0 * padding) * _PADDING_GROWTH
    else:
        raise structure.fail("Voronoi cells did not converge with growing periodic padding")

    first_central = ridges.points[:, 0] < n_atoms
    second_central = ridges.points[:, 1] < n_atoms
    centers = np.concatenate([ridges.points[first_central, 0], ridges.points[second_central, 1]])
    others = np.concatenate([ridges.points[first_central, 1], ridges.points[second_central, 0]])
    angle = np.concatenate([ridges.solid_angle[first_central], ridges.solid_angle[second_central]])
    distance = np.linalg.norm(points[others] - points[centers], axis=1)
    return VoronoiFaces(
        centers=centers,
        neighbors=all_sites[others],
        shifts=all_shifts[others],
        distance=distance,
        solid_angle=angle,
        max_solid_angle=_max_per_atom(np.stack([centers, centers], axis=1), angle, n_atoms),
    )


def _images_within(structure: Structure, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Every periodic image (site, shift) within ``padding`` of some unit-cell atom."""
    from vesin import NeighborList

    _, j, shifts = NeighborList(cutoff=padding, full_list=True).compute(
        structure.positions, structure.cell, True, quantities="ijS"
    )
    shifts = shifts.astype(np.int64)
    image = shifts.any(axis=1)
    keyed = np.unique(np.column_stack([j[image].astype(np.int64), shifts[image]]), axis=0)
    return keyed[:, 0], keyed[:, 1:]


@dataclass(frozen=True)
class _Ridges:
    points: np.ndarray  # (R, 2) indices into the tessellated points, >= 1 central
    solid_angle: np.ndarray  # (R,)
    max_vertex_distance: float  # over faces of central atoms


class _FlatInputError(Exception):
    """Qhull found the points (nearly) coplanar."""


def _tessellate(
    structure: Structure, points: np.ndarray, n_central: int, *, only_between_central: bool = False
) -> _Ridges:
    """Tessellate and compute the solid angle of the faces of the first n_central points.

    Args:
        structure: For error messages.
        points: All points; the first ``n_central`` are the atoms of interest.
        n_central: Number of central points.
        only_between_central: Keep only faces shared by two central points.

    Raises:
        _FlatInputError: If Qhull cannot build a full-dimensional tessellation.
    """
    try:
        vor = Voronoi(points)
    except (QhullError, ValueError) as exc:
        raise _FlatInputError(str(exc).splitlines()[0]) from None
    ridge_points = vor.ridge_points
    is_central = ridge_points < n_central
    keep = is_central.all(axis=1) if only_between_central else is_central.any(axis=1)
    selected = np.nonzero(keep)[0]
    ridge_vertices = vor.ridge_vertices
    polygons = [ridge_vertices[k] for k in selected]
    sizes = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons))
    flat = np.fromiter(chain.from_iterable(polygons), dtype=np.int64, count=int(sizes.sum()))
    pairs = ridge_points[selected]
    if flat.size and flat.min() < 0:  # a central cell reaches infinity: too few images
        return _Ridges(points=pairs, solid_angle=np.empty(0), max_vertex_distance=np.inf)
    central = np.where(pairs[:, 0] < n_central, pairs[:, 0], pairs[:, 1])
    angle, max_distance = _polygon_solid_angles(vor.vertices, flat, sizes, points[central])
    return _Ridges(points=pairs, solid_angle=angle, max_vertex_distance=max_distance)


def _polygon_solid_angles(
    vertices: np.ndarray, flat: np.ndarray, sizes: np.ndarray, viewpoints: np.ndarray
) -> tuple[np.ndarray, float]:
    """Solid angles of convex polygons (vertex lists in cyclic order) seen from viewpoints.

    Each polygon is cut into a fan of triangles (v0, vk, vk+1) and each triangle's solid
    angle follows Van Oosterom and Strackee (1983).
    """
    n_poly = sizes.size
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_tri = np.maximum(sizes - 2, 0)
    owner = np.repeat(np.arange(n_poly), n_tri)
    tri_start = np.concatenate([[0], np.cumsum(n_tri)[:-1]])
    k = np.arange(owner.size) - tri_start[owner] + 1
    base = starts[owner]
    eye = viewpoints[owner]
    r0 = vertices[flat[base]] - eye
    r1 = vertices[flat[base + k]] - eye
    r2 = vertices[flat[base + k + 1]] - eye
    n0, n1, n2 = (np.sqrt(np.einsum("ij,ij->i", r, r)) for r in (r0, r1, r2))
    cross = np.empty_like(r1)  # r1 x r2, written out: np.cross is slow on short arrays
    cross[:, 0] = r1[:, 1] * r2[:, 2] - r1[:, 2] * r2[:, 1]
    cross[:, 1] = r1[:, 2] * r2[:, 0] - r1[:, 0] * r2[:, 2]
    cross[:, 2] = r1[:, 0] * r2[:, 1] - r1[:, 1] * r2[:, 0]
    triple = np.abs(np.einsum("ij,ij->i", r0, cross))
    denominator = (
        n0 * n1 * n2
        + n2 * np.einsum("ij,ij->i", r0, r1)
        + n1 * np.einsum("ij,ij->i", r0, r2)
        + n0 * np.einsum("ij,ij->i", r1, r2)
    )
    tri_angle = 2.0 * np.arctan2(triple, denominator)
    angle = np.bincount(owner, weights=tri_angle, minlength=n_poly)
    max_distance = float(np.max(n0, initial=0.0))
    if owner.size:
        max_distance = max(max_distance, float(n1.max()), float(n2.max()))
    return angle, max_distance


def _max_per_atom(pairs: np.ndarray, angle: np.ndarray, n_atoms: int) -> np.ndarray:
    """Largest face solid angle of each atom over the faces listed in ``pairs``."""
    result = np.zeros(n_atoms)
    for column in range(pairs.shape[1]):
        mask = pairs[:, column] < n_atoms
        np.maximum.at(result, pairs[mask, column], angle[mask])
    return result


# Six ghosts on the axes (an octahedron) close every cell; more ghosts cost time and
# change only the ~1e-3 sr cut of faces that reach to infinity.
_GHOST_DIRECTIONS = np.vstack([np.eye(3), -np.eye(3)])
