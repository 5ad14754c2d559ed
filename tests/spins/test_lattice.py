"""Lattice builders, structure-based spin models and the Nd2Fe14B model."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from ase import Atoms
from ase.build import bulk

from atomlens.spins.lattice import (
    CLASSICAL_HEISENBERG_TC_RATIO,
    from_structure,
    heisenberg_chain,
    ising_square,
    mean_field_curie_temperature,
    simple_cubic_grain,
    two_sublattice_grain,
)
from atomlens.spins.nd2fe14b import (
    CURIE_TEMPERATURE_K,
    crystal_field_energy,
    estimated_curie_temperature,
    fit_fe_fe_exchange,
    load_nd2fe14b_parameters,
    nd2fe14b_cell,
    nd2fe14b_grain,
    nd_crystal_field,
    nd_site_orientation,
)
from atomlens.spins.system import STEVENS_TERMS, SpinModelError, SpinSystem


def matrix(system: SpinSystem) -> sp.csr_matrix:
    n = system.n_sites
    return sp.csr_matrix(
        (system.exchange_values, system.exchange_indices, system.exchange_indptr), shape=(n, n)
    )


def degrees(system: SpinSystem) -> np.ndarray:
    return np.diff(system.exchange_indptr)


def n_bonds(system: SpinSystem) -> int:
    return len(system.exchange_indices) // 2


def exchange_energy(system: SpinSystem, spins: np.ndarray) -> float:
    """-sum_{i<j} J_ij s_i . s_j from the CSR arrays."""
    rows = np.repeat(np.arange(system.n_sites), degrees(system))
    dots = np.einsum("ij,ij->i", spins[rows], spins[system.exchange_indices])
    return -0.5 * float(np.sum(system.exchange_values * dots))


def assert_symmetric(system: SpinSystem) -> None:
    m = matrix(system)
    assert abs(m - m.T).max() == 0


# ---------------------------------------------------------------------------- simple cubic


def test_simple_cubic_open_neighbour_counts_and_bonds():
    size = 4
    system = simple_cubic_grain(size, J=1.5, D=0.2)
    pos = system.positions
    boundary = np.sum((pos == 0) | (pos == size - 1), axis=1)  # 3 corner, 2 edge, 1 face, 0 bulk
    expected = {3: 3, 2: 4, 1: 5, 0: 6}
    for count, degree in expected.items():
        assert np.all(degrees(system)[boundary == count] == degree)
    assert n_bonds(system) == 3 * size**2 * (size - 1)
    assert np.all(system.exchange_values == 1.5)
    assert_symmetric(system)
    # each bond joins nearest neighbours
    rows = np.repeat(np.arange(system.n_sites), degrees(system))
    d = np.linalg.norm(pos[rows] - pos[system.exchange_indices], axis=1)
    np.testing.assert_allclose(d, 1.0)
    assert np.all(system.anisotropy == 0.2)
    np.testing.assert_allclose(system.anisotropy_axes, np.tile([0, 0, 1.0], (size**3, 1)))


def test_simple_cubic_periodic_and_surface_types():
    periodic = simple_cubic_grain(4, periodic=True)
    assert np.all(degrees(periodic) == 6)
    assert n_bonds(periodic) == 3 * 4**3
    assert_symmetric(periodic)
    assert periodic.type_names == ("bulk",)
    # mean field of the periodic lattice: z J / 3 = 2 J; exact T_C = 1.443 J ~ 0.72 * 2 J
    assert mean_field_curie_temperature(periodic) == pytest.approx(2.0)
    assert pytest.approx(1.443, rel=0.01) == CLASSICAL_HEISENBERG_TC_RATIO * 2.0

    size = 5
    grain = simple_cubic_grain(size, D=0.1, surface_D=-0.3)
    surface = grain.site_types == grain.type_names.index("surface")
    assert surface.sum() == size**3 - (size - 2) ** 3
    on_face = np.any((grain.positions == 0) | (grain.positions == size - 1), axis=1)
    np.testing.assert_array_equal(surface, on_face)
    assert np.all(grain.anisotropy[surface] == -0.3)
    assert np.all(grain.anisotropy[~surface] == 0.1)
    assert mean_field_curie_temperature(grain) < 2.0  # open surfaces lower T_MF


def test_simple_cubic_rejects_bad_input():
    with pytest.raises(SpinModelError, match="L >= 3"):
        simple_cubic_grain(2, periodic=True)
    with pytest.raises(SpinModelError, match="surface_D"):
        simple_cubic_grain(4, surface_D=0.1, periodic=True)
    with pytest.raises(SpinModelError, match="D"):
        simple_cubic_grain(4, D=math.nan)


def test_two_sublattice_grain_layout():
    size = 4
    system = two_sublattice_grain(size, J_tm=1.0, J_re_tm=0.1, re_crystal_field={"O20": -0.2})
    re = system.site_types == system.type_names.index("RE")
    assert re.sum() == (size // 2) ** 3
    assert np.all(system.positions[re] % 2 == 0)
    rows = np.repeat(np.arange(system.n_sites), degrees(system))
    cols = system.exchange_indices
    assert not np.any(re[rows] & re[cols])  # RE sites are never nearest neighbours
    mixed = re[rows] | re[cols]
    assert np.all(system.exchange_values[mixed] == 0.1)
    assert np.all(system.exchange_values[~mixed] == 1.0)
    assert np.all(system.moments[re] == 1.5) and np.all(system.moments[~re] == 1.0)
    assert np.all(system.anisotropy[re] == 0.0)
    assert np.all(system.crystal_field[~re] == 0.0)
    assert_symmetric(system)
    # the RE crystal field favours z: B20 (3 z^2 - 1) with B20 < 0
    cf = system.crystal_field[np.argmax(re)]
    assert crystal_field_energy(cf, [0, 0, 1.0]) < crystal_field_energy(cf, [1.0, 0, 0])
    default = two_sublattice_grain(size)
    assert default.crystal_field[re][0, STEVENS_TERMS.index("O20")] < 0


def test_ising_square_and_heisenberg_chain():
    size = 5
    ising = ising_square(size, J=0.7)
    assert ising.ising
    assert n_bonds(ising) == 2 * size * size
    assert np.all(degrees(ising) == 4)
    assert np.all(ising.exchange_values == 0.7)
    assert_symmetric(ising)
    assert np.all(ising.positions[:, 2] == 0)
    assert mean_field_curie_temperature(ising) == pytest.approx(4 * 0.7)
    up = np.ones((size * size, 3)) * np.array([0, 0, 1.0])
    assert exchange_energy(ising, up) == pytest.approx(-2 * size * size * 0.7)

    n = 7
    chain = heisenberg_chain(n, J=1.3)
    assert n_bonds(chain) == n - 1
    assert np.all(chain.anisotropy == 0) and np.all(chain.crystal_field == 0)
    rng = np.random.default_rng(0)
    spins = rng.normal(size=(n, 3))
    spins /= np.linalg.norm(spins, axis=1, keepdims=True)
    expected = -1.3 * np.sum(np.einsum("ij,ij->i", spins[:-1], spins[1:]))
    assert exchange_energy(chain, spins) == pytest.approx(expected)


# ---------------------------------------------------------------------------- from_structure


def test_from_structure_shells_periodic_and_open():
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True)  # first shell 2.485 A, second 2.87 A
    shells = [(2.6, {("Fe", "Fe"): 10.0}), (2.9, {("Fe", "Fe"): 5.0})]
    crystal = from_structure(atoms, "Fe", shells=shells, repeat=(3, 3, 3), periodic=True)
    assert crystal.n_sites == 54
    assert np.all(degrees(crystal) == 14)
    np.testing.assert_allclose(np.asarray(matrix(crystal).sum(axis=1)).ravel(), 8 * 10 + 6 * 5)
    assert_symmetric(crystal)
    grain = from_structure(atoms, ["Fe"], shells=shells, repeat=(3, 3, 3))
    assert degrees(grain).max() == 14 and degrees(grain).min() < 14
    assert grain.metadata["cell_offset"].shape == (54, 3)
    # a pair coupled through several periodic images gets the summed coupling
    small = from_structure(atoms, "Fe", shells=[(2.6, {("Fe", "Fe"): 1.0})], periodic=True)
    assert n_bonds(small) == 1 and small.exchange_values[0] == pytest.approx(8.0)
    with pytest.raises(SpinModelError, match="own periodic image"):
        from_structure(atoms, "Fe", shells=[(2.9, {("Fe", "Fe"): 1.0})], periodic=True)


def test_from_structure_function_and_pair_table():
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True).repeat((2, 2, 2))
    system = from_structure(
        atoms,
        "Fe",
        shells=lambda a, b, r: 3.0 / r**3,
        cutoff=2.6,
        moments={"Fe": 2.2},
        anisotropy=0.5,
        periodic=True,
    )
    np.testing.assert_allclose(system.exchange_values, 3.0 / (2.87 * math.sqrt(3) / 2) ** 3)
    assert np.all(system.moments == 2.2) and np.all(system.anisotropy == 0.5)
    labelled = from_structure(
        bulk("Fe", "bcc", a=2.87, cubic=True),
        "Fe",
        labels=["corner", "centre"],
        shells=[(2.6, {("corner", "centre"): 2.0}), (2.9, {("Fe", "Fe"): 1.0})],
        repeat=(3, 3, 3),
        periodic=True,
    )
    assert labelled.type_names == ("corner", "centre")
    np.testing.assert_allclose(np.asarray(matrix(labelled).sum(axis=1)).ravel(), 8 * 2 + 6 * 1)
    table = from_structure(atoms, "Fe", pair_table=[(i, (i + 1) % 16, 1.0) for i in range(16)])
    assert n_bonds(table) == 16 and np.all(degrees(table) == 2)
    with pytest.raises(SpinModelError, match="indices"):
        from_structure(atoms, "Fe", pair_table=[(0, 16, 1.0)])


def test_from_structure_errors():
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True).repeat((2, 2, 2))
    shells = [(2.6, {("Fe", "Fe"): 1.0})]
    with pytest.raises(SpinModelError, match="no magnetic sites"):
        from_structure(atoms, "Co", shells=shells)
    overlapping = Atoms("Fe2", positions=[[0, 0, 0], [0.3, 0, 0]])
    with pytest.raises(SpinModelError, match="overlapping"):
        from_structure(overlapping, "Fe")
    with pytest.raises(SpinModelError, match=r"NaN|nan"):
        from_structure(atoms, "Fe", shells=shells, moments={"Fe": math.nan})
    with pytest.raises(SpinModelError, match="nan"):
        from_structure(atoms, "Fe", shells=[(2.6, {("Fe", "Fe"): math.nan})])
    with pytest.raises(SpinModelError, match="unknown species 'Co'"):
        from_structure(atoms, "Fe", shells=[(2.6, {("Fe", "Co"): 1.0})])
    with pytest.raises(SpinModelError, match="unknown species or site type 'Nd'"):
        from_structure(atoms, "Fe", shells=shells, moments={"Nd": 3.0})
    with pytest.raises(SpinModelError, match=r"site 0 .*no exchange bond.*cutoff"):
        from_structure(atoms, "Fe", shells=[(2.0, {("Fe", "Fe"): 1.0})])
    with pytest.raises(SpinModelError, match="needs a cutoff"):
        from_structure(atoms, "Fe", shells=lambda a, b, r: 1.0)


# ---------------------------------------------------------------------------- Nd2Fe14B


@pytest.fixture(scope="module")
def nd_cell() -> Atoms:
    return nd2fe14b_cell()


@pytest.fixture(scope="module")
def nd_crystal() -> SpinSystem:
    return nd2fe14b_grain((1, 1, 1), periodic=True)


def test_nd2fe14b_cell_structure(nd_cell):
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    assert len(nd_cell) == 68
    assert Counter(nd_cell.get_chemical_symbols()) == {"Nd": 8, "Fe": 56, "B": 4}
    structure = AseAtomsAdaptor.get_structure(nd_cell)
    assert SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_number() == 136
    distances = nd_cell.get_all_distances(mic=True) + np.eye(68) * 100
    assert distances.min() > 2.0  # shortest are Fe-B (~2.1 A, the B trigonal prism)
    labels = nd_cell.arrays["site_label"]
    fe = np.array(nd_cell.get_chemical_symbols()) == "Fe"
    fe_fe = distances[np.ix_(fe, fe)]
    assert 2.3 < fe_fe.min() < 2.5
    # Fe neighbours within 3.5 A per Wyckoff class (Herbst et al.: c 8, e 9, j1 9, j2 12,
    # k1 10, k2 10); the 4e choice (1/2, 1/2, z) is what makes these right
    counts = (fe_fe < 3.5).sum(axis=1)
    expected = {"Fe_4c": 8, "Fe_4e": 9, "Fe_8j1": 9, "Fe_8j2": 12, "Fe_16k1": 10, "Fe_16k2": 10}
    for label, count in expected.items():
        assert np.all(counts[labels[fe] == label] == count), label
    for label, multiplicity in {"Nd_4f": 4, "Nd_4g": 4, "Fe_16k1": 16, "B_4g": 4}.items():
        assert np.sum(labels == label) == multiplicity


def test_nd2fe14b_grain_sites_and_moments():
    system = nd2fe14b_grain((1, 1, 1))
    assert system.n_sites == 64
    assert system.energy_unit == "K" and system.moment_unit == "mu_B"
    species = system.metadata["species"]
    assert np.sum(species == "Nd") == 8 and np.sum(species == "Fe") == 56
    np.testing.assert_allclose(system.moments[species == "Nd"], 36 / 11)
    assert system.moments[species == "Nd"][0] == pytest.approx(3.27, abs=0.005)
    np.testing.assert_allclose(system.moments[species == "Fe"], 2.1)
    assert set(system.type_names) == {
        "Nd_4f", "Nd_4g", "Fe_16k1", "Fe_16k2", "Fe_8j1", "Fe_8j2", "Fe_4e", "Fe_4c"
    }  # fmt: skip
    assert np.all(system.anisotropy[species == "Nd"] == 0)
    assert np.all(system.anisotropy[species == "Fe"] > 0)
    assert np.all(system.crystal_field[species == "Fe"] == 0)
    assert_symmetric(system)
    bigger = nd2fe14b_grain((2, 1, 1))
    assert bigger.n_sites == 128
    assert np.ptp(bigger.positions[:, 0]) > 8.8


def test_nd2fe14b_exchange(nd_crystal):
    species = nd_crystal.metadata["species"]
    rows = np.repeat(np.arange(nd_crystal.n_sites), degrees(nd_crystal))
    a, b = species[rows], species[nd_crystal.exchange_indices]
    assert not np.any((a == "Nd") & (b == "Nd"))
    fe_nd = (a == "Nd") & (b == "Fe")
    assert np.all(nd_crystal.exchange_values[fe_nd] > 0)  # moments parallel
    assert np.all(np.bincount(rows[fe_nd], minlength=64)[species == "Nd"] == 16)
    assert np.all(nd_crystal.exchange_values[(a == "Fe") & (b == "Fe")] > 0)
    rows_fe = rows[(a == "Fe") & (b == "Fe")]
    assert np.bincount(rows_fe, minlength=64)[species == "Fe"].min() == 8


def test_nd2fe14b_curie_temperature(nd_crystal):
    t_c = estimated_curie_temperature(nd_crystal)
    assert t_c == pytest.approx(
        CLASSICAL_HEISENBERG_TC_RATIO * mean_field_curie_temperature(nd_crystal)
    )
    assert t_c == pytest.approx(CURIE_TEMPERATURE_K, rel=0.02)
    j0 = load_nd2fe14b_parameters().exchange.fe_fe.J0
    assert fit_fe_fe_exchange() == pytest.approx(j0, rel=1e-3)


def test_nd_orientations_and_crystal_field(nd_crystal):
    species = nd_crystal.metadata["species"]
    orientation = nd_crystal.metadata["orientation"]
    cf = nd_crystal.crystal_field
    column = STEVENS_TERMS.index("O2-2")
    for label in ("Nd_4f", "Nd_4g"):
        in_class = nd_crystal.site_types == nd_crystal.type_names.index(label)
        assert sorted(orientation[in_class]) == [-1, -1, 1, 1]
        values = cf[in_class, column]
        np.testing.assert_allclose(np.abs(values), abs(values[0]))
        assert abs(values[0]) > 1
        assert len(set(np.sign(values) * orientation[in_class])) == 1  # sign follows orientation
        plus, minus = cf[in_class & (orientation == 1)], cf[in_class & (orientation == -1)]
        np.testing.assert_allclose(plus[:, column], -minus[:, column])
        np.testing.assert_allclose(plus[:, :5], minus[:, :5])  # m >= 0 terms agree
    assert nd_site_orientation([0.268, 0.268, 0]) == 1
    assert nd_site_orientation([0.232, 0.768, 0.5]) == -1
    assert nd_site_orientation([0.14, -0.14, 0]) == -1
    assert nd_site_orientation([0.64, 0.64, 0.5]) == 1
    assert np.all(orientation[species == "Fe"] == 0)


def test_nd_crystal_field_energy_landscape():
    rows = nd_crystal_field()
    # B = Theta_l A_l^m <r^l> J^l: B20 = (-7/1089) 295 1.001 (9/2)^2 = -38.44 K
    assert rows[1][STEVENS_TERMS.index("O20")] == pytest.approx(-38.44, abs=0.01)
    z, x = np.array([0, 0, 1.0]), np.array([1.0, 0, 0])
    for row in rows.values():
        # Second order alone is easy-axis (B20 < 0: -76.9 K along z vs +38.4 K along x), but
        # with the classical J^l scaling the sixth-order terms (B60 = 7.2 K, B64 = 62.2 K)
        # dominate: z costs +66.4 K and x -49.1 K, so a single Nd ion is NOT easy-axis at T = 0
        # with these parameters. (Nd2Fe14B is easy-axis at room temperature: thermal averaging
        # suppresses the high-order terms; below the 135 K spin reorientation the moments cant
        # ~30 degrees from c towards <110>.)
        assert crystal_field_energy(row, z) == pytest.approx(66.45, abs=0.05)
        assert crystal_field_energy(row, x) == pytest.approx(-49.13, abs=0.05)
        assert crystal_field_energy(row, z) > crystal_field_energy(row, x)
    # the site-averaged landscape (two orientations) has its minimum on a cone tilted from c
    # towards <110>, like the low-temperature canted phase
    theta, phi = np.meshgrid(np.radians(np.arange(0, 90.5, 0.5)), np.radians(np.arange(0, 360, 1)))
    directions = np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    )
    average = 0.5 * (
        crystal_field_energy(rows[1], directions) + crystal_field_energy(rows[-1], directions)
    )
    k = np.unravel_index(np.argmin(average), average.shape)
    assert 30 < np.degrees(theta[k]) < 45
    assert np.degrees(phi[k]) % 90 == pytest.approx(45)


def test_nd2fe14b_pair_table_reproduces_default(tmp_path, nd_crystal):
    import yaml

    from atomlens.spins.nd2fe14b import default_parameter_path

    cell = np.diag([8.8, 8.8, 12.2])
    frac = nd_crystal.positions @ np.linalg.inv(cell)
    rows = np.repeat(np.arange(64), degrees(nd_crystal))
    pairs = []
    for i, j, value in zip(
        rows, nd_crystal.exchange_indices, nd_crystal.exchange_values, strict=True
    ):
        if i < j:
            shift = np.round(frac[i] - frac[j]).astype(int)  # the image of j within 3.5 A
            pairs.append([int(i), int(j), float(value), shift.tolist()])
    raw = yaml.safe_load(default_parameter_path().read_text())
    raw["exchange"]["pairs"] = pairs
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(raw))
    for periodic in (True, False):
        expected = nd2fe14b_grain((2, 1, 1), periodic=periodic)
        got = nd2fe14b_grain((2, 1, 1), params=path, periodic=periodic)
        np.testing.assert_array_equal(got.exchange_indptr, expected.exchange_indptr)
        np.testing.assert_array_equal(got.exchange_indices, expected.exchange_indices)
        np.testing.assert_allclose(got.exchange_values, expected.exchange_values)


def test_nd2fe14b_parameter_errors(tmp_path):
    import yaml

    from atomlens.spins.nd2fe14b import default_parameter_path

    raw = yaml.safe_load(default_parameter_path().read_text())
    assert load_nd2fe14b_parameters().nd.J == 4.5

    bad = dict(raw, fe=dict(raw["fe"], colour="red"))
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SpinModelError, match=r"extra\.yaml(.|\n)*fe\.colour"):
        load_nd2fe14b_parameters(path)

    bad = dict(raw, exchange=dict(raw["exchange"], fe_nd=float("nan")))
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SpinModelError, match=r"exchange\.fe_nd"):
        nd2fe14b_grain(params=path)

    bad = dict(raw, nd=dict(raw["nd"], crystal_field={"A22": 1.0}))
    with pytest.raises(SpinModelError, match="A22"):
        nd2fe14b_grain(params=bad)

    bad = dict(raw, fe=dict(raw["fe"], moments={"Fe_9z": 2.0}))
    with pytest.raises(SpinModelError, match="Fe_9z"):
        nd2fe14b_grain(params=bad)
