import pytest

from atomlens.config import validate_config

TINY_MODEL = {
    "n_layers": 1,
    "local_dim": 16,
    "n_heads": 2,
    "ffn_dim": 16,
    "global_dim": 16,
    "readout_dim": 8,
    "embedding_dim": 8,
    "dropout": 0.1,
}


@pytest.fixture
def tiny_config(tmp_path, molecule_file):
    def make(**training):
        return validate_config(
            {
                "run_dir": str(tmp_path / "run"),
                "data": {
                    "source": str(molecule_file),
                    "target": "homo",
                    "cache_dir": str(tmp_path / "cache"),
                    "split": {"train": 8, "val": 2, "test": 2, "seed": 1},
                },
                "model": TINY_MODEL,
                "training": {"epochs": 4, "batch_size": 3, "lr": 1e-3, "seed": 5, "threads": 1}
                | training,
            }
        )

    return make
