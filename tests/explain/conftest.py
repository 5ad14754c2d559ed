from pathlib import Path

import pytest

from atomlens.config import validate_config
from atomlens.inference import load_model
from atomlens.training.trainer import train
from tests.training.conftest import TINY_MODEL

DATA = Path(__file__).parents[1] / "data"


def _train(root: Path, source: Path, target: str, split: dict) -> Path:
    config = validate_config(
        {
            "run_dir": str(root / "run"),
            "data": {
                "source": str(source),
                "target": target,
                "cache_dir": str(root / "cache"),
                "split": split,
            },
            "model": TINY_MODEL | {"n_layers": 2},
            "training": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 3, "threads": 1},
        }
    )
    return train(config, progress=False)


@pytest.fixture(scope="session")
def molecule_run(tmp_path_factory) -> Path:
    """A tiny SCANN+ trained on the 12 shipped QM9 molecules (HOMO)."""
    split = {"train": 8, "val": 2, "test": 2, "seed": 1}
    return _train(tmp_path_factory.mktemp("molecules"), DATA / "qm9_sample.extxyz", "homo", split)


@pytest.fixture(scope="session")
def crystal_run(tmp_path_factory) -> Path:
    """A tiny SCANN+ trained on the 14 shipped crystals (formation energy)."""
    split = {"train": 10, "val": 2, "test": 2, "seed": 1}
    return _train(
        tmp_path_factory.mktemp("crystals"),
        DATA / "mp_crystals_sample.extxyz",
        "formation_energy_per_atom",
        split,
    )


@pytest.fixture(scope="session")
def molecule_predictor(molecule_run):
    return load_model(molecule_run)


@pytest.fixture(scope="session")
def crystal_predictor(crystal_run):
    return load_model(crystal_run)
