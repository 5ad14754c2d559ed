"""Statistics and bookkeeping of benchmarks/bench_learning_curve.py."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_learning_curve as lc
from atomlens.datasets import random_split
from atomlens.errors import DataError
from atomlens.zoo import MODEL_FILES

SIZES = np.array([1000, 4000, 16000, 64000, 110000], float)


@pytest.fixture(autouse=True)
def _lock_beside_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the tests' lock files in their tmp_path (not in the system temporary folder)."""
    monkeypatch.setattr(lc, "results_lock", lambda path: path.with_name(f".{path.name}.lock"))


def synthetic(a: float, b: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """MAEs of an exact power law with log-normal scatter."""
    return a * SIZES**-b * np.exp(rng.normal(0.0, sigma, SIZES.size))


def test_fit_recovers_exponent_and_prefactor() -> None:
    rng = np.random.default_rng(3)
    fit = lc.fit_power_law(SIZES, synthetic(2.0, 0.35, 0.02, rng))
    assert fit["b"] == pytest.approx(0.35, abs=0.02)
    assert fit["a"] == pytest.approx(2.0, rel=0.25)
    assert fit["b_ci"][0] < fit["b"] < fit["b_ci"][1]
    exact = lc.fit_power_law(SIZES, 2.0 * SIZES**-0.35)
    assert exact["b"] == pytest.approx(0.35, abs=1e-12)
    assert exact["a"] == pytest.approx(2.0, rel=1e-10)
    needed = lc.size_for_mae(exact, 0.032)
    assert needed["n"] == pytest.approx((2.0 / 0.032) ** (1 / 0.35), rel=1e-9)


def test_intervals_cover_the_truth_at_the_nominal_rate() -> None:
    """200 noisy replicates: the 95 % intervals of b, a and N(32 meV) cover the truth ~95 %."""
    a, b, sigma, target = 2.0, 0.35, 0.08, 0.032
    true_n = (a / target) ** (1 / b)
    rng = np.random.default_rng(11)
    hits = {"a": 0, "b": 0, "n": 0}
    reps = 200
    for k in range(reps):
        fit = lc.fit_power_law(SIZES, synthetic(a, b, sigma, rng))
        hits["b"] += fit["b_ci"][0] <= b <= fit["b_ci"][1]
        hits["a"] += fit["a_ci"][0] <= a <= fit["a_ci"][1]
        ci = lc.size_for_mae(fit, target, draws=4000, seed=k)["ci"]
        hits["n"] += ci[0] <= true_n <= (math.inf if ci[1] is None else ci[1])
    for name, count in hits.items():
        # binomial sd at 95 % over 200 replicates is 1.5 %: allow about 3 sd
        assert 0.90 <= count / reps <= 0.995, (name, count)


def test_slope_that_may_be_zero_gives_an_unbounded_size() -> None:
    rng = np.random.default_rng(5)
    flat = 0.1 * np.exp(rng.normal(0.0, 0.2, SIZES.size))
    fit = lc.fit_power_law(SIZES, flat)
    needed = lc.size_for_mae(fit, 0.032)
    assert needed["ci"][1] is None  # some plausible slopes never reach 32 meV
    assert needed["share_of_draws_that_never_reach_it"] > 0


def test_saturating_fit_finds_the_floor() -> None:
    n = np.geomspace(1, 300, 40)
    fit = lc.fit_saturating(n, 0.2 * n**-0.8 + 0.05)
    assert fit is not None
    assert fit["c"] == pytest.approx(0.05, rel=0.02)
    assert fit["b"] == pytest.approx(0.8, rel=0.02)


def write_metrics(path: Path, maes: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "val_mae", "epoch_seconds"])
        for epoch, mae in enumerate(maes, start=1):
            writer.writerow([epoch, 0.1, mae, 100.0])
    return path


def test_epoch_extrapolation_says_plateau_instead_of_a_number(tmp_path: Path) -> None:
    epochs = np.arange(1, 41)
    plateau = write_metrics(tmp_path / "a" / "metrics.csv", 0.15 * epochs**-0.9 + 0.06)
    result = lc.epoch_extrapolation(plateau, 0.032)
    assert result["meaningful"] is False
    assert "plateau" in result["verdict"] or "not meaningful" in result["verdict"]

    rng = np.random.default_rng(2)
    steady = 0.2 * epochs**-0.4 * np.exp(rng.normal(0, 0.01, epochs.size))
    result = lc.epoch_extrapolation(write_metrics(tmp_path / "b" / "metrics.csv", steady), 0.032)
    truth = (0.2 / 0.032) ** (1 / 0.4)  # about 97 epochs
    assert result["meaningful"] is True
    low, high = result["epochs_for_target_power_law"]["ci"]
    assert low <= truth <= high
    assert result["hours_for_target_at_observed_speed"] == pytest.approx(
        result["epochs_for_target_power_law"]["n"] * 100 / 3600
    )


def test_nested_training_sets_and_fixed_val_test() -> None:
    standard = random_split(5000, train=3000, val=1000, test=1000, seed=0)
    splits = [lc.nested_split(standard, n, 300, seed=1) for n in (100, 400, 1600, 3000)]
    for small, large in itertools.pairwise(splits):
        assert set(small.train) < set(large.train)
    for split in splits:
        assert set(split.train) <= set(standard.train)
        assert not set(split.train) & (set(split.val) | set(split.test))
        assert set(split.val) <= set(standard.val)
        assert np.array_equal(split.val, splits[0].val)
        assert np.array_equal(split.test, standard.test)
    assert [s.train.size for s in splits] == [100, 400, 1600, 3000]
    assert splits[-1].val.size == 300


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    out = tmp_path / "lc.json"

    def add(key: int) -> None:
        lc.update_results(out, lambda d: d.setdefault("points", {}).update({str(key): key}))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(add, range(40)))
    assert json.loads(out.read_text())["points"] == {str(k): k for k in range(40)}


def test_report_fits_and_draws(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    points = {
        model: {
            str(int(n)): {"test": {"mae": float(m)}}
            for n, m in zip(SIZES, synthetic(a, 0.3, 0.03, rng), strict=True)
        }
        for model, a in (("scann_plus", 1.5), ("schnet", 2.0))
    }
    out = tmp_path / "lc.json"
    out.write_text(
        json.dumps({"protocol": {"budget_minutes_per_point": 10, "threads": 1}, "points": points})
    )
    epoch_run = tmp_path / "run"
    write_metrics(epoch_run / "metrics.csv", 0.2 * np.arange(1, 31) ** -0.3)
    data = lc.report(out, lc.epoch_log(str(epoch_run)))
    saved = json.loads(out.read_text())
    assert saved["fits"]["scann_plus"]["power_law"]["b"] == pytest.approx(0.3, abs=0.05)
    assert saved["fits"]["scann_plus"]["n_for_paper_mae"]["n"] > 110000
    assert "epochs_for_paper_mae" in data
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_epoch_log_finds_a_run_or_a_shipped_history(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"neither a run directory with metrics\.csv"):
        lc.epoch_log(str(run))
    metrics = write_metrics(run / "metrics.csv", np.array([0.3, 0.2]))
    assert lc.epoch_log(str(run)) == metrics
    zoo = tmp_path / "zoo"
    model = zoo / "qm9-homo"
    model.mkdir(parents=True)
    for name in MODEL_FILES:
        (model / name).write_text('{"name": "qm9-homo"}' if name == "card.json" else "")
    monkeypatch.setenv("ATOMLENS_ZOO", str(zoo))
    monkeypatch.setattr(lc, "ROOT", tmp_path)  # no runs/zoo/qm9-homo of this checkout
    assert lc.epoch_log(lc.EPOCH_RUN) is None  # the default, when nothing has a history
    history = write_metrics(model / lc.HISTORY, np.array([0.3, 0.2]))
    assert lc.epoch_log(lc.EPOCH_RUN) == history
    with pytest.raises(DataError, match="--epoch-run 'qm9-lumo' is neither"):
        lc.epoch_log("qm9-lumo")


def test_points_of_another_protocol_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "lc.json"
    out.write_text(json.dumps({"protocol": {"budget_minutes_per_point": 99}, "points": {}}))
    args = argparse.Namespace(
        budget_min=10.0,
        threads=1,
        nest_seed=1,
        val_size=2000,
        scann_config=str(lc.SCANN_CONFIG),
        runs=str(tmp_path / "runs"),
        models=["scann_plus"],
        sizes=[1000],
        retry_failed=False,
    )
    with pytest.raises(DataError, match="another protocol"):
        lc.run_points(args, out)
    assert not (tmp_path / "runs").exists()  # refused before any training
