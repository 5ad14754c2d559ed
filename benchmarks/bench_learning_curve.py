"""Learning curves on QM9 HOMO: test MAE vs training-set size, SCANN+ and PyG SchNet.

    python benchmarks/bench_learning_curve.py                       # every point, then the report
    python benchmarks/bench_learning_curve.py --models scann_plus --sizes 1000,4000
    python benchmarks/bench_learning_curve.py --report              # fits and figure only

Every point (model, training-set size N) trains for the same budget of training seconds
(``--budget-min``, counted as atomlens' ``training.max_minutes`` counts: training steps,
validation and checkpoints) on one thread, on a nested subset of the standard QM9 split
(110,000 / 10,000 / 10,831, seed 0, as the shipped ``qm9-homo``): the training set of size N
is the first N of one fixed permutation (seed ``--nest-seed``) of the 110,000 training
records, so smaller sets lie inside larger ones; the validation set (best-epoch selection)
is a fixed subset of ``--val-size`` of the 10,000 validation records (the same for every
point); every point is scored on the full 10,831-molecule test split.

SCANN+ uses the shipped ``qm9-homo`` config (``src/atomlens/zoo/qm9-homo/config.yaml``:
144k parameters, MAE loss, one cosine over the budget) with ``max_minutes`` = the budget;
SchNet the settings of ``schnet_baseline.py`` with the same budget. Each point trains in
its own folder under ``--runs`` and resumes when rerun; a finished point is kept in the
results JSON and skipped. Several processes (e.g. one per core, with different ``--sizes``
or ``--models``) may share the JSON: each update re-reads it under a lock.

The report (always written at the end, or alone with ``--report``) fits MAE = a * N^-b by
least squares in log space to each model's points (t intervals from the fit's covariance;
a leave-one-out check; a saturating fit a * N^-b + c where there are enough points),
extrapolates the N that reaches the paper's 32 meV, fits the shipped full-data run's
validation MAE vs epoch the same way, and draws the log-log figure next to the JSON.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import optimize, stats

from atomlens.datasets import Source, Split, load_source, random_split
from atomlens.errors import DataError
from atomlens.files import write_json_atomic
from atomlens.locks import exclusive
from atomlens.zoo import HISTORY, shipped_models
from schnet_baseline import Budget, SchNetSettings, cutoff_data, train_schnet

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = RESULTS / "learning_curve_qm9_homo.json"
DEFAULT_SIZES = (1000, 4000, 16000, 64000, 110000)
MODELS = ("scann_plus", "schnet")
LABELS = {"scann_plus": "atomlens SCANN+", "schnet": "PyG SchNet"}
PAPER_MAE = 0.032  # eV: SCANN+ on QM9 HOMO in the seed paper (full training, GPU)
STANDARD_SPLIT = {"train": 110000, "val": 10000, "test": 10831, "seed": 0}
SCANN_CONFIG = ROOT / "src" / "atomlens" / "zoo" / "qm9-homo" / "config.yaml"
EPOCH_RUN = "qm9-homo"  # the shipped model's training history, else runs/zoo/qm9-homo
LEVEL = 0.95


# -- fits -----------------------------------------------------------------------------------


def fit_power_law(
    sizes: Sequence[float], maes: Sequence[float], level: float = LEVEL
) -> dict[str, Any]:
    """Fit MAE = a * N^-b by ordinary least squares in log space.

    Under log-normal scatter (log MAE = log a - b log N + noise) the intervals are exact t
    intervals; with two points there are no intervals (no degrees of freedom left).

    Args:
        sizes: N of each point (> 0).
        maes: MAE of each point (> 0).
        level: Confidence level of the intervals.

    Returns:
        ``a``, ``b``, ``a_ci``, ``b_ci`` (None without degrees of freedom), the covariance
        of (log a, b), the residual standard deviation in log space, points and dof.
    """
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(maes, float))
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError("a power-law fit needs at least two different sizes")
    design = np.column_stack([np.ones_like(x), -x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = int(x.size - 2)
    residuals = y - design @ beta
    fit: dict[str, Any] = {
        "a": float(np.exp(beta[0])),
        "b": float(beta[1]),
        "n_points": int(x.size),
        "dof": dof,
        "level": level,
        "a_ci": None,
        "b_ci": None,
        "cov_log_a_b": None,
        "log_residual_std": None,
    }
    if dof >= 1:
        s2 = float(residuals @ residuals) / dof
        cov = s2 * np.linalg.inv(design.T @ design)
        q = float(stats.t.ppf(0.5 + level / 2, dof))
        se = np.sqrt(np.diag(cov))
        fit |= {
            "a_ci": [float(np.exp(beta[0] - q * se[0])), float(np.exp(beta[0] + q * se[0]))],
            "b_ci": [float(beta[1] - q * se[1]), float(beta[1] + q * se[1])],
            "cov_log_a_b": cov.tolist(),
            "log_residual_std": math.sqrt(s2),
        }
    return fit


def parameter_draws(fit: dict[str, Any], draws: int, seed: int) -> np.ndarray:
    """Samples of (log a, b) from the fit's multivariate t distribution, shape (draws, 2)."""
    mean = np.array([math.log(fit["a"]), fit["b"]])
    cov = np.asarray(fit["cov_log_a_b"], float)
    rng = np.random.default_rng(seed)
    normal = rng.multivariate_normal(np.zeros(2), cov, size=draws, method="eigh")
    scale = np.sqrt(fit["dof"] / rng.chisquare(fit["dof"], size=draws))
    return mean + normal * scale[:, None]


def size_for_mae(
    fit: dict[str, Any], target: float, draws: int = 20000, seed: int = 0
) -> dict[str, Any]:
    """The N at which the fitted power law reaches ``target``, with a Monte-Carlo interval.

    The interval propagates the fit's (log a, b) distribution through N = (a / target)^(1/b);
    draws with b <= 0 never reach the target (an unbounded upper end, reported as None).
    """

    def log_n(log_a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (log_a - math.log(target)) / b
        return np.where(b > 0, value, np.inf)

    best = float(log_n(np.array(math.log(fit["a"])), np.array(fit["b"])))
    result: dict[str, Any] = {
        "target": target,
        "n": math.exp(best) if math.isfinite(best) and best < 700 else None,
        "ci": None,
        "level": fit["level"],
    }
    if fit["cov_log_a_b"] is None:
        return result
    sample = parameter_draws(fit, draws, seed)
    values = log_n(sample[:, 0], sample[:, 1])
    tail = (1 - fit["level"]) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    result["ci"] = [_exp_or_none(low), _exp_or_none(high)]
    result["share_of_draws_that_never_reach_it"] = float(np.mean(~np.isfinite(values)))
    return result


def _exp_or_none(value: float) -> float | None:
    """exp(value), or None when it is infinite or beyond a float."""
    return math.exp(value) if math.isfinite(value) and value < 700 else None


def fit_saturating(sizes: Sequence[float], maes: Sequence[float]) -> dict[str, Any] | None:
    """Fit MAE = a * N^-b + c (c >= 0) by least squares; None when it does not converge.

    Needs at least four points; with few points its errors (from the covariance, 1 sigma)
    are rough.
    """
    x, y = np.asarray(sizes, float), np.asarray(maes, float)
    if x.size < 4:
        return None
    plain = fit_power_law(x, y)
    scale = float(x.min())

    def model(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return a * (n / scale) ** (-b) + c

    start = [plain["a"] * scale ** (-plain["b"]), max(plain["b"], 0.05), 0.0]
    try:
        params, cov = optimize.curve_fit(
            model, x, y, p0=start, bounds=([0, 0, 0], [np.inf, 5, np.inf]), maxfev=20000
        )
    except (RuntimeError, ValueError):
        return None
    errors = np.sqrt(np.clip(np.diag(cov), 0, None))
    if not np.all(np.isfinite(errors)):
        errors = np.full(3, np.nan)
    return {
        "form": f"a * (N / {scale:g})^-b + c",
        "a": float(params[0]),
        "b": float(params[1]),
        "c": float(params[2]),
        "sigma": {"a": float(errors[0]), "b": float(errors[1]), "c": float(errors[2])},
        "dof": int(x.size - 3),
    }


def leave_one_out(sizes: Sequence[float], maes: Sequence[float], target: float) -> dict[str, Any]:
    """Range of b and of the N reaching ``target`` over the fits that leave one point out."""
    x, y = np.asarray(sizes, float), np.asarray(maes, float)
    if x.size < 4:
        return {}
    bs, ns = [], []
    for k in range(x.size):
        keep = np.arange(x.size) != k
        fit = fit_power_law(x[keep], y[keep])
        bs.append(fit["b"])
        ns.append(size_for_mae(fit, target)["n"])
    finite = [n for n in ns if n is not None]
    return {
        "b_range": [min(bs), max(bs)],
        "n_range": [min(finite), max(finite)] if finite else None,
        "fits_that_never_reach_target": len(ns) - len(finite),
    }


def epoch_extrapolation(metrics_csv: Path, target: float = PAPER_MAE) -> dict[str, Any]:
    """Fit the validation MAE vs epoch of a run and say whether ``target`` is in reach.

    The curve is fitted as val MAE = a * epoch^-b (log space) and as a * epoch^-b + c. The
    extrapolated epoch count is reported only when it is meaningful: the saturating fit's
    floor c is not clearly above the target and the epoch count lies within 100 times the
    epochs observed.
    """
    with metrics_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    epochs = np.array([float(r["epoch"]) for r in rows])
    maes = np.array([float(r["val_mae"]) for r in rows])
    per_epoch = float(np.mean([float(r["epoch_seconds"]) for r in rows]))
    plain = fit_power_law(epochs, maes)
    needed = size_for_mae(plain, target)
    saturating = fit_saturating(epochs, maes)
    observed = float(epochs.max())
    result: dict[str, Any] = {
        "log": str(metrics_csv),
        "epochs_observed": int(observed),
        "val_mae_last": float(maes[-1]),
        "val_mae_best": float(maes.min()),
        "power_law": plain,
        "epochs_for_target_power_law": needed,
        "saturating": saturating,
        "train_seconds_per_epoch": per_epoch,
        "caveat": "the run's learning rate follows one cosine over its time budget and "
        "reaches its minimum at the last epoch, so the late flattening is partly the "
        "schedule: this extrapolates that run's curve, not a longer schedule; consecutive "
        "epochs are not independent, so the interval is narrower than the true uncertainty",
    }
    floor_ci_low = None
    if saturating is not None and math.isfinite(saturating["sigma"]["c"]):
        floor_ci_low = saturating["c"] - 1.96 * saturating["sigma"]["c"]
    if floor_ci_low is not None and floor_ci_low > target:
        result["meaningful"] = False
        result["verdict"] = (
            f"plateau: the saturating fit levels off at {saturating['c'] * 1000:.1f} meV "
            f"(1.96 sigma down to {floor_ci_low * 1000:.1f} meV), above {target * 1000:.0f} "
            "meV: more epochs of this run would not reach the target"
        )
    elif needed["n"] is None or needed["n"] > 100 * observed:
        result["meaningful"] = False
        result["verdict"] = (
            "not meaningful: the power law reaches the target only beyond 100 times the "
            f"{int(observed)} epochs observed (or never)"
        )
    else:
        low, high = needed["ci"] or (None, None)
        result["meaningful"] = True
        hours = needed["n"] * per_epoch / 3600
        result["hours_for_target_at_observed_speed"] = hours
        result["verdict"] = (
            f"about {needed['n']:.0f} epochs at this data size "
            f"({LEVEL:.0%} interval {_fmt(low)} to {_fmt(high)}; "
            f"{needed['n'] / observed:.0f} times the {int(observed)} epochs observed, see the "
            f"caveat), about {hours:.0f} h of training at the run's speed"
        )
    return result


def _fmt(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:.3g}"


# -- the experiment ---------------------------------------------------------------------------


def nested_split(standard: Split, n_train: int, val_size: int, seed: int) -> Split:
    """The first ``n_train`` of a fixed permutation of the standard training records.

    The validation part is a fixed subset (``val_size``) of the standard validation records,
    the test part the whole standard test split; both are the same for every ``n_train``.
    """
    if not 0 < n_train <= standard.train.size:
        raise DataError(f"training size {n_train} is not in 1..{standard.train.size}")
    if not 0 < val_size <= standard.val.size:
        raise DataError(f"--val-size {val_size} is not in 1..{standard.val.size}")
    rng = np.random.default_rng(seed)
    train_order = rng.permutation(standard.train)
    val_order = rng.permutation(standard.val)
    return Split(
        train=np.sort(train_order[:n_train]),
        val=np.sort(val_order[:val_size]),
        test=standard.test.copy(),
        seed=None,
        n_total=standard.n_total,
    )


def results_lock(path: Path) -> Path:
    """The lock file of a results file: in the temporary folder, named after its full path.

    Outside the repository, so ``benchmarks/results/`` holds no stray lock file.
    """
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"atomlens-results-{digest}.lock"


def update_results(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Re-read the results JSON under its lock, apply ``change`` and write it atomically."""
    with exclusive(results_lock(path), f"results file '{path}'", wait=True):
        data = json.loads(path.read_text()) if path.is_file() else {}
        change(data)
        write_json_atomic(path, data)
    return data


def scann_training(args: argparse.Namespace) -> dict[str, Any]:
    """What the points change in the SCANN+ config's training section."""
    return {
        "max_minutes": args.budget_min,
        "threads": args.threads,
        "scheduler": "cosine_budget",
        "epochs": 1_000_000,  # the budget is the only stop
        "patience": 1_000_000,
    }


def protocol(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that must be equal for points to share one results file."""
    scann = yaml.safe_load(Path(args.scann_config).read_text())
    return {
        "task": "QM9 HOMO (eV)",
        "budget_minutes_per_point": args.budget_min,
        "budget_counts": "training seconds of the epoch loop (steps, validation, checkpoints), "
        "accumulated over resumed calls",
        "threads": args.threads,
        "standard_split": STANDARD_SPLIT,
        "training_sets": f"nested: the first N of one permutation (seed {args.nest_seed}) of "
        "the 110,000 standard training records",
        "nest_seed": args.nest_seed,
        "validation": f"a fixed subset of {args.val_size} of the 10,000 standard validation "
        "records (best-epoch selection), the same for every point",
        "val_size": args.val_size,
        "test": "the full standard test split, 10,831 molecules",
        "scann_plus": {
            "config": str(Path(args.scann_config).relative_to(ROOT))
            if Path(args.scann_config).resolve().is_relative_to(ROOT)
            else str(args.scann_config),
            "model": scann["model"],
            "training": scann["training"] | scann_training(args),
        },
        "schnet": asdict(SchNetSettings())
        | {"lr_schedule": "cosine from lr to min_lr over the budget (per batch)"},
    }


class Experiment:
    """The QM9 source and standard split (loaded once) and the folders of the points."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs = Path(args.runs) if args.runs else ROOT / "runs" / "learning_curve"
        self.runs = self.runs / f"qm9_homo_{args.budget_min:g}min"
        self._source: Source | None = None

    @property
    def source(self) -> Source:
        """QM9 with its HOMO labels."""
        if self._source is None:
            self._source = load_source("qm9", targets=["homo"])
        return self._source

    def split(self, n_train: int) -> Split:
        """The nested split of a point."""
        s = STANDARD_SPLIT
        standard = random_split(
            len(self.source), train=s["train"], val=s["val"], test=s["test"], seed=s["seed"]
        )
        return nested_split(standard, n_train, self.args.val_size, self.args.nest_seed)

    def run_point(self, model: str, n_train: int) -> dict[str, Any]:
        """Train one point (resuming) and score it on the test split."""
        folder = self.runs / f"{model}_n{n_train}"
        split = self.split(n_train)
        if model == "scann_plus":
            return self._scann(folder, split)
        return self._schnet(folder, split)

    def _scann(self, folder: Path, split: Split) -> dict[str, Any]:
        from atomlens.config import validate_config
        from atomlens.training.evaluate import evaluate_run
        from atomlens.training.trainer import train

        split_file = self.runs / "splits" / f"n{split.train.size}.json"
        split.save(split_file)
        raw = yaml.safe_load(Path(self.args.scann_config).read_text())
        raw["run_dir"] = str(folder)
        raw["data"] = {"source": "qm9", "target": "homo", "split": {"file": str(split_file)}}
        raw["training"] |= scann_training(self.args)
        train(validate_config(raw), progress=False)
        test = evaluate_run(folder)
        summary = json.loads((folder / "training_summary.json").read_text())
        metadata = json.loads((folder / "metadata.json").read_text())
        return {
            "test": {k: test[k] for k in ("mae", "rmse", "r2", "n")},
            "epochs": summary["epochs"],
            "best_epoch": summary["best_epoch"],
            "best_val_mae": summary["best_val_mae"],
            "train_seconds": summary["train_seconds"],
            "stopped": summary["stopped"],
            "parameters": metadata["parameters"],
        }

    def _schnet(self, folder: Path, split: Split) -> dict[str, Any]:
        dataset, rows = cutoff_data(self.source, split, SchNetSettings().cutoff)
        result = train_schnet(
            dataset,
            rows,
            folder,
            Budget(seconds=60 * self.args.budget_min),
            threads=self.args.threads,
        )
        return {
            "test": {k: result["test"][k] for k in ("mae", "rmse", "r2", "n")},
            "epochs": result["epochs"],
            "best_epoch": result["best_epoch"],
            "best_val_mae": result["best_val_mae"],
            "train_seconds": result["train_seconds"],
            "stopped": result["stopped"],
            "parameters": result["parameters"],
        }


def run_points(args: argparse.Namespace, out: Path) -> None:
    """Train the requested points that the results file does not hold yet."""
    wanted = protocol(args)

    def check(data: dict[str, Any]) -> None:
        if data.get("protocol", wanted) != wanted:
            raise DataError(
                f"'{out}' holds points of another protocol (budget, threads, split or "
                "settings); choose another --out"
            )
        data["protocol"] = wanted
        data.setdefault("points", {m: {} for m in MODELS})
        data.setdefault("failed", {})

    experiment = Experiment(args)
    for model in args.models:
        for n_train in args.sizes:
            key = str(n_train)
            data = update_results(out, check)
            if key in data["points"].get(model, {}):
                print(f"{model} N={n_train}: done, kept")
                continue
            if f"{model}/{key}" in data["failed"] and not args.retry_failed:
                print(f"{model} N={n_train}: failed before ({data['failed'][f'{model}/{key}']})")
                continue
            print(f"{model} N={n_train}: training ({args.budget_min} min budget)", flush=True)
            started = time.time()
            try:
                point = experiment.run_point(model, n_train)
            except DataError as exc:
                if "in use by another" in str(exc):
                    print(f"{model} N={n_train}: skipped, {exc}")
                    continue
                update_results(
                    out, lambda d, e=exc, k=f"{model}/{key}": d["failed"].update({k: str(e)})
                )
                print(f"{model} N={n_train}: failed: {exc}")
                continue
            point |= {"n_train": n_train, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            point["wall_seconds_last_call"] = time.time() - started

            def add(d: dict[str, Any], m: str = model, k: str = key, p: dict = point) -> None:
                check(d)
                d["points"].setdefault(m, {})[k] = p
                d["failed"].pop(f"{m}/{k}", None)

            update_results(out, add)
            print(f"{model} N={n_train}: test MAE {point['test']['mae'] * 1000:.1f} meV")


def epoch_log(spec: str) -> Path | None:
    """The per-epoch log of a full-data run: a run's ``metrics.csv`` or a shipped model's history.

    ``spec`` is a run directory, a shipped model's folder or a shipped model's name. The
    default name falls back to ``runs/zoo/<name>`` when the shipped model has no history.

    Raises:
        DataError: If ``spec`` names neither (an explicit choice that finds no log).
    """
    path = Path(spec)
    candidates = [path / "metrics.csv", path / HISTORY]
    model = shipped_models().get(spec)
    if model is not None:
        candidates += [model.path / HISTORY, ROOT / "runs" / "zoo" / spec / "metrics.csv"]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None and spec != EPOCH_RUN:
        raise DataError(
            f"--epoch-run '{spec}' is neither a run directory with metrics.csv nor a shipped "
            f"model with {HISTORY}"
        )
    return found


def report(out: Path, epoch_csv: Path | None) -> dict[str, Any]:
    """Fit the points in ``out``, extrapolate to the paper's MAE, draw the figure."""
    fits: dict[str, Any] = {}

    def compute(data: dict[str, Any]) -> None:
        for model in MODELS:
            points = data.get("points", {}).get(model, {})
            sizes = sorted(int(k) for k in points)
            if len(sizes) < 3:
                fits[model] = {"note": f"{len(sizes)} point(s): at least 3 are needed for a fit"}
                continue
            maes = [points[str(n)]["test"]["mae"] for n in sizes]
            plain = fit_power_law(sizes, maes)
            needed = size_for_mae(plain, PAPER_MAE)
            needed["meaningful"] = bool(
                needed["n"] is not None
                and needed["n"] <= 100 * max(sizes)
                and needed["ci"] is not None
                and needed["ci"][1] is not None
            )
            fits[model] = {
                "sizes": sizes,
                "test_mae": maes,
                "power_law": plain,
                "n_for_paper_mae": needed,
                "leave_one_out": leave_one_out(sizes, maes, PAPER_MAE),
                "saturating": fit_saturating(sizes, maes),
                "statement": _size_statement(model, plain, needed, data["protocol"]),
            }
        data["fits"] = fits
        data["paper_mae"] = {"value": PAPER_MAE, "unit": "eV", "what": "SCANN+ QM9 HOMO, paper"}
        if epoch_csv is not None:
            data["epochs_for_paper_mae"] = epoch_extrapolation(epoch_csv)
        data["fit_method"] = (
            "MAE = a * N^-b by least squares on log MAE vs log N; intervals: t intervals "
            f"({LEVEL:.0%}) from the fit's covariance, the N for a target MAE by propagating "
            "(log a, b) draws from that multivariate t; leave_one_out: the range over fits "
            "without one point; saturating: a * N^-b + c by curve_fit (1-sigma errors)"
        )

    data = update_results(out, compute)
    draw(data, out.with_suffix(".png"))
    print(json.dumps({m: f.get("statement", f.get("note")) for m, f in fits.items()}, indent=1))
    if "epochs_for_paper_mae" in data:
        print("epochs:", data["epochs_for_paper_mae"]["verdict"])
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return data


def _size_statement(
    model: str, fit: dict[str, Any], needed: dict[str, Any], proto: dict[str, Any]
) -> str:
    """One sentence: the fitted exponent and the N reaching the paper's MAE."""
    b_ci = fit["b_ci"]
    slope = f"b = {fit['b']:.3f}" + (f" ({b_ci[0]:.3f} to {b_ci[1]:.3f})" if b_ci else "")
    if needed["n"] is None:
        reach = "never reaches 32 meV (the fitted MAE does not fall with N)"
    elif not needed["meaningful"]:
        reach = (
            "gives no meaningful N for 32 meV (beyond 100 times the largest N measured, or "
            "an unbounded interval)"
        )
    else:
        ci = needed["ci"]
        interval = f", {LEVEL:.0%} interval {_fmt(ci[0])} to {_fmt(ci[1])}" if ci else ""
        reach = f"reaches 32 meV at N = {needed['n']:.3g}{interval}"
    return (
        f"{LABELS[model]}: {slope}; at {proto['budget_minutes_per_point']} min per point on "
        f"{proto['threads']} thread(s) the fitted curve {reach} (the budget stays fixed, so "
        "large N get fewer epochs)"
    )


def draw(data: dict[str, Any], path: Path) -> Path:
    """Log-log figure: test MAE vs N per model, the fits and the paper's 32 meV."""
    from atomlens.plotting import save_figure, subplots

    figure, axis = subplots(figsize=(6.0, 4.5))
    colors = {"scann_plus": "tab:blue", "schnet": "tab:orange"}
    reach = [max(int(k) for k in pts) for pts in data.get("points", {}).values() if pts]
    right = max(reach, default=110000)
    for model in MODELS:
        points = data.get("points", {}).get(model, {})
        if not points:
            continue
        sizes = np.array(sorted(int(k) for k in points), float)
        maes = np.array([points[str(int(n))]["test"]["mae"] for n in sizes]) * 1000
        axis.plot(sizes, maes, "o", color=colors[model], label=LABELS[model])
        fit = data.get("fits", {}).get(model, {}).get("power_law")
        if fit:
            needed = data["fits"][model]["n_for_paper_mae"]["n"] or right
            grid = np.geomspace(sizes.min(), max(sizes.max(), min(needed, 100 * right)), 200)
            label = f"fit: {fit['a'] * 1000:.3g} meV * N^{-fit['b']:.3f}"
            axis.plot(grid, fit["a"] * 1000 * grid ** -fit["b"], "-", color=colors[model], lw=1)
            axis.plot([], [], "-", color=colors[model], lw=1, label=label)
    axis.axhline(PAPER_MAE * 1000, color="k", ls="--", lw=1, label="paper SCANN+ (32 meV)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("training molecules N")
    axis.set_ylabel("test MAE, QM9 HOMO (meV)")
    proto = data.get("protocol", {})
    axis.set_title(
        f"QM9 HOMO learning curves, {proto.get('budget_minutes_per_point', '?')} min per point, "
        f"{proto.get('threads', '?')} thread(s)",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path)


def parse_sizes(text: str) -> list[int]:
    """``1000,4000`` -> [1000, 4000] (positive sizes only)."""
    sizes = [int(v) for v in text.split(",") if v.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got '{text}'")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--models", type=lambda t: [m for m in t.split(",") if m], default=list(MODELS)
    )
    parser.add_argument("--budget-min", type=float, default=10.0, help="per point (default 10)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--nest-seed", type=int, default=1)
    parser.add_argument("--scann-config", default=str(SCANN_CONFIG))
    parser.add_argument("--runs", default=None, help="folder of the points' runs")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON (PNG beside it)")
    parser.add_argument(
        "--epoch-run",
        default=EPOCH_RUN,
        help="full-data run (folder with metrics.csv) or shipped model whose per-epoch "
        "validation MAE is fitted (default: qm9-homo)",
    )
    parser.add_argument("--report", action="store_true", help="only fit and draw")
    parser.add_argument("--retry-failed", action="store_true")
    args = parser.parse_args()
    if args.budget_min <= 0:
        parser.error(f"--budget-min must be positive, got {args.budget_min}")
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        epoch_csv = epoch_log(args.epoch_run) if args.epoch_run else None
        if not args.report:
            run_points(args, out)
        report(out, epoch_csv)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
