import sys
import types

import ase.build
import numpy as np
import pytest
from ase.db import connect

from atomlens.datasets import load_source
from atomlens.errors import DataError


def test_extxyz_labels_and_ids(crystal_file):
    source = load_source(str(crystal_file), limit=5)
    assert len(source) == 5 and source.ids[0].startswith("mp-")
    assert "formation_energy_per_atom" in source.target_names
    assert "material_id" not in source.target_names  # strings are not labels
    assert source.targets.shape == (5, len(source.target_names))


def test_ase_db_source(tmp_path):
    path = tmp_path / "set.db"
    with connect(path) as db:
        for a in (3.5, 3.6, 3.7):
            db.write(ase.build.bulk("Cu", a=a), volume_label=a**3 / 4)
    source = load_source(str(path), targets=["volume_label"])
    np.testing.assert_allclose(source.targets[:, 0], [3.5**3 / 4, 3.6**3 / 4, 3.7**3 / 4])


def test_limit_must_be_positive(crystal_file):
    with pytest.raises(DataError, match="limit must be positive"):
        load_source(str(crystal_file), limit=0)


def test_matbench_without_matminer(monkeypatch):
    monkeypatch.setitem(sys.modules, "matminer", None)
    monkeypatch.setitem(sys.modules, "matminer.datasets", None)
    with pytest.raises(DataError, match=r"needs matminer: pip install 'atomlens\[matbench\]'"):
        load_source("matbench:matbench_mp_e_form")


def test_matbench_offline_is_a_clear_error(monkeypatch):
    def offline(name):
        raise ConnectionError("Name or service not known")

    package = types.ModuleType("matminer")
    datasets = types.ModuleType("matminer.datasets")
    datasets.load_dataset = offline
    monkeypatch.setitem(sys.modules, "matminer", package)
    monkeypatch.setitem(sys.modules, "matminer.datasets", datasets)
    with pytest.raises(DataError, match="may be offline"):
        load_source("matbench:matbench_mp_e_form")


def test_matbench_frame_is_converted(monkeypatch):
    pandas = pytest.importorskip("pandas")
    from pymatgen.core import Lattice, Structure

    crystal = Structure(
        Lattice.cubic(3.6), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    frame = pandas.DataFrame({"structure": [crystal, crystal], "e_form": [0.0, 0.1]})
    datasets = types.ModuleType("matminer.datasets")
    datasets.load_dataset = lambda name: frame
    monkeypatch.setitem(sys.modules, "matminer", types.ModuleType("matminer"))
    monkeypatch.setitem(sys.modules, "matminer.datasets", datasets)
    source = load_source("matbench:matbench_mp_e_form", targets=["e_form"])
    assert len(source) == 2 and source.structures[0].formula == "Cu4"
    np.testing.assert_allclose(source.targets[:, 0], [0.0, 0.1])
