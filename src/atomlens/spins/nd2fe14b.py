"""Atomistic spin model of Nd2Fe14B: crystal structure, parameters and grain builder.

Structure: P4_2/mnm (No. 136), ``a = 8.80 A``, ``c = 12.20 A``, 68 atoms per cell
(Nd8 Fe56 B4), built with pymatgen from the Wyckoff positions of Herbst et al. (1984) in the
parameter file; every site keeps its Wyckoff class (``"Nd_4f"``, ``"Fe_16k1"``, ...) as its
site type. B is not magnetic, so a cell holds 64 spins.

Parameters (:func:`load_nd2fe14b_parameters`, default ``atomlens/data/nd2fe14b.yaml``): energies
in kelvin, moments in mu_B. Nd: classical ``J = 9/2`` vector with moment ``g_J J`` and the
classical Stevens crystal field ``B_lm O_lm(s)``, ``B_lm = Theta_l A_lm <r^l> J^l``
(:func:`nd_crystal_field`). The ``m = -2`` terms change sign between the two orientations of
each Nd Wyckoff class (:func:`nd_site_orientation`). Fe: moment and uniaxial ``D`` per class.
Exchange: an "Nd2Fe14B-like" default (Fe-Fe ``J0 (r0/r)^3``, constant Fe-Nd, within 3.5 A)
fitted to ``T_C = 585 K`` with :func:`estimated_curie_temperature`, or a user pair table.

Model directions are moment directions: the Nd spin is antiparallel to the Fe spins but its
moment is parallel, so the Fe-Nd coupling is ferromagnetic (positive) here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    field_validator,
)

from atomlens.spins.lattice import (
    CLASSICAL_HEISENBERG_TC_RATIO,
    from_structure,
    mean_field_curie_temperature,
)
from atomlens.spins.system import STEVENS_TERMS, SpinModelError, SpinSystem

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core import Structure

#: Experimental Curie temperature of Nd2Fe14B (K).
CURIE_TEMPERATURE_K = 585.0

#: Crystal-field parameter name and rank ``l`` of each Stevens term (column of ``B``).
_TERM_PARAMETER = {
    "O20": ("A20", 2),
    "O40": ("A40", 4),
    "O60": ("A60", 6),
    "O44": ("A44", 4),
    "O64": ("A64", 6),
    "O2-2": ("A2-2", 2),
    "O6-2": ("A6-2", 6),
}
#: Terms whose sign alternates between the [110] and [1-10] Nd orientations.
SIGN_ALTERNATING_TERMS = ("O2-2", "O6-2")


# --------------------------------------------------------------------------------------------
# Parameter file
# --------------------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    """Accept fractions written as strings (``"9/2"``) besides plain numbers."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip().replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            return value  # pydantic reports it as not a number
    return value


Number = Annotated[FiniteFloat, BeforeValidator(_number)]
Positive = Annotated[FiniteFloat, BeforeValidator(_number), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteClass(_Strict):
    """One Wyckoff class: its species and the fractional coordinates of a representative."""

    species: str
    frac: tuple[Number, Number, Number]


class StructureParameters(_Strict):
    """Space group, lattice constants (A) and Wyckoff classes by name."""

    space_group: int = 136
    a: Positive
    c: Positive
    sites: dict[str, SiteClass]


class StevensFactors(_Strict):
    """Stevens factors ``alpha, beta, gamma`` (``Theta_2, Theta_4, Theta_6``)."""

    alpha: Number
    beta: Number
    gamma: Number


class RadialIntegrals(_Strict):
    """4f radial integrals ``<r^2>, <r^4>, <r^6>`` in ``a0^l``."""

    r2: Positive
    r4: Positive
    r6: Positive


class NdParameters(_Strict):
    """Nd single-ion parameters (``A_l^m`` in ``K a0^-l``)."""

    J: Positive
    g_J: Positive  # noqa: N815 (the usual symbol, a key of the parameter file)
    moment: Positive | None = None
    stevens: StevensFactors
    radial: RadialIntegrals
    crystal_field: dict[str, Number]

    @field_validator("crystal_field")
    @classmethod
    def _known_terms(cls, value: dict[str, float]) -> dict[str, float]:
        known = [name for name, _ in _TERM_PARAMETER.values()]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown crystal-field parameter(s) {unknown}; known: {known}")
        return value

    @property
    def moment_mu_b(self) -> float:
        """The Nd moment: ``moment`` if given, else ``g_J J``."""
        return self.moment if self.moment is not None else self.g_J * self.J


class FeParameters(_Strict):
    """Fe moments (mu_B) and uniaxial anisotropy (K), with per-class overrides."""

    moment: Positive = 2.1
    moments: dict[str, Positive] = Field(default_factory=dict)
    anisotropy: Number = 0.0
    anisotropies: dict[str, Number] = Field(default_factory=dict)


class FeFeExchange(_Strict):
    """Fe-Fe exchange ``J0 (r0 / r)^power`` (K)."""

    J0: Number
    r0: Positive = 2.5
    power: Number = 3.0


PairEntry = tuple[int, int, Number] | tuple[int, int, Number, tuple[int, int, int]]


class ExchangeParameters(_Strict):
    """Exchange: the distance model or an explicit pair table over the 64 sites of a cell."""

    cutoff: Positive = 3.5
    fe_fe: FeFeExchange
    fe_nd: Number
    nd_nd: Number = 0.0
    pairs: list[PairEntry] | None = None


class Nd2Fe14BParameters(_Strict):
    """All parameters of the Nd2Fe14B spin model (see ``atomlens/data/nd2fe14b.yaml``)."""

    structure: StructureParameters
    nd: NdParameters
    fe: FeParameters
    exchange: ExchangeParameters


def default_parameter_path() -> Path:
    """Path of the packaged default parameter file."""
    return Path(str(files("atomlens").joinpath("data/nd2fe14b.yaml")))


def load_nd2fe14b_parameters(path: str | Path | None = None) -> Nd2Fe14BParameters:
    """Read and validate a parameter file (YAML).

    Args:
        path: The file; ``None`` for the packaged default.

    Returns:
        The validated parameters.

    Raises:
        SpinModelError: A missing or unreadable file, invalid YAML, unknown or missing keys, or
            invalid values; the message names the file and the key.
    """
    import yaml

    path = default_parameter_path() if path is None else Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpinModelError(f"cannot read Nd2Fe14B parameters '{path}': {exc}") from None
    except yaml.YAMLError as exc:
        raise SpinModelError(f"'{path}' is not valid YAML: {' '.join(str(exc).split())}") from None
    return validate_nd2fe14b_parameters(raw, str(path))


def validate_nd2fe14b_parameters(raw: Any, where: str = "parameters") -> Nd2Fe14BParameters:
    """Validate a parameter mapping (as read from YAML).

    Args:
        raw: The mapping.
        where: Its source, for error messages.

    Returns:
        The validated parameters.

    Raises:
        SpinModelError: Naming ``where`` and every invalid key.
    """
    if not isinstance(raw, Mapping):
        raise SpinModelError(f"'{where}' must hold a mapping at the top level")
    try:
        params = Nd2Fe14BParameters.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SpinModelError(
            f"invalid Nd2Fe14B parameters in '{where}':\n" + "\n".join(lines)
        ) from None
    _check_consistency(params, where)
    return params


def _check_consistency(params: Nd2Fe14BParameters, where: str) -> None:
    """Cross-key checks that pydantic cannot express."""
    sites = params.structure.sites
    species = {site.species for site in sites.values()}
    for needed in ("Nd", "Fe"):
        if needed not in species:
            raise SpinModelError(f"'{where}': structure.sites has no {needed} class")
    fe_classes = {name for name, site in sites.items() if site.species == "Fe"}
    for key in ("moments", "anisotropies"):
        unknown = sorted(set(getattr(params.fe, key)) - fe_classes)
        if unknown:
            raise SpinModelError(
                f"'{where}': fe.{key}: unknown Fe site class(es) {unknown}; known: "
                f"{sorted(fe_classes)}"
            )
    for name, site in sites.items():
        if site.species not in ("Nd", "Fe", "B"):
            raise SpinModelError(
                f"'{where}': structure.sites.{name}.species: {site.species!r} is not one of "
                "Nd, Fe, B"
            )


def _resolve(params: Nd2Fe14BParameters | Mapping[str, Any] | str | Path | None) -> Any:
    if isinstance(params, Nd2Fe14BParameters):
        return params
    if isinstance(params, Mapping):
        return validate_nd2fe14b_parameters(params, "parameters mapping")
    return load_nd2fe14b_parameters(params)


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


def nd2fe14b_structure(params: Nd2Fe14BParameters | str | Path | None = None) -> Structure:
    """The Nd2Fe14B conventional cell as a pymatgen Structure (site property ``"label"``).

    Args:
        params: Parameters, a parameter file, or ``None`` for the default.

    Returns:
        The 68-atom cell (for the default parameters), fractional coordinates in [0, 1).
    """
    from pymatgen.core import Lattice, Structure

    p = _resolve(params).structure
    names = list(p.sites)
    return Structure.from_spacegroup(
        p.space_group,
        Lattice.tetragonal(p.a, p.c),
        [p.sites[name].species for name in names],
        [p.sites[name].frac for name in names],
        site_properties={"label": names},
        tol=1e-4,
    )


def nd2fe14b_cell(params: Nd2Fe14BParameters | str | Path | None = None) -> Atoms:
    """The Nd2Fe14B conventional cell as ``ase.Atoms``, with ``arrays["site_label"]``."""
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = nd2fe14b_structure(params)
    labels = list(structure.site_properties["label"])
    bare = structure.copy()
    bare.remove_site_property("label")
    atoms = AseAtomsAdaptor.get_atoms(bare, msonable=False)
    atoms.new_array("site_label", np.array(labels, dtype=str))
    cell = atoms.cell.array
    atoms.set_cell(np.where(np.abs(cell) < 1e-9, 0.0, cell), scale_atoms=False)
    atoms.pbc = True
    return atoms


def nd_site_orientation(frac: Sequence[float], tol: float = 1e-3) -> int:
    """Orientation of the local two-fold axis of an Nd site from its fractional coordinates.

    Both Nd classes (4f, 4g; site symmetry m.2m) lie on a diagonal of the ab plane, and the
    local two-fold axis is that diagonal: sites with ``x = y`` (mod 1), e.g. 4f ``(x, x, 0)``,
    ``(-x, -x, 0)`` and 4g ``(1/2 + x, 1/2 + x, 1/2)``, have the axis along [110]; sites with
    ``x + y = 0`` (mod 1), e.g. 4f ``(1/2 - x, 1/2 + x, 1/2)`` and 4g ``(x, -x, 0)``, along
    [1-10].

    Args:
        frac: Fractional coordinates of the site.
        tol: Tolerance on the diagonal conditions.

    Returns:
        ``+1`` for [110], ``-1`` for [1-10].

    Raises:
        SpinModelError: The site is on neither diagonal (or on both).
    """
    x, y = float(frac[0]), float(frac[1])

    def distance_to_integer(value: float) -> float:
        return abs(value - round(value))

    on_110 = distance_to_integer(x - y) < tol
    on_1m10 = distance_to_integer(x + y) < tol
    if on_110 == on_1m10:
        raise SpinModelError(
            f"Nd site at fractional ({x:.4f}, {y:.4f}) is on {'both' if on_110 else 'neither'} "
            "of the ab-plane diagonals: its two-fold axis orientation is undefined"
        )
    return 1 if on_110 else -1


def nd_crystal_field(
    params: Nd2Fe14BParameters | str | Path | None = None,
) -> dict[int, np.ndarray]:
    """Stevens coefficients (K) of a Nd unit vector for the two site orientations.

    ``B_lm = Theta_l A_lm <r^l> J^l`` in the column order of :data:`STEVENS_TERMS`; the file's
    ``A2-2`` and ``A6-2`` apply to orientation ``+1`` ([110]) and change sign for ``-1``.

    Returns:
        ``{+1: row, -1: row}``, each of shape ``(len(STEVENS_TERMS),)``.
    """
    nd = _resolve(params).nd
    theta = {2: nd.stevens.alpha, 4: nd.stevens.beta, 6: nd.stevens.gamma}
    radial = {2: nd.radial.r2, 4: nd.radial.r4, 6: nd.radial.r6}
    row = np.zeros(len(STEVENS_TERMS))
    for k, term in enumerate(STEVENS_TERMS):
        name, rank = _TERM_PARAMETER[term]
        a = nd.crystal_field.get(name, 0.0)
        row[k] = theta[rank] * a * radial[rank] * nd.J**rank + 0.0  # no -0.0
    flipped = row.copy()
    for term in SIGN_ALTERNATING_TERMS:
        flipped[STEVENS_TERMS.index(term)] *= -1.0
    return {1: row, -1: flipped}


def stevens_polynomials(directions: np.ndarray) -> np.ndarray:
    """Classical Stevens polynomials of unit vectors, in :data:`STEVENS_TERMS` order.

    Args:
        directions: Unit vectors, shape ``(..., 3)``.

    Returns:
        Shape ``(..., len(STEVENS_TERMS))``.
    """
    s = np.asarray(directions, dtype=np.float64)
    x, y, z = s[..., 0], s[..., 1], s[..., 2]
    z2 = z * z
    four_phi = x**4 - 6.0 * x * x * y * y + y**4  # sin^4(theta) cos(4 phi)
    two_phi = 2.0 * x * y  # sin^2(theta) sin(2 phi)
    return np.stack(
        [
            3.0 * z2 - 1.0,
            35.0 * z2 * z2 - 30.0 * z2 + 3.0,
            231.0 * z2**3 - 315.0 * z2 * z2 + 105.0 * z2 - 5.0,
            four_phi,
            (11.0 * z2 - 1.0) * four_phi,
            two_phi,
            (33.0 * z2 * z2 - 18.0 * z2 + 1.0) * two_phi,
        ],
        axis=-1,
    )


def crystal_field_energy(coefficients: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``sum_k B_k O_k(s)`` for Stevens coefficients ``B`` (shape (7,)) and unit vectors."""
    return stevens_polynomials(directions) @ np.asarray(coefficients, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Spin model
# --------------------------------------------------------------------------------------------


def nd2fe14b_grain(
    cells: tuple[int, int, int] = (1, 1, 1),
    params: Nd2Fe14BParameters | Mapping[str, Any] | str | Path | None = None,
    periodic: bool = False,
) -> SpinSystem:
    """A block of ``cells`` Nd2Fe14B unit cells as a spin model.

    Args:
        cells: Number of unit cells along a, b, c.
        params: Parameters, a mapping, a parameter file, or ``None`` for the default file.
        periodic: Periodic crystal instead of a finite grain (open boundaries: the atoms of the
            repeated cell, without bonds through its faces).

    Returns:
        A SpinSystem with 64 spins per cell (B dropped), positions in angstrom, energies in K,
        moments in mu_B and Wyckoff classes as site types. ``metadata`` adds ``orientation``
        (+1 / -1 for Nd sites, see :func:`nd_site_orientation`; 0 for Fe).

    Raises:
        SpinModelError: Invalid parameters, pair table or cell counts.
    """
    p = _resolve(params)
    atoms = nd2fe14b_cell(p)
    labels = atoms.arrays["site_label"]
    moments: dict[str, float] = {"Nd": p.nd.moment_mu_b, "Fe": p.fe.moment}
    moments.update(p.fe.moments)
    anisotropy: dict[str, float] = {"Fe": p.fe.anisotropy, "Nd": 0.0}
    anisotropy.update(p.fe.anisotropies)
    cells = tuple(int(n) for n in cells)  # type: ignore[assignment]
    name = f"Nd2Fe14B {'x'.join(map(str, cells))} cells ({'periodic' if periodic else 'open'})"
    common = {
        "magnetic_species": ("Nd", "Fe"),
        "moments": moments,
        "anisotropy": anisotropy,
        "labels": labels,
        "repeat": cells,
        "periodic": periodic,
        "energy_unit": "K",
        "moment_unit": "mu_B",
        "name": name,
    }
    if p.exchange.pairs is None:
        system = from_structure(
            atoms, shells=_distance_exchange(p.exchange), cutoff=p.exchange.cutoff, **common
        )
    else:
        bare = from_structure(atoms, **common)
        table = _expand_pair_table(p.exchange.pairs, bare, cells, periodic)
        system = from_structure(atoms, pair_table=table, **common)

    frac = atoms.get_scaled_positions(wrap=True)
    orientation = np.zeros(system.n_sites, dtype=np.int64)
    crystal_field = np.zeros_like(system.crystal_field)
    rows = nd_crystal_field(p)
    for k, (atom, species) in enumerate(
        zip(system.metadata["source_index"], system.metadata["species"], strict=True)
    ):
        if species == "Nd":
            orientation[k] = nd_site_orientation(frac[atom])
            crystal_field[k] = rows[int(orientation[k])]
    metadata = dict(system.metadata, orientation=orientation)
    return dataclasses.replace(system, crystal_field=crystal_field, metadata=metadata)


def _distance_exchange(exchange: ExchangeParameters) -> Any:
    """``J(species_i, species_j, r)`` of the default distance model."""
    fe_fe = exchange.fe_fe

    def coupling(a: str, b: str, r: float) -> float:
        pair = {a, b}
        if pair == {"Fe"}:
            return fe_fe.J0 * (fe_fe.r0 / r) ** fe_fe.power
        if pair == {"Fe", "Nd"}:
            return exchange.fe_nd
        if pair == {"Nd"}:
            return exchange.nd_nd
        return 0.0

    return coupling


def _expand_pair_table(
    pairs: Sequence[tuple], bare: SpinSystem, cells: tuple[int, ...], periodic: bool
) -> list[tuple[int, int, float]]:
    """Translate a per-cell pair table to every cell of the block (summing repeated pairs)."""
    per_cell = bare.n_sites // math.prod(cells)
    offsets = bare.metadata["cell_offset"]
    site_of = {
        (tuple(offsets[k]), k % per_cell): k for k in range(bare.n_sites)
    }  # sites of a cell are contiguous and in the same order in every cell
    total: dict[tuple[int, int], float] = {}
    where = f"{bare.name}: exchange.pairs"
    for e, entry in enumerate(pairs):
        i, j, value = int(entry[0]), int(entry[1]), float(entry[2])
        shift = np.array(entry[3] if len(entry) > 3 else (0, 0, 0), dtype=np.int64)
        if not (0 <= i < per_cell and 0 <= j < per_cell):
            raise SpinModelError(
                f"{where}[{e}] = {list(entry)}: site indices must be 0..{per_cell - 1}"
            )
        if i == j and not shift.any():
            raise SpinModelError(f"{where}[{e}] couples site {i} to itself")
        for cell in np.unique(offsets, axis=0):
            other = cell + shift
            if periodic:
                other = other % np.array(cells)
            elif np.any(other < 0) or np.any(other >= np.array(cells)):
                continue
            a, b = site_of[(tuple(cell), i)], site_of[(tuple(other), j)]
            if a == b:
                raise SpinModelError(
                    f"{where}[{e}] couples site {i} to its own periodic image; use more cells"
                )
            key = (min(a, b), max(a, b))
            total[key] = total.get(key, 0.0) + value
    return [(a, b, value) for (a, b), value in total.items()]


def estimated_curie_temperature(system: SpinSystem) -> float:
    """``0.72 T_MF``: the mean-field T_C corrected for classical Heisenberg fluctuations.

    See :func:`~atomlens.spins.lattice.mean_field_curie_temperature` and
    :data:`~atomlens.spins.lattice.CLASSICAL_HEISENBERG_TC_RATIO`. Use a periodic system for a
    bulk estimate.
    """
    return CLASSICAL_HEISENBERG_TC_RATIO * mean_field_curie_temperature(system)


def fit_fe_fe_exchange(
    target: float = CURIE_TEMPERATURE_K,
    params: Nd2Fe14BParameters | str | Path | None = None,
) -> float:
    """The Fe-Fe ``J0`` giving ``estimated_curie_temperature == target`` (periodic crystal).

    The other parameters (``r0``, ``power``, Fe-Nd and Nd-Nd couplings) are kept.

    Args:
        target: Curie temperature in K.
        params: Parameters, a parameter file, or ``None`` for the default.

    Returns:
        ``J0`` in K.

    Raises:
        SpinModelError: The target cannot be reached with ``J0 >= 0``.
    """
    from scipy.optimize import brentq

    p = _resolve(params)
    if p.exchange.pairs is not None:
        raise SpinModelError("fit_fe_fe_exchange: the parameters use an explicit pair table")

    def estimate(j0: float) -> float:
        fe_fe = p.exchange.fe_fe.model_copy(update={"J0": j0})
        exchange = p.exchange.model_copy(update={"fe_fe": fe_fe})
        model = nd2fe14b_grain((1, 1, 1), p.model_copy(update={"exchange": exchange}), True)
        return estimated_curie_temperature(model) - target

    lower = 1e-6  # J0 = 0 would leave the Fe sites without bonds
    if estimate(lower) >= 0:
        raise SpinModelError(
            f"fit_fe_fe_exchange: T_C is already >= {target} K without Fe-Fe exchange"
        )
    upper = 100.0
    while estimate(upper) < 0:
        upper *= 2.0
        if upper > 1e7:
            raise SpinModelError("fit_fe_fe_exchange: no J0 below 1e7 K reaches the target")
    return float(brentq(estimate, lower, upper, xtol=1e-9, rtol=1e-12))
