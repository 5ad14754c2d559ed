import json
import subprocess
import sys

import yaml


def test_two_process_training_keeps_ranks_identical(tiny_config, tmp_path):
    config = tiny_config(epochs=2, max_minutes=60)  # ranks agree on the budget every batch
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",
            "-m",
            "atomlens.cli",
            "train",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["max_parameter_difference_across_ranks"] == 0.0
    assert summary["epochs"] == 2
