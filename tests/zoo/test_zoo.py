"""Shipped models: every model of the package reproduces its card; export, names, refusals.

The parametrised tests run once per model of the package's zoo (none until a maintainer
exports one). The other tests export tiny models trained here into a temporary checkout
and point the registry at it through ``ATOMLENS_ZOO``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest
import torch
import yaml

from atomlens.calculator import AtomlensCalculator
from atomlens.cli import main
from atomlens.config import validate_config
from atomlens.datasets import load_source
from atomlens.errors import DataError, StructureError
from atomlens.inference import load_model
from atomlens.structures import read_structures
from atomlens.structures.io import to_ase
from atomlens.training.trainer import train
from atomlens.zoo import (
    CARD,
    CONFIG,
    HISTORY,
    MODEL_FILES,
    SUBSET_RELATIVE_TOLERANCE,
    WEIGHTS,
    ZOO_ENV,
    shipped_models,
    zoo_size_bytes,
)
from atomlens.zoo.export import export_run, fixture_path, subset_mae
from tests.training.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SHIPPED = shipped_models(ROOT / "src" / "atomlens" / "zoo")
CARD_KEYS = {
    "name", "task", "model", "target", "unit", "structures", "elements", "data", "source",
    "split", "training_budget", "training_minutes", "epochs", "best_epoch", "stopped", "test",
    "test_subset", "parameters", "atomlens_version", "trained_with", "date", "retrain",
    "weights_sha256",
}  # fmt: skip


# -- every shipped model ---------------------------------------------------------------------


@pytest.fixture
def package_zoo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry reads the package's own zoo."""
    monkeypatch.delenv(ZOO_ENV, raising=False)


@pytest.mark.usefixtures("package_zoo")
@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_reproduces_its_card(name: str) -> None:
    card = SHIPPED[name].card
    assert set(card) >= CARD_KEYS
    weights = torch.load(SHIPPED[name].path / WEIGHTS, weights_only=True)
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
    model = load_model(name, device="cpu")
    assert model.shipped and sum(p.numel() for p in model.model.parameters()) == card["parameters"]
    subset = card["test_subset"]
    assert subset["mae_tolerance"] == pytest.approx(SUBSET_RELATIVE_TOLERANCE * subset["mae"])
    mae, n = subset_mae(model, ROOT / subset["fixture"])
    assert n == subset["n"] == min(200, card["test"]["n"])
    assert abs(mae - subset["mae"]) <= subset["mae_tolerance"], (mae, subset)


@pytest.mark.usefixtures("package_zoo")
@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_by_name_agrees_everywhere(name: str, tmp_path: Path) -> None:
    fixture = ROOT / SHIPPED[name].card["test_subset"]["fixture"]
    _assert_name_paths_agree(name, fixture, tmp_path)


# -- export round trip on tiny models trained here -------------------------------------------


def _tiny_run(tmp: Path, source: Path, target: str, split: dict) -> Path:
    config = validate_config(
        {
            "run_dir": str(tmp / f"run_{target}"),
            "data": {
                "source": str(source),
                "target": target,
                "cache_dir": str(tmp / "cache"),
                "split": split,
            },
            "model": TINY_MODEL,
            "training": {"epochs": 2, "batch_size": 4, "seed": 5, "threads": 1, "device": "cpu"},
        }
    )
    return train(config, progress=False)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    """A tiny QM9-sample model exported as ``tiny-homo`` into a temporary checkout."""
    tmp = tmp_path_factory.mktemp("zoo")
    run = _tiny_run(
        tmp, DATA / "qm9_sample.extxyz", "homo", {"train": 8, "val": 2, "test": 2, "seed": 1}
    )
    checkout = tmp / "checkout"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ZOO_ENV, str(checkout / "src" / "atomlens" / "zoo"))
        code = main(
            ["-q", "models", "export", str(run), "--name", "tiny-homo", "--checkout",
             str(checkout), "--data-description", "12 QM9 molecules", "--device", "cpu"]
        )  # fmt: skip
        assert code == 0
        yield {"run": run, "checkout": checkout, "tmp": tmp}


def _assert_name_paths_agree(name: str, fixture: Path, out: Path) -> None:
    """load_model(name), the calculator and `predict --model` give the same values."""
    structures = list(read_structures(fixture, index=":3"))
    model = load_model(name, device="cpu")
    values = [p.value for p in model.predict(structures)]
    atoms = to_ase(structures[0])
    atoms.calc = AtomlensCalculator(name, device="cpu")
    assert atoms.calc.get_property("prediction", atoms) == pytest.approx(values[0], rel=1e-6)
    small = out / "three.extxyz"
    ase.io.write(small, [to_ase(s) for s in structures], format="extxyz")
    assert main(["-q", "predict", "--model", name, str(small), "--out", str(out / "p")]) == 0
    with open(out / "p" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    column = model.target
    np.testing.assert_allclose([float(r[column]) for r in rows], values, rtol=1e-6)


def test_export_writes_a_loadable_model_its_fixture_and_card(zoo: dict) -> None:
    checkout, run = zoo["checkout"], zoo["run"]
    models = shipped_models()
    assert list(models) == ["tiny-homo"]
    model = models["tiny-homo"]
    assert model.path == checkout / "src" / "atomlens" / "zoo" / "tiny-homo"
    assert sorted(p.name for p in model.path.iterdir()) == sorted((*MODEL_FILES, HISTORY))
    # the run's per-epoch log ships as it is, one row an epoch, and the card says so
    assert (model.path / HISTORY).read_bytes() == (run / "metrics.csv").read_bytes()
    assert len((model.path / HISTORY).read_text().splitlines()) == 1 + model.card["epochs"]
    assert model.card["training_history"].startswith(HISTORY)
    assert not [p for p in model.path.parent.iterdir() if p.name.startswith(".")]  # no staging
    assert zoo_size_bytes() == model.size_bytes > 0
    card = model.card
    assert set(card) >= CARD_KEYS
    assert card["data"] == "12 QM9 molecules" and card["structures"] == "molecules"
    split = {k: card["split"][k] for k in ("train", "val", "test", "seed")}
    assert split == {"train": 8, "val": 2, "test": 2, "seed": 1}
    assert card["test"]["n"] == 2 and card["test_subset"]["n"] == 2
    assert card["epochs"] == 2 and card["retrain"] == "atomlens train --model tiny-homo"
    metadata = json.loads((model.path / "metadata.json").read_text())
    assert "cache_entry" not in metadata and metadata["periodic"] is False
    assert yaml.safe_load((model.path / CONFIG).read_text()) == yaml.safe_load(
        (run / "config.yaml").read_text()
    )
    # weights: the run's best state dict, fp32, loaded strictly with weights_only
    weights = torch.load(model.path / WEIGHTS, weights_only=True)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert weights.keys() == best.keys()
    assert all(torch.equal(weights[k], best[k].float()) for k in best)
    # the fixture: the first test indices in sorted order, with their labels
    fixture = fixture_path(checkout, "tiny-homo")
    assert card["test_subset"]["fixture"] == "tests/data/zoo/tiny-homo.extxyz"
    predictor = load_model(run)
    structures, labels = predictor.records_at(np.sort(predictor.split_indices("test")))
    written = load_source(str(fixture), targets=["homo"])
    np.testing.assert_allclose(written.targets[:, 0], labels)
    np.testing.assert_allclose(written.structures[0].positions, structures[0].positions, atol=1e-7)
    # its MAE recomputed from the shipped folder equals the card's
    mae, n = subset_mae(load_model("tiny-homo"), fixture)
    assert n == 2 and abs(mae - card["test_subset"]["mae"]) <= card["test_subset"]["mae_tolerance"]
    run_mae = np.abs(np.array([p.value for p in predictor.predict(structures)]) - labels).mean()
    assert mae == pytest.approx(run_mae, rel=1e-6)


def test_name_works_wherever_a_run_does(zoo: dict, tmp_path: Path) -> None:
    fixture = fixture_path(zoo["checkout"], "tiny-homo")
    _assert_name_paths_agree("tiny-homo", fixture, tmp_path)
    run_values = [p.value for p in load_model(zoo["run"]).predict(ase.build.molecule("C2H6"))]
    name_values = [p.value for p in load_model("tiny-homo").predict(ase.build.molecule("C2H6"))]
    assert name_values == pytest.approx(run_values, rel=1e-6)
    with pytest.raises(DataError, match="best weights only"):
        load_model("tiny-homo", checkpoint="last")
    with pytest.raises(DataError, match="shipped model: it has no saved split"):
        load_model("tiny-homo").split_structures("test")


def test_explain_and_demo_with_a_shipped_model(
    zoo: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = fixture_path(zoo["checkout"], "tiny-homo")
    out = tmp_path / "explained"
    code = main(
        ["-q", "explain", "--model", "tiny-homo", str(fixture), "--out", str(out), "--figures", "0"]
    )
    assert code == 0 and (out / "explanations.extxyz").is_file()
    capsys.readouterr()
    assert main(["demo", "--no-train"]) == 0
    printed = capsys.readouterr().out
    assert "shipped model tiny-homo (" in printed
    assert "ethanol: predicted homo " in printed and printed.count(" attention ") == 3


def test_models_list_show_and_retrain(
    zoo: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert listed.splitlines()[0].split()[:3] == ["name", "task", "data"]
    assert listed.splitlines()[1].startswith("tiny-homo ") and "12 QM9 molecules" in listed
    assert "1 model(s), " in listed
    assert main(["models", "show", "tiny-homo"]) == 0
    shown = capsys.readouterr().out
    assert "retrain           atomlens train --model tiny-homo" in shown
    assert main(["models", "show", "tiny-homo", "--config"]) == 0
    assert capsys.readouterr().out == (zoo["run"] / "config.yaml").read_text()
    run_dir = tmp_path / "retrained"
    code = main(
        ["-q", "train", "--model", "tiny-homo", "--set", f"run_dir={run_dir}",
         "--set", "training.epochs=1"]
    )  # fmt: skip
    assert code == 0 and (run_dir / "checkpoints" / "best.pt").is_file()


def test_refusals_name_the_structure(zoo: dict, tmp_path: Path, capsys) -> None:
    model = load_model("tiny-homo")
    with pytest.raises(StructureError, match=r"Si never seen in training.*knows H, C, N, O\)"):
        model.predict(ase.build.bulk("Si"))
    boxed = ase.build.molecule("CH4")
    boxed.cell, boxed.pbc = [8.0, 8.0, 8.0], True
    message = "a periodic structure, but the model 'tiny-homo' was trained on molecules only"
    with pytest.raises(StructureError, match=message):
        model.predict([ase.build.molecule("CH4"), boxed])
    with pytest.raises(StructureError, match="periodic structure"):  # a run directory too
        load_model(zoo["run"]).predict(boxed)
    crystal_file = tmp_path / "box.extxyz"
    boxed.write(crystal_file)
    assert main(["predict", "--model", "tiny-homo", str(crystal_file)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{crystal_file}', frame 0: a periodic structure" in err


def test_crystal_model_refuses_a_molecule(zoo: dict) -> None:
    split = {"train": 10, "val": 2, "test": 2, "seed": 0}
    run = _tiny_run(zoo["tmp"], DATA / "mp_crystals_sample.extxyz", "band_gap", split)
    model = load_model(run)
    assert model.metadata["periodic"] is True
    model.predict(ase.build.bulk("Cs", "bcc", a=6.1))
    with pytest.raises(StructureError, match=r"a molecule \(no periodic direction\), but the"):
        model.predict(ase.build.molecule("N2"))


def test_unknown_names_and_bad_exports(zoo: dict, tmp_path: Path, capsys) -> None:
    with pytest.raises(DataError, match=r"^'qm9-homoo' is neither a run directory nor a shipped"):
        load_model("qm9-homoo")
    assert main(["predict", "--model", "nope", str(DATA / "qm9_sample.extxyz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("shipped models: tiny-homo")
    assert main(["models", "show", "nope"]) == 1
    assert "no shipped model 'nope'; shipped models: tiny-homo" in capsys.readouterr().err
    with pytest.raises(DataError, match="lower-case letters"):
        export_run(zoo["run"], "Tiny_Homo", checkout=tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(DataError, match="training has not finished"):
        export_run(unfinished, "tiny", checkout=tmp_path)


def test_empty_zoo_and_package_data(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "empty"))
    assert shipped_models() == {}
    assert main(["models"]) == 0 and "no shipped models" in capsys.readouterr().out
    with pytest.raises(DataError, match="this installation ships no models"):
        load_model("qm9-homo")
    assert main(["demo", "--no-train"]) == 0
    assert "ships no molecule model" in capsys.readouterr().out
    # a wheel carries every file of every model folder
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["atomlens"]
    assert {f"zoo/*/{name}" for name in (*MODEL_FILES, HISTORY)} <= set(patterns)
    assert CARD in MODEL_FILES


def test_listing_models_does_not_load_torch() -> None:
    code = (
        "import sys, atomlens.zoo, atomlens.cli.models; atomlens.zoo.shipped_models(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
