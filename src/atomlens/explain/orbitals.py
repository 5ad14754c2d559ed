"""Per-atom weights of frontier orbitals from a first-principles calculation (PySCF).

The weight of atom A in molecular orbital i is its share of the orbital's normalised
density. With the Löwdin population, ``w_A = sum_{mu on A} (S^1/2 C)_{mu i}^2``: every
weight is non-negative and they sum to 1. The Mulliken population
``w_A = sum_{mu on A} C_{mu i} (S C)_{mu i}`` also sums to 1 but can be negative.
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


def frontier_weights(
    structure: Structure,
    *,
    method: str = "b3lyp",
    basis: str = "6-31g",
    population: Population = "lowdin",
    charge: int = 0,
) -> dict[str, np.ndarray]:
    """HOMO and LUMO per-atom weights of a closed-shell molecule.

    Args:
        structure: A molecule (not periodic).
        method: ``hf`` or a DFT functional PySCF knows (e.g. ``b3lyp``).
        basis: Gaussian basis set name.
        population: ``lowdin`` (default) or ``mulliken``.
        charge: Total charge.

    Returns:
        ``{"homo": (N,), "lumo": (N,), "homo_energy_ev": ..., "lumo_energy_ev": ...}``.

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
    weights = atom_populations(
        mf.mo_coeff[:, [homo, homo + 1]],
        mol.intor("int1e_ovlp"),
        ao_atom,
        len(structure),
        population,
    )
    return {
        "homo": weights[:, 0],
        "lumo": weights[:, 1],
        "homo_energy_ev": float(mf.mo_energy[homo] * HARTREE_TO_EV),
        "lumo_energy_ev": float(mf.mo_energy[homo + 1] * HARTREE_TO_EV),
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

    Each result is written atomically: a killed job keeps every finished molecule.
    """
    tag = "_".join(
        str(settings.get(k, d))
        for k, d in (("method", "b3lyp"), ("basis", "6-31g"), ("population", "lowdin"))
    )
    path = Path(cache_dir) / safe_filename(tag) / f"{structure_key(structure)}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in stored.items()}
    result = frontier_weights(structure, **settings)
    payload = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in result.items()}
    write_json_atomic(path, payload, indent=None)
    return result
