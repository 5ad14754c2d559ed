"""Per-atom weights of frontier orbitals from a first-principles calculation (PySCF).

The weight of atom A in molecular orbital i is its share of the orbital's normalised
density. With the Löwdin population, ``w_A = sum_{mu on A} (S^1/2 C)_{mu i}^2``: every
weight is non-negative and they sum to 1. The Mulliken population
``w_A = sum_{mu on A} C_{mu i} (S C)_{mu i}`` also sums to 1 but can be negative.

Degenerate frontier orbitals: any occupied orbital within ``DEGENERACY_EV`` (1 meV) of the
HOMO, or virtual orbital within it of the LUMO, belongs to the same (near-)degenerate set,
and the per-atom weights are averaged over the set. Any single member of a degenerate pair
is an arbitrary rotation (ethane's HOMO and HOMO-1 lie 0.2 meV apart); the average is
not.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from ase.data import chemical_symbols

from atomlens.errors import DataError
from atomlens.files import safe_filename, write_json_atomic
from atomlens.structures.record import Structure
from atomlens.units import HARTREE_TO_EV

Population = Literal["lowdin", "mulliken"]
ORBITALS = ("homo", "lumo")
DEGENERACY_EV = 1e-3
"""Orbitals this close (eV) to the HOMO (occupied) or LUMO (virtual) are averaged with it."""
CACHE_VERSION = 2
"""Version of the cached weight files; files of another version (or threshold) are redone."""


def _pyscf():
    try:
        import pyscf  # noqa: F401
        from pyscf import dft, gto, scf
    except ImportError:
        raise DataError(
            "orbital weights need PySCF: pip install 'atomlens[validate]' (or pip install pyscf)"
        ) from None
    return gto, scf, dft


def atom_populations(
    coefficients: np.ndarray,
    overlap: np.ndarray,
    ao_atom: np.ndarray,
    n_atoms: int,
    population: Population = "lowdin",
) -> np.ndarray:
    """Per-atom weights of orbitals given as columns of ``coefficients`` (n_ao, k) -> (n_atoms, k).

    Args:
        coefficients: Orbital coefficients in the atomic-orbital basis.
        overlap: The AO overlap matrix S.
        ao_atom: Atom of each atomic orbital (n_ao,).
        n_atoms: Number of atoms.
        population: ``lowdin`` or ``mulliken``.
    """
    if population == "lowdin":
        values, vectors = np.linalg.eigh(overlap)
        root = (vectors * np.sqrt(values)) @ vectors.T
        per_ao = (root @ coefficients) ** 2
    elif population == "mulliken":
        per_ao = coefficients * (overlap @ coefficients)
    else:
        raise ValueError(f"population must be 'lowdin' or 'mulliken', got {population!r}")
    weights = np.zeros((n_atoms, coefficients.shape[1]))
    np.add.at(weights, ao_atom, per_ao)
    return weights


def degenerate_average(
    energies_ev: np.ndarray,
    weights: np.ndarray,
    frontier: int,
    threshold_ev: float = DEGENERACY_EV,
) -> tuple[np.ndarray, int]:
    """Per-atom weights averaged over the orbitals degenerate with orbital ``frontier``.

    Args:
        energies_ev: Energies (eV) of candidate orbitals, all occupied or all virtual (k,).
        weights: Their per-atom weights (n_atoms, k).
        frontier: Column of the HOMO (or LUMO) among the candidates.
        threshold_ev: Orbitals with ``|e - e_frontier| <= threshold_ev`` are averaged.

    Returns:
        The averaged weights (n_atoms,) and the size of the degenerate set.
    """
    energies_ev = np.asarray(energies_ev, dtype=np.float64)
    members = np.flatnonzero(np.abs(energies_ev - energies_ev[frontier]) <= threshold_ev)
    return np.asarray(weights)[:, members].mean(axis=1), int(members.size)


def frontier_weights(
    structure: Structure,
    *,
    method: str = "b3lyp",
    basis: str = "6-31g",
    population: Population = "lowdin",
    charge: int = 0,
    degeneracy_ev: float = DEGENERACY_EV,
) -> dict[str, np.ndarray]:
    """HOMO and LUMO per-atom weights of a closed-shell molecule.

    Weights are averaged over orbitals within ``degeneracy_ev`` of the HOMO (occupied ones)
    or of the LUMO (virtual ones); see :func:`degenerate_average`.

    Args:
        structure: A molecule (not periodic).
        method: ``hf`` or a DFT functional PySCF knows (e.g. ``b3lyp``).
        basis: Gaussian basis set name.
        population: ``lowdin`` (default) or ``mulliken``.
        charge: Total charge.
        degeneracy_ev: Degeneracy threshold in eV (0 takes the single HOMO and LUMO).

    Returns:
        ``{"homo": (N,), "lumo": (N,), "homo_energy_ev": ..., "lumo_energy_ev": ...,
        "homo_degeneracy": ..., "lumo_degeneracy": ...}`` (degeneracy: orbitals averaged).

    Raises:
        StructureError: For periodic or open-shell structures, or when the SCF fails.
    """
    if structure.is_periodic:
        raise structure.fail("orbital weights are computed for molecules only")
    n_electrons = int(structure.numbers.sum()) - charge
    if n_electrons % 2:
        raise structure.fail(f"{n_electrons} electrons: only closed-shell molecules are handled")
    gto, scf, dft = _pyscf()
    atoms = [
        (chemical_symbols[int(z)], tuple(map(float, p)))
        for z, p in zip(structure.numbers, structure.positions, strict=True)
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "try basis-set-exchange"
            mol = gto.M(atom=atoms, basis=basis, unit="Angstrom", charge=charge, verbose=0)
    except (KeyError, RuntimeError) as exc:
        raise structure.fail(f"PySCF cannot set up basis {basis!r}: {exc}") from None
    mf = scf.RHF(mol) if method.lower() == "hf" else dft.RKS(mol, xc=method)
    mf.kernel()
    if not mf.converged:
        mf = mf.newton()
        mf.kernel()
    if not mf.converged:
        raise structure.fail(f"the {method}/{basis} SCF did not converge")
    homo = n_electrons // 2 - 1
    if homo + 1 >= mf.mo_coeff.shape[1]:
        raise structure.fail(f"basis {basis!r} has no virtual orbital for the LUMO")
    ao_atom = np.concatenate(
        [
            np.full(stop - start, atom)
            for atom, (_, _, start, stop) in enumerate(mol.aoslice_by_atom())
        ]
    ).astype(int)
    energies = np.asarray(mf.mo_energy) * HARTREE_TO_EV
    near = np.abs(energies - energies[homo]) <= degeneracy_ev
    occupied = np.flatnonzero(near & (np.arange(energies.size) <= homo))
    near = np.abs(energies - energies[homo + 1]) <= degeneracy_ev
    virtual = np.flatnonzero(near & (np.arange(energies.size) > homo))
    columns = np.concatenate([occupied, virtual])
    weights = atom_populations(
        mf.mo_coeff[:, columns],
        mol.intor("int1e_ovlp"),
        ao_atom,
        len(structure),
        population,
    )
    n_occ = occupied.size
    homo_weights, homo_n = degenerate_average(
        energies[occupied], weights[:, :n_occ], n_occ - 1, degeneracy_ev
    )
    lumo_weights, lumo_n = degenerate_average(
        energies[virtual], weights[:, n_occ:], 0, degeneracy_ev
    )
    return {
        "homo": homo_weights,
        "lumo": lumo_weights,
        "homo_energy_ev": float(energies[homo]),
        "lumo_energy_ev": float(energies[homo + 1]),
        "homo_degeneracy": homo_n,
        "lumo_degeneracy": lumo_n,
    }


def structure_key(structure: Structure) -> str:
    """A content hash of a structure's elements and positions (rounded to 1e-5 Å)."""
    digest = hashlib.sha256(np.asarray(structure.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(np.asarray(structure.positions, dtype=np.float64), 5).tobytes())
    return digest.hexdigest()[:20]


def cached_frontier_weights(
    structure: Structure, cache_dir: Path, **settings: str
) -> dict[str, np.ndarray]:
    """:func:`frontier_weights`, stored per molecule and settings so a rerun skips it.

    Each result is written atomically: a killed job keeps every finished molecule. A file
    records ``CACHE_VERSION`` and ``DEGENERACY_EV``; one written by another version or with
    another threshold (or unreadable) is computed again and replaced.
    """
    tag = "_".join(
        str(settings.get(k, d))
        for k, d in (("method", "b3lyp"), ("basis", "6-31g"), ("population", "lowdin"))
    )
    path = Path(cache_dir) / safe_filename(tag) / f"{structure_key(structure)}.json"
    stored = _read_cache(path)
    if stored is not None:
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in stored.items()}
    result = frontier_weights(structure, **settings)
    payload = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in result.items()}
    payload |= {"version": CACHE_VERSION, "degeneracy_ev": DEGENERACY_EV}
    write_json_atomic(path, payload, indent=None)
    return result


def _read_cache(path: Path) -> dict | None:
    """A cached result of this version and threshold, else None (missing, old or unreadable)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    if stored.get("version") != CACHE_VERSION or stored.get("degeneracy_ev") != DEGENERACY_EV:
        return None
    return stored
