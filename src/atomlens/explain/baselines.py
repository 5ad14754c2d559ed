"""Chemistry baselines: per-atom importance scores that know nothing about the model.

Every baseline scores an atom with a non-negative importance (larger = more important), so
that it ranks atoms exactly like an attribution method's ``|score|``:

- ``heavy_atom``: 1 for non-hydrogen atoms, 0 for hydrogen (heavy atoms first, all tied);
- ``atomic_number``: the atomic number Z (heavier elements first);
- ``fewest_h``: heavy atoms first, among them those with fewer attached hydrogens:
  ``1 / (1 + n_H)`` for a heavy atom with ``n_H`` bonded H, 0 for hydrogen;
- ``centrality``: closeness centrality on the covalent bond graph (below),
  ``(r - 1) / sum of bond-path lengths to the r - 1 other reachable atoms``, times
  ``(r - 1) / (N - 1)`` when the molecule falls apart into fragments (Wasserman-Faust, as
  networkx); an isolated atom gets 0;
- ``random``: uniform random scores, ``draws`` independent rows (seeded).

Bonds are perceived from covalent radii (:data:`ase.data.covalent_radii`): atoms i and j
are bonded when their distance is at most ``BOND_FACTOR * (r_i + r_j)``.
"""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from atomlens.structures.record import Structure

BASELINES = ("heavy_atom", "atomic_number", "fewest_h", "centrality", "random")
BOND_FACTOR = 1.2
"""Atoms closer than this multiple of the sum of their covalent radii are bonded."""


def bond_matrix(structure: Structure) -> np.ndarray:
    """Covalent bonds of a molecule as a symmetric boolean (N, N) matrix (no self bonds)."""
    positions = np.asarray(structure.positions, dtype=np.float64)
    radii = covalent_radii[np.asarray(structure.numbers)]
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    bonded = distance <= BOND_FACTOR * (radii[:, None] + radii[None])
    np.fill_diagonal(bonded, False)
    return bonded


def heavy_atom(structure: Structure) -> np.ndarray:
    """1 for non-hydrogen atoms, 0 for hydrogen."""
    return (np.asarray(structure.numbers) > 1).astype(np.float64)


def atomic_number(structure: Structure) -> np.ndarray:
    """The atomic number of each atom."""
    return np.asarray(structure.numbers, dtype=np.float64)


def attached_hydrogens(structure: Structure) -> np.ndarray:
    """Number of hydrogens bonded to each atom (N,)."""
    hydrogen = np.asarray(structure.numbers) == 1
    return (bond_matrix(structure) & hydrogen[None]).sum(axis=1)


def fewest_h(structure: Structure) -> np.ndarray:
    """``1 / (1 + attached H)`` for heavy atoms, 0 for hydrogen."""
    heavy = np.asarray(structure.numbers) > 1
    return np.where(heavy, 1.0 / (1.0 + attached_hydrogens(structure)), 0.0)


def centrality(structure: Structure) -> np.ndarray:
    """Closeness centrality of each atom on the covalent bond graph (Wasserman-Faust)."""
    n = len(structure)
    if n < 2:
        return np.zeros(n)
    hops = shortest_path(csr_matrix(bond_matrix(structure)), unweighted=True, directed=False)
    reachable = np.isfinite(hops) & ~np.eye(n, dtype=bool)
    others = reachable.sum(axis=1)
    total = np.where(reachable, hops, 0.0).sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    return np.where(others > 0, others / safe * others / (n - 1), 0.0)


def random_scores(structure: Structure, rng: np.random.Generator, draws: int) -> np.ndarray:
    """``draws`` rows of uniform random scores, (draws, N)."""
    return rng.random((draws, len(structure)))


def baseline_scores(
    structure: Structure, rng: np.random.Generator, draws: int = 5
) -> dict[str, np.ndarray]:
    """Every baseline's scores for one molecule: (1, N) rows, ``random`` (draws, N)."""
    return {
        "heavy_atom": heavy_atom(structure)[None],
        "atomic_number": atomic_number(structure)[None],
        "fewest_h": fewest_h(structure)[None],
        "centrality": centrality(structure)[None],
        "random": random_scores(structure, rng, draws),
    }
