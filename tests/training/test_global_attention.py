"""Crystal training warns about supercell-dependent attention unless it is size-consistent."""

import logging

from atomlens.config import validate_config
from atomlens.training.trainer import train
from tests.training.conftest import TINY_MODEL


def _crystal_config(tmp_path, crystal_file, mode):
    return validate_config(
        {
            "run_dir": str(tmp_path / f"run_{mode}"),
            "data": {
                "source": str(crystal_file),
                "target": "formation_energy_per_atom",
                "cache_dir": str(tmp_path / "cache"),
                "split": {"train": 10, "val": 2, "test": 2, "seed": 1},
            },
            "model": TINY_MODEL | {"global_attention": mode, "max_distance": 6.0},
            "training": {"epochs": 1, "batch_size": 5, "threads": 1},
        }
    )


def test_paper_attention_on_crystals_warns_and_size_consistent_does_not(
    tmp_path, crystal_file, caplog
):
    caplog.set_level(logging.WARNING, logger="atomlens")
    train(_crystal_config(tmp_path, crystal_file, "paper"), progress=False)
    assert "change with the choice of supercell" in caplog.text
    caplog.clear()
    train(_crystal_config(tmp_path, crystal_file, "size_consistent"), progress=False)
    assert "supercell" not in caplog.text
