"""The time budget is checked after every batch (counted with a fake clock, no wall time)."""

import csv
import json

import pytest
import torch

from atomlens.errors import DataError
from atomlens.training.checkpoint import load_checkpoint
from atomlens.training.trainer import Callback, learning_rate, train

SECONDS_PER_STEP = 10.0  # 8 training structures, batch_size 3: 3 batches per epoch


class FakeClock(Callback):
    """A clock that advances only with optimiser steps; counts the steps and their lr."""

    def __init__(self) -> None:
        self.now = 0.0
        self.steps = 0
        self.lrs: list[float] = []

    def on_train_start(self, trainer) -> None:
        trainer.clock = lambda: self.now
        real_step = trainer._step

        def step(batch):
            self.lrs.append(trainer.optimizer.param_groups[0]["lr"])
            loss = real_step(batch)
            self.steps += 1
            self.now += SECONDS_PER_STEP
            return loss

        trainer._step = step


def budgeted(tiny_config, seconds: float, **training):
    return tiny_config(epochs=10, max_minutes=seconds / 60, **training)


def summary_of(run):
    return json.loads((run / "training_summary.json").read_text())


def test_budget_stops_within_one_batch_and_keeps_the_last_finished_epoch(tiny_config):
    clock = FakeClock()
    run = train(budgeted(tiny_config, 50), progress=False, callbacks=[clock])
    # Epoch 1 takes steps 1-3 (30 s); the budget runs out with step 5, batch 2 of epoch 2.
    assert clock.steps == 5
    summary = summary_of(run)
    assert summary["epochs"] == 1 and summary["discarded_batches"] == 2
    assert "time budget" in summary["stopped"]
    assert summary["train_seconds"] == pytest.approx(50.0)
    assert summary["max_minutes"] == pytest.approx(50 / 60)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert last["state"]["epoch"] == 1 and best["state"]["epoch"] == 1
    assert last["state"]["stopped"] and last["state"]["elapsed_seconds"] == pytest.approx(50.0)
    for name, value in best["model"].items():  # the partial epoch's steps are not kept
        assert torch.equal(value, last["model"][name]), name

    again = FakeClock()  # the same config again: nothing beyond the budget
    train(budgeted(tiny_config, 50), progress=False, callbacks=[again])
    assert again.steps == 0 and summary_of(run)["epochs"] == 1

    longer = FakeClock()  # a larger budget resumes from epoch 1 (50 s already used)
    train(budgeted(tiny_config, 100), progress=False, callbacks=[longer])
    # Epoch 2 (steps 1-3) ends at 80 s; step 5 (batch 2 of epoch 3) reaches 100 s.
    assert longer.steps == 5
    summary = summary_of(run)
    assert summary["epochs"] == 2 and summary["discarded_batches"] == 2
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_budget_reached_by_an_epochs_last_batch_keeps_that_epoch(tiny_config):
    clock = FakeClock()
    run = train(budgeted(tiny_config, 60), progress=False, callbacks=[clock])
    assert clock.steps == 6
    summary = summary_of(run)
    assert summary["epochs"] == 2 and summary["discarded_batches"] == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"] == 2


def test_budget_ending_within_the_first_epoch_is_an_error(tiny_config):
    clock = FakeClock()
    with pytest.raises(DataError, match=r"max_minutes=.* after 1 of 3 batches of the first"):
        train(budgeted(tiny_config, 5), progress=False, callbacks=[clock])
    assert clock.steps == 1


def test_cosine_budget_sets_the_learning_rate_every_batch(tiny_config):
    config = budgeted(tiny_config, 80, scheduler="cosine_budget", lr=1e-3, min_lr=0.0)
    clock = FakeClock()
    train(config, progress=False, callbacks=[clock])
    assert clock.steps == 8
    expected = [learning_rate(config, k // 3, SECONDS_PER_STEP * k) for k in range(8)]
    assert clock.lrs == pytest.approx(expected)
    assert all(a > b for a, b in zip(clock.lrs, clock.lrs[1:], strict=False))
