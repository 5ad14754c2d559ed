"""Builders of :class:`~atomlens.spins.system.SpinSystem` lattices, and a mean-field T_C estimate.

Reduced-unit test-beds (``energy_unit="J"``):

* :func:`simple_cubic_grain` - an ``L^3`` classical Heisenberg grain with uniaxial anisotropy
  (optionally a different anisotropy on the surface sites);
* :func:`two_sublattice_grain` - a transition-metal (TM) grain with rare-earth (RE) sites on a
  regular sublattice, weak RE-TM coupling and an RE crystal field;
* :func:`ising_square` - the periodic ``L x L`` Ising model;
* :func:`heisenberg_chain` - an open classical Heisenberg chain.

Material models: :func:`from_structure` turns an ``ase.Atoms`` (magnetic species, distance
shells or an explicit pair table, moments, anisotropy, crystal field) into a finite grain with
open boundaries or a periodic crystal; see :mod:`atomlens.spins.nd2fe14b` for Nd2Fe14B.

:func:`mean_field_curie_temperature` estimates T_C of any model from the sublattice-averaged
exchange; :data:`CLASSICAL_HEISENBERG_TC_RATIO` corrects it for classical Heisenberg spins.
"""

# Physics notation (L, J, D, J_tm, ...) for lattice sizes and couplings.
# ruff: noqa: N803, N806

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from atomlens.spins.system import STEVENS_TERMS, SpinModelError, SpinSystem, exchange_csr

if TYPE_CHECKING:
    from ase import Atoms

#: Ratio of the exact Curie temperature of the classical Heisenberg model on the simple cubic
#: lattice (``T_C = 1.443 J``, high-temperature series and Monte Carlo) to its mean-field value
#: (``zJ/3 = 2 J``): 1.443 / 2.0 = 0.7215, used rounded as a generic fluctuation correction of
#: mean-field Curie temperatures of 3-D classical Heisenberg models.
CLASSICAL_HEISENBERG_TC_RATIO = 0.72

#: Two sites closer than this (angstrom) are taken to be the same site entered twice.
MIN_SITE_DISTANCE = 0.5

#: ``J(species_i, species_j, r)`` for a pair at distance ``r`` (angstrom); 0 means no bond.
ExchangeFunction = Callable[[str, str, float], float]

#: Distance shells: ``[(r_max, {(species_a, species_b): J, ...}), ...]``.
ShellTable = Sequence[tuple[float, Mapping[tuple[str, str], float]]]

_Z_AXIS = np.array([0.0, 0.0, 1.0])


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _finite(value: Any, what: str) -> float:
    """``value`` as a float; SpinModelError if it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpinModelError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SpinModelError(f"{what} is {number} (must be a finite number)")
    return number


def crystal_field_row(value: Mapping[str, float] | Sequence[float] | None, what: str) -> np.ndarray:
    """Stevens coefficients as one row in the column order of :data:`STEVENS_TERMS`.

    Args:
        value: ``None`` (all zero), a mapping ``{"O20": B20, ...}`` (missing terms are zero) or
            a sequence of ``len(STEVENS_TERMS)`` numbers.
        what: Name of the parameter, for error messages.

    Returns:
        Array of shape ``(len(STEVENS_TERMS),)``.

    Raises:
        SpinModelError: Unknown term names, a wrong length or non-finite values.
    """
    row = np.zeros(len(STEVENS_TERMS))
    if value is None:
        return row
    if isinstance(value, Mapping):
        for key, coefficient in value.items():
            if key not in STEVENS_TERMS:
                raise SpinModelError(
                    f"{what}: unknown Stevens term {key!r} (known: {', '.join(STEVENS_TERMS)})"
                )
            row[STEVENS_TERMS.index(key)] = _finite(coefficient, f"{what}[{key!r}]")
        return row
    values = list(value)
    if len(values) != len(STEVENS_TERMS):
        raise SpinModelError(
            f"{what}: expected {len(STEVENS_TERMS)} coefficients ({', '.join(STEVENS_TERMS)}), "
            f"got {len(values)}"
        )
    for k, coefficient in enumerate(values):
        row[k] = _finite(coefficient, f"{what}[{STEVENS_TERMS[k]}]")
    return row


def _grid(L: int) -> np.ndarray:
    """Integer coordinates of an ``L^3`` grid; site index ``(x * L + y) * L + z``."""
    return np.indices((L, L, L)).reshape(3, -1).T.astype(np.float64)


def _cubic_bonds(L: int, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour pairs of the ``L^3`` simple cubic grid (each pair once)."""
    index = np.arange(L**3).reshape(L, L, L)
    first, second = [], []
    for axis in range(3):
        neighbour = np.roll(index, -1, axis=axis)
        if periodic:
            first.append(index.ravel())
            second.append(neighbour.ravel())
        else:
            keep = [slice(None)] * 3
            keep[axis] = slice(0, L - 1)
            first.append(index[tuple(keep)].ravel())
            second.append(neighbour[tuple(keep)].ravel())
    return np.concatenate(first), np.concatenate(second)


def _check_size(L: int, periodic: bool, what: str) -> None:
    if int(L) != L or L < 1:
        raise SpinModelError(f"{what}: L must be a positive integer, got {L!r}")
    if periodic and L < 3:
        raise SpinModelError(
            f"{what}: periodic boundaries need L >= 3 (got L={L}); smaller cells would couple a "
            "pair twice or a site to itself"
        )


# --------------------------------------------------------------------------------------------
# Reduced-unit lattices
# --------------------------------------------------------------------------------------------


def simple_cubic_grain(
    L: int,
    J: float = 1.0,
    D: float = 0.1,
    surface_D: float | None = None,
    moment: float = 1.0,
    periodic: bool = False,
) -> SpinSystem:
    """An ``L x L x L`` simple cubic Heisenberg grain with uniaxial anisotropy along z.

    ``E = -J sum_<ij> s_i . s_j - sum_i D_i (s_i^z)^2`` over nearest neighbours. With open
    boundaries (the default) a site with any coordinate equal to 0 or ``L - 1`` has type
    ``"surface"`` and the others ``"bulk"``; a periodic grain has only ``"bulk"`` sites.

    Args:
        L: Edge length in sites (``L >= 3`` when periodic).
        J: Nearest-neighbour exchange (positive is ferromagnetic).
        D: Uniaxial anisotropy constant of bulk sites (easy axis z for ``D > 0``).
        surface_D: Anisotropy constant of surface sites; ``None`` uses ``D``. Open boundaries
            only.
        moment: Moment of every site.
        periodic: Periodic instead of open boundaries.

    Returns:
        A SpinSystem in reduced units (``energy_unit="J"``); positions are the integer grid
        coordinates and site ``(x, y, z)`` has index ``(x * L + y) * L + z``.

    Raises:
        SpinModelError: Invalid size or non-finite parameters.
    """
    what = "simple_cubic_grain"
    _check_size(L, periodic, what)
    J, D, moment = (_finite(v, f"{what}: {k}") for k, v in (("J", J), ("D", D), ("moment", moment)))
    if surface_D is not None:
        surface_D = _finite(surface_D, f"{what}: surface_D")
        if periodic:
            raise SpinModelError(f"{what}: surface_D needs open boundaries (periodic=False)")
    positions = _grid(L)
    n = L**3
    if periodic:
        site_types = np.zeros(n, dtype=np.int64)
    else:
        site_types = np.any((positions == 0) | (positions == L - 1), axis=1).astype(np.int64)
    anisotropy = np.full(n, D)
    if surface_D is not None:
        anisotropy[site_types == 1] = surface_D
    pi, pj = _cubic_bonds(L, periodic)
    indptr, indices, values = exchange_csr(n, pi, pj, np.full(len(pi), J))
    return SpinSystem(
        positions=positions,
        site_types=site_types,
        type_names=("bulk",) if periodic else ("bulk", "surface"),
        moments=np.full(n, moment),
        exchange_indptr=indptr,
        exchange_indices=indices,
        exchange_values=values,
        anisotropy=anisotropy,
        anisotropy_axes=np.tile(_Z_AXIS, (n, 1)),
        crystal_field=np.zeros((n, len(STEVENS_TERMS))),
        energy_unit="J",
        moment_unit="mu",
        name=f"simple cubic {L}^3 ({'periodic' if periodic else 'open'})",
        metadata={"L": L, "periodic": periodic},
    )


def two_sublattice_grain(
    L: int,
    J_tm: float = 1.0,
    J_re_tm: float = 0.1,
    D_tm: float = 0.05,
    re_crystal_field: Mapping[str, float] | Sequence[float] | None = None,
    moment_tm: float = 1.0,
    moment_re: float = 1.5,
    re_period: int = 2,
    periodic: bool = False,
) -> SpinSystem:
    """A simple cubic transition-metal grain with rare-earth sites on a regular sublattice.

    Layout: site ``(x, y, z)`` of the ``L^3`` grid is rare earth (type ``"RE"``) when
    ``x, y, z`` are all multiples of ``re_period``, i.e. one corner of every
    ``re_period^3`` block (an RE fraction of 1/8 for the default ``re_period=2`` and even
    ``L``); all other sites are transition metal (``"TM"``). RE sites are never nearest
    neighbours of each other, so the bonds are TM-TM (``J_tm``) and RE-TM (``J_re_tm``).

    Energy: ``-sum J_ij s_i . s_j - D_tm sum_TM (s_i^z)^2 + sum_RE sum_k B_k O_k(s_i)``.
    ``J_re_tm > 0`` keeps the RE moment parallel to the TM moments (light rare earths in the
    moment-direction representation); use ``J_re_tm < 0`` for a ferrimagnet. The RE crystal
    field defaults to ``{"O20": -0.1}``: ``B20 (3 z^2 - 1)`` with ``B20 < 0`` makes z the easy
    axis with a barrier ``3 |B20|`` per RE site.

    Args:
        L: Edge length in sites (``L >= 3`` and a multiple of ``re_period`` when periodic).
        J_tm: TM-TM nearest-neighbour exchange.
        J_re_tm: RE-TM nearest-neighbour exchange (weak).
        D_tm: Uniaxial anisotropy of TM sites (easy axis z for ``D_tm > 0``).
        re_crystal_field: Stevens coefficients of RE sites (mapping by term name or a sequence
            in :data:`STEVENS_TERMS` order); ``None`` for the default above.
        moment_tm: Moment of a TM site.
        moment_re: Moment of an RE site.
        re_period: Spacing of the RE sublattice (``>= 2``).
        periodic: Periodic instead of open boundaries.

    Returns:
        A SpinSystem in reduced units, with ``type_names == ("TM", "RE")``.

    Raises:
        SpinModelError: Invalid size, period or parameters.
    """
    what = "two_sublattice_grain"
    _check_size(L, periodic, what)
    if int(re_period) != re_period or re_period < 2:
        raise SpinModelError(f"{what}: re_period must be an integer >= 2, got {re_period!r}")
    if periodic and L % re_period:
        raise SpinModelError(
            f"{what}: periodic boundaries need L ({L}) to be a multiple of re_period ({re_period})"
        )
    J_tm, J_re_tm, D_tm, moment_tm, moment_re = (
        _finite(v, f"{what}: {k}")
        for k, v in (
            ("J_tm", J_tm),
            ("J_re_tm", J_re_tm),
            ("D_tm", D_tm),
            ("moment_tm", moment_tm),
            ("moment_re", moment_re),
        )
    )
    cf_row = crystal_field_row(
        {"O20": -0.1} if re_crystal_field is None else re_crystal_field, f"{what}: re_crystal_field"
    )
    positions = _grid(L)
    n = L**3
    is_re = np.all(positions.astype(np.int64) % re_period == 0, axis=1)
    site_types = is_re.astype(np.int64)
    pi, pj = _cubic_bonds(L, periodic)
    values = np.where(is_re[pi] | is_re[pj], J_re_tm, J_tm)
    indptr, indices, values = exchange_csr(n, pi, pj, values)
    crystal_field = np.zeros((n, len(STEVENS_TERMS)))
    crystal_field[is_re] = cf_row
    return SpinSystem(
        positions=positions,
        site_types=site_types,
        type_names=("TM", "RE"),
        moments=np.where(is_re, moment_re, moment_tm),
        exchange_indptr=indptr,
        exchange_indices=indices,
        exchange_values=values,
        anisotropy=np.where(is_re, 0.0, D_tm),
        anisotropy_axes=np.tile(_Z_AXIS, (n, 1)),
        crystal_field=crystal_field,
        energy_unit="J",
        moment_unit="mu",
        name=f"two-sublattice {L}^3 grain ({'periodic' if periodic else 'open'})",
        metadata={"L": L, "periodic": periodic, "re_period": re_period},
    )


def ising_square(L: int, J: float = 1.0) -> SpinSystem:
    """The periodic ``L x L`` square-lattice Ising model ``E = -J sum_<ij> s_i s_j``.

    Args:
        L: Edge length (``L >= 3``); site ``(x, y)`` has index ``x * L + y``.
        J: Nearest-neighbour coupling.

    Returns:
        An Ising SpinSystem (``ising=True``) with ``2 L^2`` bonds, positions ``(x, y, 0)``.
    """
    what = "ising_square"
    _check_size(L, True, what)
    J = _finite(J, f"{what}: J")
    index = np.arange(L * L).reshape(L, L)
    pi = np.concatenate([index.ravel(), index.ravel()])
    pj = np.concatenate([np.roll(index, -1, axis=0).ravel(), np.roll(index, -1, axis=1).ravel()])
    indptr, indices, values = exchange_csr(L * L, pi, pj, np.full(len(pi), J))
    xy = np.indices((L, L)).reshape(2, -1).T
    return _plain_system(
        np.column_stack([xy, np.zeros(L * L)]),
        (indptr, indices, values),
        ising=True,
        name=f"Ising square {L}x{L} (periodic)",
        metadata={"L": L, "periodic": True},
    )


def heisenberg_chain(n: int, J: float = 1.0) -> SpinSystem:
    """An open classical Heisenberg chain of ``n`` spins, ``E = -J sum_i s_i . s_{i+1}``.

    No anisotropy; its exact internal energy is ``U = -(n - 1) J L(J / T)`` with the Langevin
    function ``L(x) = coth x - 1/x``.

    Args:
        n: Number of spins (``>= 2``).
        J: Nearest-neighbour exchange.

    Returns:
        A SpinSystem with ``n - 1`` bonds and positions ``(i, 0, 0)``.
    """
    if int(n) != n or n < 2:
        raise SpinModelError(f"heisenberg_chain: n must be an integer >= 2, got {n!r}")
    J = _finite(J, "heisenberg_chain: J")
    pi = np.arange(n - 1)
    csr = exchange_csr(n, pi, pi + 1, np.full(n - 1, J))
    positions = np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n), np.zeros(n)])
    return _plain_system(
        positions, csr, ising=False, name=f"open Heisenberg chain n={n}",
        metadata={"periodic": False},
    )  # fmt: skip


def _plain_system(
    positions: np.ndarray, csr: tuple, ising: bool, name: str, metadata: dict
) -> SpinSystem:
    """Unit moments of one type, exchange only (no anisotropy), reduced units."""
    n = len(positions)
    indptr, indices, values = csr
    return SpinSystem(
        positions=positions,
        site_types=np.zeros(n, dtype=np.int64),
        type_names=("spin",),
        moments=np.ones(n),
        exchange_indptr=indptr,
        exchange_indices=indices,
        exchange_values=values,
        anisotropy=np.zeros(n),
        anisotropy_axes=np.tile(_Z_AXIS, (n, 1)),
        crystal_field=np.zeros((n, len(STEVENS_TERMS))),
        ising=ising,
        energy_unit="J",
        moment_unit="mu",
        name=name,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------------------------


def from_structure(
    atoms: Atoms,
    magnetic_species: str | Sequence[str],
    *,
    shells: ShellTable | ExchangeFunction | None = None,
    pair_table: Sequence[tuple[int, int, float]] | None = None,
    cutoff: float | None = None,
    moments: float | Mapping[str, float] | Sequence[float] | np.ndarray = 1.0,
    anisotropy: float | Mapping[str, float] | Sequence[float] | np.ndarray = 0.0,
    anisotropy_axis: Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),
    crystal_field: Mapping[str, Any] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    repeat: tuple[int, int, int] = (1, 1, 1),
    periodic: bool = False,
    energy_unit: str = "K",
    moment_unit: str = "mu_B",
    name: str | None = None,
) -> SpinSystem:
    """A spin model of the magnetic atoms of a structure.

    The cell is first repeated ``repeat`` times (copies ordered like ``ase.Atoms.repeat``:
    the first axis outermost). Magnetic sites are the atoms whose chemical symbol is in
    ``magnetic_species``, in atom order; other atoms are dropped (but still checked for
    overlaps). With ``periodic=False`` the result is a finite grain cut from the repeated cell
    (no bonds through the cell faces); with ``periodic=True`` bonds to periodic images along
    the periodic axes of ``atoms.pbc`` are included, and a pair coupled through several images
    gets the sum of their couplings.

    Site types are ``labels`` (one per atom of the unrepeated ``atoms``; default
    ``atoms.arrays["site_label"]`` if present, else the chemical symbols). Per-type parameters
    given as a mapping may be keyed by label or by species (a label wins).

    Exchange (at most one of ``shells`` and ``pair_table``; neither gives independent spins):

    * ``shells`` as a table ``[(r_max, {(a, b): J}), ...]``: a pair at distance ``r`` takes
      ``J`` from the first shell (by increasing ``r_max``) with ``r <= r_max`` whose mapping
      has the pair (keys are unordered pairs of two labels or two species, a label pair taking
      precedence; a pair absent from every shell it fits is not bonded); the cutoff is the
      largest ``r_max``.
    * ``shells`` as a function ``J(species_i, species_j, r)`` of the pairs within ``cutoff``
      (required); a zero return means no bond.
    * ``pair_table``: ``(i, j, J)`` over magnetic-site indices (after the repeat), each pair
      once.

    Args:
        atoms: The structure (``ase.Atoms``), positions in angstrom.
        magnetic_species: Chemical symbol(s) of the magnetic atoms.
        shells: Distance-shell table or exchange function (see above).
        pair_table: Explicit exchange pairs (see above).
        cutoff: Neighbour cutoff in angstrom for an exchange function.
        moments: One value, a mapping label/species -> moment (every type needed) or one value
            per magnetic site.
        anisotropy: Uniaxial constant ``D``: one value, a mapping (missing types get 0) or one
            value per magnetic site.
        anisotropy_axis: Easy axis for every site, shape (3,), or one per site, shape (n, 3);
            normalised here.
        crystal_field: Stevens coefficients: a mapping label/species -> coefficients (a mapping
            by term name or a sequence in :data:`STEVENS_TERMS` order; missing types get 0) or
            an array of shape (n, 7).
        labels: Site-type label of each atom of ``atoms``.
        repeat: Number of copies of the cell along each cell vector.
        periodic: Periodic boundaries along the periodic axes of ``atoms`` (else a finite
            grain).
        energy_unit: Unit of the energies given.
        moment_unit: Unit of the moments given.
        name: Model name; default from the formula.

    Returns:
        The SpinSystem; ``metadata`` holds ``species``, ``labels``, ``source_index`` (atom index
        in ``atoms``), ``cell_offset`` (which copy of the cell), ``cell`` (the repeated cell),
        ``pbc``, ``periodic`` and ``repeat``.

    Raises:
        SpinModelError: No magnetic sites, overlapping atoms (closer than 0.5 A), unknown
            species or labels in a table, NaN parameters, bad pair indices, or a magnetic site
            left without any bond by the requested exchange.
    """
    species_in = np.array(atoms.get_chemical_symbols(), dtype=object)
    n_atoms = len(species_in)
    magnetic = (magnetic_species,) if isinstance(magnetic_species, str) else tuple(magnetic_species)
    where = name or f"structure {atoms.get_chemical_formula()}"
    if labels is None:
        labels = atoms.arrays.get("site_label", species_in)
    labels_in = np.array([str(x) for x in labels], dtype=object)
    if len(labels_in) != n_atoms:
        raise SpinModelError(f"{where}: {len(labels_in)} labels for {n_atoms} atoms")
    reps = tuple(int(r) for r in repeat)
    if len(reps) != 3 or min(reps) < 1:
        raise SpinModelError(f"{where}: repeat must be three positive integers, got {repeat!r}")
    if shells is not None and pair_table is not None:
        raise SpinModelError(f"{where}: give either shells or pair_table, not both")

    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    positions_in = np.asarray(atoms.positions, dtype=np.float64)
    if not np.all(np.isfinite(positions_in)):
        raise SpinModelError(f"{where}: atom positions contain NaN or infinite values")
    offsets = np.array(list(itertools.product(*(range(r) for r in reps))), dtype=np.int64)
    all_positions = (positions_in[None, :, :] + (offsets @ cell)[:, None, :]).reshape(-1, 3)
    all_source = np.tile(np.arange(n_atoms), len(offsets))
    all_offset = np.repeat(offsets, n_atoms, axis=0)
    big_cell = cell * np.array(reps)[:, None]
    pbc = np.asarray(atoms.pbc, dtype=bool) if periodic else np.zeros(3, dtype=bool)
    if periodic:
        if not pbc.any():
            raise SpinModelError(f"{where}: periodic=True but the structure has no periodic axis")
        if abs(np.linalg.det(big_cell)) < 1e-9:
            raise SpinModelError(f"{where}: periodic=True needs a non-degenerate cell")
    box = big_cell if periodic else np.zeros((3, 3))

    _check_overlaps(all_positions, box, pbc, species_in[all_source], where)

    is_magnetic = np.isin(species_in[all_source], magnetic)
    if not is_magnetic.any():
        present = sorted(set(species_in.tolist()))
        raise SpinModelError(
            f"{where}: no magnetic sites: none of the atoms is {', '.join(magnetic) or '(none)'} "
            f"(species present: {', '.join(present)})"
        )
    positions = all_positions[is_magnetic]
    source = all_source[is_magnetic]
    n = len(positions)
    site_species = species_in[source]
    site_labels = labels_in[source]
    type_names = tuple(dict.fromkeys(site_labels.tolist()))
    site_types = np.array([type_names.index(x) for x in site_labels], dtype=np.int64)
    known = set(type_names) | set(site_species.tolist())

    # exchange
    if pair_table is not None:
        pi, pj, values = _check_pair_table(pair_table, n, where)
    elif shells is not None:
        pi, pj, values = _shell_exchange(
            positions, box, pbc, site_species, site_labels, shells, cutoff, known, where
        )
    else:
        pi = pj = np.zeros(0, dtype=np.int64)
        values = np.zeros(0)
    if shells is not None or pair_table is not None:
        degree = np.bincount(np.concatenate([pi, pj]), minlength=n)
        if np.any(degree == 0):
            k = int(np.argmin(degree))
            raise SpinModelError(
                f"{where}: magnetic site {k} ({site_labels[k]}, {site_species[k]} at "
                f"{np.round(positions[k], 3).tolist()} A) has no exchange bond with the requested "
                f"exchange ({int(np.sum(degree == 0))} such sites); increase the cutoff or shell "
                "radii, add the missing species pair, or use periodic=True / a larger repeat"
            )
    indptr, indices, exchange_values = exchange_csr(n, pi, pj, values)

    per_site_moments = _per_site(moments, n, site_labels, site_species, known, "moments", where)
    if per_site_moments is None:
        missing = sorted(set(type_names) - _covered(moments, site_labels, site_species))
        raise SpinModelError(f"{where}: moments has no value for site type(s) {missing}")
    per_site_d = _per_site(
        anisotropy, n, site_labels, site_species, known, "anisotropy", where, default=0.0
    )
    axes = np.asarray(anisotropy_axis, dtype=np.float64)
    if axes.shape == (3,):
        axes = np.tile(axes, (n, 1))
    if axes.shape != (n, 3) or not np.all(np.isfinite(axes)):
        raise SpinModelError(
            f"{where}: anisotropy_axis must be 3 finite numbers or an ({n}, 3) array, got shape "
            f"{axes.shape}"
        )
    norms = np.linalg.norm(axes, axis=1)
    if np.any(norms == 0):
        raise SpinModelError(f"{where}: anisotropy_axis has a zero vector")
    axes = axes / norms[:, None]
    cf = _crystal_field(crystal_field, n, site_labels, site_species, known, where)

    return SpinSystem(
        positions=positions,
        site_types=site_types,
        type_names=type_names,
        moments=per_site_moments,
        exchange_indptr=indptr,
        exchange_indices=indices,
        exchange_values=exchange_values,
        anisotropy=per_site_d,
        anisotropy_axes=axes,
        crystal_field=cf,
        energy_unit=energy_unit,
        moment_unit=moment_unit,
        name=where,
        metadata={
            "species": site_species.astype(str),
            "labels": site_labels.astype(str),
            "source_index": source,
            "cell_offset": all_offset[is_magnetic],
            "cell": big_cell,
            "pbc": pbc,
            "periodic": bool(periodic),
            "repeat": reps,
        },
    )


def _check_overlaps(
    positions: np.ndarray, box: np.ndarray, pbc: np.ndarray, species: np.ndarray, where: str
) -> None:
    """SpinModelError if two atoms (or an atom and its image) are closer than 0.5 A."""
    from vesin import NeighborList

    i, j, dist = NeighborList(cutoff=MIN_SITE_DISTANCE, full_list=False).compute(
        points=positions, box=box, periodic=pbc.tolist(), quantities="ijd"
    )
    if len(dist):
        k = int(np.argmin(dist))
        a, b = int(i[k]), int(j[k])
        if a == b:
            raise SpinModelError(
                f"{where}: atom {a} ({species[a]}) is {dist[k]:.3f} A from its own periodic "
                "image: the (repeated) cell is too small"
            )
        raise SpinModelError(
            f"{where}: overlapping sites: atoms {a} ({species[a]}) and {b} ({species[b]}) are "
            f"{dist[k]:.3f} A apart (minimum {MIN_SITE_DISTANCE} A; after repeat)"
        )


def _check_pair_table(
    pair_table: Sequence[tuple[int, int, float]], n: int, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate an explicit ``(i, j, J)`` table over magnetic-site indices."""
    pi, pj, values = [], [], []
    for k, entry in enumerate(pair_table):
        try:
            i, j, value = entry
        except (TypeError, ValueError):
            raise SpinModelError(
                f"{where}: pair_table[{k}] must be (i, j, J), got {entry!r}"
            ) from None
        if int(i) != i or int(j) != j or not (0 <= i < n and 0 <= j < n):
            raise SpinModelError(
                f"{where}: pair_table[{k}] = {entry!r}: indices must be magnetic-site indices "
                f"0..{n - 1}"
            )
        if i == j:
            raise SpinModelError(f"{where}: pair_table[{k}] couples site {i} to itself")
        pi.append(int(i))
        pj.append(int(j))
        values.append(_finite(value, f"{where}: pair_table[{k}] J"))
    return (
        np.array(pi, dtype=np.int64),
        np.array(pj, dtype=np.int64),
        np.array(values, dtype=np.float64),
    )


def _shell_exchange(
    positions: np.ndarray,
    box: np.ndarray,
    pbc: np.ndarray,
    species: np.ndarray,
    labels: np.ndarray,
    shells: ShellTable | ExchangeFunction,
    cutoff: float | None,
    known: set[str],
    where: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exchange pairs from distance shells or an exchange function (vesin neighbour list)."""
    from vesin import NeighborList

    if callable(shells):
        if cutoff is None:
            raise SpinModelError(f"{where}: an exchange function needs a cutoff")
        cutoff = _finite(cutoff, f"{where}: cutoff")
        table = None
    else:
        table = []
        for k, entry in enumerate(shells):
            try:
                r_max, mapping = entry
            except (TypeError, ValueError):
                raise SpinModelError(
                    f"{where}: shells[{k}] must be (r_max, {{(a, b): J}}), got {entry!r}"
                ) from None
            r_max = _finite(r_max, f"{where}: shells[{k}] r_max")
            couplings = {}
            for key, value in mapping.items():
                if len(key) != 2:
                    raise SpinModelError(f"{where}: shells[{k}] key {key!r} must be a pair")
                unknown = [x for x in key if x not in known]
                if unknown:
                    raise SpinModelError(
                        f"{where}: unknown species {unknown[0]!r} in shells[{k}] (magnetic "
                        f"species and site types: {', '.join(sorted(known))})"
                    )
                couplings[frozenset(key)] = _finite(value, f"{where}: shells[{k}][{key!r}]")
            table.append((r_max, couplings))
        if not table:
            raise SpinModelError(f"{where}: shells is empty")
        table.sort(key=lambda t: t[0])
        shell_cutoff = table[-1][0]
        cutoff = shell_cutoff if cutoff is None else min(_finite(cutoff, "cutoff"), shell_cutoff)
    if cutoff <= 0:
        raise SpinModelError(f"{where}: the exchange cutoff must be positive, got {cutoff}")
    i, j, dist = NeighborList(cutoff=cutoff, full_list=False).compute(
        points=positions, box=box, periodic=pbc.tolist(), quantities="ijd"
    )
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    values = np.zeros(len(i))
    if table is None:
        for k in range(len(i)):
            a, b, r = int(i[k]), int(j[k]), float(dist[k])
            values[k] = _finite(
                shells(str(species[a]), str(species[b]), r),  # type: ignore[operator]
                f"{where}: exchange function J({species[a]}, {species[b]}, {r:.3f})",
            )
    else:
        # first shell (by r_max) holding the pair wins; a label pair before a species pair
        assigned = np.zeros(len(i), dtype=bool)
        for r_max, couplings in table:
            for names in (labels, species):
                for key, value in couplings.items():
                    first, second = sorted(key)[0], sorted(key)[-1]
                    match = ((names[i] == first) & (names[j] == second)) | (
                        (names[i] == second) & (names[j] == first)
                    )
                    hit = match & ~assigned & (dist <= r_max)
                    values[hit] = value
                    assigned |= hit
    if np.any(i == j):
        k = int(np.argmax(i == j))
        raise SpinModelError(
            f"{where}: magnetic site {i[k]} is within the exchange cutoff of its own periodic "
            "image; use a larger repeat"
        )
    keep = values != 0.0
    return _merge_pairs(i[keep], j[keep], values[keep])


def _merge_pairs(
    i: np.ndarray, j: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unordered pair once, summing couplings listed several times (periodic images)."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    if len(lo) == 0:
        return lo, hi, values
    keys, inverse = np.unique(np.column_stack([lo, hi]), axis=0, return_inverse=True)
    summed = np.zeros(len(keys))
    np.add.at(summed, inverse.ravel(), values)
    return keys[:, 0], keys[:, 1], summed


def _covered(value: Any, labels: np.ndarray, species: np.ndarray) -> set[str]:
    """Site types whose label or species is a key of the mapping ``value``."""
    if not isinstance(value, Mapping):
        return set()
    return {str(a) for a, b in zip(labels, species, strict=True) if a in value or b in value}


def _per_site(
    value: Any,
    n: int,
    labels: np.ndarray,
    species: np.ndarray,
    known: set[str],
    what: str,
    where: str,
    default: float | None = None,
) -> np.ndarray | None:
    """One float per site from a scalar, a label/species mapping or a per-site sequence.

    Returns None when a mapping misses a site and no ``default`` is given.
    """
    if isinstance(value, Mapping):
        for key in value:
            if key not in known:
                raise SpinModelError(
                    f"{where}: unknown species or site type {key!r} in {what} (known: "
                    f"{', '.join(sorted(known))})"
                )
        clean = {key: _finite(v, f"{where}: {what}[{key!r}]") for key, v in value.items()}
        out = np.empty(n)
        for k in range(n):
            if labels[k] in clean:
                out[k] = clean[labels[k]]
            elif species[k] in clean:
                out[k] = clean[species[k]]
            elif default is not None:
                out[k] = default
            else:
                return None
        return out
    if np.ndim(value) == 0:
        return np.full(n, _finite(value, f"{where}: {what}"))
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (n,):
        raise SpinModelError(
            f"{where}: {what} must be a number, a mapping or {n} values, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        k = int(np.argmin(np.isfinite(array)))
        raise SpinModelError(f"{where}: {what}[{k}] is {array[k]} (must be finite)")
    return array


def _crystal_field(
    value: Mapping[str, Any] | np.ndarray | None,
    n: int,
    labels: np.ndarray,
    species: np.ndarray,
    known: set[str],
    where: str,
) -> np.ndarray:
    """The (n, 7) Stevens-coefficient array from a label/species mapping or an array."""
    cf = np.zeros((n, len(STEVENS_TERMS)))
    if value is None:
        return cf
    if isinstance(value, Mapping):
        rows = {}
        for key, coefficients in value.items():
            if key not in known:
                raise SpinModelError(
                    f"{where}: unknown species or site type {key!r} in crystal_field (known: "
                    f"{', '.join(sorted(known))})"
                )
            rows[key] = crystal_field_row(coefficients, f"{where}: crystal_field[{key!r}]")
        for k in range(n):
            row = rows.get(labels[k], rows.get(species[k]))
            if row is not None:
                cf[k] = row
        return cf
    array = np.asarray(value, dtype=np.float64)
    if array.shape != cf.shape:
        raise SpinModelError(
            f"{where}: crystal_field must be a mapping or an array of shape {cf.shape}, got "
            f"{array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise SpinModelError(f"{where}: crystal_field contains NaN or infinite values")
    return array


# --------------------------------------------------------------------------------------------
# Mean-field Curie temperature
# --------------------------------------------------------------------------------------------


def sublattice_exchange_matrix(system: SpinSystem) -> tuple[np.ndarray, np.ndarray]:
    """Sublattice-summed exchange over site types.

    Returns:
        ``(C, N)``: ``C[a, b] = sum_{i in a} sum_{j in b} J_ij`` (symmetric) and the number of
        sites ``N[a]`` of each site type (types without sites included, with ``N = 0``).
    """
    n_types = len(system.type_names)
    rows = np.repeat(np.arange(system.n_sites), np.diff(system.exchange_indptr))
    a = system.site_types[rows]
    b = system.site_types[system.exchange_indices]
    total = np.zeros((n_types, n_types))
    np.add.at(total, (a, b), system.exchange_values)
    counts = np.bincount(system.site_types, minlength=n_types).astype(np.float64)
    return total, counts


def mean_field_curie_temperature(system: SpinSystem) -> float:
    """Mean-field ordering temperature over the site-type sublattices (ferromagnetic mode).

    With ``E = -sum_{i<j} J_ij s_i . s_j`` and one mean moment per site type, the linearised
    self-consistency ``m_a = (c / T) sum_b Jbar_ab m_b`` with the sublattice-averaged coupling
    ``Jbar_ab = (1 / N_a) sum_{i in a, j in b} J_ij`` gives ``T_MF = c lambda_max(Jbar)``, with
    ``c = 1/3`` for classical unit vectors (Langevin ``L(x) ~ x/3``) and ``c = 1`` for Ising
    spins (``tanh x ~ x``). ``Jbar`` is similar to the symmetric ``C_ab / sqrt(N_a N_b)``, whose
    largest eigenvalue is used. Anisotropy and crystal field are ignored. For the periodic
    simple cubic lattice this is ``2 J`` (Heisenberg) and ``zJ`` for Ising.

    Args:
        system: Any spin system.

    Returns:
        ``T_MF`` in the energy unit of the system (0 if no positive mode exists).
    """
    total, counts = sublattice_exchange_matrix(system)
    present = counts > 0
    total = total[np.ix_(present, present)]
    counts = counts[present]
    symmetric = total / np.sqrt(np.outer(counts, counts))
    largest = float(np.linalg.eigvalsh(symmetric)[-1])
    factor = 1.0 if system.ising else 1.0 / 3.0
    return max(largest, 0.0) * factor
