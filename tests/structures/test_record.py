import ase.build
import ase.io
import numpy as np
import pytest
from pymatgen.core import Lattice, Molecule
from pymatgen.core import Structure as PmgStructure

from atomlens.errors import StructureError
from atomlens.structures import (
    as_structure,
    from_ase,
    from_pymatgen,
    make_structure,
    read_structures,
    to_ase,
)


def test_ase_and_pymatgen_give_the_same_record():
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64)
    pmg = PmgStructure(
        Lattice(atoms.cell[:]), ["Na", "Cl"], atoms.positions, coords_are_cartesian=True
    )
    a, b = from_ase(atoms), from_pymatgen(pmg)
    assert np.array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
    np.testing.assert_allclose(a.cell, b.cell)
    assert a.is_periodic and b.is_periodic


def test_pymatgen_molecule_is_open():
    s = from_pymatgen(Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
    assert not s.is_periodic and s.formula == "H2O"
    assert np.all(s.cell == 0)


def test_round_trip_through_ase():
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.info["energy"] = -1.5
    back = to_ase(from_ase(atoms))
    assert back.get_chemical_formula() == atoms.get_chemical_formula()
    assert back.info["energy"] == -1.5
    np.testing.assert_allclose(back.positions, atoms.positions)


def test_as_structure_rejects_unknown_objects():
    with pytest.raises(TypeError, match="cannot convert list"):
        as_structure([1, 2, 3])


@pytest.mark.parametrize(
    ("numbers", "positions", "message"),
    [
        ([], np.zeros((0, 3)), "empty structure"),
        ([6, 0], [[0, 0, 0], [1.5, 0, 0]], "unknown element .atomic number 0. at atom 1"),
        ([6, 200], [[0, 0, 0], [1.5, 0, 0]], "unknown element .atomic number 200"),
        ([6, 1], [[0, 0, 0], [np.nan, 0, 0]], "non-finite .NaN/inf. coordinates at atom 1"),
        ([6, 1], [[0, 0, 0], [np.inf, 0, 0]], "non-finite"),
        ([6, 1, 1], [[0, 0, 0], [1, 0, 0], [1.2, 0.1, 0]], "atoms 1 and 2 are 0.224 A apart"),
        ([6, 1], [[0, 0, 0]], "positions have shape"),
    ],
)
def test_invalid_structures_name_the_problem(numbers, positions, message):
    with pytest.raises(StructureError, match=message) as info:
        make_structure(numbers, positions, source="bad.xyz", frame=7)
    assert "'bad.xyz', frame 7" in str(info.value)
    assert info.value.source == "bad.xyz" and info.value.frame == 7


def test_zero_volume_cell_is_rejected():
    cell = [[3, 0, 0], [0, 3, 0], [3, 3, 0]]
    with pytest.raises(StructureError, match="zero volume"):
        make_structure([14], [[0, 0, 0]], cell, True)


def test_overlap_with_periodic_image_is_found():
    with pytest.raises(StructureError, match=r"atoms 0 and 1 are 0\.300 A apart"):
        make_structure([8, 8], [[0, 0, 0], [4.7, 0, 0]], np.eye(3) * 5.0, True)
    with pytest.raises(StructureError, match="own periodic image"):
        make_structure([8], [[0, 0, 0]], np.eye(3) * 0.4, True)


def test_min_distance_threshold_is_a_parameter():
    s = make_structure([1, 1], [[0, 0, 0], [0.45, 0, 0]], min_distance=0.4)
    assert len(s) == 2
    with pytest.raises(StructureError):
        make_structure([1, 1], [[0, 0, 0], [0.45, 0, 0]])


def test_mixed_periodicity_is_rejected():
    with pytest.raises(StructureError, match="mixed periodicity"):
        make_structure([14], [[0, 0, 0]], np.eye(3) * 5, [True, True, False])


def test_read_extxyz_keeps_labels(crystal_file):
    structures = list(read_structures(crystal_file))
    assert len(structures) == 14
    assert structures[0].frame == 0 and structures[-1].frame == 13
    assert all(s.is_periodic for s in structures)
    assert "formation_energy_per_atom" in structures[1].info


@pytest.mark.parametrize(("fmt", "name"), [("cif", "x.cif"), ("vasp", "POSCAR"), ("db", "x.db")])
def test_other_formats_read_back(tmp_path, fmt, name):
    atoms = ase.build.bulk("Si", cubic=True)
    path = tmp_path / name
    ase.io.write(path, atoms, format=fmt)
    (structure,) = read_structures(path)
    assert structure.formula == "Si8"
    np.testing.assert_allclose(np.abs(np.linalg.det(structure.cell)), atoms.get_volume())


def test_malformed_file_names_file_and_frame(tmp_path):
    path = tmp_path / "broken.xyz"
    path.write_text("2\ncomment\nH 0 0 0\nH 0 0 0.74\n3\ncomment\nO 0 0 0\nH 1 0\n")
    reader = read_structures(path)
    assert len(next(reader)) == 2
    with pytest.raises(StructureError, match=r"broken.xyz', frame 1: cannot parse"):
        next(reader)


def test_unknown_element_in_file(tmp_path):
    path = tmp_path / "alien.xyz"
    path.write_text("2\ncomment\nH 0 0 0\nQq 0 0 0.74\n")
    with pytest.raises(StructureError, match=r"alien.xyz', frame 0: cannot parse: unknown element"):
        list(read_structures(path))


def test_nan_coordinates_in_file(tmp_path):
    path = tmp_path / "nan.xyz"
    path.write_text("2\ncomment\nH 0 0 0\nH nan 0 0.74\n")
    with pytest.raises(StructureError, match=r"nan.xyz', frame 0: non-finite"):
        list(read_structures(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        list(read_structures(tmp_path / "none.xyz"))
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(StructureError):
        list(read_structures(empty))


def test_ase_database_labels_become_info(tmp_path):
    from ase.db import connect

    path = tmp_path / "set.db"
    with connect(path) as db:
        db.write(ase.build.bulk("Si"), band_gap=1.1, material_id="mp-149")
        db.write(ase.build.bulk("Cu"), band_gap=0.0, material_id="mp-30")
    structures = list(read_structures(path))
    assert [s.info["material_id"] for s in structures] == ["mp-149", "mp-30"]
    assert structures[0].info["band_gap"] == 1.1 and structures[1].frame == 1
    (last,) = read_structures(path, index="1:")
    assert last.formula == "Cu"
