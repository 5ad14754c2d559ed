import ase.build
import numpy as np
import pandas as pd
import pytest

from atomlens.cli import main
from atomlens.descriptors.features import composition_features, featurize, li_transport_features
from atomlens.descriptors.table_builder import feature_rows
from atomlens.errors import StructureError
from atomlens.structures import from_ase

A = 4.61  # Li2O (antifluorite) lattice constant, Angstrom


def li2o():
    atoms = ase.build.bulk("OLi2", "fluorite", a=A)  # O at the origin, Li in the tetrahedra
    atoms.info["id"] = "Li2O"
    return from_ase(atoms)


def test_composition_features_by_hand():
    f = composition_features(li2o())
    assert len(f) == 21  # the composition columns of the paper's table
    assert f["li_fraction"] == pytest.approx(2 / 3)
    assert f["mean_X"] == pytest.approx((2 * 0.98 + 3.44) / 3)
    assert f["mean_X_without_li"] == pytest.approx(3.44)
    assert f["delta_X"] == pytest.approx(3.44 - (2 * 0.98 + 3.44) / 3)
    assert f["mean_radius"] == pytest.approx((2 * 1.45 + 0.60) / 3)
    assert f["radius_ratio_without_over_with_li"] == pytest.approx(0.60 / ((2 * 1.45 + 0.60) / 3))
    assert f["mean_mass"] == pytest.approx((2 * 6.941 + 15.9994) / 3)
    assert f["mean_mass_without_li"] == pytest.approx(15.9994)
    assert f["cohesive_energy"] == pytest.approx((2 * 1.63 + 2.60) / 3)  # Kittel, eV/atom
    assert f["cohesive_energy_without_li"] == pytest.approx(2.60)
    assert f["sqrt_Ecoh_R2_over_m"] == pytest.approx(
        np.sqrt(f["cohesive_energy"] * f["mean_radius"] ** 2 / f["mean_mass"])
    )
    assert f["sqrt_Ecoh_R2_over_m_without_li"] == pytest.approx(np.sqrt(2.60 * 0.60**2 / 15.9994))
    # pymatgen has no bulk or shear modulus for O: it counts 0 in the per-atom mean.
    assert f["bulk_modulus"] == pytest.approx(2 * 11.0 / 3)
    assert f["shear_modulus"] == pytest.approx(2 * 4.2 / 3)
    assert f["bulk_modulus_without_li"] == 0 and f["sqrt_B_R5_over_m_without_li"] == 0
    assert f["sqrt_G_R5_over_m"] == pytest.approx(
        np.sqrt(2 * 4.2 / 3 * f["mean_radius"] ** 5 / f["mean_mass"])
    )
    assert all(np.isfinite(v) for v in f.values())  # no empty cells in a table


def test_li_transport_features_of_antifluorite():
    f = li_transport_features(li2o())
    assert f["shortest_li_anion"] == pytest.approx(A * np.sqrt(3) / 4, rel=1e-6)
    assert f["shortest_li_li"] == pytest.approx(A / 2, rel=1e-6)
    assert f["shortest_anion_anion"] == pytest.approx(A / np.sqrt(2), rel=1e-6)
    assert f["volume_per_atom"] == pytest.approx(A**3 / 4 / 3)
    assert f["volume_per_anion"] == pytest.approx(A**3 / 4)
    spheres = 4 / 3 * np.pi * (2 * 1.45**3 + 0.60**3)
    assert f["packing_fraction"] == pytest.approx(spheres / (A**3 / 4))
    assert f["sublattice_packing_fraction"] == pytest.approx(4 / 3 * np.pi * 0.6**3 / (A**3 / 4))
    assert f["li_neighbor_count_std"] == 0  # both Li sites are equivalent
    assert f["li_neighbor_count"] >= 4  # at least the O tetrahedron
    assert f["li_bond_ionicity"] > f["sublattice_bond_ionicity"] or np.isnan(
        f["sublattice_bond_ionicity"]
    )
    assert f["straight_path_width"] >= 0
    # Every Li has the 4 O of its tetrahedron and k Li neighbours (ionicity 0): the Li bond
    # ionicities are 4 x I(Li-O) and k x 0, so their mean and spread follow exactly.
    k = f["li_li_bonds_per_li"]
    assert f["li_neighbor_count"] == 4 + k
    i_li_o = 1 - np.exp(-((3.44 - 0.98) ** 2) / 4)
    share = 4 / (4 + k)
    assert f["li_bond_ionicity"] == pytest.approx(share * i_li_o)
    assert f["li_bond_ionicity_std"] == pytest.approx(i_li_o * np.sqrt(share * (1 - share)))
    assert len(f) == 20  # Sendek's S1.1-S1.20
    # Invariance: the same crystal in a 2x1x1 supercell has the same intensive features.
    big = from_ase(ase.build.bulk("OLi2", "fluorite", a=A).repeat((2, 1, 1)))
    g = li_transport_features(big)
    keys = ("li_neighbor_count", "li_bond_ionicity_std", "shortest_li_li", "packing_fraction")
    for key in (*keys, "volume_per_atom"):
        assert g[key] == pytest.approx(f[key], rel=1e-6), key


def test_bad_structures_are_reported_not_fatal():
    water = from_ase(ase.build.molecule("H2O"))
    silicon = from_ase(ase.build.bulk("Si"))
    with pytest.raises(StructureError, match="periodic"):
        li_transport_features(water)
    with pytest.raises(StructureError, match="need Li"):
        featurize(silicon)
    rows, failures = feature_rows([li2o(), silicon, li2o()], workers=1, progress=False)
    assert len(rows) == 2 and rows[0]["composition"] == "Li2O" and rows[0]["id"] == "id=Li2O"
    assert len(failures) == 1 and "need Li" in failures[0][1]


def test_featurize_command(tmp_path, capsys):
    import ase.io

    atoms = [ase.build.bulk("OLi2", "fluorite", a=A), ase.build.bulk("Si")]
    atoms[0].info["lnD"] = -9.5
    atoms[0].info["temperature"] = 1000.0
    path = tmp_path / "in.extxyz"
    ase.io.write(path, atoms)
    out = tmp_path / "features.csv"
    assert main(["featurize", str(path), "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "1 structure(s) skipped" in printed
    table = pd.read_csv(out)
    assert len(table) == 1 and table["lnD"].iloc[0] == -9.5
    assert table["inv_kBT"].iloc[0] == pytest.approx(11.6045, rel=1e-4)  # 1/(kB 1000 K), 1/eV
    assert "li_neighbor_count" in table and "mean_X" in table
    assert "need Li" in (tmp_path / "features.failures.csv").read_text()


def test_reference_check_row():
    # The row Li2Si2Os (Li, Si, osmium) of the authors' feature_target.dat: Li_percentage 0.4,
    # avg_X 1.592 / 2.000 without Li, their difference 0.408, atomic radius 1.28 / 1.1667
    # without Li, ratio_r_without_Li_with 0.91146, avg_m 52.0566 / 82.13367 without Li.
    from atomlens.structures import make_structure

    positions = [[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5], [2.5, 2.5, 2.5]]
    crystal = make_structure([3, 3, 14, 14, 76], positions, np.eye(3) * 5.0, True)
    f = composition_features(crystal)
    assert f["li_fraction"] == pytest.approx(0.4)
    assert f["mean_X"] == pytest.approx(1.592)
    assert f["mean_X_without_li"] == pytest.approx(2.000)
    assert f["delta_X"] == pytest.approx(0.408)
    assert f["mean_radius"] == pytest.approx(1.28)
    assert f["mean_radius_without_li"] == pytest.approx(1.1666666666666667)
    assert f["radius_ratio_without_over_with_li"] == pytest.approx(0.9114583333333334)
    assert f["mean_mass"] == pytest.approx(52.0566)
    assert f["mean_mass_without_li"] == pytest.approx(82.13366666666667)
    # The paper's moduli and cohesive energies come from another element table (their row
    # has avg_B 119 GPa); atomlens' are pymatgen's: Li 11, Si 100, Os none -> 0.
    assert f["bulk_modulus"] == pytest.approx((2 * 11 + 2 * 100) / 5)
    everything = featurize(crystal)
    assert len(everything) == 41 and set(f) <= set(everything)
    assert "li_bond_ionicity_std" in everything
