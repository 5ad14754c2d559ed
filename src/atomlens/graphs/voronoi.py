"""Voronoi neighbour graphs with face solid angles (the SCANN input), vectorised over Qhull.

Crystals: the unit-cell atoms are tessellated together with every periodic image that can
touch their cells, and each cell is checked to be exact (every Voronoi vertex of a central
atom is closer than half the image padding), growing the padding where needed. Any cell
shape works: skewed, thin, layered, or one atom per cell.

Molecules: open boundaries. No periodic images are ever added; six ghost points far away
(``open_boundary_radius``) only close the cells of surface atoms so that Qhull can work
with planar and tiny molecules. Faces shared with ghosts are not neighbours and do not count
towards an atom's largest face.

Many structures are processed together: Qhull runs once per structure, and everything
after it (solid angles, filters, ordering) runs once, vectorised, for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
from scipy.spatial import QhullError, Voronoi

from atomlens.errors import DataError, StructureError
from atomlens.graphs.graph import Graph, check_no_isolated
from atomlens.structures.record import Structure

MOLECULE_MAX_DISTANCE = 4.0
CRYSTAL_MAX_DISTANCE = 6.0
_INITIAL_PADDING = 2.0  # in units of the mean interatomic spacing; measured optimum
_PADDING_GROWTH = 1.25
_MAX_PADDING_ATTEMPTS = 8
# Six ghosts on the axes (an octahedron) close every cell; more ghosts cost time and
# change only the ~1e-3 sr cut of faces that reach to infinity.
_GHOST_DIRECTIONS = np.vstack([np.eye(3), -np.eye(3)])


@dataclass(frozen=True)
class VoronoiParams:
    """Filters of SCANN's Voronoi neighbours (defaults: the reference implementation's).

    Attributes:
        min_solid_angle: w_t, smallest face solid angle kept (sr).
        min_solid_angle_ratio: smallest ratio to the atom's largest face solid angle.
        max_distance: d_t in Angstrom; None means 4 A for molecules, 6 A for crystals.
        open_boundary_radius: distance (A) beyond a molecule's bounding sphere of the
            ghost points that close surface cells. Faces that reach to infinity are cut
            there, which changes their solid angle by about 10 / radius sr.
        allow_isolated: keep atoms without neighbours instead of raising an error.
    """

    min_solid_angle: float = 0.4
    min_solid_angle_ratio: float = 0.2
    max_distance: float | None = None
    open_boundary_radius: float = 1.0e4
    allow_isolated: bool = False

    def __post_init__(self) -> None:
        """Reject values that would give wrong graphs instead of an error (DataError)."""
        limits = {
            "min_solid_angle": (self.min_solid_angle, 0.0, False),
            "min_solid_angle_ratio": (self.min_solid_angle_ratio, 0.0, False),
            "max_distance": (self.max_distance, 0.0, True),
            "open_boundary_radius": (self.open_boundary_radius, 0.0, True),
        }
        for name, (value, lower, strict) in limits.items():
            if value is None and name == "max_distance":
                continue
            number = _as_number(value)
            if number is None or (number <= lower if strict else number < lower):
                bound = f"> {lower:g}" if strict else f">= {lower:g}"
                raise DataError(f"graph parameter: {name} must be a number {bound}, got {value}")
        if self.min_solid_angle_ratio > 1:
            raise DataError(
                f"graph parameter: min_solid_angle_ratio must be <= 1, got "
                f"{self.min_solid_angle_ratio} (no face would be kept)"
            )

    def distance_limit(self, periodic: bool) -> float:
        """The d_t in force for a periodic or an open structure."""
        if self.max_distance is not None:
            return self.max_distance
        return CRYSTAL_MAX_DISTANCE if periodic else MOLECULE_MAX_DISTANCE


def _as_number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not one (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class VoronoiFaces:
    """All Voronoi faces of the atoms of one structure, before any filter.

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
    (result,) = voronoi_graphs([structure], params)
    if isinstance(result, StructureError):
        raise result
    return result


def voronoi_graphs(
    structures: Sequence[Structure], params: VoronoiParams | None = None
) -> list[Graph | StructureError]:
    """Build the filtered Voronoi graphs of many structures in one vectorised pass.

    Args:
        structures: Validated structures (molecules and crystals may be mixed).
        params: Filters; SCANN's reference defaults when None.

    Returns:
        One entry per structure: its Graph, or the StructureError that explains why it
        has none (failed tessellation, isolated atom).
    """
    params = params or VoronoiParams()
    faces, failures = _batch_faces(structures, params)
    results: list[Graph | StructureError] = list(failures)
    ok = [k for k, f in enumerate(failures) if f is None]
    if not ok:
        return results
    atom_offset = np.zeros(len(structures) + 1, dtype=np.int64)
    atom_offset[1:] = np.cumsum([len(s) for s in structures])
    atom_id = atom_offset[faces.graph] + faces.centers
    best = np.zeros(atom_offset[-1])
    np.maximum.at(best, atom_id, faces.solid_angle)
    ratio = faces.solid_angle / best[atom_id]
    d_limit = np.array([params.distance_limit(s.is_periodic) for s in structures])
    keep = (
        (faces.solid_angle >= params.min_solid_angle)
        & (ratio >= params.min_solid_angle_ratio)
        & (faces.distance <= d_limit[faces.graph])
    )
    shifts = faces.shifts[keep]
    order = np.lexsort(
        (
            shifts[:, 2],
            shifts[:, 1],
            shifts[:, 0],
            faces.neighbors[keep],
            faces.centers[keep],
            faces.graph[keep],
        )
    )
    graph_of_edge = faces.graph[keep][order]
    edges = {
        "centers": faces.centers[keep][order].astype(np.int64),
        "neighbors": faces.neighbors[keep][order].astype(np.int64),
        "shifts": shifts[order].astype(np.int64),
        "distance": faces.distance[keep][order],
        "solid_angle": faces.solid_angle[keep][order],
        "solid_angle_ratio": ratio[keep][order],
    }
    bounds = np.searchsorted(graph_of_edge, np.arange(len(structures) + 1))
    for k in ok:
        structure = structures[k]
        part = slice(bounds[k], bounds[k + 1])
        graph = Graph(
            numbers=structure.numbers,
            positions=structure.positions,
            cell=structure.cell,
            pbc=structure.pbc,
            **{name: values[part] for name, values in edges.items()},
        )
        if not params.allow_isolated:
            try:
                check_no_isolated(structure, graph, "Voronoi")
            except StructureError as exc:
                results[k] = exc
                continue
        results[k] = graph
    return results


def voronoi_faces(structure: Structure, params: VoronoiParams | None = None) -> VoronoiFaces:
    """Compute every Voronoi face of every atom of one structure (no filters)."""
    faces, (failure,) = _batch_faces([structure], params or VoronoiParams())
    if failure is not None:
        raise failure
    best = np.zeros(len(structure))
    np.maximum.at(best, faces.centers, faces.solid_angle)
    return VoronoiFaces(
        centers=faces.centers,
        neighbors=faces.neighbors,
        shifts=faces.shifts,
        distance=faces.distance,
        solid_angle=faces.solid_angle,
        max_solid_angle=best,
    )


@dataclass
class _Polygons:
    """Face polygons of one structure and the directed faces they define.

    Each polygon (ridge) is seen from ``eye``; directed face f uses polygon ``ridge[f]``.
    """

    vertices: np.ndarray  # (V, 3)
    flat: np.ndarray  # vertex indices of all polygons, in cyclic order
    sizes: np.ndarray  # (R,) vertices per polygon
    eye: np.ndarray  # (R, 3) a point that owns the face (both owners see the same angle)
    ridge: np.ndarray  # (F,)
    centers: np.ndarray  # (F,)
    neighbors: np.ndarray  # (F,)
    shifts: np.ndarray  # (F, 3)
    distance: np.ndarray  # (F,)


@dataclass
class _BatchFaces:
    graph: np.ndarray
    centers: np.ndarray
    neighbors: np.ndarray
    shifts: np.ndarray
    distance: np.ndarray
    solid_angle: np.ndarray


def _batch_faces(
    structures: Sequence[Structure], params: VoronoiParams
) -> tuple[_BatchFaces, list[StructureError | None]]:
    polygons: list[_Polygons] = []
    owners: list[int] = []
    failures: list[StructureError | None] = []
    for k, structure in enumerate(structures):
        try:
            if structure.is_periodic:
                polygons.append(_periodic_polygons(structure))
            else:
                polygons.append(_open_polygons(structure, params.open_boundary_radius))
        except StructureError as exc:
            failures.append(exc)
            continue
        owners.append(k)
        failures.append(None)
    if not polygons:
        empty = np.empty(0)
        return _BatchFaces(
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty.astype(np.int64),
            np.empty((0, 3), np.int64),
            empty,
            empty,
        ), failures

    vertex_offset = np.cumsum([0] + [p.vertices.shape[0] for p in polygons[:-1]])
    ridge_offset = np.cumsum([0] + [p.sizes.size for p in polygons[:-1]])
    angles = _polygon_solid_angles(
        np.vstack([p.vertices for p in polygons]),
        np.concatenate([p.flat + off for p, off in zip(polygons, vertex_offset, strict=True)]),
        np.concatenate([p.sizes for p in polygons]),
        np.vstack([p.eye for p in polygons]),
    )
    ridge = np.concatenate([p.ridge + off for p, off in zip(polygons, ridge_offset, strict=True)])
    return _BatchFaces(
        graph=np.repeat(np.array(owners), [p.ridge.size for p in polygons]),
        centers=np.concatenate([p.centers for p in polygons]),
        neighbors=np.concatenate([p.neighbors for p in polygons]),
        shifts=np.vstack([p.shifts for p in polygons]),
        distance=np.concatenate([p.distance for p in polygons]),
        solid_angle=angles[ridge],
    ), failures


def _open_polygons(structure: Structure, boundary_radius: float) -> _Polygons:
    n_atoms = len(structure)
    if n_atoms < 2:
        raise structure.fail("isolated atom 0: a molecule needs at least two atoms")
    centroid = structure.positions.mean(axis=0)
    extent = float(np.sqrt(((structure.positions - centroid) ** 2).sum(axis=1).max()))
    ghosts = centroid + (extent + boundary_radius) * _GHOST_DIRECTIONS
    points = np.vstack([structure.positions, ghosts])
    try:
        tess = _tessellate(points, n_atoms, only_between_central=True)
    except _FlatInputError as exc:
        raise structure.fail(f"Voronoi tessellation failed: {exc}") from None
    if tess.unbounded:
        raise structure.fail("Voronoi cell of an atom is unbounded (tessellation failed)")
    pairs = tess.pairs
    n_ridges = pairs.shape[0]
    distance = np.sqrt(((points[pairs[:, 1]] - points[pairs[:, 0]]) ** 2).sum(axis=1))
    return _Polygons(
        vertices=tess.vertices,
        flat=tess.flat,
        sizes=tess.sizes,
        eye=points[pairs[:, 0]],
        ridge=np.concatenate([np.arange(n_ridges), np.arange(n_ridges)]),
        centers=np.concatenate([pairs[:, 0], pairs[:, 1]]),
        neighbors=np.concatenate([pairs[:, 1], pairs[:, 0]]),
        shifts=np.zeros((2 * n_ridges, 3), dtype=np.int64),
        distance=np.concatenate([distance, distance]),
    )


def _periodic_polygons(structure: Structure) -> _Polygons:
    n_atoms = len(structure)
    volume_per_atom = abs(np.linalg.det(structure.cell)) / n_atoms
    padding = _INITIAL_PADDING * volume_per_atom ** (1.0 / 3.0)
    for _ in range(_MAX_PADDING_ATTEMPTS):
        sites, shifts = _images_within(structure, padding)
        points = np.vstack(
            [structure.positions, structure.positions[sites] + shifts @ structure.cell]
        )
        try:
            tess = _tessellate(points, n_atoms)
        except _FlatInputError:  # e.g. a layer whose padding reaches no neighbouring layer
            padding *= 2.0
            continue
        needed = 2.0 * tess.max_vertex_distance
        if needed <= padding * (1.0 - 1e-9):
            break
        padding = min(needed, 2.0 * padding) * _PADDING_GROWTH
    else:
        raise structure.fail("Voronoi cells did not converge with growing periodic padding")

    all_sites = np.concatenate([np.arange(n_atoms), sites])
    all_shifts = np.vstack([np.zeros((n_atoms, 3), dtype=np.int64), shifts])
    pairs = tess.pairs
    first = np.nonzero(pairs[:, 0] < n_atoms)[0]
    second = np.nonzero(pairs[:, 1] < n_atoms)[0]
    ridge = np.concatenate([first, second])
    centers = np.concatenate([pairs[first, 0], pairs[second, 1]])
    others = np.concatenate([pairs[first, 1], pairs[second, 0]])
    eye_index = np.where(pairs[:, 0] < n_atoms, pairs[:, 0], pairs[:, 1])
    return _Polygons(
        vertices=tess.vertices,
        flat=tess.flat,
        sizes=tess.sizes,
        eye=points[eye_index],
        ridge=ridge,
        centers=centers,
        neighbors=all_sites[others],
        shifts=all_shifts[others],
        distance=np.sqrt(((points[others] - points[centers]) ** 2).sum(axis=1)),
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


class _FlatInputError(Exception):
    """Qhull found the points (nearly) coplanar."""


@dataclass(frozen=True)
class _Tessellation:
    pairs: np.ndarray  # (R, 2) point indices of each kept face, >= 1 central
    vertices: np.ndarray  # Voronoi vertices
    flat: np.ndarray  # vertex indices of the kept faces, concatenated
    sizes: np.ndarray  # (R,) vertices per face
    unbounded: bool  # some kept face reaches infinity
    max_vertex_distance: float  # from a face's central owner to its vertices


def _tessellate(
    points: np.ndarray, n_central: int, *, only_between_central: bool = False
) -> _Tessellation:
    """Voronoi tessellation; keeps the faces of the first n_central points.

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
    if flat.size and flat.min() < 0:  # a central cell reaches infinity
        return _Tessellation(pairs, vor.vertices, flat, sizes, True, np.inf)
    owner = np.where(pairs[:, 0] < n_central, pairs[:, 0], pairs[:, 1])
    offsets = vor.vertices[flat] - np.repeat(points[owner], sizes, axis=0)
    max_distance = float(np.sqrt((offsets**2).sum(axis=1).max(initial=0.0)))
    return _Tessellation(pairs, vor.vertices, flat, sizes, False, max_distance)


def _polygon_solid_angles(
    vertices: np.ndarray, flat: np.ndarray, sizes: np.ndarray, viewpoints: np.ndarray
) -> np.ndarray:
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
    return np.bincount(owner, weights=tri_angle, minlength=n_poly)
