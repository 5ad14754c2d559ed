"""The equal-budget SchNet comparison of a SCANN+ model (benchmarks/bench_training.py zoo)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch_geometric")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_training as bt
from atomlens.datasets import Split
from atomlens.errors import DataError
from atomlens.zoo.export import export_run
from tests.zoo.test_zoo import DATA, _tiny_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny run and its export into a temporary checkout."""
    tmp = tmp_path_factory.mktemp("bench_zoo")
    run = _tiny_run(
        tmp, DATA / "qm9_sample.extxyz", "homo", {"train": 6, "val": 2, "test": 4, "seed": 1}
    )
    checkout = tmp / "checkout"
    model = export_run(run, "tiny-homo", checkout=checkout, device="cpu")
    return {"run": run, "folder": model.path, "checkout": checkout}


def test_a_shipped_model_gives_the_split_and_figures_of_its_run(exported, monkeypatch) -> None:
    monkeypatch.setattr(bt, "ROOT", exported["checkout"])  # where its test fixture lies
    shipped = bt.shipped_run(exported["folder"], None)
    finished = bt.finished_run(exported["run"], None, None)
    assert shipped.split.same_records(Split.load(exported["run"] / "split.json"))
    assert shipped.split.same_records(finished.split)
    card = json.loads((exported["folder"] / "card.json").read_text())
    assert shipped.figures["test"] == card["test"]
    assert shipped.figures["test"]["mae"] == pytest.approx(finished.figures["test"]["mae"])
    assert shipped.figures["epochs"] == finished.figures["epochs"] == 2
    assert shipped.seconds == pytest.approx(finished.seconds, abs=3.0)  # card: 0.1 min
    assert shipped.name == "tiny-homo" and shipped.unit == finished.unit


def test_a_split_drawn_otherwise_is_refused(exported, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bt, "ROOT", exported["checkout"])
    folder = tmp_path / "tiny-homo"
    shutil.copytree(exported["folder"], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["data"]["split"]["seed"] = 3  # test records 3, 5, 8, 9 instead of 2, 3, 6, 10
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match="is not the one 'tiny-homo' was trained on"):
        bt.shipped_run(folder, None)


def test_zoo_names_a_bad_run_in_one_line(tmp_path: Path, monkeypatch) -> None:
    for spec, message in (
        ("no-such-model", "'no-such-model' is neither a run directory nor a shipped model"),
        (str(tmp_path), f"--run '{tmp_path}' is not a finished atomlens run"),
    ):
        monkeypatch.setattr(sys, "argv", ["bench_training.py", "zoo", "--run", spec])
        with pytest.raises(SystemExit) as exit_info:
            bt.main()
        assert str(exit_info.value).startswith("error: ") and message in str(exit_info.value)
