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
    assert f["li_fraction"] == pytest.approx(2 / 3)
    assert f["mean_X"] == pytest.approx((2 * 0.98 + 3.44) / 3)
    assert f["mean_X_without_li"] == pytest.approx(3.44)
    assert f["delta_X"] == pytest.approx(3.44 - (2 * 0.98 + 3.44) / 3)
    assert f["mean_radius"] == pytest.approx((2 * 1.45 + 0.60) / 3)
    assert f["radius_ratio"] == pytest.approx((2 * 1.45 + 0.60) / 3 / 0.60)
    assert f["mean_mass"] == pytest.approx((2 * 6.941 + 15.9994) / 3)
    assert f["cohesive_energy"] == pytest.approx((2 * 1.63 + 2.60) / 3)  # Kittel, eV/atom
    assert f["sqrt_Ecoh_R2_over_m"] == pytest.approx(
        np.sqrt(f["cohesive_energy"] * f["mean_radius"] ** 2 / f["mean_mass"])
    )
    # pymatgen has no bulk modulus for O: the mean is Li's, over 2/3 of the atoms.
    assert f["bulk_modulus"] == pytest.approx(11.0) and f["bulk_modulus_coverage"] == pytest.approx(
        2 / 3
    )


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
    # Invariance: the same crystal in a 2x1x1 supercell has the same intensive features.
    big = from_ase(ase.build.bulk("OLi2", "fluorite", a=A).repeat((2, 1, 1)))
    g = li_transport_features(big)
    for key in ("li_neighbor_count", "shortest_li_li", "volume_per_atom", "packing_fraction"):
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
    # The check values of the reference notes (Li 40 %, mean X 1.592 / 2.000 without Li,
    # dX 0.408, mean radius 1.28 / 1.1667 without Li) hold for Li2MgZnN.
    from atomlens.structures import make_structure

    positions = [[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5], [2.5, 2.5, 2.5]]
    crystal = make_structure([3, 3, 12, 30, 7], positions, np.eye(3) * 5.0, True)
    f = composition_features(crystal)
    assert f["li_fraction"] == pytest.approx(0.4)
    assert f["mean_X"] == pytest.approx(1.592)
    assert f["mean_X_without_li"] == pytest.approx(2.000)
    assert f["delta_X"] == pytest.approx(0.408)
    assert f["mean_radius"] == pytest.approx(1.28)
    assert f["mean_radius_without_li"] == pytest.approx(1.1667, abs=1e-4)
