"""Descriptors of Li-ion conductors: composition features and Li-transport structure features.

Composition features use pymatgen's element data (Pauling electronegativity, atomic radius,
mass, elemental bulk and shear moduli) and matminer's elemental cohesive energies (Kittel).
Elemental moduli are missing for many elements (O, F, N, ...): such features average over
the atoms whose element has data, and a ``*_coverage`` column says which fraction of atoms
that was.

Structure features follow Sendek et al. (Energy Environ. Sci. 2017) on atomlens Voronoi
graphs (the same solid-angle filters as the models): Li neighbour counts, bond ionicities
(Pauling, 1 - exp(-dX^2/4)), sublattice quantities, shortest distances, volumes, packing
fractions and the widest straight-line channel along a lattice direction.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np

from atomlens.errors import DataError
from atomlens.graphs.cutoff import CutoffParams, cutoff_graph
from atomlens.graphs.graph import Graph
from atomlens.graphs.voronoi import VoronoiParams, voronoi_graph
from atomlens.structures.record import Structure

ANIONS = frozenset({"N", "O", "F", "P", "S", "Cl", "As", "Se", "Br", "Te", "I"})
LI = 3
FEATURE_SETS = ("composition", "li-transport", "all")
PATH_GRID = 24  # sampling points per axis when searching the widest straight channel


@cache
def _cohesive_energies() -> dict[str, float]:
    try:
        from matminer.utils.data import CohesiveEnergyData
    except ImportError:
        raise DataError(
            "composition features need matminer's element data: pip install 'atomlens[descriptors]'"
        ) from None
    return {str(k): float(v) for k, v in CohesiveEnergyData().cohesive_energy_data.items()}


@cache
def element_data(z: int) -> dict[str, float]:
    """Pauling X, atomic radius (Å), mass (amu), bulk/shear modulus (GPa), cohesive energy (eV).

    Missing values are NaN.
    """
    from pymatgen.core import Element

    element = Element.from_Z(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = {
            "X": element.X,
            "radius": element.atomic_radius,
            "mass": element.atomic_mass,
            "B": element.bulk_modulus,
            "G": element.rigidity_modulus,
            "Ecoh": _cohesive_energies().get(element.symbol),
        }
    return {k: float(v) if v is not None else float("nan") for k, v in values.items()}


def _weighted(numbers: np.ndarray, key: str) -> tuple[float, float]:
    """Atom-averaged property over atoms with data, and the fraction of atoms that had it."""
    values = np.array([element_data(int(z))[key] for z in numbers])
    known = np.isfinite(values)
    if not known.any():
        return float("nan"), 0.0
    return float(values[known].mean()), float(known.mean())


def composition_features(structure: Structure) -> dict[str, float]:
    """Li fraction, electronegativity and radius with/without Li, mass, moduli, combinations."""
    numbers = np.asarray(structure.numbers)
    others = numbers[numbers != LI]
    x_all, _ = _weighted(numbers, "X")
    x_host, _ = _weighted(others, "X") if others.size else (float("nan"), 0.0)
    r_all, _ = _weighted(numbers, "radius")
    r_host, _ = _weighted(others, "radius") if others.size else (float("nan"), 0.0)
    mass, _ = _weighted(numbers, "mass")
    out = {
        "li_fraction": float(np.mean(numbers == LI)),
        "mean_X": x_all,
        "mean_X_without_li": x_host,
        "delta_X": x_host - x_all,
        "mean_radius": r_all,
        "mean_radius_without_li": r_host,
        "radius_ratio": r_all / r_host if r_host else float("nan"),
        "mean_mass": mass,
    }
    for key, name in (("B", "bulk_modulus"), ("G", "shear_modulus"), ("Ecoh", "cohesive_energy")):
        value, coverage = _weighted(numbers, key)
        out[name] = value
        out[f"{name}_coverage"] = coverage
    # Combinations with the units of energy x length^2 / mass under the root:
    # sqrt(B R^5 / m), sqrt(G R^5 / m) and sqrt(E_coh R^2 / m).
    out["sqrt_B_R5_over_m"] = float(np.sqrt(out["bulk_modulus"] * r_all**5 / mass))
    out["sqrt_G_R5_over_m"] = float(np.sqrt(out["shear_modulus"] * r_all**5 / mass))
    out["sqrt_Ecoh_R2_over_m"] = float(np.sqrt(out["cohesive_energy"] * r_all**2 / mass))
    return out


def _ionicity(x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
    return 1.0 - np.exp(-((x_a - x_b) ** 2) / 4.0)


SHORTEST_CUTOFF = 8.0  # Angstrom: shortest distances are searched within this range


def _shortest(graph: Graph, pairs: np.ndarray) -> float:
    return float(graph.distance[pairs].min()) if pairs.any() else float("nan")


def li_transport_features(structure: Structure, params: VoronoiParams | None = None) -> dict:
    """Sendek-style structural descriptors of a Li-containing crystal.

    Raises:
        StructureError: If the structure is not periodic or has no Li.
    """
    if not structure.is_periodic:
        raise structure.fail("Li-transport features need a periodic structure")
    numbers = np.asarray(structure.numbers)
    if not np.any(numbers == LI):
        raise structure.fail("Li-transport features need Li in the structure")
    graph = voronoi_graph(structure, params or VoronoiParams())
    from ase.data import chemical_symbols

    symbols = np.array([chemical_symbols[z] for z in numbers])
    is_li = numbers == LI
    is_anion = np.isin(symbols, sorted(ANIONS))
    x = np.array([element_data(int(z))["X"] for z in numbers])
    radius = np.array([element_data(int(z))["radius"] for z in numbers])
    c, n = graph.centers, graph.neighbors
    li_edges = is_li[c]
    host_edges = ~is_li[c] & ~is_li[n]
    li_cn = np.bincount(c[li_edges], minlength=len(numbers))[is_li]
    li_li = np.bincount(c[li_edges & is_li[n]], minlength=len(numbers))[is_li]
    host_cn = np.bincount(c[host_edges], minlength=len(numbers))[~is_li]
    ionicity = _ionicity(x[c], x[n])
    li_ionicity = float(np.nanmean(ionicity[li_edges])) if li_edges.any() else float("nan")
    host_ionicity = float(np.nanmean(ionicity[host_edges])) if host_edges.any() else float("nan")
    anion_edges = is_anion[c] & is_anion[n]
    # Shortest distances over all pairs (not only Voronoi neighbours) within 8 Å.
    pairs = cutoff_graph(structure, CutoffParams(cutoff=SHORTEST_CUTOFF, allow_isolated=True))
    pc, pn = pairs.centers, pairs.neighbors
    volume = float(abs(np.linalg.det(structure.cell)))
    spheres = 4.0 / 3.0 * np.pi * np.nan_to_num(radius) ** 3
    width, path_x = straight_path(structure, radius, x)
    return {
        "li_neighbor_count": float(li_cn.mean()),
        "li_neighbor_count_std": float(li_cn.std()),
        "li_li_bonds_per_li": float(li_li.mean()),
        "li_bond_ionicity": li_ionicity,
        "sublattice_bond_ionicity": host_ionicity,
        "sublattice_neighbor_count": float(host_cn.mean()) if host_cn.size else float("nan"),
        "bond_ionicity_ratio": li_ionicity / host_ionicity if host_ionicity else float("nan"),
        "neighbor_count_ratio": float(li_cn.mean() / host_cn.mean())
        if host_cn.size and host_cn.mean()
        else float("nan"),
        "anion_framework_coordination": float(
            np.bincount(c[anion_edges], minlength=len(numbers))[is_anion].mean()
        )
        if is_anion.any()
        else float("nan"),
        "shortest_anion_anion": _shortest(pairs, is_anion[pc] & is_anion[pn]),
        "shortest_li_anion": _shortest(pairs, is_li[pc] & is_anion[pn]),
        "shortest_li_li": _shortest(pairs, is_li[pc] & is_li[pn]),
        "volume_per_atom": volume / len(numbers),
        "volume_per_anion": volume / is_anion.sum() if is_anion.any() else float("nan"),
        "sublattice_electronegativity": float(np.nanmean(x[~is_li]))
        if (~is_li).any()
        else float("nan"),
        "packing_fraction": float(spheres.sum() / volume),
        "sublattice_packing_fraction": float(spheres[~is_li].sum() / volume),
        "straight_path_width": width,
        "straight_path_electronegativity": path_x,
    }


def straight_path(structure: Structure, radius: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Widest straight channel along a lattice vector, and the mean X of the atoms lining it.

    For each lattice direction, atoms (with periodic images) are projected on the plane
    perpendicular to it; the channel radius at a point of that plane is its distance to the
    nearest projected atom minus that atom's radius. The widest channel is the largest such
    radius over a grid of points of the cell's cross-section.
    """
    from scipy.spatial import cKDTree

    cell = np.asarray(structure.cell, dtype=np.float64)
    positions = np.asarray(structure.positions, dtype=np.float64)
    radius = np.nan_to_num(radius, nan=1.0)
    best_width, best_x = -np.inf, float("nan")
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    for axis in range(3):
        direction = cell[axis] / np.linalg.norm(cell[axis])
        others = [cell[k] for k in range(3) if k != axis]
        # An orthonormal basis of the plane perpendicular to the direction.
        u = others[0] - (others[0] @ direction) * direction
        u /= np.linalg.norm(u)
        v = np.cross(direction, u)
        images = (positions[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
        image_index = np.tile(np.arange(len(positions)), len(shifts))
        flat = np.column_stack([images @ u, images @ v])
        tree = cKDTree(flat)
        grid = np.linspace(0.0, 1.0, PATH_GRID, endpoint=False)
        a, b = np.meshgrid(grid, grid, indexing="ij")
        points3 = a.reshape(-1, 1) * others[0] + b.reshape(-1, 1) * others[1]
        points = np.column_stack([points3 @ u, points3 @ v])
        distance, nearest = tree.query(points, k=min(8, len(flat)))
        clearance = distance - radius[image_index[nearest]]
        widths = clearance.min(axis=1)
        k = int(np.argmax(widths))
        if widths[k] > best_width:
            best_width = float(widths[k])
            lining = image_index[nearest[k][clearance[k] < widths[k] + 0.5]]
            best_x = float(np.nanmean(x[lining]))
    return max(best_width, 0.0), best_x


def featurize(
    structure: Structure, feature_set: str = "all", params: VoronoiParams | None = None
) -> dict[str, float]:
    """The features of one structure: ``composition``, ``li-transport`` or ``all``."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; use one of {FEATURE_SETS}")
    out: dict[str, float] = {}
    if feature_set in ("composition", "all"):
        out |= composition_features(structure)
    if feature_set in ("li-transport", "all"):
        out |= li_transport_features(structure, params)
    return out
