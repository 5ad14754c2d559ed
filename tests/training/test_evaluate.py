"""`atomlens evaluate RUN --data FILE`: a separate labelled file scored without retraining."""

import csv
import json

import ase.build
import ase.io
import numpy as np
import pytest

from atomlens.cli import main
from atomlens.errors import DataError, StructureError
from atomlens.inference import load_model
from atomlens.training.evaluate import evaluate_file
from atomlens.training.trainer import train


@pytest.fixture
def run(tiny_config):
    config = tiny_config(epochs=2)
    config.data.unit = "eV"  # an extxyz 'homo' has no unit of its own
    return train(config, progress=False)


@pytest.fixture
def held_out(tmp_path, molecule_file):
    """The sample molecules, shifted and with other labels: a separate test file."""
    frames = ase.io.read(molecule_file, index=":")
    rng = np.random.default_rng(0)
    for atoms in frames:
        atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
        atoms.info["homo"] += rng.normal(scale=0.3)
    path = tmp_path / "held_out.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path, frames


def test_cli_scores_a_separate_file_like_the_model_does(run, held_out, capsys):
    path, frames = held_out
    assert main(["evaluate", str(run), "--data", str(path)]) == 0
    out = run / "evaluations" / "held_out"
    metrics = json.loads((out / "evaluation.json").read_text())
    reference = np.array([f.info["homo"] for f in frames])
    predicted = np.array([p.value for p in load_model(run).predict(frames)])
    error = predicted - reference
    assert metrics["n"] == len(frames) and metrics["skipped"] == []
    assert metrics["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
    assert metrics["rmse"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-5)
    r2 = 1 - (error**2).sum() / ((reference - reference.mean()) ** 2).sum()
    assert metrics["r2"] == pytest.approx(r2, rel=1e-4, abs=1e-6)
    assert metrics["unit"] == "eV" and metrics["target"] == "homo"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(len(frames)))
    np.testing.assert_allclose([float(r["prediction"]) for r in rows], predicted, rtol=1e-5)
    np.testing.assert_allclose([float(r["reference"]) for r in rows], reference)
    assert (out / "parity.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert f"homo on '{path}' ({len(frames)} structures, best checkpoint): MAE" in printed
    assert " eV  RMSE" in printed


def test_frames_without_label_or_with_unknown_elements(run, held_out, tmp_path, capsys):
    _, frames = held_out
    del frames[2].info["homo"]
    silane = ase.build.molecule("SiH4")
    silane.info["homo"] = -8.0
    frames.append(silane)
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, frames, format="extxyz")

    assert main(["evaluate", str(run), "--data", str(path)]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert f"'{path}', frame 2: no finite label 'homo'" in error and "--skip-invalid" in error
    frames[2].info["homo"] = -7.0
    ase.io.write(path, frames, format="extxyz")
    with pytest.raises(StructureError, match=r"frame 12: element\(s\) Si never seen"):
        evaluate_file(run, path, progress=False)

    del frames[2].info["homo"]
    ase.io.write(path, frames, format="extxyz")
    out = tmp_path / "scores"
    args = ["evaluate", str(run), "--data", str(path), "--skip-invalid", "--out", str(out)]
    assert main(args) == 0
    assert "skipped 2 frame(s)" in capsys.readouterr().out
    metrics = json.loads((out / "evaluation.json").read_text())
    assert metrics["n"] == 11
    assert [(s["file"], s["frame"]) for s in metrics["skipped"]] == [
        (str(path), 2),
        (str(path), 12),
    ]


def test_data_option_errors(run, tmp_path, capsys):
    assert main(["evaluate", str(run), "--out", str(tmp_path / "x")]) == 1
    assert "--out goes with --data" in capsys.readouterr().err
    with pytest.raises(DataError, match="not found"):
        evaluate_file(run, tmp_path / "missing.extxyz")
    other = tmp_path / "other.extxyz"
    ase.io.write(other, ase.build.molecule("CH4"), format="extxyz")
    with pytest.raises(DataError, match=r"unknown target\(s\) \['homo'\]"):
        evaluate_file(run, other, progress=False)
