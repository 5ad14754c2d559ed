"""Degenerate frontier orbitals are averaged; cached weights record the rule."""

import json

import ase.build
import numpy as np
import pytest

from atomlens.explain import orbitals
from atomlens.explain.orbitals import (
    CACHE_VERSION,
    DEGENERACY_EV,
    cached_frontier_weights,
    degenerate_average,
    frontier_weights,
)
from atomlens.structures import make_structure


def test_near_degenerate_pair_is_averaged():
    # Occupied orbitals (eV); the HOMO (last) has a partner 0.2 meV below it.
    energies = np.array([-12.0, -9.0, -7.0002, -7.0])
    weights = np.array([[0.5, 0.1, 0.8, 0.2], [0.5, 0.9, 0.2, 0.8]])
    averaged, n = degenerate_average(energies, weights, 3)
    assert n == 2
    np.testing.assert_allclose(averaged, [0.5, 0.5])


def test_non_degenerate_frontier_is_taken_alone():
    energies = np.array([-12.0, -7.1, -7.0])  # 100 meV gap: not degenerate
    weights = np.array([[0.5, 0.8, 0.3], [0.5, 0.2, 0.7]])
    averaged, n = degenerate_average(energies, weights, 2)
    assert n == 1
    np.testing.assert_allclose(averaged, [0.3, 0.7])
    # LUMO side: the frontier is the first virtual orbital; 2 meV above is outside 1 meV.
    averaged, n = degenerate_average(np.array([1.0, 1.002]), weights[:, 1:], 0)
    assert n == 1
    np.testing.assert_allclose(averaged, [0.8, 0.2])
    # A threshold of 0 keeps only exact ties.
    assert degenerate_average(np.array([-7.0002, -7.0]), weights[:, 1:], 1, 0.0)[1] == 1


def _ethane():
    pytest.importorskip("pyscf")
    atoms = ase.build.molecule("C2H6")
    return make_structure(atoms.numbers, atoms.positions, source="ethane")


def test_ethane_homo_pair_averaged_weights_are_symmetric():
    ethane = _ethane()
    result = frontier_weights(ethane)  # B3LYP/6-31G
    assert result["homo_degeneracy"] == 2
    carbons, hydrogens = result["homo"][:2], result["homo"][2:]
    np.testing.assert_allclose(carbons, carbons[0], atol=1e-5)
    np.testing.assert_allclose(hydrogens, hydrogens[0], atol=1e-5)
    assert result["homo"].sum() == pytest.approx(1.0, abs=1e-8)
    single = frontier_weights(ethane, degeneracy_ev=0.0)["homo"]  # one orbital of the pair
    assert np.ptp(single[2:]) > 0.05


def test_cache_of_another_version_is_recomputed(tmp_path, monkeypatch):
    ethane = _ethane()
    calls = []

    def fake(structure, **settings):
        calls.append(settings)
        return {"homo": np.full(8, 0.125), "lumo": np.full(8, 0.125), "homo_degeneracy": 2}

    monkeypatch.setattr(orbitals, "frontier_weights", fake)
    settings = {"method": "hf", "basis": "sto-3g"}
    first = cached_frontier_weights(ethane, tmp_path, **settings)
    (path,) = tmp_path.rglob("*.json")
    stored = json.loads(path.read_text())
    assert stored["version"] == CACHE_VERSION and stored["degeneracy_ev"] == DEGENERACY_EV
    cached_frontier_weights(ethane, tmp_path, **settings)
    assert len(calls) == 1  # served from the cache
    old = {"homo": [1.0] + [0.0] * 7, "lumo": [0.125] * 8}  # a file without version/threshold
    path.write_text(json.dumps(old))
    again = cached_frontier_weights(ethane, tmp_path, **settings)
    assert len(calls) == 2
    np.testing.assert_allclose(again["homo"], first["homo"])
    path.write_text(json.dumps(stored | {"degeneracy_ev": 0.01}))  # another threshold
    cached_frontier_weights(ethane, tmp_path, **settings)
    assert len(calls) == 3
