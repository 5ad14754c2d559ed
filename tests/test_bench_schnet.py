"""The resumable SchNet baseline of the benchmarks (benchmarks/schnet_baseline.py)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch_geometric")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import schnet_baseline as sb
from atomlens.datasets import load_source, random_split
from atomlens.errors import DataError
from atomlens.training.trainer import run_dir_lock

TINY = sb.SchNetSettings(
    hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=10, batch_size=3
)


class KilledError(Exception):
    """Stands for a process killed after a checkpoint."""


@pytest.fixture
def data(tmp_path: Path, molecule_file: Path):
    source = load_source(str(molecule_file), targets=["homo"])
    split = random_split(len(source), train=8, val=2, test=2, seed=1)
    return sb.cutoff_data(source, split, TINY.cutoff, cache_dir=tmp_path / "cache")


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path: Path, data) -> None:
    dataset, rows = data
    budget = sb.Budget(epochs=3)
    whole = sb.train_schnet(dataset, rows, tmp_path / "whole", budget, TINY, log=lambda _: None)

    def kill_after_first(state: sb.SchNetState) -> None:
        if state.epoch == 1:
            raise KilledError

    folder = tmp_path / "killed"
    with pytest.raises(KilledError):
        sb.train_schnet(
            dataset, rows, folder, budget, TINY, on_epoch_end=kill_after_first, log=lambda _: None
        )
    assert not (folder / sb.RESULT).exists()
    lines: list[str] = []
    resumed = sb.train_schnet(dataset, rows, folder, budget, TINY, log=lines.append)
    assert lines[0].startswith(f"resuming {folder} after epoch 1")
    assert resumed["epochs"] == whole["epochs"] == 3
    assert [h["val_mae"] for h in resumed["history"]] == pytest.approx(
        [h["val_mae"] for h in whole["history"]], rel=1e-6
    )
    assert resumed["test"]["mae"] == pytest.approx(whole["test"]["mae"], rel=1e-6)
    assert json.loads((folder / sb.RESULT).read_text())["test"]["mae"] == resumed["test"]["mae"]


def test_time_budget_drops_the_cut_epoch_and_a_rerun_trains_nothing(tmp_path: Path, data) -> None:
    dataset, rows = data
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731  one second per call
    budget = sb.Budget(seconds=12)
    first = sb.train_schnet(dataset, rows, tmp_path / "t", budget, TINY, clock=clock, log=print)
    assert first["epochs"] >= 1
    assert "time budget" in first["stopped"]
    assert first["train_seconds"] >= 12
    assert first["discarded_batches"] > 0  # the epoch in progress was cut, not kept
    again = sb.train_schnet(dataset, rows, tmp_path / "t", budget, TINY, clock=clock, log=print)
    assert again["epochs"] == first["epochs"]
    assert again["test"] == first["test"]


def test_refuses_a_busy_folder_and_other_settings(tmp_path: Path, data) -> None:
    dataset, rows = data
    folder = tmp_path / "run"
    sb.train_schnet(dataset, rows, folder, sb.Budget(epochs=1), TINY, log=lambda _: None)
    with run_dir_lock(folder), pytest.raises(DataError, match="in use by another"):
        sb.train_schnet(dataset, rows, folder, sb.Budget(epochs=2), TINY, log=lambda _: None)
    other = sb.SchNetSettings(**(TINY.__dict__ | {"num_interactions": 1}))
    with pytest.raises(DataError, match="other settings or data"):
        sb.train_schnet(dataset, rows, folder, sb.Budget(epochs=2), other, log=lambda _: None)
