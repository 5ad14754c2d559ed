import csv
import json

import ase.build
import ase.io
import numpy as np
import pytest
import torch

from atomlens.calculator import AtomlensCalculator
from atomlens.cli import main
from atomlens.errors import DataError, StructureError
from atomlens.inference import load_model
from atomlens.structures import read_structures
from atomlens.training.trainer import train


@pytest.fixture
def run(tiny_config):
    return train(tiny_config(epochs=2), progress=False)


def test_predict_api_matches_training_path(run, molecule_file):
    from atomlens.batching import collate
    from atomlens.datasets import GraphDataset

    predictor = load_model(run)
    structures = list(read_structures(molecule_file))
    results = predictor.predict(structures)
    assert len(results) == 12 and results[0].target == "homo"
    assert results[0].unit == ""  # an extxyz source carries no units (QM9 gives eV)
    dataset = GraphDataset(predictor.metadata["cache_entry"])
    with torch.no_grad():
        scaled = predictor.model(collate(dataset, np.arange(12)))["prediction"].numpy()
    np.testing.assert_allclose(
        [r.value for r in results],
        scaled * predictor.scaling.std + predictor.scaling.mean,
        rtol=1e-5,
    )
    for r in results:
        assert r.atom_attention.shape == (len(r.structure),)
        assert r.atom_attention.sum() == pytest.approx(1.0, abs=1e-5)
    single = predictor.predict(ase.build.molecule("CH4"))
    assert len(single) == 1 and len(single[0].top_atoms(2)) == 2


def test_unknown_elements_and_bad_runs(run, tmp_path):
    with pytest.raises(StructureError, match="Si never seen in training"):
        load_model(run).predict(ase.build.bulk("Si"))
    with pytest.raises(DataError, match="not a training run"):
        load_model(tmp_path)
    (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_model(run)


def test_checkpoint_refuses_pickled_code(run):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = run / "checkpoints" / "best.pt"
    torch.save({"model": Evil()}, path, pickle_module=pickle)
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_model(run)


def test_ase_calculator(run):
    atoms = ase.build.molecule("CH3OH")
    atoms.calc = AtomlensCalculator(run)
    value = atoms.calc.get_property("prediction", atoms)
    attention = atoms.calc.get_property("atom_attention", atoms)
    assert np.isfinite(value) and attention.shape == (6,)
    assert value == pytest.approx(load_model(run).predict(atoms)[0].value, rel=1e-6)


def test_evaluate_and_predict_commands(run, molecule_file, tmp_path, capsys):
    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "evaluation_test.json").read_text())
    assert metrics["n"] == 2 and metrics["mae"] >= 0
    assert (run / "parity_test.png").stat().st_size > 1000
    assert "MAE" in capsys.readouterr().out

    out = tmp_path / "pred"
    assert main(["predict", str(run), str(molecule_file), "--out", str(out)]) == 0
    frames = ase.io.read(out / "qm9_sample.atomlens.extxyz", index=":")
    assert len(frames) == 12 and "atomlens_homo" in frames[0].info
    assert frames[3].arrays["atomlens_attention"].sum() == pytest.approx(1.0, abs=1e-5)
    rows = list(csv.DictReader((out / "attention.csv").open()))
    assert len(rows) == sum(len(f) for f in frames)
    assert {r["rank"] for r in rows if r["frame"] == "0"} == {"1", "2", "3", "4", "5"}
    predictions = list(csv.DictReader((out / "predictions.csv").open()))
    assert float(predictions[0]["homo"]) == pytest.approx(frames[0].info["atomlens_homo"])
