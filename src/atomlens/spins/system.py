"""The spin-model data: sites, moments, exchange in CSR form, anisotropy and crystal field.

Energy of a classical Heisenberg configuration of unit vectors ``s_i``:

    E = - sum_{i<j} J_ij s_i . s_j - sum_i D_i (s_i . a_i)^2 + sum_i sum_k B_ik O_k(s_i)
        - h sum_i mu_i s_i^z

``O_k`` are the classical Stevens polynomials of a unit vector (the ``J^l`` factors of a
rare-earth moment are folded into ``B``), in the order of :data:`STEVENS_TERMS`. The Zeeman
term is never sampled: it is applied analytically to the free energy in ``M``. Energies are in
one unit with ``k_B = 1`` (reduced units with ``J = 1``, or kelvin for material models); the
field ``h`` is an energy per unit moment (``h = mu_B mu0 H / k_B`` in kelvin for moments in
``mu_B``). An Ising system uses the exchange only, with spins ``+1``/``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atomlens.errors import AtomlensError

#: Classical Stevens terms of a unit vector (x, y, z = cos theta), in the column order of ``B``:
#: O20: 3z^2-1; O40: 35z^4-30z^2+3; O60: 231z^6-315z^4+105z^2-5; O44: s^4 cos 4phi;
#: O64: (11z^2-1) s^4 cos 4phi; O2-2: s^2 sin 2phi; O6-2: (33z^4-18z^2+1) s^2 sin 2phi.
STEVENS_TERMS = ("O20", "O40", "O60", "O44", "O64", "O2-2", "O6-2")


class SpinModelError(AtomlensError, ValueError):
    """A spin model or its parameters are invalid."""


@dataclass
class SpinSystem:
    """A lattice of classical spins with its Hamiltonian (see the module docstring).

    Attributes:
        positions: Site positions, shape (n, 3), in angstrom or lattice units.
        site_types: Index into ``type_names`` per site, shape (n,).
        type_names: Name of each site type (e.g. ``"Fe"``, ``"Nd"``, ``"bulk"``).
        moments: Magnetic moment per site (mu_B or reduced units), shape (n,).
        exchange_indptr: CSR row pointers, shape (n + 1,); both (i, j) and (j, i) are stored.
        exchange_indices: CSR column indices.
        exchange_values: ``J_ij`` for each stored pair (positive is ferromagnetic).
        anisotropy: Uniaxial constant ``D_i`` per site, shape (n,).
        anisotropy_axes: Unit easy axis per site, shape (n, 3).
        crystal_field: Stevens coefficients ``B_ik`` per site, shape (n, 7).
        ising: True for an Ising model (exchange only, spins along z).
        energy_unit: Name of the energy unit (``"J"`` for reduced units, ``"K"`` for kelvin).
        moment_unit: Name of the moment unit.
        name: Short description of the model.
    """

    positions: np.ndarray
    site_types: np.ndarray
    type_names: tuple[str, ...]
    moments: np.ndarray
    exchange_indptr: np.ndarray
    exchange_indices: np.ndarray
    exchange_values: np.ndarray
    anisotropy: np.ndarray
    anisotropy_axes: np.ndarray
    crystal_field: np.ndarray
    ising: bool = False
    energy_unit: str = "J"
    moment_unit: str = "mu"
    name: str = "spin model"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.positions)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(n, 3)
        self.site_types = np.ascontiguousarray(self.site_types, dtype=np.int64)
        self.moments = np.ascontiguousarray(self.moments, dtype=np.float64)
        self.exchange_indptr = np.ascontiguousarray(self.exchange_indptr, dtype=np.int64)
        self.exchange_indices = np.ascontiguousarray(self.exchange_indices, dtype=np.int64)
        self.exchange_values = np.ascontiguousarray(self.exchange_values, dtype=np.float64)
        self.anisotropy = np.ascontiguousarray(self.anisotropy, dtype=np.float64)
        self.anisotropy_axes = np.ascontiguousarray(self.anisotropy_axes, dtype=np.float64)
        self.crystal_field = np.ascontiguousarray(self.crystal_field, dtype=np.float64)
        self.validate()

    @property
    def n_sites(self) -> int:
        """Number of spins."""
        return len(self.positions)

    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """The model as the kernels take it: CSR exchange, moments, anisotropy, crystal field.

        Returns:
            ``(indptr, indices, values, moments, anisotropy, anisotropy_axes, crystal_field)``.
        """
        return (
            self.exchange_indptr,
            self.exchange_indices,
            self.exchange_values,
            self.moments,
            self.anisotropy,
            self.anisotropy_axes,
            self.crystal_field,
        )

    @property
    def saturation_moment(self) -> float:
        """``M_s = sum_i mu_i``, the largest possible ``M``."""
        return float(self.moments.sum())

    def validate(self) -> None:
        """Check shapes, finiteness and symmetry of the exchange; raise SpinModelError."""
        n = self.n_sites
        if n == 0:
            raise SpinModelError(f"{self.name}: the model has no spins")
        checks = {
            "site_types": (self.site_types.shape, (n,)),
            "moments": (self.moments.shape, (n,)),
            "exchange_indptr": (self.exchange_indptr.shape, (n + 1,)),
            "anisotropy": (self.anisotropy.shape, (n,)),
            "anisotropy_axes": (self.anisotropy_axes.shape, (n, 3)),
            "crystal_field": (self.crystal_field.shape, (n, len(STEVENS_TERMS))),
        }
        for key, (shape, expected) in checks.items():
            if shape != expected:
                raise SpinModelError(f"{self.name}: {key} has shape {shape}, expected {expected}")
        for key in ("moments", "exchange_values", "anisotropy", "anisotropy_axes", "crystal_field"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise SpinModelError(f"{self.name}: {key} contains NaN or infinite values")
        if self.site_types.min() < 0 or self.site_types.max() >= len(self.type_names):
            raise SpinModelError(f"{self.name}: site_types out of range of type_names")
        if np.any(self.moments <= 0):
            raise SpinModelError(f"{self.name}: every moment must be positive")
        nnz = self.exchange_indptr[-1]
        if self.exchange_indptr[0] != 0 or np.any(np.diff(self.exchange_indptr) < 0):
            raise SpinModelError(f"{self.name}: exchange_indptr is not a valid CSR pointer")
        if len(self.exchange_indices) != nnz or len(self.exchange_values) != nnz:
            raise SpinModelError(f"{self.name}: exchange arrays disagree with exchange_indptr")
        if nnz and (self.exchange_indices.min() < 0 or self.exchange_indices.max() >= n):
            raise SpinModelError(f"{self.name}: exchange index out of range")
        rows = np.repeat(np.arange(n), np.diff(self.exchange_indptr))
        if np.any(rows == self.exchange_indices):
            raise SpinModelError(f"{self.name}: a site is coupled to itself")
        pairs = zip(rows.tolist(), self.exchange_indices.tolist(), strict=True)
        forward = dict(zip(pairs, self.exchange_values, strict=True))
        for (i, j), value in forward.items():
            if forward.get((j, i)) != value:
                raise SpinModelError(
                    f"{self.name}: exchange is not symmetric: J[{i},{j}]={value}, "
                    f"J[{j},{i}]={forward.get((j, i))}"
                )
        norms = np.linalg.norm(self.anisotropy_axes, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-8):
            raise SpinModelError(f"{self.name}: anisotropy axes must be unit vectors")


def exchange_csr(
    n_sites: int, pairs_i: np.ndarray, pairs_j: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric CSR arrays from a list of unique pairs (each pair once, i != j).

    Returns:
        ``(indptr, indices, values)`` with both directions of every pair stored.
    """
    pairs_i = np.asarray(pairs_i, dtype=np.int64)
    pairs_j = np.asarray(pairs_j, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    rows = np.concatenate([pairs_i, pairs_j])
    cols = np.concatenate([pairs_j, pairs_i])
    vals = np.concatenate([values, values])
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    if len(rows) > 1:
        duplicate = (np.diff(rows) == 0) & (np.diff(cols) == 0)
        if np.any(duplicate):
            k = int(np.argmax(duplicate))
            raise SpinModelError(f"pair ({rows[k]}, {cols[k]}) is listed twice")
    indptr = np.zeros(n_sites + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), cols, vals
