"""data.unit: the unit of a label atomlens does not know, through every output."""

import csv
import json
from importlib.resources import files

import ase.io
import pytest

from atomlens.cli import main
from atomlens.config import load_config
from atomlens.datasets import load_source
from atomlens.errors import DataError
from atomlens.training.trainer import train


@pytest.fixture
def heat_file(tmp_path, molecule_file):
    """The sample molecules with a label atomlens has no unit for (heat_ref) and band_gap."""
    frames = ase.io.read(molecule_file, index=":")
    for atoms in frames:
        atoms.info["heat_ref"] = 2.0 * atoms.info["homo"] + 1.0
        atoms.info["band_gap"] = atoms.info["gap"]
    path = tmp_path / "heat.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def unit_config(tiny_config, source, target, unit=None):
    config = tiny_config(epochs=1)
    config.data.source, config.data.target = str(source), target
    config.data.unit = unit
    return config


def test_custom_unit_reaches_metadata_predictions_and_extxyz(tiny_config, heat_file, tmp_path):
    run = train(unit_config(tiny_config, heat_file, "heat_ref", "eV/cell"), progress=False)
    assert json.loads((run / "metadata.json").read_text())["unit"] == "eV/cell"
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(heat_file), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert rows and {r["unit"] for r in rows} == {"eV/cell"}
    frames = ase.io.read(out / "heat.atomlens.extxyz", index=":")
    assert {f.info["atomlens_heat_ref_unit"] for f in frames} == {"eV/cell"}


def test_adding_a_unit_to_a_finished_run_resumes_it(tiny_config, heat_file):
    run = train(unit_config(tiny_config, heat_file, "heat_ref"), progress=False)
    assert json.loads((run / "metadata.json").read_text())["unit"] == ""
    train(unit_config(tiny_config, heat_file, "heat_ref", "kJ/mol"), progress=False)
    assert json.loads((run / "metadata.json").read_text())["unit"] == "kJ/mol"
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 1  # not retrained


def test_unit_contradicting_a_known_unit_is_an_error(tiny_config, heat_file):
    with pytest.raises(DataError, match=r"data\.unit is 'meV' but the label 'band_gap' .* in eV"):
        train(unit_config(tiny_config, heat_file, "band_gap", "meV"), progress=False)
    run = train(unit_config(tiny_config, heat_file, "band_gap", "eV"), progress=False)
    assert json.loads((run / "metadata.json").read_text())["unit"] == "eV"


def test_unit_must_be_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('data: {source: qm9, target: homo, unit: "eV\\nrm"}\n')
    with pytest.raises(DataError, match=r"data\.unit: .*one line"):
        load_config(path)


@pytest.mark.parametrize("name", ["mp_formation_energy", "mp_band_gap", "sen_mp_formation_energy"])
def test_shipped_crystal_configs_state_the_units_atomlens_knows(name, crystal_file):
    config = load_config(files("atomlens") / "configs" / f"{name}.yaml")
    known = load_source(str(crystal_file)).units[config.data.target]
    assert config.data.unit == known and config.data.resolve_unit(known) == known
