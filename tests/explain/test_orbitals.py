import numpy as np
import pytest

from atomlens.errors import StructureError
from atomlens.explain.orbitals import (
    atom_populations,
    cached_frontier_weights,
    frontier_weights,
    structure_key,
)
from atomlens.explain.validation import benchmark_explanations, pyscf_weights, spearman
from atomlens.structures import make_structure, read_structures

pytest.importorskip("pyscf")


def molecule(symbols_numbers, positions):
    return make_structure(symbols_numbers, positions, source="test")


def test_populations_with_orthonormal_basis_are_squared_coefficients():
    c = np.array([[0.6, 0.0], [0.8, 0.0], [0.0, 1.0]])
    weights = atom_populations(c, np.eye(3), np.array([0, 0, 1]), 2, "lowdin")
    np.testing.assert_allclose(weights, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(
        atom_populations(c, np.eye(3), np.array([0, 1, 1]), 2, "mulliken"),
        [[0.36, 0.0], [0.64, 1.0]],
    )
    with pytest.raises(ValueError, match="population"):
        atom_populations(c, np.eye(3), np.array([0, 0, 1]), 2, "hirshfeld")


def test_h2_orbitals_are_shared_equally():
    h2 = molecule([1, 1], [[0, 0, 0], [0, 0, 0.74]])
    for population in ("lowdin", "mulliken"):
        result = frontier_weights(h2, method="hf", basis="sto-3g", population=population)
        np.testing.assert_allclose(result["homo"], [0.5, 0.5], atol=1e-8)
        np.testing.assert_allclose(result["lumo"], [0.5, 0.5], atol=1e-8)
    assert result["homo_energy_ev"] < 0 < result["lumo_energy_ev"]


def test_hf_homo_is_a_fluorine_lone_pair():
    # The HOMO of hydrogen fluoride is a pi orbital: H 1s has no pi part, so in a minimal
    # basis the orbital lies on F alone, exactly.
    hf = molecule([1, 9], [[0, 0, 0], [0, 0, 0.917]])
    result = frontier_weights(hf, method="hf", basis="sto-3g")
    np.testing.assert_allclose(result["homo"], [0.0, 1.0], atol=1e-10)


def test_weights_sum_to_one_for_qm9_molecules():
    water = list(read_structures("tests/data/qm9_sample.extxyz"))[1]
    for population in ("lowdin", "mulliken"):
        result = frontier_weights(water, method="hf", basis="sto-3g", population=population)
        for orbital in ("homo", "lumo"):
            assert result[orbital].sum() == pytest.approx(1.0, abs=1e-8)
    lowdin = frontier_weights(water, method="hf", basis="sto-3g")
    assert np.all(lowdin["homo"] >= 0) and lowdin["homo"].argmax() == 0  # the O lone pair


def test_bad_molecules_are_refused():
    radical = molecule([1], [[0, 0, 0]])
    with pytest.raises(StructureError, match="closed-shell"):
        frontier_weights(radical, method="hf", basis="sto-3g")
    water = list(read_structures("tests/data/qm9_sample.extxyz"))[1]
    with pytest.raises(StructureError, match="basis"):
        frontier_weights(water, method="hf", basis="no-such-basis")
    crystal = next(iter(read_structures("tests/data/mp_crystals_sample.extxyz")))
    with pytest.raises(StructureError, match="molecules only"):
        frontier_weights(crystal)


def test_cache_returns_the_stored_result(tmp_path, monkeypatch):
    water = list(read_structures("tests/data/qm9_sample.extxyz"))[1]
    first = cached_frontier_weights(water, tmp_path, method="hf", basis="sto-3g")
    files = list(tmp_path.rglob("*.json"))
    assert [f.name for f in files] == [f"{structure_key(water)}.json"]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr("atomlens.explain.orbitals.frontier_weights", fail)
    second = cached_frontier_weights(water, tmp_path, method="hf", basis="sto-3g")
    np.testing.assert_array_equal(first["homo"], second["homo"])


def test_benchmark_against_pyscf_orbitals(molecule_predictor, tmp_path):
    structures = list(read_structures("tests/data/qm9_sample.extxyz"))[1:3]  # H2O, C2H2
    weights = pyscf_weights("homo", tmp_path, functional="hf", basis="sto-3g")
    report = benchmark_explanations(
        molecule_predictor,
        structures,
        weights,
        reference="homo",
        methods=["attention"],
        n_resamples=200,
        settings={"functional": "hf", "basis": "sto-3g"},
        progress=False,
    )
    assert len(report.names) == 2 and not report.skipped
    for name in report.candidates:
        values = report.values["spearman_all"][name]
        assert np.all((values >= -1) & (values <= 1))
    assert len(list(tmp_path.rglob("*.json"))) == 2  # one SCF per molecule, cached
    # The cached HOMO weights are those the benchmark compared with.
    stored = cached_frontier_weights(structures[0], tmp_path, method="hf", basis="sto-3g")
    np.testing.assert_allclose(weights(structures[0]), stored["homo"])
    with pytest.raises(ValueError, match="reference"):
        pyscf_weights("gap", tmp_path)
    assert np.isnan(spearman(np.ones(3), np.arange(3.0)))
