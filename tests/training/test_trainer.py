import csv
import json

import pytest
import torch

import atomlens.training.trainer as trainer_module
from atomlens.config import load_config
from atomlens.errors import DataError
from atomlens.training.checkpoint import load_checkpoint
from atomlens.training.trainer import learning_rate, train


def final_weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_training_writes_a_complete_run(tiny_config):
    run = train(tiny_config(), progress=False)
    for name in (
        "config.yaml",
        "metadata.json",
        "metrics.csv",
        "split.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "training_summary.json",
    ):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["target"] == "homo" and metadata["split"]["train"] == 8
    assert metadata["scaling"]["std"] > 0


def test_seeded_training_is_deterministic(tiny_config, tmp_path):
    first = final_weights(train(tiny_config(), progress=False))
    config = tiny_config()
    config.run_dir = str(tmp_path / "second")
    second = final_weights(train(config, progress=False))
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def test_killed_run_resumes_with_nothing_lost(tiny_config, tmp_path, monkeypatch):
    reference = final_weights(train(tiny_config(), progress=False))

    config = tiny_config()
    config.run_dir = str(tmp_path / "killed")
    real_save = trainer_module.save_checkpoint
    saved = []

    def dying_save(path, payload):
        real_save(path, payload)
        saved.append(path.name)
        if saved.count("last.pt") == 2:
            raise KeyboardInterrupt  # killed right after epoch 2 was saved

    monkeypatch.setattr(trainer_module, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["state"]["epoch"] == 2

    resumed = final_weights(train(config, progress=False))
    for name, value in reference.items():
        assert torch.equal(value, resumed[name]), name
    rows = list(csv.DictReader((tmp_path / "killed" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_different_config_in_same_run_dir(tiny_config):
    train(tiny_config(epochs=1), progress=False)
    with pytest.raises(DataError, match="different configuration"):
        train(tiny_config(epochs=1, lr=2e-3), progress=False)
    run = train(tiny_config(epochs=1, lr=2e-3), progress=False, overwrite=True)
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 1
    assert "lr: 0.002" in (run / "config.yaml").read_text()


def test_time_budget_stops_training(tiny_config):
    # Checked after every batch (counted in test_time_budget.py): a budget too small for
    # one epoch leaves no model, which is an error.
    with pytest.raises(DataError, match="before any epoch was finished"):
        train(tiny_config(epochs=50, max_minutes=1e-6), progress=False)


def test_schedules(tiny_config):
    cosine = tiny_config(epochs=10, lr=1e-3, min_lr=1e-4)
    assert learning_rate(cosine, 0) == pytest.approx(1e-3)
    assert learning_rate(cosine, 5) == pytest.approx(5.5e-4)
    restarts = tiny_config(scheduler="warm_restarts", restart_epochs=4, lr=1e-3, min_lr=0)
    assert learning_rate(restarts, 4) == pytest.approx(1e-3)
    assert learning_rate(restarts, 2) == pytest.approx(5e-4)
    assert learning_rate(tiny_config(scheduler="constant"), 7) == pytest.approx(1e-3)


def test_config_errors_are_readable(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: qm9, target: homo}\nmodel: {n_layers: 0, colour: red}\n")
    with pytest.raises(DataError, match=r"model.n_layers: [^\n]*; model.colour: Extra inputs"):
        load_config(path)
    with pytest.raises(DataError, match="KEY=VALUE"):
        load_config(path, ["training.epochs"])
    path.write_text("data: {source: qm9, target: homo}\n")
    config = load_config(path, ["training.epochs=3", "model.variant=scann"])
    assert config.training.epochs == 3 and config.model.variant == "scann"
    with pytest.raises(DataError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_early_stopping_after_patience(tiny_config, monkeypatch):
    worse_each_epoch = iter(range(1, 100))
    monkeypatch.setattr(
        trainer_module,
        "regression_metrics",
        lambda target, prediction: {"mae": float(next(worse_each_epoch)), "rmse": 1.0},
    )
    run = train(tiny_config(epochs=20, patience=3), progress=False)
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["epochs"] == 4 and summary["best_epoch"] == 1
    assert "early stopping" in summary["stopped"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")["state"]["epoch"]
    assert best == 1


def test_resume_with_more_epochs_or_budget(tiny_config):
    train(tiny_config(epochs=2), progress=False)
    run = train(tiny_config(epochs=3), progress=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    again = train(tiny_config(epochs=3), progress=False)  # finished: nothing to add
    assert len(list(csv.DictReader((again / "metrics.csv").open()))) == 3
    with pytest.raises(DataError, match=r"only training\.epochs"):
        train(tiny_config(epochs=3, lr=1e-2), progress=False)
