"""ASE and pymatgen conventions: standard properties, labels in calculator results, round
trips through extxyz, ``Prediction.to_pymatgen`` (issue 18 part 5)."""

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator

from atomlens.calculator import AtomlensCalculator, standard_property
from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.datasets import load_source
from atomlens.inference import Prediction, load_model
from atomlens.structures import read_structures
from atomlens.structures.io import from_ase
from atomlens.training.trainer import train
from tests.training.conftest import TINY_MODEL

DATA = Path(__file__).parents[1] / "data"


def energy_file(folder: Path) -> Path:
    """The 12 QM9 molecules with ``energy=`` (a made-up total energy) in the comment line."""
    frames = ase.io.read(DATA / "qm9_sample.extxyz", index=":")
    path = folder / "energies.extxyz"
    with path.open("w") as handle:
        for atoms in frames:
            energy = float(-5.0 * len(atoms) + atoms.info["homo"])
            comment = (
                f"Properties=species:S:1:pos:R:3 energy={energy!r} "
                f'qm9_id={atoms.info["qm9_id"]} pbc="F F F"'
            )
            handle.write(f"{len(atoms)}\n{comment}\n")
            for symbol, (x, y, z) in zip(
                atoms.get_chemical_symbols(), atoms.positions, strict=True
            ):
                handle.write(f"{symbol} {x:.8f} {y:.8f} {z:.8f}\n")
    return path


@pytest.fixture(scope="module")
def energy_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("energy")
    data = energy_file(root)
    config = validate_config(
        {
            "run_dir": str(root / "run"),
            "data": {
                "source": str(data),
                "target": "energy",
                "cache_dir": str(root / "cache"),
                "split": {"train": 8, "val": 2, "test": 2, "seed": 1},
            },
            "model": TINY_MODEL,
            "training": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "seed": 5, "threads": 1},
        }
    )
    return train(config, progress=False), data


def test_extxyz_energy_is_a_label_read_from_calculator_results(tmp_path):
    data = energy_file(tmp_path)
    first = ase.io.read(data, 0)
    assert "energy" not in first.info and first.calc.results["energy"] < 0  # ASE >= 3.23
    source = load_source(str(data), targets=["energy"])
    expected = [
        -5.0 * len(a) + a.info["homo"] for a in ase.io.read(DATA / "qm9_sample.extxyz", ":")
    ]
    np.testing.assert_allclose(source.targets[:, 0], expected)
    assert source.units["energy"] == "eV"
    # info wins over a calculator result of the same name
    atoms = ase.io.read(DATA / "qm9_sample.extxyz", 0)
    atoms.info["energy"] = 1.5
    atoms.calc = SinglePointCalculator(atoms, energy=-2.0, forces=np.ones((len(atoms), 3)))
    record = from_ase(atoms)
    assert record.info["energy"] == 1.5
    np.testing.assert_array_equal(record.arrays["forces"], np.ones((len(atoms), 3)))


def test_standard_property_mapping():
    assert standard_property("energy", "eV") == ("energy", 1.0)
    assert standard_property("free_energy", "eV") == ("free_energy", 1.0)
    assert standard_property("u0", "eV") == ("energy", 1.0)
    assert standard_property("energy", "meV") == ("energy", 1e-3)
    assert standard_property("energy", "") is None  # unknown unit: no guessing
    assert standard_property("formation_energy_per_atom", "eV/atom") is None
    assert standard_property("homo", "eV") is None


def test_calculator_gives_ase_energy_and_no_forces(energy_run, tmp_path):
    run, data = energy_run
    atoms = ase.io.read(data, 4)
    atoms.calc = None
    atoms.set_tags(np.arange(len(atoms)))
    atoms.calc = AtomlensCalculator(run)
    assert "energy" in atoms.calc.implemented_properties
    energy = atoms.get_potential_energy()
    prediction = atoms.calc.get_property("prediction", atoms)
    assert energy == pytest.approx(prediction) and np.isfinite(energy)
    assert energy == pytest.approx(load_model(run).predict(atoms)[0].value, rel=1e-6)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_forces()
    assert atoms.info["atomlens_energy_unit"] == "eV"
    record = from_ase(atoms)  # standard calculator results only: energy, not 'prediction'
    assert record.info["energy"] == pytest.approx(energy) and "prediction" not in record.info
    ase.io.write(tmp_path / "out.extxyz", atoms)
    back = ase.io.read(tmp_path / "out.extxyz")
    assert back.get_potential_energy() == pytest.approx(energy)  # standard: via extxyz energy=
    assert back.info["atomlens_energy"] == pytest.approx(energy)
    assert back.info["atomlens_energy_unit"] == "eV"
    np.testing.assert_allclose(
        back.arrays["atomlens_attention"], atoms.calc.get_property("atom_attention", atoms)
    )
    np.testing.assert_array_equal(back.get_tags(), np.arange(len(atoms)))


def test_calculator_for_a_non_energy_target_keeps_atomlens_names(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)  # HOMO: not an ASE property
    atoms = ase.io.read(DATA / "qm9_sample.extxyz", 2)
    atoms.calc = AtomlensCalculator(run)
    assert atoms.calc.implemented_properties == ["prediction", "atom_attention"]
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_potential_energy()
    value = atoms.calc.get_property("prediction", atoms)
    ase.io.write(tmp_path / "homo.extxyz", atoms)
    back = ase.io.read(tmp_path / "homo.extxyz")
    assert back.info["atomlens_homo"] == pytest.approx(value)
    assert back.info["homo"] == atoms.info["homo"]
    assert "atomlens_homo_unit" not in back.info  # a file label without a known unit
    assert back.arrays["atomlens_attention"].sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_output_keeps_input_arrays_info_and_unit(energy_run, tmp_path):
    run, data = energy_run
    frames = ase.io.read(data, index=":3")
    for k, atoms in enumerate(frames):
        forces = np.full((len(atoms), 3), 0.1 * k)
        atoms.calc = SinglePointCalculator(
            atoms, energy=atoms.get_potential_energy(), forces=forces
        )
        atoms.set_tags(np.arange(len(atoms)) + 10)
        atoms.info["note"] = f"frame{k}"
    ase.io.write(tmp_path / "in.extxyz", frames)
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(tmp_path / "in.extxyz"), "--out", str(out)]) == 0
    written = ase.io.read(out / "in.atomlens.extxyz", index=":")
    predicted = load_model(run).predict(frames)
    assert len(written) == 3
    for k, (atoms, original, prediction) in enumerate(zip(written, frames, predicted, strict=True)):
        assert atoms.info["atomlens_energy"] == pytest.approx(prediction.value, rel=1e-5)
        assert atoms.info["atomlens_energy_unit"] == "eV"
        assert atoms.info["note"] == f"frame{k}" and atoms.info["qm9_id"] == original.info["qm9_id"]
        np.testing.assert_allclose(atoms.get_forces(), np.full((len(atoms), 3), 0.1 * k))
        assert atoms.get_potential_energy() == pytest.approx(original.get_potential_energy())
        np.testing.assert_array_equal(atoms.get_tags(), np.arange(len(atoms)) + 10)
        assert atoms.arrays["atomlens_attention"].sum() == pytest.approx(1.0, abs=1e-5)


def test_prediction_to_ase_round_trip(energy_run, tmp_path):
    run, data = energy_run
    structures = list(read_structures(data))[:2]
    predictions = load_model(run).predict(structures)
    ase.io.write(tmp_path / "p.extxyz", [p.to_ase() for p in predictions])
    back = ase.io.read(tmp_path / "p.extxyz", index=":")
    for atoms, prediction in zip(back, predictions, strict=True):
        assert atoms.info["atomlens_energy"] == pytest.approx(prediction.value)
        assert atoms.info["atomlens_energy_unit"] == "eV"
        np.testing.assert_allclose(atoms.arrays["atomlens_attention"], prediction.atom_attention)
        # the input label (energy=, read into a calculator) goes back out as energy=
        assert atoms.get_potential_energy() == pytest.approx(prediction.structure.info["energy"])


def test_to_pymatgen_molecule_and_crystal(energy_run):
    pytest.importorskip("pymatgen")
    from pymatgen.core import Molecule
    from pymatgen.core import Structure as PymatgenStructure

    run, data = energy_run
    (prediction,) = load_model(run).predict(next(iter(read_structures(data))))
    molecule = prediction.to_pymatgen()
    assert isinstance(molecule, Molecule) and len(molecule) == len(prediction.structure)
    assert molecule.properties == {
        "atomlens_energy": prediction.value,
        "atomlens_energy_unit": "eV",
    }
    np.testing.assert_allclose(
        molecule.site_properties["atomlens_attention"], prediction.atom_attention
    )
    np.testing.assert_allclose(molecule.cart_coords, prediction.structure.positions)
    assert [s.specie.Z for s in molecule] == prediction.structure.numbers.tolist()

    crystal = list(read_structures(DATA / "mp_crystals_sample.extxyz"))[1]
    attention = np.full(len(crystal), 1 / len(crystal))
    made_up = Prediction(0.25, attention, crystal, "formation_energy_per_atom", "eV/atom")
    converted = made_up.to_pymatgen()
    assert isinstance(converted, PymatgenStructure)
    np.testing.assert_allclose(converted.lattice.matrix, crystal.cell)
    np.testing.assert_allclose(converted.cart_coords, crystal.positions, atol=1e-8)
    assert converted.properties["atomlens_formation_energy_per_atom_unit"] == "eV/atom"
    assert converted.site_properties["atomlens_attention"] == pytest.approx(attention.tolist())
