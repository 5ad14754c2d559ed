"""Descriptors of Li-ion conductors: composition features and Li-transport structure features.

The feature set of the ab initio amorphous materials database (Zheng, Sivonxay et al.,
arXiv 2402.00177, 2024; the column list of their ``feature_target.dat``): 20 structural
descriptors after Sendek et al. (Energy Environ. Sci. 10, 306 (2017), features S1.1-S1.20)
and 21 composition features. With the temperature and 1/(kB T) that ``featurize`` adds
from the labels, a table has 43 feature columns. The authors' table has one more
structural column, ``SLPW_pp`` (a length next to the path width), whose definition is
published nowhere we could find: atomlens does not compute it.

Composition features use pymatgen's element data (Pauling electronegativity, atomic radius,
mass, elemental bulk and shear moduli) and matminer's elemental cohesive energies (Kittel).
X, radius and mass average over the atoms whose element has a value (pymatgen lacks X only
for He, Ne, Ar). The moduli and cohesive energies are per-atom means in which an element
without a tabulated value counts as 0 (pymatgen has no bulk modulus for N, O, F, Ga, Ge,
Zr, Os and no shear modulus for B, C, N, O, F, Si, P, S, Cl, Ge, Br, I, among others): the
means stay defined for every composition, so tables have no empty cells, and carry how much
of the cell has data. (Earlier tables had ``*_coverage`` columns instead; ``fit-table`` and
``sisso`` take every numeric column for a feature, so bookkeeping columns are not written.)

Structure features follow Sendek et al. on atomlens Voronoi graphs (the same solid-angle
filters as the models): Li neighbour counts, bond ionicities (Pauling, 1 - exp(-dX^2/4)),
sublattice quantities, shortest distances, volumes, packing fractions and the widest
straight-line channel along a lattice direction.
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


def _mean(numbers: np.ndarray, key: str) -> float:
    """Mean of an element property over atoms: X, radius and mass over the atoms that have it.

    NaN for an empty set of atoms or when no atom has the property.
    """
    values = np.array([element_data(int(z))[key] for z in numbers])
    known = np.isfinite(values)
    return float(values[known].mean()) if known.any() else float("nan")


def _per_atom(numbers: np.ndarray, key: str) -> float:
    """Per-atom mean of B, G or E_coh: an element without a tabulated value counts as 0.

    NaN only for an empty set of atoms.
    """
    if not numbers.size:
        return float("nan")
    values = np.array([element_data(int(z))[key] for z in numbers])
    return float(np.nan_to_num(values, nan=0.0).mean())


def _composition_block(numbers: np.ndarray) -> dict[str, float]:
    """Mean mass, B, G, E_coh of a set of atoms and the three root combinations."""
    radius, mass = _mean(numbers, "radius"), _mean(numbers, "mass")
    out = {"mean_mass": mass}
    for key, name in (("B", "bulk_modulus"), ("G", "shear_modulus"), ("Ecoh", "cohesive_energy")):
        out[name] = _per_atom(numbers, key)
    # Energy x length^2 / mass under the root: the paper's BR5_M, GR5_M and ER2_m.
    out["sqrt_B_R5_over_m"] = float(np.sqrt(out["bulk_modulus"] * radius**5 / mass))
    out["sqrt_G_R5_over_m"] = float(np.sqrt(out["shear_modulus"] * radius**5 / mass))
    out["sqrt_Ecoh_R2_over_m"] = float(np.sqrt(out["cohesive_energy"] * radius**2 / mass))
    return out


def composition_features(structure: Structure) -> dict[str, float]:
    """The 21 composition features of the amorphous-database paper.

    Li fraction; mean Pauling X and atomic radius over all atoms and over the non-Li atoms
    (``*_without_li``), X(without Li) - X and radius(without Li) / radius; and, over all
    atoms and without Li, the mean mass, bulk and shear modulus, cohesive energy,
    sqrt(B R^5/m), sqrt(G R^5/m) and sqrt(E_coh R^2/m) (R and m: the mean radius and mass
    of the same atoms). The authors' table (Zheng et al. 2024, columns ``Li_percentage``,
    ``avg_X_with_Li`` ... ``ER2_m_without_Li``) has exactly these 21.
    """
    numbers = np.asarray(structure.numbers)
    others = numbers[numbers != LI]
    x_all, x_host = _mean(numbers, "X"), _mean(others, "X")
    r_all, r_host = _mean(numbers, "radius"), _mean(others, "radius")
    out = {
        "li_fraction": float(np.mean(numbers == LI)),
        "mean_X": x_all,
        "mean_X_without_li": x_host,
        "delta_X": x_host - x_all,
        "mean_radius": r_all,
        "mean_radius_without_li": r_host,
        "radius_ratio_without_over_with_li": r_host / r_all,
    }
    everything, host = _composition_block(numbers), _composition_block(others)
    for key, value in everything.items():  # each property next to its without-Li twin
        out[key] = value
        out[f"{key}_without_li"] = host[key]
    return out


def _ionicity(x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
    return 1.0 - np.exp(-((x_a - x_b) ** 2) / 4.0)


SHORTEST_CUTOFF = 8.0  # Angstrom: shortest distances are searched within this range


def _shortest(graph: Graph, pairs: np.ndarray) -> float:
    return float(graph.distance[pairs].min()) if pairs.any() else float("nan")


def li_transport_features(structure: Structure, params: VoronoiParams | None = None) -> dict:
    """The 20 structural descriptors of Sendek et al. (2017) of a Li-containing cell.

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
    # SDLI (Sendek S1.3): the spread of the Li bond ionicities, over the same Li-centred
    # bonds whose mean is the Li bond ionicity (population standard deviation).
    li_ionicity_std = float(np.nanstd(ionicity[li_edges])) if li_edges.any() else float("nan")
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
        "li_bond_ionicity_std": li_ionicity_std,
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
