import csv

import ase.io
import numpy as np
import pytest

from atomlens.explain.attention import attention_rank, explain, structure_name
from atomlens.explain.tables import write_atom_table, write_extxyz, write_structure_table
from atomlens.structures import read_structures


@pytest.fixture(scope="module")
def molecules(molecule_predictor):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))
    return structures, explain(molecule_predictor, structures, local=True, batch_size=5)


def test_explanations_match_predictions(molecule_predictor, molecules):
    structures, explanations = molecules
    predictions = molecule_predictor.predict(structures)
    assert [e.name for e in explanations][:2] == ["qm9_id=1", "qm9_id=3"]
    for item, prediction in zip(explanations, predictions, strict=True):
        assert item.value == pytest.approx(prediction.value, rel=1e-6)
        np.testing.assert_allclose(item.attention, prediction.atom_attention, rtol=1e-6)
        assert item.attention.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(item.coordination, item.graph.degree())


def test_local_attention_is_received_attention(molecules):
    # Each atom's local attention over its neighbours sums to 1 per head, so the attention
    # received by all atoms of a structure adds up to the number of atoms, in every layer.
    _, explanations = molecules
    for item in explanations:
        assert item.local_attention.shape == (2, len(item.structure))
        np.testing.assert_allclose(item.local_attention.sum(axis=1), len(item.structure), rtol=1e-5)
        assert np.all(item.local_attention >= 0)


def test_rank_and_names():
    np.testing.assert_array_equal(attention_rank(np.array([0.1, 0.5, 0.2, 0.5])), [4, 1, 3, 2])
    structure = next(iter(read_structures("tests/data/mp_crystals_sample.extxyz")))
    assert structure_name(structure) == "material_id=mp-1"


def test_extxyz_and_tables_round_trip(molecules, tmp_path):
    _, explanations = molecules
    frames = ase.io.read(write_extxyz(explanations, tmp_path / "x.extxyz"), index=":")
    assert len(frames) == len(explanations)
    for atoms, item in zip(frames, explanations, strict=True):
        np.testing.assert_allclose(atoms.arrays["atomlens_attention"], item.attention, rtol=1e-6)
        np.testing.assert_array_equal(atoms.arrays["atomlens_attention_rank"], item.rank)
        np.testing.assert_allclose(
            atoms.arrays["atomlens_local_attention_2"], item.local_attention[1], rtol=1e-6
        )
        assert atoms.info["atomlens_homo"] == pytest.approx(item.value)
        assert atoms.info["atomlens_name"] == item.name

    rows = list(read_rows(write_atom_table(explanations, tmp_path / "atoms.csv")))
    assert len(rows) == sum(len(e.structure) for e in explanations)
    methane = [r for r in rows if r["structure"] == "qm9_id=1"]
    assert [r["element"] for r in methane] == ["C", "H", "H", "H", "H"]
    assert sorted(int(r["rank"]) for r in methane) == [1, 2, 3, 4, 5]
    assert {int(r["coordination"]) for r in methane} == {4}  # CH4: every atom sees 4 faces
    table = list(read_rows(write_structure_table(explanations, tmp_path / "s.csv")))
    assert table[0]["formula"] == "CH4" and table[0]["n_atoms"] == "5"


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
